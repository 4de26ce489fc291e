//! The endpoints, served for real on a loopback port and read over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use influx2td_telemetry::{Endpoints, metrics};
use influx2td_testkit::http_request;

async fn get(port: u16, path: &'static str) -> (u16, String) {
    let response = tokio::task::spawn_blocking(move || http_request(port, "GET", path, &[], b""))
        .await
        .expect("request task")
        .expect("request");
    (response.status, response.body)
}

#[tokio::test]
async fn readiness_follows_the_probes_and_metrics_and_status_are_served() {
    let influx_up = Arc::new(AtomicBool::new(true));
    let probe_state = influx_up.clone();
    let endpoints = Endpoints::new()
        .probe("bus", || async { Ok(()) })
        .probe("influxdb", move || {
            let up = probe_state.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("connection refused".to_owned())
                }
            }
        })
        .status(|| serde_json::json!({ "job": "j1", "measurements": {} }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let address = influx2td_telemetry::spawn("127.0.0.1:0", endpoints, async {
        let _ = stopped.await;
    })
    .await
    .expect("bind");
    let port = address.port();

    assert_eq!(get(port, "/healthz").await, (200, "ok\n".to_owned()));

    let (code, body) = get(port, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ready["checks"]["influxdb"], "ok");

    influx_up.store(false, Ordering::SeqCst);
    let (code, body) = get(port, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let unready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(unready["ready"], false);
    assert_eq!(unready["checks"]["influxdb"], "connection refused");
    assert_eq!(unready["checks"]["bus"], "ok");

    metrics().written(
        "server-test",
        "cpu",
        42,
        0,
        1000,
        std::time::Duration::from_millis(2),
    );
    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"influx2td_rows_written_total{job="server-test",measurement="cpu"} 42"#),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");

    let (code, body) = get(port, "/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["job"], "j1");

    let _ = stop.send(());
}

#[tokio::test]
async fn a_role_without_status_says_where_to_look() {
    let address =
        influx2td_telemetry::spawn("127.0.0.1:0", Endpoints::new(), std::future::pending())
            .await
            .expect("bind");
    let (code, body) = get(address.port(), "/status").await;
    assert_eq!(code, 404);
    assert!(body.contains("coordinator"), "{body}");
    let (code, body) = get(address.port(), "/readyz").await;
    assert_eq!(
        (code, body.contains("\"ready\":true")),
        (200, true),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_listen_address_names_the_value() {
    let error =
        influx2td_telemetry::spawn("localhost-9090", Endpoints::new(), std::future::pending())
            .await
            .expect_err("not an address");
    assert!(error.to_string().contains("\"localhost-9090\""), "{error}");
}
