//! The jobs in deploy/ are ones influx2td accepts: the Kubernetes ConfigMap's job.toml with the
//! Secret's variables, and the docker-compose stack's environment. `deploy/check.sh` validates
//! the files themselves against their tools' schemas.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

mod common;

fn deploy_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// The lines of the YAML block that follows `header` and is indented by more than it.
fn block_after(text: &str, header: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|line| line.trim_end() != header);
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("{header:?} not found"));
    let indent = header_line.len() - header_line.trim_start().len();
    lines
        .take_while(|line| line.trim().is_empty() || line.len() - line.trim_start().len() > indent)
        .map(str::to_owned)
        .collect()
}

/// `KEY: value` pairs of a YAML mapping block, quotes removed.
fn pairs(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| line.trim().split_once(": "))
        .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

/// Exit code, stdout and stderr of `influx2td validate --json`.
fn validate(config: Option<&Path>, env: &[(String, String)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(common::BINARY);
    command.env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let output = command.args(["validate", "--json"]).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_kubernetes_job_and_secret_make_a_valid_job() {
    let config_map = deploy_file("k8s/base/job-config.yaml");
    let job: String = block_after(&config_map, "  job.toml: |")
        .iter()
        .map(|line| format!("{}\n", line.strip_prefix("    ").unwrap_or(line)))
        .collect();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("job.toml");
    std::fs::write(&path, &job).unwrap();
    let secret = pairs(&block_after(
        &deploy_file("k8s/base/secret.yaml"),
        "stringData:",
    ));
    assert_eq!(secret.len(), 2, "{secret:?}");
    let (code, output, errors) = validate(Some(&path), &secret);
    assert_eq!(code, Some(0), "{errors}\n{job}");
    let job: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        job["http_listen"], "0.0.0.0:9090",
        "the probes need the endpoints"
    );
    assert_eq!(job["nats"]["url"], "nats://nats.messaging.svc:4222");
    assert_eq!(job["nats"]["replicas"], 3);
    assert!(
        !output.contains("change-me") && !errors.contains("change-me"),
        "a secret was printed: {output}{errors}"
    );
}

/// The job of the compose stack with `overrides` (an override file's environment) on top.
fn compose_job(overrides: &[(String, String)]) -> serde_json::Value {
    let compose = deploy_file("docker-compose.yml");
    let mut env = pairs(&block_after(&compose, "  environment: &job"));
    env.extend(overrides.iter().cloned());
    // The container paths, mapped back to the files the compose file mounts.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("deploy");
    let mounts = [
        (
            "/etc/influx2td/job.toml",
            "./demo/job.toml:/etc/influx2td/job.toml:ro",
            root.join("demo/job.toml"),
        ),
        (
            "/run/secrets/tdengine_dsn",
            "file: ./demo/tdengine-dsn.txt",
            root.join("demo/tdengine-dsn.txt"),
        ),
    ];
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(key, value)| {
            let local = mounts
                .iter()
                .find(|(inside, mount, _)| value == *inside && compose.contains(mount))
                .map_or(value, |(_, _, local)| local.display().to_string());
            (key, local)
        })
        .collect();
    assert!(
        env.iter()
            .all(|(_, value)| !value.starts_with("/etc") && !value.starts_with("/run")),
        "a path the compose file does not mount: {env:?}"
    );
    let (code, output, errors) = validate(None, &env);
    assert_eq!(code, Some(0), "{errors}");
    assert!(
        !output.contains("taosdata"),
        "the DSN's password was printed: {output}"
    );
    serde_json::from_str(&output).unwrap()
}

#[test]
fn the_compose_stack_job_file_and_secret_make_a_valid_job() {
    let job = compose_job(&[]);
    assert_eq!(job["job"], "demo");
    assert_eq!(job["http_listen"], "0.0.0.0:9090");
    assert_eq!(job["nats"]["url"], "nats://nats:4222");
    assert_eq!(job["nats"]["replicas"], 1);
}

#[test]
fn the_compose_nats_cluster_override_keeps_the_job_on_all_three_servers() {
    let cluster = deploy_file("docker-compose.nats-cluster.yml");
    let overrides = pairs(&block_after(&cluster, "x-nats-cluster: &nats-cluster"));
    let job = compose_job(&overrides);
    assert_eq!(job["nats"]["replicas"], 3);
    assert_eq!(
        job["nats"]["url"],
        "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222"
    );
    // Every role gets it, and each of the three servers routes to the other two.
    for role in ["coordinator", "reader", "writer"] {
        let service = block_after(&cluster, &format!("  {role}:")).join("\n");
        assert!(service.contains("environment: *nats-cluster"), "{role}");
    }
    for (server, name) in [
        ("nats", "nats-1"),
        ("nats-2", "nats-2"),
        ("nats-3", "nats-3"),
    ] {
        let service = block_after(&cluster, &format!("  {server}:")).join(" ");
        assert!(
            service.contains(&format!("\"--server_name\", \"{name}\"")),
            "{service}"
        );
        let others: Vec<&str> = ["nats", "nats-2", "nats-3"]
            .into_iter()
            .filter(|other| *other != server)
            .collect();
        for other in others {
            assert!(
                service.contains(&format!("nats://{other}:6222")),
                "{server} → {other}"
            );
        }
    }
}

#[test]
fn the_compose_console_command_serves_the_console_behind_its_token() {
    let compose = deploy_file("docker-compose.yml");
    let service = block_after(&compose, "  console:").join("\n");
    // The command list, which may span lines: ["console", "--listen", ...].
    let list = &service[service.find("command: [").unwrap() + "command: [".len()..];
    let list = &list[..list.find(']').unwrap()];
    let directory = tempfile::tempdir().unwrap();
    let token = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo/console-token.txt");
    assert!(
        service.contains("console_token") && compose.contains("file: ./demo/console-token.txt")
    );
    let port = common::free_port();
    let args: Vec<String> = list
        .split(',')
        .map(|arg| arg.trim().trim_matches('"').to_owned())
        .map(|arg| match arg.as_str() {
            "/run/secrets/console_token" => token.display().to_string(),
            "/var/lib/influx2td" => directory.path().display().to_string(),
            "0.0.0.0:8080" => format!("0.0.0.0:{port}"),
            _ => arg,
        })
        .collect();
    assert_eq!(args[0], "console", "{args:?}");
    let mut console = influx2td_testkit::KillOnDrop(
        Command::new(common::BINARY)
            .env_clear()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for_http(port, "the console");
    let secret = std::fs::read_to_string(&token).unwrap();
    let bearer = format!("Bearer {}", secret.trim());
    let page = influx2td_testkit::http_request(port, "GET", "/", &[], b"").unwrap();
    assert_eq!(page.status, 200);
    let refused = influx2td_testkit::http_request(port, "GET", "/api/jobs", &[], b"").unwrap();
    assert_eq!(refused.status, 401);
    let allowed = influx2td_testkit::http_request(
        port,
        "GET",
        "/api/jobs",
        &[("Authorization", bearer.as_str())],
        b"",
    )
    .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    common::terminate(&mut console.0);
}
