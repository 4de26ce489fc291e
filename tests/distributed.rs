//! The crash suite over NATS with separate processes: coordinator, reader and writer are
//! killed with SIGKILL mid-job, and nats-server is killed and restarted; afterwards the target
//! equals the source exactly.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use influx2td_bus::{Bus, CheckpointStore, Names, NatsBus, NatsConnect};
use influx2td_testkit::{Influxd, NatsCluster, NatsHubAndLeaf, NatsServer};
use influx2td_writer::mapping::child_table_name;
use influx2td_writer::replay::{Literal, replay_directory};

mod common;
use common::wait_for_exit;

const T0: i64 = 1_699_998_400_000_000_000;
const SECOND: i64 = 1_000_000_000;
const WINDOWS: i64 = 2000;

struct Job {
    env: Vec<(&'static str, String)>,
    logs: PathBuf,
}

/// A role's process, killed when dropped (so a failing test leaves nothing running).
struct Role(Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Job {
    fn spawn(&self, role: &str, number: usize) -> Role {
        self.spawn_with(role, number, &[])
    }

    /// [`Job::spawn`] with settings of this process only (its `http.listen`, say).
    fn spawn_with(&self, role: &str, number: usize, extra: &[(&'static str, String)]) -> Role {
        let log = std::fs::File::create(self.logs.join(format!("{role}-{number}.log"))).unwrap();
        let env = self.env.iter().chain(extra).map(|(k, v)| (*k, v.as_str()));
        Role(common::spawn_role(role, env, log))
    }

    /// Lets the coordinator serve its live status (which `status` shows) on a free port.
    fn serve_status(&mut self) {
        let http = format!("127.0.0.1:{}", common::free_port());
        self.env.push(("INFLUX2TD_HTTP_LISTEN", http));
    }

    /// Waits until `status` says the job waits, and returns that status and the reason.
    async fn wait_for_waiting(&self) -> (serde_json::Value, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status();
            if let Some(waiting) = status["live"]["waiting"].as_str() {
                return (status.clone(), waiting.to_owned());
            }
            assert!(
                Instant::now() < deadline,
                "no waiting reason in status: {status}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// `influx2td status --json` of the job, parsed.
    fn status(&self) -> serde_json::Value {
        let output = common::influx2td()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "status --json: {error}\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    fn log(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.logs).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: String = text
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            all.push_str(&format!("--- {}\n{tail}\n", entry.path().display()));
        }
        all
    }
}

fn kill(role: &mut Role) {
    role.0.kill().unwrap();
    role.0.wait().unwrap();
}

fn terminate(role: &mut Role) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &role.0.id().to_string()])
        .status()
        .unwrap();
    role.0.wait().unwrap().code()
}

/// The job's watermark, or 0 while NATS does not answer (the probe never waits long).
/// How the tests reach the job's NATS: its URL(s) and the job's `nats.replicas` (a client with
/// another count would re-replicate the checkpoint bucket under the job's feet).
struct Probe {
    url: String,
    replicas: usize,
}

async fn watermark(nats: &Probe) -> i64 {
    tokio::time::timeout(Duration::from_secs(2), read_watermark(nats))
        .await
        .unwrap_or(0)
}

async fn read_watermark(nats: &Probe) -> i64 {
    let connect = NatsConnect {
        replicas: nats.replicas,
        ..NatsConnect::plain(&nats.url, "probe")
    };
    let Ok(bus) = NatsBus::connect(&connect, Names::new("influx2td", "dist").unwrap()).await else {
        return 0;
    };
    let Ok(store) = bus.checkpoints().await else {
        return 0;
    };
    let Ok(Some(entry)) = store.get("checkpoint.load").await else {
        return 0;
    };
    let progress: serde_json::Value = serde_json::from_str(&entry.value).unwrap();
    progress["watermark_ns"].as_i64().unwrap_or(0)
}

async fn wait_for_watermark(nats: &Probe, job: &Job, seconds: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while watermark(nats).await < T0 + seconds * SECOND {
        assert!(
            Instant::now() < deadline,
            "no progress to {seconds}s:\n{}",
            job.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_target_equals_source(target: &Path, points: &[(String, i64, i64)], job: &Job) {
    let model = replay_directory(target).unwrap();
    let mut wanted = BTreeMap::new();
    for (shard, time, value) in points {
        wanted.insert(
            (
                child_table_name("load", &[("shard", shard.as_str())]),
                *time,
            ),
            Literal::Number(value.to_string()),
        );
    }
    let mut found = BTreeMap::new();
    for (child, table) in &model.tables {
        for (time, row) in &table.rows {
            found.insert((child.clone(), *time), row["value"].clone());
        }
    }
    assert_eq!(
        found.len(),
        wanted.len(),
        "row count differs:\n{}",
        job.log()
    );
    assert_eq!(found, wanted);
}

/// `load` in `db`: two series, a point a second each for WINDOWS seconds from T0.
fn load_points(influxd: &Influxd) -> Vec<(String, i64, i64)> {
    influxd.query("CREATE DATABASE db");
    let points: Vec<(String, i64, i64)> = (0..WINDOWS * 2)
        .map(|n| (format!("s{}", n % 2), T0 + (n / 2) * SECOND, n))
        .collect();
    let lines: String = points
        .iter()
        .map(|(shard, time, value)| format!("load,shard={shard} value={value}i {time}\n"))
        .collect();
    influxd.write("db", &lines);
    points
}

/// The job `dist` over the NATS at `nats` (one or more URLs), into a file target in `directory`.
fn job(
    influxd: &Influxd,
    nats: &str,
    directory: &Path,
    extra: &[(&'static str, &str)],
) -> (Job, PathBuf) {
    let target = directory.join("target");
    let logs = directory.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut env = vec![
        ("INFLUX2TD_SOURCE_URL", influxd.url()),
        ("INFLUX2TD_BUCKET", "db".into()),
        ("INFLUX2TD_JOB", "dist".into()),
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        (
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + WINDOWS * SECOND),
        ),
        ("INFLUX2TD_WINDOW", "1s".into()),
        ("INFLUX2TD_READ_CONCURRENCY", "2".into()),
        ("INFLUX2TD_ACK_WAIT", "2s".into()),
        ("INFLUX2TD_LEASE_TTL", "3s".into()),
        ("INFLUX2TD_NATS_URL", nats.to_owned()),
        (
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", target.display()),
        ),
        ("INFLUX2TD_TARGET_DATABASE", "metrics".into()),
        ("INFLUX2TD_LOG_LEVEL", "info".into()),
    ];
    env.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
    (Job { env, logs }, target)
}

/// The coordinator exits 0 at the job's end, reader and writer stop on SIGTERM, the target
/// equals the source and `influx2td verify` agrees.
async fn finished_exact(
    job: &Job,
    nats: &Probe,
    target: &Path,
    points: &[(String, i64, i64)],
    mut coordinator: Role,
    mut reader: Role,
    mut writer: Role,
) {
    let status = wait_for_exit(&mut coordinator.0, Duration::from_secs(180), || job.log());
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.code(),
            Some(0),
            "signal {:?}\n{}",
            status.signal(),
            job.log()
        );
    }
    assert_eq!(terminate(&mut reader), Some(0), "{}", job.log());
    assert_eq!(terminate(&mut writer), Some(0), "{}", job.log());
    assert_eq!(watermark(nats).await, T0 + WINDOWS * SECOND);
    assert_target_equals_source(target, points, job);
    let verified = common::influx2td()
        .envs(job.env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("verify")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        text.contains("value                    influxdb         4000  tdengine         4000"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_killed_and_nats_restarted_and_the_target_still_equals_the_source() {
    let (Some(influxd), Some(mut nats)) = (Influxd::start(), NatsServer::start()) else {
        return;
    };
    let points = load_points(&influxd);
    let directory = tempfile::tempdir().unwrap();
    let url = Probe {
        url: nats.url(),
        replicas: 1,
    };
    let (job, target) = job(&influxd, &url.url, directory.path(), &[]);
    let coordinator = job.spawn("coordinator", 1);
    let mut reader = job.spawn("reader", 1);
    let mut writer = job.spawn("writer", 1);

    wait_for_watermark(&url, &job, 100).await;
    kill(&mut reader);
    let reader = job.spawn("reader", 2);

    wait_for_watermark(&url, &job, 500).await;
    kill(&mut writer);
    let writer = job.spawn("writer", 2);

    wait_for_watermark(&url, &job, 900).await;
    nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.start_again();

    wait_for_watermark(&url, &job, 1300).await;
    let mut coordinator = coordinator;
    kill(&mut coordinator);
    let coordinator = job.spawn("coordinator", 2);

    finished_exact(&job, &url, &target, &points, coordinator, reader, writer).await;
    let coordinator_log = std::fs::read_to_string(job.logs.join("coordinator-2.log")).unwrap();
    assert!(coordinator_log.contains("resuming"), "{coordinator_log}");
}

/// How long the watermark stood still after `since` (a fault): the job's pause.
async fn paused_since(url: &Probe, since: Instant, job: &Job) -> Duration {
    let stood = watermark(url).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = watermark(url).await;
        if now > stood {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no progress after the fault:\n{}",
            job.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_server_cluster_a_restart_and_the_stream_leader_killed_lose_nothing() {
    let (Some(influxd), Some(mut cluster)) = (Influxd::start(), NatsCluster::start()) else {
        return;
    };
    let started = Instant::now();
    let points = load_points(&influxd);
    let directory = tempfile::tempdir().unwrap();
    let url = Probe {
        url: cluster.url(),
        replicas: 3,
    };
    let (job, target) = job(
        &influxd,
        &url.url,
        directory.path(),
        &[("INFLUX2TD_NATS_REPLICAS", "3")],
    );
    let coordinator = job.spawn("coordinator", 1);
    let reader = job.spawn("reader", 1);
    let writer = job.spawn("writer", 1);

    // One server restarted mid-job, while the roles are connected (to it or another).
    wait_for_watermark(&url, &job, 300).await;
    let restarted = Instant::now();
    cluster.servers[0].stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.servers[0].start_again();
    let pause = paused_since(&url, restarted, &job).await;
    eprintln!("one server restarted: the watermark moved again after {pause:?}");

    // The leader of the job's DATA stream killed, and down to the end.
    wait_for_watermark(&url, &job, 900).await;
    let status = job.status();
    let data = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"].as_str().unwrap().ends_with("_DATA"))
        .unwrap()
        .clone();
    for stream in status["streams"].as_array().unwrap() {
        assert_eq!(stream["replicas"], 3, "{status}");
    }
    eprintln!("before the kill: {}", status["streams"]);
    let leader = data["leader"].as_str().unwrap().to_owned();
    let killed = Instant::now();
    cluster.server_named(&leader).stop();
    let pause = paused_since(&url, killed, &job).await;
    eprintln!("{leader} (leading DATA) killed: the watermark moved again after {pause:?}");

    finished_exact(&job, &url, &target, &points, coordinator, reader, writer).await;
    eprintln!("the whole test took {:?}", started.elapsed());
}

/// Whether the role's process still runs.
fn running(role: &mut Role) -> bool {
    role.0.try_wait().unwrap().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_server_cluster_losing_the_quorum_holds_the_job_waiting_until_a_server_returns()
{
    let (Some(influxd), Some(mut cluster)) = (Influxd::start(), NatsCluster::start()) else {
        return;
    };
    let started = Instant::now();
    let points = load_points(&influxd);
    let directory = tempfile::tempdir().unwrap();
    let url = Probe {
        url: cluster.url(),
        replicas: 3,
    };
    let (mut job, target) = job(
        &influxd,
        &url.url,
        directory.path(),
        &[("INFLUX2TD_NATS_REPLICAS", "3")],
    );
    job.serve_status();
    let mut coordinator = job.spawn("coordinator", 1);
    let no_http = [("INFLUX2TD_HTTP_LISTEN", "127.0.0.1:0".to_owned())];
    let mut reader = job.spawn_with("reader", 1, &no_http);
    let mut writer = job.spawn_with("writer", 1, &no_http);

    wait_for_watermark(&url, &job, 300).await;
    assert_eq!(job.status()["live"]["waiting"], serde_json::Value::Null);
    let lost = Instant::now();
    cluster.servers[1].stop();
    cluster.servers[2].stop();

    // No quorum: the job waits, and says why.
    let (status, waiting) = job.wait_for_waiting().await;
    eprintln!(
        "quorum lost: status says after {:?}: {waiting}",
        lost.elapsed()
    );
    assert!(waiting.contains("NATS"), "{waiting}");
    assert!(waiting.contains("quorum"), "{waiting}");
    assert!(status["checkpoints_error"].is_string(), "{status}");

    // Waiting is not failing: every role stays up, still saying why it waits (acknowledgements
    // pulled before the loss may still move the coordinator's watermark a little).
    tokio::time::sleep(Duration::from_secs(10)).await;
    for role in [&mut coordinator, &mut reader, &mut writer] {
        assert!(
            running(role),
            "a role gave up without quorum:\n{}",
            job.log()
        );
    }
    let status = job.status();
    assert!(status["live"]["waiting"].is_string(), "{status}");

    // A second server back: quorum again, the job goes on and finishes.
    let back = Instant::now();
    cluster.servers[1].start_again();
    let pause = paused_since(&url, back, &job).await;
    eprintln!(
        "quorum lost for {:?}; the watermark moved {pause:?} after a second server was back",
        back - lost
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while job.status()["live"]["waiting"].is_string() {
        assert!(Instant::now() < deadline, "still waiting:\n{}", job.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    finished_exact(&job, &url, &target, &points, coordinator, reader, writer).await;
    eprintln!("the whole test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_on_a_leaf_node_beside_the_source_serves_a_hub_that_cannot_reach_influxdb() {
    let (Some(influxd), Some(nats)) = (Influxd::start(), NatsHubAndLeaf::start()) else {
        return;
    };
    let points = load_points(&influxd);
    let directory = tempfile::tempdir().unwrap();
    let hub = Probe {
        url: nats.hub.url(),
        replicas: 1,
    };
    let (mut job, target) = job(
        &influxd,
        &hub.url,
        directory.path(),
        &[("INFLUX2TD_SOURCE_DISCOVERY", "readers")],
    );
    job.serve_status();
    // At the hub, InfluxDB is a port where nothing listens: coordinator and writer never reach it.
    let nowhere = format!("http://127.0.0.1:{}", common::free_port());
    let at_hub = [("INFLUX2TD_SOURCE_URL", nowhere.clone())];
    let coordinator = job.spawn_with("coordinator", 1, &at_hub);
    let writer = job.spawn_with(
        "writer",
        1,
        &[
            ("INFLUX2TD_SOURCE_URL", nowhere),
            ("INFLUX2TD_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ],
    );

    // A tap on everything (monitoring, a debugging `nats sub '>'`) is interest in the
    // discovery subject but no reader: the coordinator must not wait on it for an answer.
    let tap = async_nats::connect(nats.hub.url()).await.unwrap();
    let _everything = tap.subscribe(">").await.unwrap();
    tap.flush().await.unwrap();
    // No reader yet: the coordinator waits, and says for what.
    let (_, waiting) = job.wait_for_waiting().await;
    assert!(waiting.contains("no reader answers"), "{waiting}");
    assert!(waiting.contains("influx2td reader"), "{waiting}");

    // The reader at the source's site: the real InfluxDB, and NATS only through the leaf.
    let reader = job.spawn_with(
        "reader",
        1,
        &[
            ("INFLUX2TD_NATS_URL", nats.leaf.url()),
            ("INFLUX2TD_NATS_DOMAIN", "hub".to_owned()),
            ("INFLUX2TD_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ],
    );
    finished_exact(&job, &hub, &target, &points, coordinator, reader, writer).await;
    let reader_log = std::fs::read_to_string(job.logs.join("reader-1.log")).unwrap();
    assert!(
        reader_log.contains("discovered for the coordinator"),
        "{reader_log}"
    );
}
