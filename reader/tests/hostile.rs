//! Hostile data and hostile servers. Each ends in a correct result or a clear, bounded error —
//! never a hang, a crash or memory without bound:
//! - a server that stalls mid-body, answers garbage, or sends an answer that never ends (a TCP
//!   server in the test speaking HTTP);
//! - from a real influxd: strings of 64 KiB, tag values near InfluxDB's own key limit, control
//!   characters, 10,000 fields in one measurement, 1,000,000 series in one window;
//! - invalid UTF-8 inside an answer (InfluxDB itself refuses to store it: a recorded answer).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use influx2td_config::{SourceAuth, SourceConfig};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::{ColumnType, Message, pb};
use influx2td_reader::{InfluxClient, SourceError, WindowReader, schema};
use influx2td_testkit::Influxd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T0: i64 = 1_700_000_000_000_000_000;

fn client(url: String, read_timeout: Duration) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url,
        version: Some(1),
        query_language: influx2td_config::QueryLanguage::Influxql,
        auth: SourceAuth::None,
        tls: Default::default(),
        read_timeout,
    };
    InfluxClient::new(&config, "db").unwrap()
}

fn window(measurement: &str) -> WindowRef {
    WindowRef {
        job: "hostile".into(),
        measurement: measurement.into(),
        window_start_ns: T0 - 1_000_000_000_000,
        window_end_ns: T0 + 1_000_000_000_000,
        attempt: 1,
        read: 1,
    }
}

fn cpu_schema() -> Arc<influx2td_reader::MeasurementSchema> {
    Arc::new(influx2td_reader::MeasurementSchema {
        measurement: "cpu".into(),
        fields: vec![schema::Field {
            name: "value".into(),
            column_type: ColumnType::Double,
            conflicting_types: Vec::new(),
        }],
        tag_keys: Vec::new(),
    })
}

/// Reads a whole window; the rows of every batch, decoded.
async fn read_all(reader: &mut WindowReader) -> Result<Vec<pb::RowBatch>, SourceError> {
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch().await? {
        batches.push(pb::RowBatch::decode(batch.payload()).unwrap());
    }
    Ok(batches)
}

/// What the hostile server does after the response headers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Half a MessagePack chunk, then silence with the connection open.
    StallMidBody,
    /// Bytes that are not MessagePack.
    Garbage,
    /// A map announcing more entries than will ever come, then nil values without end.
    NeverEnds,
}

