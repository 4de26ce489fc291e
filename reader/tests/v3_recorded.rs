//! InfluxDB 3 as a real one answered: `fixtures/influxdb3/answers.json` holds what an InfluxDB 3
//! Core server sent back to the reader's requests (recorded by `fixtures/influxdb3/record.py`
//! after writing `fixtures/influxdb3/data.lp` into it), served again here so that CI, where no
//! InfluxDB 3 runs, checks the decoding and the error paths. `tests/influxdb3.rs` runs
//! against the live server when there is one.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::tags;
use influx2td_config::{QueryLanguage, Secret, SourceAuth, SourceConfig};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::{ColumnType, Message, pb};
use influx2td_reader::{InfluxClient, SourceError, WindowReader, schema};
use serde::Deserialize;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Deserialize)]
struct Recording {
    server: serde_json::Value,
    window: (i64, i64),
    database: String,
    answers: Vec<Answer>,
}

#[derive(Debug, Deserialize)]
struct Answer {
    path: String,
    params: BTreeMap<String, String>,
    token: Option<String>,
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

fn recording() -> Recording {
    serde_json::from_str(include_str!("fixtures/influxdb3/answers.json")).unwrap()
}

/// A server answering every recorded request as the real one did (the one with a wrong token
/// apart: `wrong_token` chooses which `/ping` answer is served).
async fn replay(wrong_token: bool) -> (MockServer, Recording) {
    let recording = recording();
    let server = MockServer::start().await;
    for answer in &recording.answers {
        if answer.token.is_some() != wrong_token && answer.path == "/ping" {
            continue;
        }
        let mut mock = Mock::given(method("GET")).and(path(answer.path.as_str()));
        for (name, value) in &answer.params {
            mock = mock.and(query_param(name.as_str(), value.as_str()));
        }
        let mut response = ResponseTemplate::new(answer.status).set_body_string(&answer.body);
        for (name, value) in &answer.headers {
            response = response.insert_header(name.as_str(), value.as_str());
        }
        mock.respond_with(response).mount(&server).await;
    }
    (server, recording)
}

/// A client of the replayed server; `version` unset: it finds 3 from `/ping`.
fn client(server: &MockServer, bucket: &str, version: Option<u8>) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url: server.uri(),
        version,
        query_language: QueryLanguage::Influxql,
        auth: SourceAuth::Token {
            org: None,
            token: Secret::new("recorded"),
        },
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(30),
    };
    InfluxClient::new(&config, bucket).unwrap()
}

#[tokio::test]
async fn the_server_is_found_to_be_influxdb_3_and_its_databases_listed_through_its_api() {
    let (server, recording) = replay(false).await;
    let client = client(&server, &recording.database, None);
    assert!(
        recording.server["version"]
            .as_str()
            .unwrap()
            .starts_with('3'),
        "{}",
        recording.server
    );
    assert_eq!(client.major_version().await.unwrap(), Some(3));
    let buckets = schema::buckets(&client).await.unwrap();
    assert!(buckets.contains(&recording.database), "{buckets:?}");
    schema::ensure_bucket(&client).await.unwrap();
    let measurements = schema::measurements(&client, &[]).await.unwrap();
    assert_eq!(measurements, ["cpu load", "disk.io-ü"]);
}

#[tokio::test]
async fn fields_tags_and_time_bounds_are_discovered_with_their_types() {
    let (server, recording) = replay(false).await;
    let client = client(&server, &recording.database, None);
    let cpu = schema::schema(&client, "cpu load").await.unwrap();
    let fields: Vec<_> = cpu
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.column_type))
        .collect();
    assert_eq!(
        fields,
        [
            ("b", ColumnType::Bool),
            ("f", ColumnType::Double),
            ("i", ColumnType::Int64),
            ("s", ColumnType::String),
            ("u", ColumnType::Uint64),
        ]
    );
    assert_eq!(cpu.tag_keys, ["host", "region"]);
    let names = ["cpu load".to_owned(), "disk.io-ü".to_owned()];
    let bounds = schema::time_bounds_of(&client, &names).await.unwrap();
    assert_eq!(
        bounds,
        [
            Some((-1_000_000_000, 1_700_000_000_123_456_791)),
            Some((1_700_000_003_600_000_000, 1_700_000_003_600_000_001)),
        ]
    );
}

/// The first read of `measurement`'s recorded window.
fn recorded_window(recording: &Recording, measurement: &str) -> WindowRef {
    WindowRef {
        job: "recorded".into(),
        measurement: measurement.into(),
        window_start_ns: recording.window.0,
        window_end_ns: recording.window.1,
        attempt: 1,
        read: 1,
    }
}

