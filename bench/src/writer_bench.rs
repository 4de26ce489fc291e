//! The writer's own cost, and the writer into a real TDengine.
//!
//! Without `--dsn`: statement building per core — decodes row batches and turns them into
//! multi-table INSERT statements exactly as the writer does (mapping, conversion, escaping,
//! cutting), on one thread and without a sink.
//!
//! With `--dsn taos://...`: the writer role itself (over the in-process bus) writes the same
//! batches into a fresh database of that TDengine, once per insert mode (parameter binding,
//! multi-table SQL), alternating for `--rounds` rounds: wall seconds, the CPU seconds of this
//! process (the writer and the TDengine client library) and of taosd, per mode, and their
//! medians. Prints JSON.

use std::time::{Duration, Instant};

use clap::Parser;
use influx2td_bus::{Bus, Delivery, MemoryBus, Names, OutgoingMessage, QueueConfig, Settle};
use influx2td_bus::{StreamKind, WorkQueue};
use influx2td_proto::batch::{BatchEncoder, WindowRef};
use influx2td_proto::{ColumnType, Message, Value, pb};
use influx2td_writer::convert::{Precision, convert, needs};
use influx2td_writer::schema::plan;
use influx2td_writer::service::{self, WriterSettings};
use influx2td_writer::sql::InsertBuilder;
use influx2td_writer::tdengine::InsertMode;
use influx2td_writer::{Sink, TdengineSink};

#[derive(Debug, Parser)]
struct Args {
    /// Rows to build statements for.
    #[arg(long, default_value_t = 2_000_000)]
    rows: usize,
    /// A TDengine to write into (`taos://localhost:6030`) instead of only building statements.
    #[arg(long)]
    dsn: Option<String>,
    /// Rounds of each insert mode, alternating (with --dsn).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Batches written at once (with --dsn).
    #[arg(long, default_value_t = 50)]
    write_concurrency: usize,
    /// With --dsn: write the batches this many times more into the same database through the
    /// same sink and print this process's resident memory after each (a leak shows as growth).
    #[arg(long, default_value_t = 0)]
    leak_check: usize,
    /// Insert modes to measure (with --dsn), comma separated.
    #[arg(long, default_value = "bind,sql", value_delimiter = ',')]
    modes: Vec<String>,
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
                payloads.push(batch.payload());
            }
        }
    }
    payloads.push(encoder.finish().payload());
    if let Some(dsn) = &args.dsn {
        let runtime = tokio::runtime::Runtime::new()?;
        return runtime.block_on(into_tdengine(dsn, &args, payloads));
    }

    let started = Instant::now();
    let (mut rows, mut statements, mut bytes) = (0usize, 0usize, 0usize);
    let mut schema = None;
    for payload in &payloads {
        let batch = pb::RowBatch::decode_checked(payload.clone())?;
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

/// CPU seconds (user + system) of a process so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces: fields count from the `)` that ends it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The pid of the running taosd, if any.
fn taosd_pid() -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "taosd").then_some(pid)
        })
}

