//! Every way to authenticate to NATS and TLS with client certificates, against a real
//! nats-server configured for each: the right credentials get a working JetStream bus, wrong
//! ones a prompt error that says why — never a minute of "no answer", never the secret.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use influx2td_bus::{
    Bus, BusError, Names, NatsAuth, NatsBus, NatsConnect, QueueConfig, StreamKind,
};
use influx2td_bus::{CheckpointStore, OutgoingMessage, WorkQueue};
use influx2td_testkit::{NatsServer, TestCertificates};

fn names() -> Names {
    Names::new("influx2td", "secure").unwrap()
}

/// Connects, then proves the connection does JetStream work: a stream, a KV write.
async fn works(connect: &NatsConnect) {
    let bus = NatsBus::connect(connect, names()).await.unwrap();
    let work = bus.queue(QueueConfig::new(StreamKind::Work)).await.unwrap();
    work.publish(OutgoingMessage {
        subject: names().subject(StreamKind::Work, "cpu"),
        msg_id: "one".into(),
        headers: Vec::new(),
        payload: "x".into(),
    })
    .await
    .unwrap();
    let store = bus.checkpoints().await.unwrap();
    store.compare_and_set("k", "v".into(), None).await.unwrap();
}

/// Connecting fails within seconds; returns the message.
async fn refused(connect: &NatsConnect) -> String {
    let started = Instant::now();
    let error = NatsBus::connect(connect, names()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, BusError::Connect { .. }), "{error:?}");
    error.to_string()
}

fn connect(server: &NatsServer, auth: NatsAuth) -> NatsConnect {
    NatsConnect {
        auth,
        ..NatsConnect::plain(server.url(), "security-test")
    }
}

#[tokio::test]
async fn user_and_password() {
    let config = r#"authorization { users: [ { user: "influx2td", password: "s3cret-Pa55" } ] }"#;
    let Some(server) = NatsServer::start_with_config(Some(config)) else {
        return;
    };
    let right = NatsAuth::UserPassword {
        user: "influx2td".into(),
        password: "s3cret-Pa55".into(),
    };
    works(&connect(&server, right)).await;
    let wrong = NatsAuth::UserPassword {
        user: "influx2td".into(),
        password: "wrong-Pa55".into(),
    };
    let message = refused(&connect(&server, wrong.clone())).await;
    assert!(
        message.contains("the server refuses the credentials")
            && message.contains("authorization violation"),
        "{message}"
    );
    assert!(!message.contains("wrong-Pa55"), "{message}");
    assert!(!format!("{wrong:?}").contains("wrong-Pa55"));
    let message = refused(&connect(&server, NatsAuth::None)).await;
    assert!(message.contains("authorization violation"), "{message}");
}

#[tokio::test]
async fn token() {
    let config = r#"authorization { token: "t0ken-for-influx2td" }"#;
    let Some(server) = NatsServer::start_with_config(Some(config)) else {
        return;
    };
    works(&connect(
        &server,
        NatsAuth::Token("t0ken-for-influx2td".into()),
    ))
    .await;
    let message = refused(&connect(&server, NatsAuth::Token("not-it".into()))).await;
    assert!(message.contains("authorization violation"), "{message}");
    assert!(!message.contains("not-it"), "{message}");
}

#[tokio::test]
async fn nkey_seed() {
    let user = nkeys::KeyPair::new_user();
    let config = format!(
        r#"authorization {{ users: [ {{ nkey: "{}" }} ] }}"#,
        user.public_key()
    );
    let Some(server) = NatsServer::start_with_config(Some(&config)) else {
        return;
    };
    let seed = user.seed().unwrap();
    works(&connect(&server, NatsAuth::NkeySeed(seed.clone()))).await;
    // Another user's seed: the server does not know its public key.
    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let message = refused(&connect(&server, NatsAuth::NkeySeed(stranger.clone()))).await;
    assert!(message.contains("authorization violation"), "{message}");
    assert!(!message.contains(&stranger) && !message.contains(&seed));
    assert!(!format!("{:?}", NatsAuth::NkeySeed(seed.clone())).contains(&seed));
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let directory = tempfile::tempdir().unwrap();
    let certificates = TestCertificates::generate(directory.path());
    let config = format!(
        r#"tls {{
  cert_file: "{}"
  key_file: "{}"
  ca_file: "{}"
  verify: true
  timeout: 2
}}"#,
        certificates.cert_file.display(),
        certificates.key_file.display(),
        certificates.ca_file.display(),
    );
    let Some(server) = NatsServer::start_with_config(Some(&config)) else {
        return;
    };
    let good = NatsConnect {
        ca_file: Some(certificates.ca_file.clone()),
        client_certificate: Some((
            certificates.client_cert_file.clone(),
            certificates.client_key_file.clone(),
        )),
        tls_required: true,
        ..NatsConnect::plain(server.url(), "security-test")
    };
    works(&good).await;

    // Without the CA the server's certificate is not trusted.
    let message = refused(&NatsConnect {
        ca_file: None,
        ..good.clone()
    })
    .await;
    assert!(message.contains("TLS"), "{message}");
    assert!(message.contains("nats.ca_file"), "{message}");

    // Without a client certificate the server (verify: true) hangs up.
    let message = refused(&NatsConnect {
        client_certificate: None,
        ..good.clone()
    })
    .await;
    assert!(message.contains("TLS failed"), "{message}");
}

#[tokio::test]
async fn tls_required_refuses_a_server_without_tls() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let message = refused(&NatsConnect {
        tls_required: true,
        ..NatsConnect::plain(server.url(), "security-test")
    })
    .await;
    assert!(message.contains("TLS"), "{message}");
}

/// A JWT as nats-server reads them: `ed25519-nkey` signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{subject}-jti"),
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "name": "influx2td-test",
        "sub": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", encode(claims.to_string().as_bytes()));
    let signature = issuer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", encode(&signature))
}

#[tokio::test]
async fn creds_file_in_operator_mode() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let system = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        serde_json::json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        serde_json::json!({"type": "account", "version": 2}),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        serde_json::json!({"subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    let config = format!(
        r#"operator: "{operator_jwt}"
system_account: "{system}"
resolver: MEMORY
resolver_preload: {{
  {account}: "{account_jwt}"
  {system}: "{system_jwt}"
}}"#,
        system = system.public_key(),
        account = account.public_key(),
    );
    let Some(server) = NatsServer::start_with_config(Some(&config)) else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let creds = |seed: &str| {
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
    };
    let good = directory.path().join("good.creds");
    std::fs::write(&good, creds(&user.seed().unwrap())).unwrap();
    works(&connect(&server, NatsAuth::CredsFile(good))).await;

    // The JWT with a seed that is not its user's: the nonce signature does not match.
    let stolen = directory.path().join("stolen.creds");
    let other_seed = nkeys::KeyPair::new_user().seed().unwrap();
    std::fs::write(&stolen, creds(&other_seed)).unwrap();
    let message = refused(&connect(&server, NatsAuth::CredsFile(stolen))).await;
    assert!(message.contains("authorization violation"), "{message}");
    assert!(!message.contains(&other_seed), "{message}");

    let missing = directory.path().join("missing.creds");
    let message = refused(&connect(&server, NatsAuth::CredsFile(missing))).await;
    assert!(
        message.contains("cannot read credentials file"),
        "{message}"
    );
}
