//! Statement building per core: decodes row batches and turns them into multi-table INSERT
//! statements exactly as the writer does (mapping, conversion, escaping, cutting), on one thread
//! and without a sink, so the figure is the writer's own cost. Prints JSON.

use std::time::Instant;

use clap::Parser;
use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ColumnType, Message, Value, pb};
use influx2td_writer::convert::{Precision, convert, needs};
use influx2td_writer::schema::plan;
use influx2td_writer::sql::InsertBuilder;

#[derive(Debug, Parser)]
struct Args {
    /// Rows to build statements for.
    #[arg(long, default_value_t = 2_000_000)]
    rows: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The shape of bench/generate.py: 32 series per measurement, float, integer, string, bool.
    let states = ["ok", "hot"];
    let mut payloads = Vec::new();
    let mut encoder = BatchEncoder::new(window());
    let columns = vec![
        ("usage".to_owned(), ColumnType::Double),
        ("count".to_owned(), ColumnType::Int64),
        ("state".to_owned(), ColumnType::String),
        ("up".to_owned(), ColumnType::Bool),
    ];
    let rows_per_series = args.rows / 32;
    for host in 0..32 {
        let tags = vec![
            pb::Tag {
                key: "host".into(),
                value: format!("host-{host:02}"),
            },
            pb::Tag {
                key: "region".into(),
                value: format!("eu-{}", host % 3),
            },
        ];
        encoder.begin_series(tags, columns.clone());
        for row in 0..rows_per_series {
            let value = (row * 7 % 1000) as f64 / 10.0;
            let values = [
                Some(Value::Double(value)),
                Some(Value::Int64(row as i64)),
                Some(Value::String(states[row % 2])),
                Some(Value::Bool(row % 3 == 0)),
            ];
            if let Some(batch) = encoder.push_row(
                1_700_000_000_000_000_000 + row as i64 * 10_000_000_000,
                &values,
            )? {
                payloads.push(batch.payload);
            }
        }
    }
    payloads.push(encoder.finish().payload);

    let started = Instant::now();
    let (mut rows, mut statements, mut bytes) = (0usize, 0usize, 0usize);
    let mut schema = None;
    for payload in &payloads {
        let batch = pb::RowBatch::decode(payload.clone())?;
        let (_, planned) = plan(
            "metrics",
            "cpu",
            schema.as_ref(),
            &needs(&batch, schema.as_ref()),
        );
        let converted = convert(&batch, &planned, Precision::Nanoseconds);
        schema = Some(planned);
        let mut builder = InsertBuilder::new("metrics", "cpu", 5000);
        for table in &converted.tables {
            builder.add(table);
        }
        for insert in builder.finish() {
            rows += insert.rows;
            statements += 1;
            bytes += insert.sql.len();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "batches": payloads.len(),
            "statements": statements,
            "sql_bytes": bytes,
            "seconds": seconds,
            "rows_per_second_per_core": rows as f64 / seconds,
        })
    );
    Ok(())
}

fn window() -> WindowRef {
    WindowRef {
        job: "bench".into(),
        measurement: "cpu".into(),
        window_start_ns: 0,
        window_end_ns: i64::MAX,
        attempt: 1,
        read: 1,
    }
}
