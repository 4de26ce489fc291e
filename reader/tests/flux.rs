//! The Flux path against wiremock fixtures written from InfluxDB's documented annotated-CSV
//! format (no InfluxDB 2.x server can be installed here).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Row, tags};
use influx2td_config::{QueryLanguage, Secret, SourceAuth, SourceConfig};
use influx2td_proto::batch::WindowRef;
use influx2td_proto::{Message, pb};
use influx2td_reader::flux::FluxWindowReader;
use influx2td_reader::{InfluxClient, SourceError};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Two series of `cpu` in one section, then a third series whose table has another schema (a
/// new field `load`, no `region` tag): a new annotated section mid-answer. Every field type;
/// a cell left empty is a field the row lacks.
const TWO_SECTIONS: &str = "#group,false,false,true,true,false,true,true,true,false,false,false,false,false\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339Nano,string,string,string,double,long,string,boolean,unsignedLong\r\n\
#default,_result,,,,,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_measurement,host,region,usage,count,note,up,bytes\r\n\
,,0,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,2023-11-14T22:13:20.123456789Z,cpu,server 01,\"eu,west\",1.5,-3,\"say \"\"hi\"\"\",true,18446744073709551615\r\n\
,,0,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,2023-11-14T22:13:20.123456790Z,cpu,server 01,\"eu,west\",2.5,,,,\r\n\
,,1,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,1969-12-31T23:59:59Z,cpu,server 02,us,-1,7,\"line\nbreak\",false,0\r\n\
\r\n\
#group,false,false,true,true,false,true,true,false\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339Nano,string,string,double\r\n\
#default,_result,,,,,,,\r\n\
,result,table,_start,_stop,_time,_measurement,host,load\r\n\
,,2,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,2023-11-14T22:13:20Z,cpu,server 03,0.25\r\n\
\r\n";

const MID_STREAM_ERROR: &str = "#group,false,false,true,true,false,true,false\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339Nano,string,double\r\n\
#default,_result,,,,,,\r\n\
,result,table,_start,_stop,_time,_measurement,usage\r\n\
,,0,2023-11-14T00:00:00Z,2023-11-15T00:00:00Z,2023-11-14T22:13:20Z,cpu,1\r\n\
\r\n\
#datatype,string,string\r\n\
#group,true,true\r\n\
#default,,\r\n\
,error,reference\r\n\
,\"panic: runtime error: query exceeded memory limit\",897\r\n\
\r\n";

fn client(server: &MockServer) -> InfluxClient {
    let config = SourceConfig {
        kind: Default::default(),
        url: server.uri(),
        version: Some(2),
        query_language: QueryLanguage::Flux,
        auth: SourceAuth::Token {
            org: Some("acme".into()),
            token: Secret::new("t0ken"),
        },
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(300),
    };
    InfluxClient::new(&config, "telegraf").unwrap()
}

fn window() -> WindowRef {
    WindowRef {
        job: "flux".into(),
        measurement: "cpu".into(),
        window_start_ns: -1_000_000_000_000,
        window_end_ns: 1_700_100_000_000_000_000,
        attempt: 1,
        read: 1,
    }
}

async fn serve(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/query"))
        .and(query_param("org", "acme"))
        .and(header("authorization", "Token t0ken"))
        .and(body_string_contains("pivot(rowKey: [\\\"_time\\\"]"))
        .and(body_string_contains("r._measurement == \\\"cpu\\\""))
        .respond_with(
            ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "text/csv"),
        )
        .mount(&server)
        .await;
    server
}

async fn read_all(
    reader: &mut FluxWindowReader,
) -> Result<(Vec<Row>, Vec<pb::RowBatch>), SourceError> {
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch().await? {
        batches.push(pb::RowBatch::decode(batch.payload()).unwrap());
    }
    let rows = common::rows(&batches);
    Ok((rows, batches))
}

