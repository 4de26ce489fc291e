//! Helpers shared by the end-to-end suites (each file of tests/ is one test binary that
//! includes this module; not every binary uses every helper).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `influx2td` binary under test (built by cargo before the suites run).
pub const BINARY: &str = env!("CARGO_BIN_EXE_influx2td");

/// `influx2td` with nothing in its environment but `PATH`: a test states every setting it means.
pub fn influx2td() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The one file in `directory` (a file target's script).
pub fn only_file(directory: &Path) -> PathBuf {
    let mut files = std::fs::read_dir(directory).unwrap();
    let file = files.next().unwrap().unwrap().path();
    assert!(
        files.next().is_none(),
        "more than one file in {directory:?}"
    );
    file
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM to a process (asks it to stop).
pub fn sigterm(process: &Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &process.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Stops a job with SIGTERM; it must exit 0.
pub fn terminate(job: &mut Child) {
    sigterm(job);
    assert_eq!(job.wait().unwrap().code(), Some(0));
}

/// Waits for a process to exit on its own; fails with `context()` (its logs) after `within`.
pub fn wait_for_exit(
    child: &mut Child,
    within: Duration,
    context: impl Fn() -> String,
) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not finish:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until something answers HTTP on `port` (a console, an endpoint just started).
pub fn wait_for_http(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while influx2td_testkit::http_request(port, "GET", "/", &[], b"").is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Line protocol for `count` points of `cpu` (four hosts, `value` = 0, 1, 2, ... as integers),
/// the first at `from_ns`, then every `step_ns`.
pub fn cpu_lines(count: i64, from_ns: i64, step_ns: i64) -> String {
    (0..count)
        .map(|n| format!("cpu,host=h{} value={n}i {}\n", n % 4, from_ns + n * step_ns))
        .collect()
}

/// `influx2td <role>` with only `PATH` and `env` in its environment, its output dropped but
/// for its log lines (stderr), which go to `log`.
pub fn spawn_role<'a>(
    role: &str,
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
    log: impl Into<Stdio>,
) -> Child {
    influx2td()
        .envs(env)
        .arg(role)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// An influxd with ten `cpu` points in `db` (see [`cpu_lines`], from `from_ns`, a second apart),
/// and a nats-server whose JetStream storage (32 MiB) cannot hold a job's streams.
pub fn source_and_cramped_nats(
    from_ns: i64,
) -> Option<(influx2td_testkit::Influxd, influx2td_testkit::NatsServer)> {
    let influxd = influx2td_testkit::Influxd::start()?;
    let nats = influx2td_testkit::NatsServer::start_with_config(Some(
        "jetstream { max_file_store: 32M }",
    ))?;
    influxd.query("CREATE DATABASE db");
    influxd.write("db", &cpu_lines(10, from_ns, 1_000_000_000));
    Some((influxd, nats))
}

/// A finished command's stdout and stderr, as text.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
