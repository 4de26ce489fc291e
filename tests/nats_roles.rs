//! The least-privilege NATS users of `deploy/nats-roles.conf`, used for real: a job runs to the
//! end with coordinator, reader and writer each logged in as its own user (the readers
//! answering the coordinator's discovery, `source.discovery = "readers"`); the server logs no
//! permission violation (the file lists all that the roles need), each user is refused what
//! another role does and another job's subjects; and no secret (the NATS passwords, InfluxDB's
//! password) travels in any message, subject or header the job sends. And the same job with
//! its reader at the source's site, behind a NATS leaf node logged in to the hub as the file's
//! `influx2td-site` user: all that crosses from the site is what that user may publish.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use influx2td_testkit::{Influxd, KillOnDrop, NatsHubAndLeaf, NatsServer};
use influx2td_writer::replay::replay_directory;

mod common;
use common::{terminate, wait_for_exit};

const T0: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;
const INFLUX_PASSWORD: &str = "Sentinel-Influx-Pw-7391";

fn password(role: &str) -> String {
    format!("Sentinel-{role}-Pw-5521")
}

/// deploy/nats-roles.conf with the roles' passwords, and an observer allowed everything.
fn server_config() -> String {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nats-roles.conf");
    let mut config = std::fs::read_to_string(file).unwrap();
    for role in ["reader", "writer", "coordinator", "site"] {
        let variable = format!("$INFLUX2TD_{}_PASSWORD", role.to_uppercase());
        assert!(config.contains(&variable), "{variable} is not in {file}");
        config = config.replace(&variable, &format!("\"{}\"", password(role)));
    }
    config.replacen(
        "  users: [\n",
        "  users: [\n    { user: observer, password: observer }\n",
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_runs_with_only_its_permissions_and_no_secret_travels() {
    let Some(influxd) = Influxd::with_reader("db", "copier", INFLUX_PASSWORD) else {
        return;
    };
    let Some(nats) = NatsServer::start_with_config(Some(&server_config())) else {
        return;
    };
    influxd.write("db", &lines());

    // Everything the job sends, as the server delivers it.
    let observer =
        async_nats::ConnectOptions::with_user_and_password("observer".into(), "observer".into())
            .connect(nats.url())
            .await
            .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut everything = observer.subscribe(">").await.unwrap();
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Some(message) = everything.next().await {
            let mut text = format!("{} {:?} ", message.subject, message.headers);
            text.push_str(&String::from_utf8_lossy(&message.payload));
            kept.lock().unwrap().push(text);
        }
    });

    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let env = job_env(&influxd, &nats.url(), &target);
    let logs = directory.path().to_owned();
    let spawn = |role: &str| spawn_as(role, &env, &[], &logs);
    let log = || logs_and(nats.log(), &logs);
    // Readers and writers first: they create the streams they need with their own users.
    let mut reader = spawn("reader");
    let mut writer = spawn("writer");
    let mut coordinator = spawn("coordinator");
    let status = wait_for_exit(&mut coordinator.0, Duration::from_secs(60), log);
    assert_eq!(status.code(), Some(0), "{}", log());
    terminate(&mut reader.0);
    terminate(&mut writer.0);
    // The operator's commands, with the coordinator's user.
    for args in [["status", "--json"], ["dead-letters", "list"]] {
        let output = common::influx2td()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("INFLUX2TD_NATS_USER", "influx2td-coordinator")
            .env("INFLUX2TD_NATS_PASSWORD", password("coordinator"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let model = replay_directory(&target).unwrap();
    let rows: usize = model.tables.values().map(|t| t.rows.len()).sum();
    assert_eq!(rows, 60, "{}", log());
    assert!(
        !nats.log().contains("Violation"),
        "a role needed a permission deploy/nats-roles.conf does not give:\n{}",
        nats.log()
    );

    // What each role must not do: another role's work, the checkpoints, another job.
    let denied = [
        (
            "reader",
            "$JS.API.CONSUMER.MSG.NEXT.INFLUX2TD_demo_DATA.writers",
        ),
        ("reader", "$KV.influx2td_demo.checkpoint=2Ecpu"),
        ("reader", "influx2td.other.data.cpu"),
        ("writer", "influx2td.demo.work.cpu"),
        (
            "writer",
            "$JS.API.CONSUMER.MSG.NEXT.INFLUX2TD_demo_WORK.readers",
        ),
        ("writer", "$JS.API.STREAM.DELETE.INFLUX2TD_demo_WORK"),
        ("coordinator", "influx2td.demo.data.cpu"),
        ("coordinator", "$JS.API.STREAM.INFO.INFLUX2TD_other_WORK"),
        ("writer", "influx2td.demo.discover"),
    ];
    for (role, subject) in denied {
        let client = async_nats::ConnectOptions::with_user_and_password(
            format!("influx2td-{role}"),
            password(role),
        )
        .name(format!("denied-{role}"))
        .connect(nats.url())
        .await
        .unwrap();
        client
            .publish(subject.to_owned(), "x".into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server_log = nats.log();
    for (role, subject) in denied {
        let line = format!("Publish Violation - Subject \"{subject}\"");
        assert!(
            server_log
                .lines()
                .any(|l| l.contains(&line) && l.contains(&format!("denied-{role}"))),
            "{role} was not refused {subject}:\n{server_log}"
        );
    }

    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|m| m.starts_with("influx2td.demo.data.cpu")),
        "the observer saw the job's messages"
    );
    assert!(
        seen.iter()
            .any(|m| m.starts_with("_INBOX.") && m.contains("\"measurements\"")),
        "a reader answered the discovery"
    );
    for secret in [
        INFLUX_PASSWORD.to_owned(),
        password("reader"),
        password("writer"),
        password("coordinator"),
    ] {
        for message in seen.iter() {
            assert!(!message.contains(&secret), "{secret} travels in {message}");
        }
    }
}

/// 60 points of `cpu`, a second apart from `T0`, over three series.
fn lines() -> String {
    (0..60)
        .map(|n| format!("cpu,region=r{} usage={n}i {}\n", n % 3, T0 + n * SECOND))
        .collect()
}

/// The job `demo` (readers discover), from `influxd` with the reading user into `target`.
fn job_env(
    influxd: &Influxd,
    nats_url: &str,
    target: &std::path::Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("INFLUX2TD_SOURCE_URL", influxd.url()),
        ("INFLUX2TD_SOURCE_USERNAME", "copier".into()),
        ("INFLUX2TD_SOURCE_PASSWORD", INFLUX_PASSWORD.into()),
        ("INFLUX2TD_SOURCE_DISCOVERY", "readers".into()),
        ("INFLUX2TD_BUCKET", "db".into()),
        ("INFLUX2TD_JOB", "demo".into()),
        ("INFLUX2TD_BEGIN", influx2td_config::format_time(T0)),
        (
            "INFLUX2TD_END",
            influx2td_config::format_time(T0 + 60 * SECOND),
        ),
        ("INFLUX2TD_WINDOW", "10s".into()),
        ("INFLUX2TD_NATS_URL", nats_url.into()),
        (
            "INFLUX2TD_TARGET_DSN",
            format!("file://{}", target.display()),
        ),
        ("INFLUX2TD_TARGET_DATABASE", "metrics".into()),
    ]
}

/// Starts `role` with `env` (then `extra`) logged in to NATS as its own user (none when
/// `extra` sets the NATS URL: a leaf's clients need no login), its log in `logs/<role>.log`.
fn spawn_as(
    role: &str,
    env: &[(&str, String)],
    extra: &[(&str, &str)],
    logs: &std::path::Path,
) -> KillOnDrop {
    let log = std::fs::File::create(logs.join(format!("{role}.log"))).unwrap();
    let user = format!("influx2td-{role}");
    let password = password(role);
    let login = !extra.iter().any(|(k, _)| *k == "INFLUX2TD_NATS_URL");
    let credentials = [
        ("INFLUX2TD_NATS_USER", user.as_str()),
        ("INFLUX2TD_NATS_PASSWORD", password.as_ref()),
    ];
    let env = env
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(credentials.into_iter().filter(|_| login))
        .chain(extra.iter().copied());
    KillOnDrop(common::spawn_role(role, env, log))
}

/// `server_log` and each role's log.
fn logs_and(mut text: String, logs: &std::path::Path) -> String {
    for role in ["coordinator", "reader", "writer"] {
        let role_log = std::fs::read_to_string(logs.join(format!("{role}.log")));
        text.push_str(&format!("--- {role}\n{}", role_log.unwrap_or_default()));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_a_leaf_node_logged_in_as_the_site_user_serves_the_job() {
    let Some(influxd) = Influxd::with_reader("db", "copier", INFLUX_PASSWORD) else {
        return;
    };
    let Some(nats) =
        NatsHubAndLeaf::start_with(Some(&server_config()), "influx2td-site", &password("site"))
    else {
        return;
    };
    influxd.write("db", &lines());
    let directory = tempfile::tempdir().unwrap();
    let target = directory.path().join("target");
    let env = job_env(&influxd, &nats.hub.url(), &target);
    let logs = directory.path().to_owned();
    let log = || {
        logs_and(
            format!("{}\n--- leaf\n{}", nats.hub.log(), nats.leaf.log()),
            &logs,
        )
    };
    let mut coordinator = spawn_as("coordinator", &env, &[], &logs);
    let mut writer = spawn_as("writer", &env, &[], &logs);
    // At the site the readers need no NATS login: the leaf's login to the hub bounds them.
    let leaf_url = nats.leaf.url();
    let at_site = [
        ("INFLUX2TD_NATS_URL", leaf_url.as_str()),
        ("INFLUX2TD_NATS_DOMAIN", "hub"),
    ];
    let mut reader = spawn_as("reader", &env, &at_site, &logs);
    let status = wait_for_exit(&mut coordinator.0, Duration::from_secs(60), log);
    assert_eq!(status.code(), Some(0), "{}", log());
    terminate(&mut reader.0);
    terminate(&mut writer.0);
    let model = replay_directory(&target).unwrap();
    let rows: usize = model.tables.values().map(|t| t.rows.len()).sum();
    assert_eq!(rows, 60, "{}", log());
    assert!(
        std::fs::read_to_string(logs.join("reader.log"))
            .unwrap()
            .contains("discovered for the coordinator"),
        "{}",
        log()
    );
    assert!(!nats.hub.log().contains("Violation"), "{}", log());

    // From the site, nothing else reaches the hub: not the checkpoints, not another role's
    // work, not deleting a stream (no JetStream answers: the request never crosses).
    let site = async_nats::connect(nats.leaf.url()).await.unwrap();
    for subject in [
        "$JS.hub.API.STREAM.DELETE.INFLUX2TD_demo_WORK",
        "$JS.hub.API.DIRECT.GET.KV_influx2td_demo.$KV.influx2td_demo.lease",
        "$JS.hub.API.CONSUMER.MSG.NEXT.INFLUX2TD_demo_DATA.writers",
    ] {
        let asked = site.request(subject.to_owned(), "".into()).await;
        assert!(
            matches!(&asked, Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders),
            "{subject} crossed from the site: {asked:?}"
        );
    }
    // The job's streams are all still there.
    let hub =
        async_nats::ConnectOptions::with_user_and_password("observer".into(), "observer".into())
            .connect(nats.hub.url())
            .await
            .unwrap();
    let streams = async_nats::jetstream::new(hub);
    streams.get_stream("INFLUX2TD_demo_WORK").await.unwrap();
}

/// A nats-server whose JetStream storage cannot hold a job's streams: each role says so with
/// what to change, keeps trying (someone may make room), and still stops at once on SIGTERM.
#[test]
fn roles_refused_their_streams_say_why_and_stop_when_asked() {
    let Some((influxd, nats)) = common::source_and_cramped_nats(T0) else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    let target = format!("file://{}", directory.path().join("target").display());
    let env = [
        ("INFLUX2TD_JOB", "refused"),
        ("INFLUX2TD_BUCKET", "db"),
        ("INFLUX2TD_BEGIN", "2023-11-14T22:13:20Z"),
        ("INFLUX2TD_END", "2023-11-14T22:14:20Z"),
        ("INFLUX2TD_SOURCE_URL", &influxd.url()),
        ("INFLUX2TD_TARGET_DSN", &target),
        ("INFLUX2TD_TARGET_DATABASE", "metrics"),
        ("INFLUX2TD_NATS_URL", &nats.url()),
    ];
    for role in ["coordinator", "reader", "writer"] {
        let log = directory.path().join(format!("{role}.log"));
        let mut process = KillOnDrop(common::spawn_role(
            role,
            env,
            std::fs::File::create(&log).unwrap(),
        ));
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !read_log().contains("cannot open a queue yet") {
            assert!(
                std::time::Instant::now() < deadline,
                "the {role} did not report the refusal:\n{}",
                read_log()
            );
            assert!(
                process.try_wait().unwrap().is_none(),
                "the {role} exited:\n{}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let said = read_log();
        assert!(
            said.contains("insufficient storage resources")
                && said.contains("max_file_store")
                && said.contains("512 MiB in all"),
            "the {role} does not say what to change:\n{said}"
        );
        common::sigterm(&process);
        let status = wait_for_exit(&mut process, Duration::from_secs(10), read_log);
        assert_eq!(status.code(), Some(0), "{}", read_log());
    }
}
