//! The HTTP endpoints every role serves: `/healthz` (the process is alive), `/readyz` (it reaches
//! the bus and its end), `/metrics` (Prometheus) and, on the coordinator, `/status` (JSON).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use thiserror::Error;

/// One readiness probe: `Ok` when what it checks answers, else the reason.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;
/// The coordinator's status document.
pub type StatusSource = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// A probe slower than this counts as failed: Kubernetes' own probe timeout is short.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a role serves.
#[derive(Clone, Default)]
pub struct Endpoints {
    probes: Vec<(String, Probe)>,
    status: Option<StatusSource>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let probes: Vec<&str> = self.probes.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Endpoints")
            .field("probes", &probes)
            .field("status", &self.status.is_some())
            .finish()
    }
}

impl Endpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a readiness probe named `name` (`bus`, `influxdb`, `tdengine`).
    pub fn probe<F, Fut>(mut self, name: &str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.probes
            .push((name.to_owned(), Arc::new(move || Box::pin(probe()))));
        self
    }

    /// Serves `status()` at `/status`.
    pub fn status(
        mut self,
        status: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.status = Some(Arc::new(status));
        self
    }
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("http.listen {address:?} gave no local address: {detail}")]
    BadAddress { address: String, detail: String },
    #[error("cannot listen on http.listen {address:?} (host:port, e.g. 0.0.0.0:9090): {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// A bound listener; the server starts with [`Listener::serve`].
#[derive(Debug)]
pub struct Listener {
    listener: tokio::net::TcpListener,
}

impl Listener {
    /// Binds `address` (`host:port`, the host a name or an IP; port 0 picks a free one).
    pub async fn bind(address: &str) -> Result<Self, ServerError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Bind {
                address: address.to_owned(),
                source,
            })?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `endpoints` until `shutdown` completes.
    pub async fn serve(
        self,
        endpoints: Endpoints,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/status", get(status))
            .with_state(Arc::new(endpoints));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Binds `address` and serves `endpoints` in a background task until `shutdown`; returns the
/// bound address.
pub async fn spawn(
    address: &str,
    endpoints: Endpoints,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, ServerError> {
    let listener = Listener::bind(address).await?;
    let bound = listener
        .local_addr()
        .ok_or_else(|| ServerError::BadAddress {
            address: address.to_owned(),
            detail: "no local address after binding".into(),
        })?;
    tokio::spawn(async move {
        if let Err(error) = listener.serve(endpoints, shutdown).await {
            tracing::error!(%error, "http server stopped");
        }
    });
    tracing::info!(address = %bound, "serving /healthz /readyz /metrics /status");
    Ok(bound)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let checks = futures::future::join_all(endpoints.probes.iter().map(|(name, probe)| {
        let probe = probe.clone();
        async move {
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
            };
            (name.clone(), outcome)
        }
    }))
    .await;
    let ready = checks.iter().all(|(_, outcome)| outcome.is_ok());
    let document = serde_json::json!({
        "ready": ready,
        "checks": checks
            .into_iter()
            .map(|(name, outcome)| (name, serde_json::Value::String(match outcome {
                Ok(()) => "ok".to_owned(),
                Err(reason) => reason,
            })))
            .collect::<serde_json::Map<_, _>>(),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(document)).into_response()
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics().encode(),
    )
        .into_response()
}

async fn status(State(endpoints): State<Arc<Endpoints>>) -> Response {
    match &endpoints.status {
        Some(source) => axum::Json(source()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this role has no /status; ask the coordinator\n",
        )
            .into_response(),
    }
}
