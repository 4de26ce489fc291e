//! OpenTelemetry traces across processes: coordinator, reader and writer run as separate
//! processes over a real nats-server and a real influxd and export OTLP/HTTP to a receiver in
//! this test; every window is one trace holding the spans of all three roles, linked parent to
//! child through the messages' `traceparent` headers, with the rows each step moved.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influx2td_testkit::{Influxd, KillOnDrop, NatsServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

mod common;
use common::{terminate, wait_for_exit};

const T0: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;
const WINDOWS: i64 = 3;

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

impl Received {
    fn int(&self, key: &str) -> i64 {
        self.attributes
            .get(key)
            .unwrap_or_else(|| panic!("{self:?} has no {key}"))
            .parse()
            .unwrap()
    }
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf) keeping every span it is sent.
async fn receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let mut kept = kept.lock().unwrap();
                for resource_spans in request.resource_spans {
                    let resource = resource_spans.resource.unwrap_or_default();
                    let service = attributes(&resource.attributes)
                        .remove("service.name")
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            kept.push(Received {
                                service: service.clone(),
                                name: span.name.clone(),
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                                attributes: attributes(&span.attributes),
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, spans)
}

fn attributes(
    list: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_is_one_trace_across_coordinator_reader_and_writer() {
    let (Some(influxd), Some(nats)) = (Influxd::start(), NatsServer::start()) else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    // Window w holds w + 2 points (two series), so each trace's row counts are its own.
    let mut lines = String::new();
    for window in 0..WINDOWS {
        for n in 0..window + 2 {
            let region = if n % 2 == 0 { "east" } else { "west" };
            let time = T0 + window * 10 * SECOND + n * SECOND;
            lines.push_str(&format!("cpu,region={region} usage={n}.5 {time}\n"));
        }
    }
    influxd.write("db", &lines);

    let (port, spans) = receiver().await;
    let directory = tempfile::tempdir().unwrap();
    let logs = directory.path().to_owned();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env: Vec<(&str, String)> = vec![
        ("INFLUX2TD_SOURCE_URL", influxd.url()),
        ("INFLUX2TD_BUCKET", "db".into()),
        ("INFLUX2TD_JOB", "traced".into()),
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        (
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + WINDOWS * 10 * SECOND),
        ),
        ("INFLUX2TD_WINDOW", "10s".into()),
        ("INFLUX2TD_NATS_URL", nats.url()),
        (
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", directory.path().join("target").display()),
        ),
        ("INFLUX2TD_TARGET_DATABASE", "metrics".into()),
        // Warn: traces do not depend on the log level.
        ("INFLUX2TD_LOG_LEVEL", "warn".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ];
    let spawn = |role: &str, extra: (&str, String)| {
        let log = std::fs::File::create(logs.join(format!("{role}.log"))).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain([(extra.0, extra.1.as_str())]);
        KillOnDrop(common::spawn_role(role, env, log))
    };
    let log = || {
        ["coordinator", "reader", "writer"]
            .iter()
            .map(|role| {
                let text = std::fs::read_to_string(logs.join(format!("{role}.log")));
                format!("--- {role}\n{}", text.unwrap_or_default())
            })
            .collect::<String>()
    };
    // The standard variable for two roles, the config key for the third.
    let mut coordinator = spawn(
        "coordinator",
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
    );
    let mut reader = spawn("reader", ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()));
    let mut writer = spawn(
        "writer",
        ("INFLUX2TD_TELEMETRY_OTLP_ENDPOINT", endpoint.clone()),
    );

    let status = wait_for_exit(&mut coordinator.0, Duration::from_secs(60), log);
    assert_eq!(status.code(), Some(0), "{}", log());
    terminate(&mut reader.0);
    terminate(&mut writer.0);

    let spans = spans.lock().unwrap().clone();
    let named = |trace: &str, service: &str, name: &str| -> Vec<Received> {
        spans
            .iter()
            .filter(|s| s.trace_id == trace && s.service == service && s.name == name)
            .cloned()
            .collect()
    };
    let roots: Vec<&Received> = spans
        .iter()
        .filter(|s| s.name == "publish window")
        .collect();
    assert_eq!(roots.len(), WINDOWS as usize, "{spans:#?}\n{}", log());
    for root in roots {
        assert_eq!(root.service, "influx2td-coordinator");
        assert!(root.parent_span_id.is_empty(), "a window starts its trace");
        assert_eq!(root.attributes["measurement"], "cpu");
        let window = (root.int("window_start") - T0) / (10 * SECOND);
        let rows = window + 2;
        let trace = root.trace_id.as_str();

        let read = named(trace, "influx2td-reader", "read window");
        assert_eq!(read.len(), 1, "{spans:#?}");
        let read = &read[0];
        assert_eq!(read.parent_span_id, root.span_id);
        assert_eq!(read.int("rows"), rows);
        assert_eq!(read.attributes["outcome"], "read");
        let query = named(trace, "influx2td-reader", "influxdb query");
        assert_eq!(query.len(), 1, "{spans:#?}");
        assert_eq!(query[0].parent_span_id, read.span_id);
        assert_eq!(query[0].int("rows"), rows);
        assert!(query[0].int("bytes") > 0);

        let written = named(trace, "influx2td-writer", "write batch");
        assert_eq!(written.len(), 1, "one batch per window: {spans:#?}");
        let written = &written[0];
        assert_eq!(written.parent_span_id, read.span_id);
        assert_eq!(written.int("written"), rows);
        assert_eq!(written.attributes["outcome"], "written");
        let inserts = named(trace, "influx2td-writer", "tdengine insert");
        assert!(!inserts.is_empty(), "{spans:#?}");
        assert!(inserts.iter().all(|i| i.parent_span_id == written.span_id));
        assert_eq!(inserts.iter().map(|i| i.int("rows")).sum::<i64>(), rows);

        let done = named(trace, "influx2td-coordinator", "record done");
        assert_eq!(done.len(), 1, "{spans:#?}");
        assert_eq!(done[0].parent_span_id, written.span_id);
        assert_eq!(done[0].int("rows_written"), rows);
        assert_eq!(done[0].attributes["outcome"], "WRITTEN");
    }
}
