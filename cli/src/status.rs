//! `influx2td status`: a job's progress from its checkpoints, and the live status of its running
//! coordinator when it answers.

use std::io::Write;

use influx2td_config::JobConfig;

use crate::print_json;

pub async fn status(job: &JobConfig, json: bool) -> anyhow::Result<()> {
    let (look, live) = tokio::join!(
        influx2td_job::checkpoints::look(job),
        influx2td_job::checkpoints::live_status(job)
    );
    // Where the streams live is shown when NATS answers; a leaderless moment (a failover) must
    // not hide the checkpoints, so it is a line of the output, not the command's failure.
    let placement = match look.placement {
        Ok(placement) => placement,
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "cannot read where the job's streams live"
            );
            None
        }
    };
    // A NATS without quorum cannot give the checkpoints, but the running coordinator still
    // says what it waits for: then that is the answer, with the checkpoints' error beside it.
    let (measurements, checkpoints_error) = match look.checkpoints {
        Ok(measurements) => (measurements, None),
        Err(error) if live.is_some() => (
            live.as_ref().map(live_progress).unwrap_or_default(),
            Some(format!("{error:#}")),
        ),
        Err(error) => return Err(error),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as i64)
        .unwrap_or_default();
    // Continuous sync: how far behind now every measurement is consistent.
    let lag_seconds = |progress: &influx2td_coordinator::tracker::Progress| {
        job.end_ns
            .is_none()
            .then(|| (now.saturating_sub(progress.watermark_ns)) as f64 / 1e9)
    };
    let mut stdout = std::io::stdout().lock();
    if json {
        let measurements: serde_json::Map<String, serde_json::Value> = measurements
            .iter()
            .map(|(name, progress)| {
                let mut value = serde_json::to_value(progress).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert(
                        "consistent_up_to".into(),
                        influx2td_config::format_time(progress.watermark_ns).into(),
                    );
                    if let Some(lag) = lag_seconds(progress) {
                        object.insert("lag_seconds".into(), lag.into());
                    }
                }
                (name.clone(), value)
            })
            .collect();
        let streams: Option<Vec<serde_json::Value>> = placement.as_ref().map(|streams| {
            streams
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "stream": p.stream, "replicas": p.replicas,
                        "current": p.current, "leader": p.leader,
                    })
                })
                .collect()
        });
        print_json(
            &mut stdout,
            &serde_json::json!({
                "job": job.job, "measurements": measurements, "live": live, "streams": streams,
                "checkpoints_error": checkpoints_error,
            }),
        )?;
        return Ok(());
    }
    for p in placement.iter().flatten() {
        match p.replicas {
            Some(replicas) => writeln!(
                stdout,
                "stream {}: {replicas} replica(s), {} current, leader {}",
                p.stream,
                p.current,
                p.leader.as_deref().unwrap_or("none now")
            )?,
            None => writeln!(stdout, "stream {}: not created yet", p.stream)?,
        }
    }
    if let Some(error) = &checkpoints_error {
        writeln!(
            stdout,
            "checkpoints: cannot be read now (the table shows what the coordinator reports): {error}"
        )?;
    } else if measurements.is_empty() {
        writeln!(
            stdout,
            "job {}: no checkpoint yet (not started, or nothing written so far)",
            job.job
        )?;
        return Ok(());
    }
    writeln!(stdout, "job {}", job.job)?;
    if let Some(live) = &live {
        let eta = live["eta_seconds"].as_f64().map_or_else(
            || "-".to_owned(),
            |eta| {
                humantime::format_duration(std::time::Duration::from_secs(eta.round() as u64))
                    .to_string()
            },
        );
        writeln!(
            stdout,
            "running: {:.0} rows/s, {} windows in flight, {} windows left, ETA {eta}",
            live["rows_per_second"].as_f64().unwrap_or_default(),
            live["windows_in_flight"],
            live["windows_left"]
        )?;
        if let Some(waiting) = live["waiting"].as_str() {
            writeln!(stdout, "waiting: {waiting}")?;
        }
        print_retrying(&mut stdout, live)?;
    }
    writeln!(
        stdout,
        "{:<24} {:<30} {:>8} {:>12} {:>12} {:>6} {:>6} {:>9}",
        "measurement",
        "consistent up to (UTC)",
        "windows",
        "rows read",
        "rows written",
        "dead",
        "failed",
        "lag"
    )?;
    for (name, progress) in &measurements {
        let lag = lag_seconds(progress).map_or_else(|| "-".to_owned(), |lag| format!("{lag:.0}s"));
        writeln!(
            stdout,
            "{:<24} {:<30} {:>8} {:>12} {:>12} {:>6} {:>6} {:>9}",
            name,
            influx2td_config::format_time(progress.watermark_ns),
            progress.windows_done,
            progress.rows_read,
            progress.rows_written,
            progress.rows_dead_lettered,
            progress.failed.len(),
            lag
        )?;
        if !progress.dead_letter_reason.is_empty() {
            writeln!(stdout, "    dead letters: {}", progress.dead_letter_reason)?;
        }
        for failed in &progress.failed {
            writeln!(
                stdout,
                "    failed window {} .. {}: {}",
                influx2td_config::format_time(failed.start_ns),
                influx2td_config::format_time(failed.end_ns),
                failed.reason
            )?;
        }
    }
    Ok(())
}

/// What the live status says is being retried: one line each, the oldest first.
fn print_retrying(out: &mut impl Write, live: &serde_json::Value) -> std::io::Result<()> {
    let Some(retrying) = live["retrying"].as_array().filter(|list| !list.is_empty()) else {
        return Ok(());
    };
    writeln!(
        out,
        "retrying: {} window reads or row batches fail and are tried again",
        live["retrying_count"]
            .as_u64()
            .unwrap_or(retrying.len() as u64)
    )?;
    for entry in retrying {
        let what = match entry["batch"].as_u64() {
            Some(batch) => format!("writer, batch {batch}"),
            None => "reader".to_owned(),
        };
        let limit = entry["retry_limit"].as_u64().map_or_else(
            || "until the cause is fixed".to_owned(),
            |limit| format!("dead-lettered at try {limit}"),
        );
        writeln!(
            out,
            "    {} [{} .. {}) {what}: {} tries since {} ({limit}): {}",
            entry["measurement"].as_str().unwrap_or_default(),
            entry["window_start"].as_str().unwrap_or_default(),
            entry["window_end"].as_str().unwrap_or_default(),
            entry["tries"],
            entry["since"].as_str().unwrap_or_default(),
            entry["last_error"].as_str().unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// The progress per measurement the running coordinator reports (what its checkpoints hold
/// once it can store them).
fn live_progress(live: &serde_json::Value) -> influx2td_job::checkpoints::Checkpoints {
    live["measurements"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            Some((name.clone(), serde_json::from_value(value.clone()).ok()?))
        })
        .collect()
}
