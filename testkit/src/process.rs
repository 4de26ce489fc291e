//! Finding binaries, free ports, and a child process that is killed on drop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `name` on `PATH` (or at `$<ENV_VAR>`). `None`, after a loud message, when it is missing
/// outside CI; under `CI=true` a missing binary is a failure, never a silent skip.
pub(crate) fn require_binary(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let message =
            format!("{name} not found on PATH (or ${env_var}); `bash .ci/run` installs it");
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!("{message}");
        }
        eprintln!("\n=== SKIPPED: {message} ===\n");
    }
    found
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}

/// A server process; killed (SIGKILL) when dropped or stopped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
    log_path: PathBuf,
}

impl ServerProcess {
    pub(crate) fn spawn(binary: &Path, args: &[String], log_path: PathBuf) -> Self {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("cannot open server log");
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self {
            child: Some(child),
            log_path,
        }
    }

    /// Polls until `ready` says yes and this process itself listens on `port` (another test's
    /// server may take a port between `free_port` and our bind, and answer in our stead); panics
    /// with the server's log when the process exits first or never gets ready.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        port: u16,
        timeout: Duration,
        ready: impl Fn() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.pid().is_some_and(|pid| listens_on(pid, port)) && ready() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{what} exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} was not ready within {timeout:?}:\n{}", self.log());
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        String::from_utf8_lossy(&text.as_bytes()[start..]).into_owned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether process `pid` holds a listening TCP socket on `port` (Linux `/proc`).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        // Not Linux: no way to tell; trust the readiness probe.
        return true;
    };
    let wanted = format!(":{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A (LISTEN), inode.
            (fields.get(1)?.ends_with(&wanted) && *fields.get(3)? == "0A")
                .then(|| fields.get(9).map(|inode| (*inode).to_owned()))?
        })
        .collect();
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors.flatten().any(|entry| {
        std::fs::read_link(entry.path())
            .map(|target| target.to_string_lossy().into_owned())
            .is_ok_and(|target| {
                inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]"))
            })
    })
}

/// A child process that is killed and reaped when dropped, so that a failing test leaves no
/// process of influx2td running behind it.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
