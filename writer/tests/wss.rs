//! `wss://` (TDengine's taosAdapter over TLS) without a TDengine: the connection options the
//! writer builds meet a real TLS server (an influxd serving HTTPS with a certificate from a
//! CA of the test's own). Each failure is quick, says what to check, and never shows the
//! password of the DSN.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use influx2td_testkit::{Influxd, InfluxdOptions, TestCertificates};
use influx2td_writer::TdengineSink;

const PASSWORD: &str = "Sentinel-Taos-Pw-8812";

async fn refused(dsn: &str) -> String {
    let started = Instant::now();
    let redacted = dsn.replace(PASSWORD, "[redacted]");
    let error = TdengineSink::connect(dsn, &redacted, 1).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!error.message.contains(PASSWORD), "{}", error.message);
    error.message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_to_an_untrusted_or_misnamed_server_says_what_to_check() {
    let directory = tempfile::tempdir().unwrap();
    let certificates = TestCertificates::generate(directory.path());
    let Some(server) = Influxd::start_with(InfluxdOptions {
        tls: Some(certificates),
        ..Default::default()
    }) else {
        return;
    };
    let port = server.http_port();

    let message = refused(&format!("wss://root:{PASSWORD}@localhost:{port}")).await;
    assert!(
        message.contains("UnknownIssuer") && message.contains("is not trusted"),
        "{message}"
    );
    let message = refused(&format!("wss://root:{PASSWORD}@127.0.0.1:{port}")).await;
    assert!(message.contains("not an IP address"), "{message}");
    // Plain ws:// to nothing: refused at once, in plain words with what to check (the
    // issue's own sentence), no TLS hint and not the connector's internal text.
    let message = refused(&format!("ws://root:{PASSWORD}@127.0.0.1:1")).await;
    assert!(
        message.contains("cannot connect to TDengine at ws://root:[redacted]@127.0.0.1:1: connection refused — is taosAdapter running there?"),
        "{message}"
    );
    assert!(
        !message.contains("TLS")
            && !message.contains("certificate")
            && !message.contains("ws-tool"),
        "{message}"
    );
}
