//! Telemetry shared by every role: Prometheus metrics and the HTTP endpoints that serve them.

pub mod metrics;
pub mod server;

pub use metrics::{Metrics, metrics};
pub use server::{Endpoints, Listener, ServerError, spawn};