/// One write of every batch by the writer role into a fresh database: (seconds, CPU seconds of
/// this process, CPU seconds of taosd).
async fn write_once(
    dsn: &str,
    mode: InsertMode,
    database: &str,
    payloads: &[bytes::Bytes],
    write_concurrency: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let sink = TdengineSink::connect(dsn, "the DSN", write_concurrency)
        .await?
        .with_mode(mode);
    service::prepare_target(&sink, database, true, false, false).await?;
    let state = tempfile::tempdir()?;
    let names = Names::new("influx2td", "bench")?;
    let bus = MemoryBus::new(names.clone(), state.path());
    let settings = WriterSettings {
        write_concurrency,
        ..WriterSettings::new(database)
    };
    let data = bus.queue(QueueConfig::new(StreamKind::Data)).await?;
    let done = bus.queue(QueueConfig::new(StreamKind::Done)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let taosd = taosd_pid();
    let (cpu_before, taosd_before) = (
        cpu_seconds("self").unwrap_or(0.0),
        taosd.as_deref().and_then(cpu_seconds).unwrap_or(0.0),
    );
    let started = Instant::now();
    let writer = tokio::spawn(service::run(bus.clone(), sink.clone(), settings, async {
        let _ = stopped.await;
    }));
    for (index, payload) in payloads.iter().enumerate() {
        data.publish(OutgoingMessage {
            subject: names.subject(StreamKind::Data, "cpu"),
            msg_id: format!("bench-{index}"),
            headers: vec![],
            payload: payload.clone().into(),
        })
        .await?;
    }
    let mut reported = 0;
    while reported < payloads.len() {
        for delivery in done.pull(256, Duration::from_secs(1)).await? {
            let report = pb::WindowDone::decode(delivery.payload().clone())?;
            delivery.settle(Settle::Ack).await?;
            match report.outcome() {
                pb::Outcome::Retrying => {}
                pb::Outcome::Written => reported += 1,
                other => anyhow::bail!("a batch was not written: {other:?} {}", report.reason),
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self").unwrap_or(0.0) - cpu_before;
    let taosd_cpu = taosd.as_deref().and_then(cpu_seconds).unwrap_or(0.0) - taosd_before;
    let _ = stop.send(());
    writer.await??;
    sink.execute(&format!("DROP DATABASE `{database}`")).await?;
    Ok((seconds, cpu, taosd_cpu))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// This process's resident memory (MiB).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Writes the batches `repeats` times into one database through one sink, printing the
/// resident memory after each time.
async fn leak_check(
    dsn: &str,
    mode: InsertMode,
    payloads: &[bytes::Bytes],
    repeats: usize,
    write_concurrency: usize,
) -> anyhow::Result<Vec<f64>> {
    let sink = TdengineSink::connect(dsn, "the DSN", write_concurrency)
        .await?
        .with_mode(mode);
    let database = format!("influx2td_writer_leak_{}", std::process::id());
    service::prepare_target(&sink, &database, true, false, false).await?;
    let mut rss = Vec::new();
    for repeat in 0..repeats {
        let state = tempfile::tempdir()?;
        let names = Names::new("influx2td", "bench")?;
        let bus = MemoryBus::new(names.clone(), state.path());
        let settings = WriterSettings {
            write_concurrency,
            ..WriterSettings::new(&database)
        };
        let data = bus.queue(QueueConfig::new(StreamKind::Data)).await?;
        let done = bus.queue(QueueConfig::new(StreamKind::Done)).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(service::run(bus.clone(), sink.clone(), settings, async {
            let _ = stopped.await;
        }));
        for (index, payload) in payloads.iter().enumerate() {
            data.publish(OutgoingMessage {
                subject: names.subject(StreamKind::Data, "cpu"),
                msg_id: format!("leak-{repeat}-{index}"),
                headers: vec![],
                payload: payload.clone().into(),
            })
            .await?;
        }
        let mut reported = 0;
        while reported < payloads.len() {
            for delivery in done.pull(256, Duration::from_secs(1)).await? {
                let report = pb::WindowDone::decode(delivery.payload().clone())?;
                delivery.settle(Settle::Ack).await?;
                if report.outcome() == pb::Outcome::Written {
                    reported += 1;
                }
            }
        }
        let _ = stop.send(());
        writer.await??;
        rss.push(rss_mib());
        eprintln!(
            "leak check: write {} of the batches: resident {:.1} MiB",
            repeat + 1,
            rss.last().copied().unwrap_or(0.0)
        );
    }
    sink.execute(&format!("DROP DATABASE `{database}`")).await?;
    Ok(rss)
}

async fn into_tdengine(dsn: &str, args: &Args, payloads: Vec<bytes::Bytes>) -> anyhow::Result<()> {
    if args.leak_check > 0 {
        for (name, mode) in [("bind", InsertMode::Bind), ("sql", InsertMode::Sql)] {
            if args.modes.iter().any(|wanted| wanted == name) {
                let rss = leak_check(
                    dsn,
                    mode,
                    &payloads,
                    args.leak_check,
                    args.write_concurrency,
                )
                .await?;
                println!(
                    "{}",
                    serde_json::json!({ "mode": name, "rows_per_write": (args.rows / 32) * 32, "resident_mib_after_each_write": rss })
                );
            }
        }
        return Ok(());
    }
    let rows = (args.rows / 32) * 32;
    let modes: Vec<(&str, InsertMode)> = [("bind", InsertMode::Bind), ("sql", InsertMode::Sql)]
        .into_iter()
        .filter(|(name, _)| args.modes.iter().any(|mode| mode == name))
        .collect();
    let mut results: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); modes.len()];
    let suffix = std::process::id();
    for round in 0..args.rounds {
        for (index, (name, mode)) in modes.iter().enumerate() {
            let database = format!("influx2td_writer_bench_{name}_{suffix}_{round}");
            let (seconds, cpu, taosd) =
                write_once(dsn, *mode, &database, &payloads, args.write_concurrency).await?;
            eprintln!(
                "round {}: {name}: {seconds:.2} s, {:.0} rows/s, influx2td {cpu:.2} CPU-s, taosd {taosd:.2} CPU-s",
                round + 1,
                rows as f64 / seconds
            );
            results[index].0.push(seconds);
            results[index].1.push(cpu);
            results[index].2.push(taosd);
        }
    }
    let mut report = serde_json::Map::new();
    for ((name, _), (mut seconds, mut cpu, mut taosd)) in modes.iter().zip(results) {
        let (seconds, cpu, taosd) = (median(&mut seconds), median(&mut cpu), median(&mut taosd));
        let millions = rows as f64 / 1e6;
        report.insert(
            (*name).to_owned(),
            serde_json::json!({
                "seconds": seconds,
                "rows_per_second": rows as f64 / seconds,
                "influx2td_cpu_seconds_per_million_rows": cpu / millions,
                "taosd_cpu_seconds_per_million_rows": taosd / millions,
            }),
        );
    }
    report.insert("rows".into(), rows.into());
    report.insert("rounds".into(), args.rounds.into());
    report.insert("write_concurrency".into(), args.write_concurrency.into());
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
