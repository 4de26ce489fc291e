//! InfluxDB 2.x through its v1-compatible `/query`: token auth, the bucket as `db`. No 2.x server
//! can be installed here, so wiremock answers as it documents. (InfluxDB 3 answers otherwise
//! than its documentation says: `v3_recorded.rs` replays what a real one answered.)

#![allow(clippy::unwrap_used)]

use influx2td_config::{QueryLanguage, Secret, SourceAuth, SourceConfig};
use influx2td_reader::{InfluxClient, SourceError, schema};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer, version: u8) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url: server.uri(),
        version: Some(version),
        query_language: QueryLanguage::Influxql,
        auth: SourceAuth::Token {
            org: Some("acme".into()),
            token: Secret::new("t0ken"),
        },
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(300),
    };
    InfluxClient::new(&config, "my/bucket").unwrap()
}

async fn answer(server: &MockServer, statement: &str, body: &str) {
    Mock::given(method("GET"))
        .and(path("/query"))
        .and(header("authorization", "Token t0ken"))
        .and(query_param("db", "my/bucket"))
        .and(query_param("q", statement))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn discovery_sends_the_token_and_the_whole_bucket_name() {
    let server = MockServer::start().await;
    answer(&server, "SHOW DATABASES", r#"{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["my/bucket"]]}]}]}"#).await;
    answer(&server, "SHOW MEASUREMENTS ON \"my/bucket\"", r#"{"results":[{"statement_id":0,"series":[{"name":"measurements","columns":["name"],"values":[["cpu"],["mem"]]}]}]}"#).await;
    // 2.x takes the bucket name whole: a `/` is not a retention policy separator there.
    let found = schema::measurements(&client(&server, 2), &[])
        .await
        .unwrap();
    assert_eq!(found, ["cpu", "mem"]);
}

#[tokio::test]
async fn a_revoked_token_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(path("/query"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(r#"{"code":"unauthorized","message":"authorization not found"}"#),
        )
        .mount(&server)
        .await;
    let error = schema::measurements(&client(&server, 2), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(error, SourceError::Unauthorized { ref detail } if detail == "authorization not found"),
        "{error}"
    );
}

#[tokio::test]
async fn ping_reads_the_2x_version_headers() {
    let server = MockServer::start().await;
    Mock::given(path("/ping"))
        .respond_with(
            ResponseTemplate::new(204)
                .insert_header("X-Influxdb-Version", "v2.7.11")
                .insert_header("X-Influxdb-Build", "OSS"),
        )
        .mount(&server)
        .await;
    let info = client(&server, 2).ping().await.unwrap();
    assert_eq!(
        (info.major, info.version.as_str(), info.build.as_deref()),
        (Some(2), "v2.7.11", Some("OSS"))
    );
}

#[tokio::test]
async fn a_server_that_is_not_influxdb_is_named_as_such() {
    let server = MockServer::start().await;
    Mock::given(path("/ping"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let error = client(&server, 2).ping().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("without an X-Influxdb-Version header: not InfluxDB?"),
        "{error}"
    );
}