/// An HTTP server on loopback answering every request the hostile way; its URL.
async fn hostile_server(behaviour: Behaviour) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-msgpack\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = |bytes: &[u8]| {
                    let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
                    framed.extend_from_slice(bytes);
                    framed.extend_from_slice(b"\r\n");
                    framed
                };
                match behaviour {
                    Behaviour::StallMidBody => {
                        // {"results": [ ... and nothing more.
                        let _ = socket.write_all(&chunk(b"\x81\xa7results\x91\x83")).await;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Behaviour::Garbage => {
                        let _ = socket
                            .write_all(&chunk(b"<html>502 Bad Gateway</html>\xc1\xc1"))
                            .await;
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                    Behaviour::NeverEnds => {
                        // map32 of 2^32-1 entries: keys and values that are nil, forever.
                        let _ = socket.write_all(&chunk(b"\xdf\xff\xff\xff\xff")).await;
                        let nils = chunk(&[0xc0; 64 * 1024]);
                        while socket.write_all(&nils).await.is_ok() {}
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_server_that_stalls_mid_answer_ends_the_read_after_read_timeout() {
    let url = hostile_server(Behaviour::StallMidBody).await;
    let client = client(url, Duration::from_secs(2));
    let started = Instant::now();
    let mut reader = WindowReader::open(&client, cpu_schema(), window("cpu"), 1 << 20)
        .await
        .unwrap();
    let error = read_all(&mut reader).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    // Retried (another reader, another attempt), never taken as a short window.
    assert_eq!(error.retry(), influx2td_bus::Retry::Backoff, "{error}");
    assert_eq!(
        error.to_string(),
        "InfluxDB response ended early: InfluxDB fell silent for 2s in the middle of the answer (source.read_timeout)"
    );
}

#[tokio::test]
async fn a_server_answering_garbage_is_a_clear_error() {
    let url = hostile_server(Behaviour::Garbage).await;
    let client = client(url, Duration::from_secs(5));
    let mut reader = WindowReader::open(&client, cpu_schema(), window("cpu"), 1 << 20)
        .await
        .unwrap();
    let error = read_all(&mut reader).await.unwrap_err();
    assert!(matches!(error, SourceError::Malformed { .. }), "{error:?}");
}

#[tokio::test]
async fn an_answer_that_never_ends_stops_at_the_chunk_bound() {
    let url = hostile_server(Behaviour::NeverEnds).await;
    let client = client(url, Duration::from_secs(5));
    let started = Instant::now();
    let mut reader = WindowReader::open(&client, cpu_schema(), window("cpu"), 1 << 20)
        .await
        .unwrap();
    let error = read_all(&mut reader).await.unwrap_err();
    // At most MAX_CHUNK_BYTES held, then a clear error; not a read that runs forever.
    assert!(
        error.to_string().contains("larger than")
            || error
                .to_string()
                .contains(&influx2td_reader::influxql::MAX_CHUNK_BYTES.to_string()),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn invalid_utf8_in_an_answer_is_a_malformed_answer_not_a_panic() {
    // {"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","value"],
    //   "values":[[1, "\xff\xfe"]]}]}]}  — a string value that is not UTF-8.
    let mut answer = Vec::new();
    answer.extend_from_slice(b"\x81\xa7results\x91\x82\xacstatement_id\x00\xa6series\x91\x83");
    answer.extend_from_slice(b"\xa4name\xa3cpu\xa7columns\x92\xa4time\xa5value");
    answer.extend_from_slice(b"\xa6values\x91\x92\x01\xa2\xff\xfe");
    let client = client("http://127.0.0.1:9".into(), Duration::from_secs(5));
    let result = influx2td_reader::recorded::influxql_answer(
        &client,
        cpu_schema(),
        window("cpu"),
        1 << 20,
        vec![answer.into()],
    );
    let error = result.unwrap_err();
    assert!(matches!(error, SourceError::Malformed { .. }), "{error:?}");
}

fn real_client(influxd: &Influxd) -> InfluxClient {
    client(influxd.url(), Duration::from_secs(60))
}

async fn read_measurement(influxd: &Influxd, measurement: &str) -> Vec<pb::RowBatch> {
    let client = real_client(influxd);
    let schema = Arc::new(schema::schema(&client, measurement).await.unwrap());
    let mut reader = WindowReader::open(&client, schema, window(measurement), 512 * 1024)
        .await
        .unwrap();
    read_all(&mut reader).await.unwrap()
}

/// Tags, time, column and value (as text) of one value read.
type Cell = (Vec<(String, String)>, i64, String, String);

/// Every value of the batches.
fn cells(batches: &[pb::RowBatch]) -> Vec<Cell> {
    common::values(batches)
        .into_iter()
        .flat_map(|(tags, time, values)| {
            values
                .into_iter()
                .map(move |(column, value)| (tags.clone(), time, column, value))
        })
        .collect()
}

#[tokio::test]
async fn huge_strings_long_tags_and_control_characters_arrive_intact() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    // 64 KiB of text with every control character but newline (line protocol ends a line
    // there unless escaped inside quotes, which 1.x does not allow).
    let controls: String = (1u8..32)
        .filter(|c| *c != b'\n' && *c != b'\r')
        .map(char::from)
        .collect();
    let big: String = format!("{controls}{}", "é".repeat(32 * 1024 - controls.len()));
    assert!(big.len() >= 64 * 1024 - 64);
    // InfluxDB refuses series keys over 65,535 bytes: a tag value just below.
    let tag = "t".repeat(60 * 1024);
    let escaped = big.replace('\\', "\\\\").replace('"', "\\\"");
    influxd.write(
        "db",
        &format!("blob,tag={tag} text=\"{escaped}\",n=1i {T0}\n"),
    );
    let batches = read_measurement(&influxd, "blob").await;
    let found = cells(&batches);
    assert_eq!(found.len(), 2, "{}", found.len());
    let text = found.iter().find(|c| c.2 == "text").unwrap();
    assert_eq!(text.0, vec![("tag".to_owned(), tag.clone())]);
    assert_eq!(text.1, T0);
    assert_eq!(
        text.3,
        format!("{:?}", influx2td_proto::Value::String(&big))
    );
}

#[tokio::test]
async fn ten_thousand_fields_in_one_measurement_are_read() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    let mut lines = String::new();
    for row in 0..3i64 {
        let fields: Vec<String> = (0..10_000)
            .map(|f| format!("f{f:05}={}i", f * 10 + row))
            .collect();
        lines.push_str(&format!("wide,host=a {} {}\n", fields.join(","), T0 + row));
    }
    influxd.write("db", &lines);
    let batches = read_measurement(&influxd, "wide").await;
    let found = cells(&batches);
    assert_eq!(found.len(), 30_000);
    for (_, time, column, value) in &found {
        let field: i64 = column[1..].parse().unwrap();
        let row = time - T0;
        assert_eq!(
            value,
            &format!("{:?}", influx2td_proto::Value::Int64(field * 10 + row))
        );
    }
}

#[tokio::test]
async fn a_million_series_in_one_window_stream_in_bounded_batches() {
    let Some(influxd) = Influxd::start() else {
        return;
    };
    influxd.query("CREATE DATABASE db");
    const SERIES: i64 = 1_000_000;
    for part in 0..10 {
        let lines: String = (part * SERIES / 10..(part + 1) * SERIES / 10)
            // Two tags of 1,000 values each: InfluxDB allows 100,000 values per tag by default.
            .map(|n| {
                format!(
                    "many,a=a{:03},b=b{:03} value={n}i {}\n",
                    n / 1000,
                    n % 1000,
                    T0 + n
                )
            })
            .collect();
        influxd.write("db", &lines);
    }
    let client = real_client(&influxd);
    let schema = Arc::new(schema::schema(&client, "many").await.unwrap());
    let limit = 512 * 1024;
    let mut reader = WindowReader::open(&client, schema, window("many"), limit)
        .await
        .unwrap();
    let mut rows = 0u64;
    let mut largest = 0usize;
    let mut ids = std::collections::HashSet::new();
    while let Some(batch) = reader.next_batch().await.unwrap() {
        largest = largest.max(batch.payload().len());
        let decoded = pb::RowBatch::decode(batch.payload()).unwrap();
        for block in &decoded.series {
            ids.insert((block.tags[0].value.clone(), block.tags[1].value.clone()));
            rows += block.timestamps_ns.len() as u64;
        }
    }
    assert_eq!(rows, SERIES as u64);
    assert_eq!(ids.len(), SERIES as usize);
    // Batches stay within the limit however many series the window holds.
    assert!(largest <= limit, "{largest}");
}
