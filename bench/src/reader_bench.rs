//! Reads every window of the given measurements through influx2td's reader (query, decode,
//! encode into batches exactly as the reader role does, without a bus) and prints rows/s as
//! JSON. `bench/run.sh` runs it beside a raw `curl` export of the same windows. With
//! `--tsm-data-dir` and `--tsm-wal-dir` the windows are read from InfluxDB's storage files
//! instead (`source.kind = "tsm"`), the schema from the same files.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use influx2td_config::tsm::TsmDirs;
use influx2td_config::{QueryLanguage, SourceAuth, SourceConfig};
use influx2td_proto::batch::WindowRef;
use influx2td_reader::{InfluxClient, MeasurementSchema, TsmSource, WindowStream, schema};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    database: String,
    /// Comma-separated measurement names.
    #[arg(long)]
    measurements: String,
    /// First window start, ns.
    #[arg(long)]
    begin: i64,
    /// End of the last window, ns (exclusive).
    #[arg(long)]
    end: i64,
    /// Window length, ns.
    #[arg(long)]
    window: i64,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Read the TSM files under this data directory (`[data] dir`) instead of querying.
    #[arg(long, requires = "tsm_wal_dir")]
    tsm_data_dir: Option<std::path::PathBuf>,
    /// The server's WAL directory (`[data] wal-dir`).
    #[arg(long, requires = "tsm_data_dir")]
    tsm_wal_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = SourceConfig {
        kind: Default::default(),
        url: args.url.clone(),
        version: None,
        query_language: QueryLanguage::Influxql,
        auth: SourceAuth::None,
        tls: Default::default(),
        read_timeout: std::time::Duration::from_secs(300),
    };
    let client = InfluxClient::new(&config, &args.database)?;
    let tsm = match (&args.tsm_data_dir, &args.tsm_wal_dir) {
        (Some(data_dir), Some(wal_dir)) => {
            let dirs = TsmDirs {
                data_dir: data_dir.clone(),
                wal_dir: wal_dir.clone(),
            };
            Some(Arc::new(TsmSource::open(&dirs, &args.database)?))
        }
        _ => None,
    };
    let mut windows = Vec::new();
    let mut fields_of = std::collections::HashMap::new();
    for measurement in args.measurements.split(',') {
        let schema: MeasurementSchema = match &tsm {
            Some(source) => source.schema(measurement)?,
            None => schema::schema(&client, measurement).await?,
        };
        fields_of.insert(measurement.to_owned(), schema.fields.len() as u64);
        let schema = Arc::new(schema);
        let mut start = args.begin;
        while start < args.end {
            windows.push((
                schema.clone(),
                measurement.to_owned(),
                start,
                (start + args.window).min(args.end),
            ));
            start += args.window;
        }
    }
    let window_count = windows.len();
    let started = Instant::now();
    let results: Vec<anyhow::Result<(u64, u64, u64, u64)>> = futures::stream::iter(windows)
        .map(|(schema, measurement, start, end)| {
            let client = client.clone();
            let tsm = tsm.clone();
            let fields = fields_of[&measurement];
            async move {
                let window = WindowRef {
                    job: "bench".into(),
                    measurement,
                    window_start_ns: start,
                    window_end_ns: end,
                    attempt: 1,
                    read: 1,
                };
                let limit = influx2td_proto::MAX_BATCH_BYTES;
                let mut stream = match tsm {
                    Some(source) => WindowStream::open_tsm(source, schema, window, limit),
                    None => WindowStream::open(
                        &client,
                        QueryLanguage::Influxql,
                        Some(schema),
                        window,
                        limit,
                    )
                    .await
                    .context("open window")?,
                };
                let mut batch_bytes = 0;
                while let Some(batch) = stream.next_batch().await.context("read window")? {
                    batch_bytes += batch.payload().len() as u64;
                }
                let stats = stream.stats();
                Ok((stats.rows, stats.rows * fields, stats.bytes, batch_bytes))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let (mut rows, mut values, mut response_bytes, mut batch_bytes) = (0, 0, 0, 0);
    for result in results {
        let (r, v, b, p) = result?;
        rows += r;
        values += v;
        response_bytes += b;
        batch_bytes += p;
    }
    let report = serde_json::json!({
        "windows": window_count,
        "rows": rows,
        "seconds": elapsed,
        "rows_per_second": rows as f64 / elapsed,
        // Rows times the measurement's fields: exact for data in which every row has every
        // field (bench/generate.py's), an upper bound otherwise.
        "values": values,
        "response_bytes": response_bytes,
        "batch_bytes": batch_bytes,
    });
    println!("{report}");
    Ok(())
}
