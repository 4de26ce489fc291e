//! Helpers shared by the CLI's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Child, Command};

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops a job with SIGTERM; it must exit 0.
pub fn terminate(job: &mut Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &job.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(job.wait().unwrap().code(), Some(0));
}
