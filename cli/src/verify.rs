//! `influx2td verify [--repair]`: the target against the source, and what repair read again.

use std::io::Write;

use influx2td_config::JobConfig;

use crate::print_json;

pub async fn verify(job: &JobConfig, json: bool, repair: bool) -> anyhow::Result<()> {
    let checkpoints = influx2td_job::checkpoints::read_checkpoints(job).await?;
    let mut checks = influx2td_job::verify::verify(job, &checkpoints).await?;
    let mut repaired = Vec::new();
    if repair {
        repaired = influx2td_job::verify::repair(job, &checks, None).await?;
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
                line.measurement, line.start, line.end, line.rows_written
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
