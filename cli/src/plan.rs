//! `influx2td plan`: what the job would do, writing nothing.

use std::io::Write;

use influx2td_config::JobConfig;

use crate::print_json;

pub async fn show_plan(job: &JobConfig, json: bool) -> anyhow::Result<()> {
    let plans = influx2td_job::plan::plan(job).await?;
    let mut stdout = std::io::stdout().lock();
    if json {
        print_json(
            &mut stdout,
            &serde_json::json!({ "job": job.job, "measurements": plans }),
        )?;
        return Ok(());
    }
    let rows: u64 = plans.iter().map(|plan| plan.estimated_rows).sum();
    let windows: u64 = plans.iter().map(|plan| plan.windows).sum();
    writeln!(
        stdout,
        "job {}: {} measurements, {windows} windows, about {rows} rows (nothing is written)",
        job.job,
        plans.len()
    )?;
    if influx2td_reader::InfluxClient::new(&job.source, &job.bucket)?
        .is_v3()
        .await?
    {
        writeln!(
            stdout,
            "InfluxDB 3: a field keeps one type and no tag shares a field's name (the server refuses both), so nothing is widened"
        )?;
    }
    for plan in &plans {
        let span = match (&plan.first, &plan.last) {
            (Some(first), Some(last)) => format!("{first} .. {last}"),
            _ => "no data".to_owned(),
        };
        writeln!(
            stdout,
            "\n{} -> {}: {span}; about {} series, {} windows, about {} rows",
            plan.measurement,
            plan.super_table,
            plan.series_estimate,
            plan.windows,
            plan.estimated_rows
        )?;
        for field in &plan.fields {
            let conflict = if field.conflicting_types.is_empty() {
                String::new()
            } else {
                let types: Vec<String> = field
                    .conflicting_types
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!(
                    "  (types differ between shards: {}; written as {})",
                    types.join(", "),
                    field.column_type
                )
            };
            writeln!(
                stdout,
                "  field {:<24} {}{conflict}",
                field.name, field.column_type
            )?;
        }
        for statement in &plan.ddl {
            writeln!(stdout, "  {statement};")?;
        }
    }
    Ok(())
}
