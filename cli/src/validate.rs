//! `influx2td validate`: the job as it will run, secrets redacted.

use std::io::Write;

use influx2td_config::JobConfig;

pub fn validate(job: &JobConfig, json: bool) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(job)?
    } else {
        toml::to_string(job)?
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", text.trim_end())?;
    tracing::info!(job = job.job, "configuration is valid");
    Ok(())
}
