//! Telemetry shared by every role: OpenTelemetry traces, Prometheus metrics and the HTTP
//! endpoints that serve them.

pub mod metrics;
pub mod server;
pub mod traces;

pub use metrics::{Metrics, metrics};
pub use server::{Endpoints, Listener, ServerError, spawn};
pub use traces::{TRACEPARENT, Traces, context_headers, continue_trace};