#[tokio::test]
async fn tables_with_different_schemas_are_read_with_their_types() {
    let server = serve(200, TWO_SECTIONS).await;
    let mut reader = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap();
    let (rows, batches) = read_all(&mut reader).await.unwrap();
    let server_01 = tags(&[("host", "server 01"), ("region", "eu,west")]);
    assert_eq!(
        rows,
        vec![
            (
                server_01.clone(),
                1_700_000_000_123_456_789,
                vec![
                    "usage=Double(1.5)".into(),
                    "count=Int64(-3)".into(),
                    "note=String(\"say \\\"hi\\\"\")".into(),
                    "up=Bool(true)".into(),
                    "bytes=Uint64(18446744073709551615)".into(),
                ]
            ),
            (
                server_01,
                1_700_000_000_123_456_790,
                vec!["usage=Double(2.5)".into()]
            ),
            (
                tags(&[("host", "server 02"), ("region", "us")]),
                -1_000_000_000,
                vec![
                    "usage=Double(-1.0)".into(),
                    "count=Int64(7)".into(),
                    "note=String(\"line\\nbreak\")".into(),
                    "up=Bool(false)".into(),
                    "bytes=Uint64(0)".into(),
                ]
            ),
            (
                tags(&[("host", "server 03")]),
                1_700_000_000_000_000_000,
                vec!["load=Double(0.25)".into()]
            ),
        ]
    );
    assert_eq!(
        batches.last().unwrap().totals,
        Some(pb::WindowTotals {
            batches: 1,
            rows: 4
        })
    );
    assert_eq!(reader.stats().rows, 4);
}

#[tokio::test]
async fn small_batches_split_the_same_rows() {
    let server = serve(200, TWO_SECTIONS).await;
    let mut reader = FluxWindowReader::open(&client(&server), window(), 400)
        .await
        .unwrap();
    let (rows, batches) = read_all(&mut reader).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert!(batches.len() > 1);
    assert!(batches.iter().all(|b| b.encoded_len() <= 400));
}

#[tokio::test]
async fn an_empty_answer_is_an_empty_window() {
    let server = serve(200, "\r\n").await;
    let mut reader = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap();
    let (rows, batches) = read_all(&mut reader).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].totals,
        Some(pb::WindowTotals {
            batches: 1,
            rows: 0
        })
    );
}

#[tokio::test]
async fn an_error_table_mid_stream_is_an_error() {
    let server = serve(200, MID_STREAM_ERROR).await;
    let mut reader = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap();
    let error = read_all(&mut reader).await.unwrap_err();
    assert!(
        matches!(error, SourceError::Query { ref message, .. } if message == "panic: runtime error: query exceeded memory limit"),
        "{error}"
    );
}

#[tokio::test]
async fn unauthorized_is_an_auth_error() {
    let server = serve(
        401,
        r#"{"code":"unauthorized","message":"unauthorized access"}"#,
    )
    .await;
    let error = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(error, SourceError::Unauthorized { ref detail } if detail == "unauthorized access"),
        "{error}"
    );
    // A token can be restored: the window waits for it rather than fail for good.
    assert!(error.needs_operator());
    assert_eq!(error.retry(), influx2td_bus::Retry::Backoff);
}

#[tokio::test]
async fn unknown_bucket_is_named() {
    let body = r#"{"code":"not found","message":"failed to initialize execute state: could not find bucket \"telegraf\""}"#;
    let server = serve(404, body).await;
    let error = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(error, SourceError::BucketNotFound { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("could not find bucket"),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_cut_mid_row_is_an_error_not_missing_values() {
    let cut = &TWO_SECTIONS[..TWO_SECTIONS.find("2.5").unwrap()];
    let server = serve(200, cut).await;
    let mut reader = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap();
    let error = read_all(&mut reader).await.unwrap_err();
    assert!(
        matches!(error, SourceError::Malformed { ref detail } if detail.contains("cells")),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_cut_between_rows_is_truncated_and_retried() {
    let cut = &TWO_SECTIONS[..TWO_SECTIONS.find(",,1,").unwrap()];
    let server = serve(200, cut).await;
    let mut reader = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap();
    let error = read_all(&mut reader).await.unwrap_err();
    assert!(matches!(error, SourceError::Truncated { .. }), "{error}");
    assert_eq!(error.retry(), influx2td_bus::Retry::Backoff);
}

#[tokio::test]
async fn unknown_organization_is_named() {
    let body = r#"{"code":"not found","message":"organization name \"acme\" not found"}"#;
    let server = serve(404, body).await;
    let error = FluxWindowReader::open(&client(&server), window(), 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "InfluxDB answered HTTP 404: organization name \"acme\" not found"
    );
    assert_eq!(error.retry(), influx2td_bus::Retry::Never);
}
