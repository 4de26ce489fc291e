//! `influx2td check`: the connectivity check of both ends.

use std::io::Write;

use influx2td_config::JobConfig;
use influx2td_config::check::Status;

use crate::print_json;

pub async fn check(job: &JobConfig, json: bool) -> anyhow::Result<()> {
    let (ends, passed) = influx2td_job::pipeline::check_ends(job).await;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(
            &mut stdout,
            &serde_json::json!({ "passed": passed, "ends": ends }),
        )?;
    } else {
        for end in &ends {
            writeln!(stdout, "{} {}", end.end, end.url)?;
            for step in &end.steps {
                let mark = match step.status {
                    Status::Passed => "ok  ",
                    Status::Failed => "FAIL",
                    Status::Skipped => "skip",
                };
                writeln!(stdout, "  {mark} {:<13} {}", step.name, step.detail)?;
            }
        }
    }
    if passed {
        Ok(())
    } else {
        anyhow::bail!("connectivity check failed")
    }
}
