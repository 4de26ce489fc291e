//! Test harness: starts a real `nats-server` (JetStream) and a real `influxd` 1.x on free
//! loopback ports with temporary stores, waits until they answer, and kills them on drop. Either
//! can be stopped and started again mid-test (same ports, same data) for fault tests.
//!
//! A missing binary fails the test under `CI=true`; elsewhere the test is skipped with a loud
//! message, so that a laptop without the servers can still run the rest.

mod http;
mod influxd;
mod nats;
mod process;
mod tls;

pub use http::{HttpResponse, http_request};
pub use influxd::{Influxd, InfluxdOptions};
pub use nats::{NatsCluster, NatsHubAndLeaf, NatsServer};
pub use process::KillOnDrop;
pub use tls::TestCertificates;
