//! The connectivity check of the source: reachable (and which server), credentials accepted,
//! bucket present, measurements found. Each step says why it failed; later steps that depend on
//! a failed one are skipped, not failed again.

use influx2td_config::check::{EndCheck, Status};
use influx2td_config::{JobConfig, MeasurementFilter, SourceAuth};

use crate::client::InfluxClient;
use crate::error::SourceError;
use crate::schema;

/// How many measurement names the report lists.
const SHOWN_MEASUREMENTS: usize = 5;

/// Checks the job's InfluxDB end.
pub async fn check_source(job: &JobConfig) -> EndCheck {
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
