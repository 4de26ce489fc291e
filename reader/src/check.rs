//! The connectivity check of the source: reachable (and which server), credentials accepted,
//! bucket present, measurements found. Each step says why it failed; later steps that depend on
//! a failed one are skipped, not failed again.

use influx2td_config::check::{EndCheck, Status};
use influx2td_config::tsm::TsmDirs;
use influx2td_config::{JobConfig, MeasurementFilter, SourceAuth, SourceKind};

use crate::client::InfluxClient;
use crate::error::SourceError;
use crate::schema;

/// How many measurement names the report lists.
const SHOWN_MEASUREMENTS: usize = 5;

/// Checks the job's InfluxDB end.
pub async fn check_source(job: &JobConfig) -> EndCheck {
    if let SourceKind::Tsm(dirs) = &job.source.kind {
        let (job, dirs) = (job.clone(), dirs.clone());
        let checked = tokio::task::spawn_blocking(move || check_files(&job, &dirs)).await;
        return checked.unwrap_or_else(|error| {
            let mut report = EndCheck::new("InfluxDB files", String::new());
            report.step("directories", Status::Failed, error.to_string());
            report
        });
    }
    let mut report = EndCheck::new("InfluxDB", job.source.url.clone());
    let client = match InfluxClient::new(&job.source, &job.bucket) {
        Ok(client) => client,
        Err(error) => {
            report.step("client", Status::Failed, error.to_string());
            return report;
        }
    };

    match client.ping().await {
        Ok(info) => {
            let shown = format!(
                "InfluxDB {}{}",
                info.version,
                info.build
                    .as_ref()
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default()
            );
            match (job.source.version, info.major) {
                (Some(configured), Some(found)) if configured != found => {
                    report.step(
                        "reachable",
                        Status::Failed,
                        format!("{shown}, but source.version = {configured}"),
                    );
                }
                _ => report.step("reachable", Status::Passed, shown),
            }
        }
        // A server that wants credentials even for /ping (3.x) is reachable; the next step says more.
        Err(SourceError::Unauthorized { detail }) => {
            report.step(
                "reachable",
                Status::Passed,
                format!("answers, but needs credentials ({detail})"),
            );
        }
        Err(error) => {
            report.step("reachable", Status::Failed, error.to_string());
            report.skip_rest(
                &["credentials", "bucket", "measurements"],
                "InfluxDB is not reachable",
            );
            return report;
        }
    }

    match credentials(&client, &job.source.auth).await {
        Ok(detail) => report.step("credentials", Status::Passed, detail),
        Err(reason) => {
            report.step("credentials", Status::Failed, reason);
            report.skip_rest(&["bucket", "measurements"], "the credentials were refused");
            return report;
        }
    }

    match schema::ensure_bucket(&client).await {
        Ok(()) => report.step("bucket", Status::Passed, format!("{:?} found", job.bucket)),
        Err(error) => {
            report.step("bucket", Status::Failed, error.to_string());
            report.skip_rest(&["measurements"], "the bucket was not found");
            return report;
        }
    }

    match schema::measurements(&client, &job.measurements).await {
        Ok(found) => {
            let (status, detail) = describe_measurements(&found, &job.measurements);
            report.step("measurements", status, detail);
        }
        Err(error) => report.step("measurements", Status::Failed, error.to_string()),
    }
    report
}

