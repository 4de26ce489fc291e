//! `backfill` and `dead-letters`: read a range again and write it into the target, in this
//! process, beside the job (writes are idempotent: same table, same timestamp overwrites).

use std::io::Write;

use influx2td_config::{JobConfig, format_time, parse_time};
use influx2td_job::backfill::read_again;

fn time_argument(flag: &str, text: &str) -> anyhow::Result<i64> {
    parse_time(text).map_err(|reason| anyhow::anyhow!("{flag} {text:?} is not a time: {reason}"))
}

pub async fn backfill(
    job: &JobConfig,
    measurement: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    let from_ns = time_argument("--from", from)?;
    let to_ns = time_argument("--to", to)?;
    if from_ns >= to_ns {
        anyhow::bail!("--from {from:?} must be before --to {to:?}");
    }
    let summary = read_again(job, measurement, from_ns, to_ns).await?;
    let Some(progress) = summary.measurements.get(measurement) else {
        anyhow::bail!(
            "measurement {measurement:?} not found in bucket {:?}",
            job.bucket
        );
    };
    if !summary.complete {
        anyhow::bail!("backfill stopped before the end; run it again");
    }
    writeln!(
        std::io::stdout().lock(),
        "backfilled {measurement} [{} .. {}): {} rows written, {} dead-lettered",
        format_time(from_ns),
        format_time(to_ns),
        progress.rows_written,
        progress.rows_dead_lettered
    )?;
    if progress.rows_dead_lettered > 0 || !progress.failed.is_empty() {
        anyhow::bail!(
            "{} rows were refused again ({}) and {} windows failed",
            progress.rows_dead_lettered,
            progress.dead_letter_reason,
            progress.failed.len()
        );
    }
    Ok(())
}

pub async fn list_dead_letters(job: &JobConfig, json: bool) -> anyhow::Result<()> {
    let checkpoints = influx2td_job::checkpoints::read_checkpoints(job).await?;
    let parked = parked_messages(job).await?;
    let with_dead: Vec<_> = checkpoints
        .iter()
        .filter(|(_, progress)| progress.rows_dead_lettered > 0)
        .collect();
    let mut stdout = std::io::stdout().lock();
    if json {
        let measurements: serde_json::Map<String, serde_json::Value> = with_dead
            .iter()
            .map(|(name, progress)| {
                (
                    (*name).clone(),
                    serde_json::json!({
                        "rows_dead_lettered": progress.rows_dead_lettered,
                        "windows": progress.dead_windows,
                    }),
                )
            })
            .collect();
        return super::print_json(
            &mut stdout,
            &serde_json::json!({
                "job": job.job,
                "parked_messages": parked,
                "measurements": measurements,
            }),
        );
    }
    if with_dead.is_empty() {
        writeln!(stdout, "job {}: no dead-lettered rows", job.job)?;
        return Ok(());
    }
    for (name, progress) in with_dead {
        writeln!(
            stdout,
            "{name}: {} rows dead-lettered",
            progress.rows_dead_lettered
        )?;
        for window in &progress.dead_windows {
            writeln!(
                stdout,
                "  [{} .. {}) {} rows: {}",
                format_time(window.start_ns),
                format_time(window.end_ns),
                window.rows,
                window.reason
            )?;
        }
    }
    if let Some(parked) = parked {
        writeln!(
            stdout,
            "{parked} dead-letter messages on NATS (each holds its rows, the reason and the whole batch)"
        )?;
    }
    Ok(())
}

/// Messages waiting on the dead-letter stream (NATS only: the in-process bus keeps none after
/// its process ends).
async fn parked_messages(job: &JobConfig) -> anyhow::Result<Option<u64>> {
    use influx2td_bus::{Bus, QueueConfig, StreamKind, WorkQueue};
    if job.nats.url.is_none() {
        return Ok(None);
    }
    let bus = influx2td_job::connect::nats_bus(job, "dead-letters").await?;
    let queue = bus.queue(QueueConfig::new(StreamKind::DeadLetter)).await?;
    Ok(Some(queue.depth().await?.messages))
}

pub async fn replay_dead_letters(job: &JobConfig, only: Option<&str>) -> anyhow::Result<()> {
    let checkpoints = influx2td_job::checkpoints::read_checkpoints(job).await?;
    let mut still_refused = 0;
    let mut replayed = 0;
    for (name, progress) in &checkpoints {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        for window in &progress.dead_windows {
            let summary = read_again(job, name, window.start_ns, window.end_ns).await?;
            let outcome = summary.measurements.get(name).cloned().unwrap_or_default();
            replayed += 1;
            still_refused += outcome.rows_dead_lettered;
            let verdict = if outcome.rows_dead_lettered == 0 {
                "every row written".to_owned()
            } else {
                format!(
                    "{} rows still refused: {}",
                    outcome.rows_dead_lettered, outcome.dead_letter_reason
                )
            };
            writeln!(
                std::io::stdout().lock(),
                "{name} [{} .. {}): {} rows written; {verdict}",
                format_time(window.start_ns),
                format_time(window.end_ns),
                outcome.rows_written
            )?;
        }
    }
    if replayed == 0 {
        writeln!(
            std::io::stdout().lock(),
            "job {}: no dead-lettered windows to replay",
            job.job
        )?;
    }
    if still_refused > 0 {
        anyhow::bail!("{still_refused} rows are still refused; fix the cause and replay again");
    }
    Ok(())
}
