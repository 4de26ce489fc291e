//! Where a job's roles meet: the NATS connection a job's settings describe, the in-process
//! bus of an embedded run, and the signal that stops a process.

use influx2td_config::JobConfig;

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; SIGINT still stops");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}

/// Connects a role to NATS, unless SIGINT/SIGTERM comes first (NATS may take a minute to
/// answer): then `None`, and the role stops without having started.
pub async fn nats_bus_unless_stopped(
    job: &JobConfig,
    role: &str,
) -> anyhow::Result<Option<influx2td_bus::NatsBus>> {
    tokio::select! {
        bus = nats_bus(job, role) => bus.map(Some),
        () = shutdown_signal() => {
            tracing::info!(role, "stopped while connecting to NATS");
            Ok(None)
        }
    }
}

/// Connects to the job's NATS; the roles that run as separate processes need it.
pub async fn nats_bus(job: &JobConfig, role: &str) -> anyhow::Result<influx2td_bus::NatsBus> {
    nats_bus_within(job, role, influx2td_bus::nats::DEFAULT_PATIENCE).await
}

/// [`nats_bus`], giving up when JetStream has not answered within `patience`.
pub async fn nats_bus_within(
    job: &JobConfig,
    role: &str,
    patience: std::time::Duration,
) -> anyhow::Result<influx2td_bus::NatsBus> {
    let Some(connect) = nats_connect(&job.nats, &format!("influx2td-{role}-{}", job.job)) else {
        anyhow::bail!("`influx2td {role}` runs over NATS: set nats.url (or INFLUX2TD_NATS_URL)");
    };
    let connect = influx2td_bus::NatsConnect {
        patience,
        ..connect
    };
    let names = influx2td_bus::Names::new(&job.nats.prefix, &job.job)?;
    Ok(influx2td_bus::NatsBus::connect(&connect, names).await?)
}

/// How to connect to NATS as `nats` says; `None` without `nats.url`.
pub fn nats_connect(
    nats: &influx2td_config::NatsConfig,
    client_name: &str,
) -> Option<influx2td_bus::NatsConnect> {
    let url = nats.url.as_ref()?;
    let auth = match &nats.auth {
        influx2td_config::NatsAuthConfig::None => match &nats.creds_file {
            Some(path) => influx2td_bus::NatsAuth::CredsFile(path.clone()),
            None => influx2td_bus::NatsAuth::None,
        },
        influx2td_config::NatsAuthConfig::UserPassword { user, password } => {
            influx2td_bus::NatsAuth::UserPassword {
                user: user.clone(),
                password: password.expose().to_owned(),
            }
        }
        influx2td_config::NatsAuthConfig::Token { token } => {
            influx2td_bus::NatsAuth::Token(token.expose().to_owned())
        }
        influx2td_config::NatsAuthConfig::Nkey { seed } => {
            influx2td_bus::NatsAuth::NkeySeed(seed.expose().to_owned())
        }
    };
    Some(influx2td_bus::NatsConnect {
        url: url.clone(),
        auth,
        ca_file: nats.ca_file.clone(),
        client_certificate: nats.client_certificate.clone(),
        tls_required: nats.tls_required,
        client_name: client_name.to_owned(),
        replicas: nats.replicas,
        patience: influx2td_bus::nats::DEFAULT_PATIENCE,
        domain: nats.domain.clone(),
    })
}

/// The embedded bus of a job: its state directory holds the checkpoints.
pub(crate) fn embedded_bus(job: &JobConfig) -> anyhow::Result<influx2td_bus::MemoryBus> {
    let names = influx2td_bus::Names::new(&job.nats.prefix, &job.job)?;
    Ok(influx2td_bus::MemoryBus::new(
        names,
        job.state_dir.join(&job.job),
    ))
}