#[tokio::test]
async fn a_window_reads_back_every_value_with_its_type() {
    let (server, recording) = replay(false).await;
    let client = client(&server, &recording.database, None);
    let mut rows = Vec::new();
    for measurement in ["cpu load", "disk.io-ü"] {
        let schema = schema::schema(&client, measurement).await.unwrap();
        let window = recorded_window(&recording, measurement);
        let mut reader = WindowReader::open(&client, Arc::new(schema), window, 4096)
            .await
            .unwrap();
        let mut batches = Vec::new();
        while let Some(batch) = reader.next_batch().await.unwrap() {
            batches.push(pb::RowBatch::decode(batch.payload()).unwrap());
        }
        let totals = batches.last().and_then(|b| b.totals).unwrap();
        assert_eq!(totals.batches as usize, batches.len());
        rows.extend(common::values(&batches));
    }
    rows.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let value = |name: &str, shown: &str| (name.to_owned(), shown.to_owned());
    let server_01 = tags(&[("host", "server 01"), ("region", "eu,west")]);
    assert_eq!(
        rows,
        [
            (
                vec![],
                -1_000_000_000,
                vec![
                    value("b", "Bool(false)"),
                    value("f", "Double(0.1)"),
                    value("i", "Int64(-9223372036854775808)"),
                ]
            ),
            (
                server_01.clone(),
                1_700_000_000_123_456_789,
                vec![
                    value("b", "Bool(true)"),
                    value("f", "Double(1.5)"),
                    value("i", "Int64(-3)"),
                    value("s", r#"String("say \"hi\" \\ ok")"#),
                    value("u", "Uint64(7)"),
                ]
            ),
            (
                server_01,
                1_700_000_000_123_456_790,
                vec![value("f", "Double(2.5)")]
            ),
            (
                tags(&[("host", "server 02")]),
                1_700_000_000_123_456_791,
                vec![
                    value("f", "Double(-1e-300)"),
                    value("i", "Int64(9223372036854775807)"),
                    // Line protocol escapes only `"` and `\` in strings: `\n` stays two characters.
                    value("s", r#"String("line\\nbreak 🔥")"#),
                    value("u", "Uint64(18446744073709551615)"),
                ]
            ),
            (
                tags(&[("emoji", "🔥"), ("path", "/var/lib=x"), ("quote", "a\"b'c")]),
                1_700_000_003_600_000_000,
                vec![value("value", "Int64(42)")]
            ),
            (
                tags(&[("path", "/tmp")]),
                1_700_000_003_600_000_001,
                vec![value("value", "Int64(43)")]
            ),
        ]
    );
}

#[tokio::test]
async fn a_missing_database_and_a_bad_statement_are_named() {
    let (server, _) = replay(false).await;
    let missing = client(&server, "no_such_db", None);
    let error = schema::ensure_bucket(&missing).await.unwrap_err();
    assert!(
        matches!(error, SourceError::BucketNotFound { ref bucket, .. } if bucket == "no_such_db"),
        "{error}"
    );
    let recording = recording();
    let answered = client(&server, &recording.database, None);
    let error = answered.query("SELECT FROM WHERE").await.unwrap_err();
    assert!(
        error.to_string().contains("SELECT FROM WHERE"),
        "the statement is named: {error}"
    );
}

#[tokio::test]
async fn a_retention_policy_is_refused_by_name() {
    let (server, _) = replay(false).await;
    let config = SourceConfig {
        kind: Default::default(),
        url: server.uri(),
        version: Some(3),
        query_language: QueryLanguage::Influxql,
        auth: SourceAuth::None,
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(30),
    };
    let error = InfluxClient::new(&config, "db/autogen").unwrap_err();
    assert!(
        error.to_string().contains("no retention policies"),
        "{error}"
    );
    // Found to be 3.x only from /ping: refused when first used.
    let found = client(&server, "db/autogen", None);
    let error = schema::ensure_bucket(&found).await.unwrap_err();
    assert!(
        error.to_string().contains("no retention policies"),
        "{error}"
    );
}

#[tokio::test]
async fn a_wrong_token_is_read_as_such_even_on_ping() {
    let recording = recording();
    if !recording.answers.iter().any(|a| a.token.is_some()) {
        panic!(
            "answers.json was recorded without a token: record it against a server with auth on"
        );
    }
    let (server, recording) = replay(true).await;
    let client = client(&server, &recording.database, None);
    let error = schema::buckets(&client).await.unwrap_err();
    assert!(
        matches!(error, SourceError::Unauthorized { ref detail } if detail.contains("token is needed or wrong")),
        "{error}"
    );
}

#[tokio::test]
async fn several_measurements_are_not_read_in_one_query() {
    // 1.x answers `;`-separated statements in order; InfluxDB 3 is not known to, so a group is
    // refused (the reader service then reads each measurement on its own).
    let (server, recording) = replay(false).await;
    for version in [None, Some(3)] {
        let client = client(&server, &recording.database, version);
        let mut members = Vec::new();
        for measurement in ["cpu load", "disk.io-ü"] {
            let schema = schema::schema(&client, measurement).await.unwrap();
            members.push((Arc::new(schema), recorded_window(&recording, measurement)));
        }
        let error = WindowReader::open_group(&client, members, 4096)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SourceError::Config { detail }
                if detail == "only InfluxDB 1.x is read several measurements per query"),
            "{version:?}: {error}"
        );
    }
}
