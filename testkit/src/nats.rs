//! A real `nats-server` with JetStream.

use std::time::Duration;

use tempfile::TempDir;

use crate::http::http_request;
use crate::process::{ServerProcess, free_port, require_binary};

/// JetStream file storage of every test server.
const STORE_BYTES: u64 = 1 << 30;

/// `nats-server -js` on free ports with its own store; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    binary: std::path::PathBuf,
    directory: TempDir,
    port: u16,
    monitor_port: u16,
    /// Extra configuration (auth, TLS), written to a file and given with `-c`.
    config: Option<String>,
    /// Runs JetStream (a leaf node beside the source does not: it uses its hub's).
    jetstream: bool,
    process: Option<ServerProcess>,
}

impl NatsServer {
    /// Starts a server, or returns `None` (test skipped) when `nats-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with_config(None)
    }

    /// Starts a server with extra configuration: `authorization { ... }`, `tls { ... }` (the
    /// flags for ports, address and JetStream come on top).
    pub fn start_with_config(config: Option<&str>) -> Option<Self> {
        let binary = require_binary("nats-server", "NATS_SERVER_BIN")?;
        // A port taken by another test between `free_port` and our bind: try other ports.
        for _ in 0..3 {
            let mut server = Self {
                binary: binary.clone(),
                directory: tempfile::tempdir().expect("cannot create temp dir"),
                port: free_port(),
                monitor_port: free_port(),
                config: config.map(str::to_owned),
                jetstream: true,
                process: None,
            };
            let started =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.start_again()));
            if started.is_ok() {
                return Some(server);
            }
        }
        panic!("nats-server did not start on three sets of free ports");
    }

    /// `nats://127.0.0.1:<port>` (with TLS configured the client upgrades the connection).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no clean shutdown, like a crash).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same ports with the same store.
    pub fn start_again(&mut self) {
        self.stop();
        let store = self.directory.path().join("jetstream");
        // JetStream's storage is fixed, not 75% of whatever disk is free on this machine: a test
        // passes or fails the same on a full disk (CI's, once) and an empty one. 1 GiB holds
        // a job's streams; a test's own `jetstream { }` comes after and wins.
        let jetstream = if self.jetstream {
            format!("jetstream {{ max_file_store: {STORE_BYTES} }}\n")
        } else {
            String::new()
        };
        let config = format!("{jetstream}{}", self.config.as_deref().unwrap_or_default());
        let file = self.directory.path().join("nats.conf");
        std::fs::write(&file, config).expect("cannot write nats.conf");
        let mut args = vec!["-c".to_owned(), file.display().to_string()];
        if self.jetstream {
            args.push("-js".to_owned());
        }
        args.extend([
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
            "-m".to_owned(),
            self.monitor_port.to_string(),
            "-sd".to_owned(),
            store.display().to_string(),
        ]);
        let mut process =
            ServerProcess::spawn(&self.binary, &args, self.directory.path().join("nats.log"));
        let monitor_port = self.monitor_port;
        let health = if self.jetstream {
            "/healthz?js-enabled-only=true"
        } else {
            "/healthz"
        };
        process.wait_until("nats-server", self.port, Duration::from_secs(20), || {
            http_request(monitor_port, "GET", health, &[], b"")
                .is_ok_and(|response| response.status == 200)
        });
        self.process = Some(process);
    }

    /// The JetStream report of the monitoring endpoint (`/jsz` with streams and consumers).
    pub fn jsz(&self) -> String {
        http_request(
            self.monitor_port,
            "GET",
            "/jsz?streams=true&consumers=true&config=true",
            &[],
            b"",
        )
        .map(|response| response.body)
        .unwrap_or_else(|e| panic!("cannot read /jsz: {e}"))
    }

    /// What the server logged so far (permission violations, auth failures).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("nats.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }
}

