//! The coordinator: plans a job's windows, publishes them lazily, turns writers'
//! acknowledgements into checkpoints, resumes from them, and keeps syncing when the job has no end.
//!
//! - [`tracker`]: which windows are written; per-measurement watermarks.
//! - [`retrying`]: which reads and batches keep failing now, and why (for `status`).
//! - [`plan`]: discovery: measurements and where their data lies.
//! - [`service`]: the coordinator role: lease, lazy publishing, acknowledgements, checkpoints.

pub mod plan;
pub mod retrying;
pub mod service;
pub mod status;
pub mod tracker;

pub use retrying::Retrying;
pub use service::{CoordinatorSettings, JobSummary, PlannedMeasurement, now_ns};
pub use status::{JobStatus, MeasurementStatus, StatusBoard};