/// The TSM source's check: the directories readable here, the bucket's database and retention
/// policy in them, its shards (time range, TSM files, WAL segments) and measurements.
fn check_files(job: &JobConfig, dirs: &TsmDirs) -> EndCheck {
    let mut report = EndCheck::new(
        "InfluxDB files",
        format!(
            "{} (WAL {})",
            dirs.data_dir.display(),
            dirs.wal_dir.display()
        ),
    );
    let source = match crate::tsm::TsmSource::open(dirs, &job.bucket) {
        Ok(source) => source,
        Err(error) => {
            let step = match error {
                SourceError::BucketNotFound { .. } => "bucket",
                _ => "directories",
            };
            if step == "bucket" {
                report.step("directories", Status::Passed, "readable");
            }
            report.step(step, Status::Failed, error.to_string());
            let rest: &[&'static str] = if step == "bucket" {
                &["shards", "measurements"]
            } else {
                &["bucket", "shards", "measurements"]
            };
            report.skip_rest(rest, "an earlier step failed");
            return report;
        }
    };
    report.step("directories", Status::Passed, "readable");
    report.step(
        "bucket",
        Status::Passed,
        format!(
            "database {:?}, retention policy {:?}",
            source.database(),
            source.retention_policy()
        ),
    );
    match source.summaries() {
        Ok(shards) => {
            let tsm_files: usize = shards.iter().map(|shard| shard.tsm_files).sum();
            let segments: usize = shards.iter().map(|shard| shard.wal_segments).sum();
            let listed: Vec<String> = shards
                .iter()
                .map(|shard| {
                    let range = shard
                        .time_range
                        .map_or("no data".to_owned(), |(first, last)| {
                            format!(
                                "{} .. {}",
                                influx2td_config::format_time(first),
                                influx2td_config::format_time(last)
                            )
                        });
                    format!(
                        "shard {}: {range}, {} TSM files, {} WAL segments",
                        shard.id, shard.tsm_files, shard.wal_segments
                    )
                })
                .collect();
            report.step(
                "shards",
                Status::Passed,
                format!(
                    "{} shards, {tsm_files} TSM files, {segments} WAL segments{}{}",
                    shards.len(),
                    if listed.is_empty() { "" } else { "; " },
                    listed.join("; ")
                ),
            );
        }
        Err(error) => {
            report.step("shards", Status::Failed, error.to_string());
            report.skip_rest(&["measurements"], "the shards cannot be read");
            return report;
        }
    }
    match source.measurements(&job.measurements) {
        Ok(found) => {
            let names: Vec<String> = found.into_iter().map(|(name, _)| name).collect();
            let (status, detail) = describe_measurements(&names, &job.measurements);
            report.step("measurements", status, detail);
        }
        Err(error) => report.step("measurements", Status::Failed, error.to_string()),
    }
    report
}

async fn credentials(client: &InfluxClient, auth: &SourceAuth) -> Result<String, String> {
    // The databases these credentials may read (on 3.x through its own API).
    let with_credentials = schema::buckets(client).await;
    match with_credentials {
        Ok(_) if matches!(auth, SourceAuth::None) => {
            Ok("none needed: the server does not enforce authentication".into())
        }
        Ok(_) => {
            // Accepted; say so plainly when the server would have accepted anything.
            let enforced = schema::buckets(&client.anonymous()).await.is_err();
            Ok(if enforced {
                "accepted".into()
            } else {
                "accepted (the server does not enforce authentication)".into()
            })
        }
        Err(SourceError::Unauthorized { detail }) if matches!(auth, SourceAuth::None) => {
            Err(format!(
                "the server requires authentication ({detail}); set source.username and source.password (1.x) or source.token (2.x/3.x)"
            ))
        }
        Err(error) => Err(error.to_string()),
    }
}

fn describe_measurements(found: &[String], filters: &[MeasurementFilter]) -> (Status, String) {
    let missing: Vec<&str> = filters
        .iter()
        .filter_map(|filter| match filter {
            MeasurementFilter::Name(name) if !found.contains(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut shown: Vec<String> = found
        .iter()
        .take(SHOWN_MEASUREMENTS)
        .map(|name| format!("{name:?}"))
        .collect();
    if found.len() > SHOWN_MEASUREMENTS {
        shown.push(format!("and {} more", found.len() - SHOWN_MEASUREMENTS));
    }
    let listing = format!("{} found: {}", found.len(), shown.join(", "));
    if !missing.is_empty() {
        return (
            Status::Failed,
            format!("not in the bucket: {}; {listing}", missing.join(", ")),
        );
    }
    if found.is_empty() && !filters.is_empty() {
        return (
            Status::Failed,
            "no measurement matches the measurements filter".into(),
        );
    }
    if found.is_empty() {
        return (Status::Passed, "0 found: the bucket is empty".into());
    }
    (Status::Passed, listing)
}
