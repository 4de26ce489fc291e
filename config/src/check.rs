//! The report of a connectivity check: one per end (InfluxDB, TDengine), a list of steps, each
//! passed, failed (with the reason) or skipped (because a step it depends on failed).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One step of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    /// What was found, or why it failed or was skipped.
    pub detail: String,
}

/// The check of one end (InfluxDB here; TDengine once the writer exists).
#[derive(Debug, Clone, Serialize)]
pub struct EndCheck {
    pub end: &'static str,
    pub url: String,
    pub steps: Vec<Step>,
}

impl EndCheck {
    pub fn new(end: &'static str, url: impl Into<String>) -> Self {
        Self {
            end,
            url: url.into(),
            steps: Vec::new(),
        }
    }

    pub fn passed(&self) -> bool {
        self.steps.iter().all(|step| step.status != Status::Failed)
    }

    pub fn step(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.steps.push(Step {
            name,
            status,
            detail: detail.into(),
        });
    }

    pub fn skip_rest(&mut self, names: &[&'static str], reason: &str) {
        for name in names {
            self.step(name, Status::Skipped, reason);
        }
    }
}
