//! `influx2td verify [--repair]`: the target against the source, and what repair read again.

use std::io::Write;

use influx2td_config::JobConfig;

use crate::print_json;

pub async fn verify(job: &JobConfig, json: bool, repair: bool) -> anyhow::Result<()> {
    let checkpoints = influx2td_job::checkpoints::read_checkpoints(job).await?;
    let mut checks = influx2td_job::verify::verify(job, &checkpoints).await?;
    let mut repaired = Vec::new();
    if repair {
        for check in &checks {
            // Re-reading writes what the target lacks; it cannot take away what it holds extra.
            // A window with other values (equal counts, other sums) is overwritten by its re-read.
            let repairable = |w: &&influx2td_job::verify::WindowDiff| {
                w.source > w.target || (w.source == w.target && !w.sums.is_empty())
            };
            for window in check.windows.iter().filter(repairable) {
                let summary = influx2td_job::backfill::read_again(
                    job,
                    &check.measurement,
                    window.start_ns,
                    window.end_ns,
                )
                .await?;
                repaired.push(serde_json::json!({
                    "measurement": check.measurement,
                    "start": window.start,
                    "end": window.end,
                    "rows_written": summary.rows_written(),
                    "rows_dead_lettered": summary.rows_dead_lettered(),
                }));
            }
        }
        if !repaired.is_empty() {
            checks = influx2td_job::verify::verify(job, &checkpoints).await?;
        }
    }
    let matches = checks
        .iter()
        .all(influx2td_job::verify::MeasurementCheck::matches);
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(
            &mut stdout,
            &serde_json::json!({ "matches": matches, "measurements": checks, "repaired": repaired }),
        )?;
    } else if checks.is_empty() {
        writeln!(
            stdout,
            "job {}: nothing written yet, nothing to verify",
            job.job
        )?;
    } else {
        for line in &repaired {
            writeln!(
                stdout,
                "repaired {} [{} .. {}): {} rows written",
                line["measurement"].as_str().unwrap_or_default(),
                line["start"].as_str().unwrap_or_default(),
                line["end"].as_str().unwrap_or_default(),
                line["rows_written"]
            )?;
        }
        for check in &checks {
            influx2td_job::verify::print_check(&mut stdout, check)?;
        }
    }
    if matches {
        Ok(())
    } else {
        anyhow::bail!("the target differs from the source; the lines marked ! show where")
    }
}
