//! A job end to end, over a given bus, and the operations on a job: the library beneath the
//! `influx2td` binary and the web console (neither holds job logic of its own).
//!
//! - [`pipeline`]: a whole job in this process over the in-process bus, each role as a process
//!   of its own over NATS, their endpoints and settings, the connectivity check of both ends.
//! - [`connect`]: the NATS connection a job describes, the embedded bus, the stop signal.
//! - [`discovery`]: the measurements discovered by a reader for the coordinator, when only
//!   readers reach InfluxDB (`source.discovery = "readers"`).
//! - [`checkpoints`]: a job's progress from its checkpoints and from its running coordinator.
//! - [`plan`]: what a job would do, writing nothing.
//! - [`verify`]: whether the target holds what the source holds, and where not.
//! - [`backfill`]: a range read again and written beside the job.
//! - [`progress`]: the progress bar of a job on a terminal, and logs that do not tear it.

pub mod backfill;
pub mod checkpoints;
pub mod connect;
pub mod discovery;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod verify;