/// Three `nats-server`s on loopback in one cluster (routes between them, JetStream with its own
/// store on each, free ports); each killed on drop. Clients connect with [`NatsCluster::url`],
/// which names all three.
#[derive(Debug)]
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the cluster and waits until JetStream has a meta leader, or `None` (test skipped)
    /// when `nats-server` is not installed.
    pub fn start() -> Option<Self> {
        let binary = require_binary("nats-server", "NATS_SERVER_BIN")?;
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut servers: Vec<NatsServer> = route_ports
            .iter()
            .enumerate()
            .map(|(index, route_port)| NatsServer {
                binary: binary.clone(),
                directory: tempfile::tempdir().expect("cannot create temp dir"),
                port: free_port(),
                monitor_port: free_port(),
                config: Some(format!(
                    "server_name: n{}\ncluster {{ name: influx2td-test, listen: \"127.0.0.1:{route_port}\", routes: [{routes}] }}\n",
                    index + 1
                )),
                jetstream: true,
                process: None,
            })
            .collect();
        for server in &mut servers {
            server.start_again();
        }
        let cluster = Self { servers };
        cluster.wait_for_meta_leader(Duration::from_secs(30));
        Some(cluster)
    }

    /// `nats://` URLs of all three servers, comma separated (the client fails over between them).
    pub fn url(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The server named `name` (`n1`, `n2`, `n3`: what a stream's leader is reported as).
    pub fn server_named(&mut self, name: &str) -> &mut NatsServer {
        let index = name
            .strip_prefix('n')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=self.servers.len()).contains(n))
            .unwrap_or_else(|| panic!("no server {name:?} in the cluster"));
        &mut self.servers[index - 1]
    }

    /// Waits until a running server reports a JetStream meta leader (the cluster can create
    /// and place streams).
    pub fn wait_for_meta_leader(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let led = self
                .servers
                .iter()
                .filter(|s| s.process.is_some())
                .any(|s| {
                    http_request(s.monitor_port, "GET", "/jsz?leader-only=false", &[], b"")
                        .is_ok_and(|r| r.body.replace(' ', "").contains("\"leader\":\"n"))
                });
            if led {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the NATS cluster elected no JetStream leader in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A hub with JetStream that accepts leaf nodes, and a leaf without JetStream that connects
/// *out* to it (the hub opens no port towards the leaf's site): clients of the leaf use the
/// hub's JetStream as if connected to the hub. Both killed on drop.
#[derive(Debug)]
pub struct NatsHubAndLeaf {
    pub hub: NatsServer,
    pub leaf: NatsServer,
}

impl NatsHubAndLeaf {
    /// Starts both and waits until the leaf is connected, or `None` (test skipped) when
    /// `nats-server` is not installed. The leaf logs in to the hub's leaf-node port as
    /// `leaf`/`leaf-secret`, a login allowed everything.
    pub fn start() -> Option<Self> {
        Self::start_with(None, "leaf", "leaf-secret")
    }

    /// [`start`](Self::start) with `authorization` (an `authorization { users: [...] }` block)
    /// on the hub, whose `user`/`password` the leaf logs in with: what that user may publish
    /// is what crosses from the leaf to the hub, what it may subscribe to what the hub sends to
    /// the leaf. The leaf's own clients need no login.
    pub fn start_with(authorization: Option<&str>, user: &str, password: &str) -> Option<Self> {
        let binary = require_binary("nats-server", "NATS_SERVER_BIN")?;
        let leaf_port = free_port();
        let server = |config: String, jetstream: bool| NatsServer {
            binary: binary.clone(),
            directory: tempfile::tempdir().expect("cannot create temp dir"),
            port: free_port(),
            monitor_port: free_port(),
            config: Some(config),
            jetstream,
            process: None,
        };
        let logins = match authorization {
            Some(block) => format!("leafnodes {{ listen: \"127.0.0.1:{leaf_port}\" }}\n{block}\n"),
            None => format!(
                "leafnodes {{ listen: \"127.0.0.1:{leaf_port}\", authorization {{ user: {user}, password: {password} }} }}\n"
            ),
        };
        let mut hub = server(
            format!(
                "server_name: hub\njetstream {{ max_file_store: {STORE_BYTES}, domain: hub }}\n{logins}"
            ),
            true,
        );
        hub.start_again();
        let mut leaf = server(
            format!(
                "server_name: leaf\nleafnodes {{ remotes: [ {{ url: \"nats-leaf://{user}:{password}@127.0.0.1:{leaf_port}\" }} ] }}\n"
            ),
            false,
        );
        leaf.start_again();
        let both = Self { hub, leaf };
        both.wait_for_leaf(Duration::from_secs(30));
        Some(both)
    }

    /// Waits until the hub reports the leaf connected.
    pub fn wait_for_leaf(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while !http_request(self.hub.monitor_port, "GET", "/leafz", &[], b"")
            .is_ok_and(|r| r.body.replace(' ', "").contains("\"leafnodes\":1"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the leaf did not connect to the hub in {within:?}:\n{}",
                self.leaf.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_restarts_on_the_same_port() {
        let Some(mut nats) = NatsServer::start() else {
            return;
        };
        assert!(nats.jsz().contains("\"config\""), "{}", nats.jsz());
        let first_pid = nats.pid();
        nats.stop();
        assert!(std::net::TcpStream::connect(("127.0.0.1", nats.port())).is_err());
        nats.start_again();
        assert_ne!(nats.pid(), first_pid);
        assert!(std::net::TcpStream::connect(("127.0.0.1", nats.port())).is_ok());
    }
}
