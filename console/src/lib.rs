//! The web console (`influx2td console`) and the JSON API behind it. Jobs are stored as job
//! files (`<state dir>/console/<job>.toml`, the keys the CLI reads) or, with `--nats-url`, in the
//! NATS KV bucket `<prefix>-console` ([`store`]); their secrets go to owner-only files under the
//! state directory either way. Each job has its own checkpoints and status: it runs whole in
//! this process over the embedded bus, or over NATS is coordinated from here (its lease and
//! checkpoints in the job's KV bucket) while readers and writers run as their own processes.
//! What a job should be doing (running, paused, stopped, finished) is stored with it, so a
//! console started again resumes the jobs that were running. The API takes a job as JSON
//! shaped like the TOML file:
//!
//! - `POST /api/check` — the connectivity check of both ends (`{passed, ends}`), or `400`
//!   `{problems: [{key, message}]}` naming each bad key;
//! - `POST /api/discover` — the buckets to pick from, and the chosen bucket's measurements;
//! - `GET /api/jobs`, `POST /api/jobs` (creates and starts), `GET /api/jobs/{job}` (status),
//!   `POST /api/jobs/{job}/pause`, `POST /api/jobs/{job}/resume` (goes on from its
//!   checkpoints), `POST /api/jobs/{job}/stop` (ends it for good), `DELETE /api/jobs/{job}`
//!   (with its checkpoints), `GET /api/jobs/{job}/toml`, `POST /api/jobs/{job}/verify` (what
//!   `influx2td verify` says: `{matches, measurements}`), `POST /api/jobs/{job}/repair` (what
//!   `influx2td verify --repair` does: `{matches, measurements, repaired}`),
//!   `GET /api/jobs/{job}/history` (a bounded ring of samples of the job's status, one a second
//!   while it runs: what the page's charts draw, [`history`]);
//! - `GET /api/events` — server-sent events: every second a `jobs` event with what
//!   `GET /api/jobs` lists (each job with its newest sample); the page polls only without it.
//!
//! `GET /api/openapi.json` describes it all (OpenAPI 3.1, `console-openapi.json`; the tests
//! validate every answer against it). `GET /metrics` has the jobs' Prometheus metrics (labelled
//! by job) and `GET /healthz` says the console is up. It listens on loopback unless given a
//! token; with a token every API call and `/metrics` need `Authorization: Bearer <token>`.
//! Secrets are never sent back.

mod history;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use history::History;
use influx2td_config::{ConfigError, JobConfig, NatsConfig};
use influx2td_coordinator::StatusBoard;
use serde_json::{Value, json};
use store::{Desired, Store};

const PAGE: &str = include_str!("console.html");
/// The API, described (OpenAPI 3.1); served at `/api/openapi.json`.
pub const OPENAPI: &str = include_str!("console-openapi.json");

/// How `influx2td console` was started.
#[derive(Debug)]
pub struct Settings {
    pub listen: String,
    pub state_dir: PathBuf,
    pub token: Option<String>,
    /// Jobs in this NATS server's KV bucket, and run over it unless they name another.
    pub nats: Option<NatsConfig>,
}

/// One job of the console.
struct Entry {
    config: JobConfig,
    board: StatusBoard,
    run: Option<Running>,
    desired: Desired,
    /// Why the last run failed.
    failure: Option<String>,
    /// Counts the runs, so that a run ending late never clears a newer one.
    generation: u64,
    /// What the charts draw.
    history: History,
}

impl Entry {
    fn new(config: JobConfig, desired: Desired) -> Self {
        Self {
            config,
            board: StatusBoard::new(),
            run: None,
            desired,
            failure: None,
            generation: 0,
            history: History::default(),
        }
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the run gracefully and waits for it to end.
    async fn halt(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[derive(Clone)]
struct Console {
    directory: PathBuf,
    token: Option<String>,
    nats: Option<NatsConfig>,
    store: Store,
    jobs: Arc<Mutex<BTreeMap<String, Entry>>>,
    /// Stored jobs this console cannot load (a secret file missing here, a file edited wrong),
    /// with the reason: listed as failed, so nothing stored goes unseen; they can be deleted.
    unloadable: Arc<Mutex<BTreeMap<String, String>>>,
    /// Turns true when the console shuts down: the event streams end then (an open stream would
    /// hold the shutdown), and so does the sampling.
    closing: tokio::sync::watch::Receiver<bool>,
}

/// Serves the console until SIGINT/SIGTERM; jobs running then stop gracefully (and run again
/// when the console is started again).
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listen = &settings.listen;
    let address: SocketAddr = listen.parse().map_err(|e| {
        anyhow::anyhow!("--listen {listen:?}: {e} (host:port, e.g. 127.0.0.1:8080)")
    })?;
    if !address.ip().is_loopback() && settings.token.is_none() {
        anyhow::bail!(
            "--listen {listen} is reachable from other machines: give --token-file (every API call then needs it) or listen on 127.0.0.1"
        );
    }
    let directory = settings.state_dir.join("console");
    std::fs::create_dir_all(&directory)?;
    // Absolute, since the stored jobs name their secret files and state directory by it.
    let directory = std::fs::canonicalize(&directory)?;
    let store = match &settings.nats {
        Some(nats) => {
            let Some(connect) = influx2td_job::connect::nats_connect(nats, "influx2td-console")
            else {
                anyhow::bail!("the console's NATS settings lack nats.url");
            };
            let names = influx2td_bus::Names::new(&nats.prefix, "console")?;
            let bus = influx2td_bus::NatsBus::connect(&connect, names).await?;
            let bucket = format!("{}-console", nats.prefix);
            let kv = bus.key_value(&bucket, "influx2td console jobs").await?;
            Store::Nats {
                bucket,
                kv: Box::new(kv),
            }
        }
        None => Store::Directory(directory.clone()),
    };
    let (close, closing) = tokio::sync::watch::channel(false);
    let console = Console {
        directory,
        token: settings.token,
        nats: settings.nats,
        store,
        jobs: Arc::default(),
        unloadable: Arc::default(),
        closing,
    };
    console.load().await?;
    tokio::spawn(console.clone().sample());
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    influx2td_telemetry::metrics().encode(),
                )
            }),
        )
        .route("/api/check", post(check))
        .route("/api/discover", post(discover))
        .route("/api/jobs", get(list).post(create))
        .route("/api/jobs/{job}", get(show).delete(remove))
        .route("/api/jobs/{job}/pause", post(pause))
        .route("/api/jobs/{job}/resume", post(resume))
        .route("/api/jobs/{job}/stop", post(stop))
        .route("/api/jobs/{job}/verify", post(verify))
        .route("/api/jobs/{job}/repair", post(repair))
        .route("/api/jobs/{job}/history", get(history))
        .route("/api/events", get(events))
        .route("/api/jobs/{job}/toml", get(download))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            authorize,
        ))
        .with_state(console.clone());
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(
        url = format!("http://{}", listener.local_addr()?),
        jobs = console.store.describe(),
        "console listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            influx2td_job::connect::shutdown_signal().await;
            let _ = close.send(true);
        })
        .await?;
    let running: Vec<Running> = console
        .lock()
        .values_mut()
        .filter_map(|entry| entry.run.take())
        .collect();
    for run in running {
        run.halt().await;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Console {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        lock(&self.jobs)
    }

    /// Samples every job's status each second for its history, until the console shuts down.
    async fn sample(self) {
        let mut closing = self.closing.clone();
        let mut ticks = tokio::time::interval(Duration::from_millis(history::STEP_MS as u64));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = closing.wait_for(|closing| *closing) => return,
            }
            let now = now_ms();
            // A run being halted is no longer sampled here; its end takes its final figures.
            for (name, entry) in self.lock().iter_mut().filter(|(_, e)| e.run.is_some()) {
                let retries = influx2td_telemetry::metrics().retries_of(name);
                entry
                    .history
                    .record(now, &entry.board.get(), &retries, false);
            }
        }
    }

    /// Every job as `GET /api/jobs` lists it.
    fn listed(&self) -> Value {
        let mut jobs: Vec<Value> = self.lock().values().map(describe).collect();
        jobs.extend(
            lock(&self.unloadable)
                .iter()
                .map(|(job, reason)| describe_unloadable(job, reason)),
        );
        json!({ "jobs": jobs })
    }

    /// Where the console's jobs keep their checkpoints (one state file per job).
    fn state_dir(&self) -> PathBuf {
        self.directory.join("state")
    }

    /// Where a job's secrets are kept.
    fn secrets(&self, job: &str) -> PathBuf {
        self.directory.join("secrets").join(job)
    }

    /// A job runs over the console's NATS unless it names a NATS of its own.
    fn with_nats(&self, mut config: JobConfig) -> JobConfig {
        if config.nats.url.is_none()
            && let Some(nats) = &self.nats
        {
            config.nats = nats.clone();
        }
        config
    }

    /// The stored jobs; those that were running run again.
    async fn load(&self) -> anyhow::Result<()> {
        for (name, stored) in self.store.all().await? {
            match parse_job(&stored.text, &format!("console job {name}")) {
                Ok(config) if config.job == name => {
                    let config = self.with_nats(config);
                    self.lock()
                        .insert(name.clone(), Entry::new(config, stored.desired));
                    if stored.desired == Desired::Running {
                        self.launch(&name);
                    }
                }
                Ok(config) => self.cannot_load(
                    &name,
                    format!("its `job` key names another job, {:?}", config.job),
                ),
                Err(error) => self.cannot_load(&name, error.to_string()),
            }
        }
        Ok(())
    }

    fn cannot_load(&self, name: &str, reason: String) {
        tracing::warn!(job = name, reason, "cannot load a stored job");
        lock(&self.unloadable).insert(name.to_owned(), one_line(&reason));
    }

    /// Why the stored job `job` cannot be loaded, when it cannot.
    fn unloadable(&self, job: &str) -> Option<String> {
        lock(&self.unloadable).get(job).cloned()
    }

    /// Runs `job`; its status goes to its board.
    fn launch(&self, name: &str) {
        let mut jobs = self.lock();
        let Some(entry) = jobs.get_mut(name) else {
            return;
        };
        if entry.run.is_some() {
            return;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        entry.generation += 1;
        let generation = entry.generation;
        let config = entry.config.clone();
        let board = entry.board.clone();
        let console = self.clone();
        let job = name.to_owned();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            // Over NATS the console coordinates; readers and writers run as their own processes.
            let outcome = if config.nats.url.is_some() {
                influx2td_job::pipeline::coordinator_with(&config, board, stopped).await
            } else {
                influx2td_job::pipeline::pipeline_with(&config, board, stopped).await
            };
            let finished = matches!(&outcome, Ok(summary) if summary.complete);
            let failure = outcome.err().map(|error| one_line(&format!("{error:#}")));
            tracing::info!(job, finished, failure, "console job ended");
            let current = match console.lock().get_mut(&job) {
                Some(entry) if entry.generation == generation => {
                    entry.run = None;
                    // The run's final figures, in its history.
                    let retries = influx2td_telemetry::metrics().retries_of(&job);
                    entry
                        .history
                        .record(now_ms(), &entry.board.get(), &retries, true);
                    entry.failure = failure;
                    if finished {
                        entry.desired = Desired::Finished;
                    }
                    true
                }
                _ => false,
            };
            if current
                && finished
                && let Err(error) = console.store.set_desired(&job, Desired::Finished).await
            {
                tracing::warn!(job, %error, "cannot store that the job finished");
            }
        });
        entry.run = Some(Running { stop, task });
        entry.failure = None;
    }

    /// Sets what `job` should do, stored first; the run to halt unless it is to run; `Err` is
    /// the answer to give instead.
    async fn transition(&self, job: &str, desired: Desired) -> Result<Option<Running>, Response> {
        if let Some(reason) = self.unloadable(job) {
            return Err(error(
                StatusCode::CONFLICT,
                format!("job {job:?} cannot be loaded ({reason}): delete it and add it again"),
            ));
        }
        {
            let jobs = self.lock();
            let Some(entry) = jobs.get(job) else {
                return Err(error(StatusCode::NOT_FOUND, format!("no job {job:?}")));
            };
            if entry.desired == Desired::Stopped && desired != Desired::Stopped {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!(
                        "job {job:?} was stopped for good: delete it, or add it again under another name"
                    ),
                ));
            }
        }
        if let Err(e) = self.store.set_desired(job, desired).await {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "cannot store the job's state in {}: {e:#}",
                    self.store.describe()
                ),
            ));
        }
        let mut jobs = self.lock();
        let Some(entry) = jobs.get_mut(job) else {
            return Err(error(StatusCode::NOT_FOUND, format!("no job {job:?}")));
        };
        entry.desired = desired;
        entry.failure = None;
        Ok(if desired == Desired::Running {
            None
        } else {
            entry.run.take()
        })
    }
}

async fn authorize(
    State(console): State<Console>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &console.token else {
        return next.run(request).await;
    };
    // The page itself and `/healthz` say nothing; the API and the metrics need the token.
    let path = request.uri().path();
    if !(path.starts_with("/api/") || path == "/metrics") {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if given.is_some_and(|given| same_secret(given, token)) {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` is needed",
        )
    }
}

/// Compares in time that depends on the lengths only, so a guess's timing says nothing about
/// how much of it was right.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A job from the JSON the console sends (the TOML file's shape): the job and that JSON as it
/// is stored (blank keys left out, the state directory filled in), or the problems as a `400`.
fn job_from_json(body: &Value, state_dir: &Path) -> Result<(JobConfig, Value), Box<Response>> {
    let mut body = without_empty(body.clone());
    // Checkpoints go under the console's state directory unless the job says otherwise.
    if let Value::Object(map) = &mut body {
        map.entry("state_dir")
            .or_insert_with(|| Value::String(state_dir.display().to_string()));
    }
    let text = toml_text(&body)?;
    parse_job(&text, "console")
        .map(|job| (job, body))
        .map_err(|e| Box::new(problems(&e)))
}

/// A job from the TOML text of a job file (`source` names it in problems).
fn parse_job(text: &str, source: &str) -> Result<JobConfig, ConfigError> {
    let mut layers = influx2td_config::Layers::default();
    layers
        .toml_text(text, source)
        .and_then(|()| influx2td_config::validate(layers))
}

fn toml_text(body: &Value) -> Result<String, Box<Response>> {
    toml::to_string(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the job is not a table of keys: {e}"),
        ))
    })
}

/// Empty strings, nulls and empty lists are keys the form left blank: not set.
fn without_empty(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter_map(|(key, value)| {
                    let value = without_empty(value);
                    let blank = match &value {
                        Value::Null => true,
                        Value::String(text) => text.trim().is_empty(),
                        Value::Object(map) => map.is_empty(),
                        _ => false,
                    };
                    (!blank).then_some((key, value))
                })
                .collect(),
        ),
        other => other,
    }
}

fn problems(error: &ConfigError) -> Response {
    let list: Vec<Value> = match error {
        ConfigError::Invalid(problems) => problems
            .iter()
            .map(|p| json!({ "key": p.key, "message": p.message, "text": p.to_string() }))
            .collect(),
        other => {
            vec![json!({ "key": "", "message": other.to_string(), "text": other.to_string() })]
        }
    };
    (StatusCode::BAD_REQUEST, Json(json!({ "problems": list }))).into_response()
}

async fn check(State(console): State<Console>, Json(body): Json<Value>) -> Response {
    let (job, _) = match job_from_json(&body, &console.state_dir()) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let (ends, passed) = influx2td_job::pipeline::check_ends(&job).await;
    Json(json!({ "passed": passed, "ends": ends })).into_response()
}

/// The buckets the credentials may read and, when the job names one, its measurements. The
/// bucket may be left blank: the page lists buckets to pick from.
async fn discover(State(console): State<Console>, Json(mut body): Json<Value>) -> Response {
    let blank = body["bucket"].as_str().is_none_or(|b| b.trim().is_empty());
    if blank {
        // Any name passes validation; only the buckets are asked for then.
        body["bucket"] = json!("-");
    }
    let (job, _) = match job_from_json(&body, &console.state_dir()) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let client = match influx2td_reader::InfluxClient::new(&job.source, &job.bucket) {
        Ok(client) => client,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let buckets = match influx2td_reader::schema::buckets(&client).await {
        Ok(buckets) => buckets,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let measurements = if blank {
        Vec::new()
    } else {
        match influx2td_reader::schema::measurements(&client, &[]).await {
            Ok(measurements) => measurements,
            Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    };
    Json(json!({ "buckets": buckets, "measurements": measurements })).into_response()
}

/// A job as the API shows it: its settings (secrets redacted), state and live status.
fn describe(entry: &Entry) -> Value {
    let state = match (&entry.run, &entry.failure) {
        (Some(_), _) => "running".to_owned(),
        (None, Some(failure)) => format!("failed: {failure}"),
        (None, None) => entry.desired.as_str().to_owned(),
    };
    json!({
        "job": entry.config.job,
        "state": state,
        "config": entry.config,
        "status": entry.board.get(),
        "retries": influx2td_telemetry::metrics().retries_of(&entry.config.job),
        "sample": entry.history.latest(),
    })
}

async fn list(State(console): State<Console>) -> Json<Value> {
    Json(console.listed())
}

/// The job's history: a sample a step (one second, coarser as the ring fills) while it ran.
async fn history(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    if let Some(entry) = console.lock().get(&job) {
        return Json(entry.history.to_json(&job)).into_response();
    }
    if console.unloadable(&job).is_some() {
        return Json(History::default().to_json(&job)).into_response();
    }
    error(StatusCode::NOT_FOUND, format!("no job {job:?}"))
}

/// Server-sent events: every second a `jobs` event holding what `GET /api/jobs` lists (each
/// job with its newest sample), until the client goes or the console shuts down.
async fn events(
    State(console): State<Console>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let ticks = tokio::time::interval(Duration::from_secs(1));
    let stream = futures::stream::unfold((console, ticks), |(console, mut ticks)| async move {
        let mut closing = console.closing.clone();
        tokio::select! {
            _ = ticks.tick() => {}
            _ = closing.wait_for(|closing| *closing) => return None,
        }
        let event = Event::default()
            .event("jobs")
            .data(console.listed().to_string());
        Some((Ok(event), (console, ticks)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Now, in milliseconds since 1970.
fn now_ms() -> i64 {
    influx2td_coordinator::now_ns() / 1_000_000
}

/// A message on one line (a state is one line): the lines of a list of problems joined by `; `.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(":;", ":")
}

/// A stored job that cannot be loaded, shown as failed with the reason.
fn describe_unloadable(job: &str, reason: &str) -> Value {
    json!({
        "job": job,
        "state": format!("failed: cannot load the stored job: {reason}"),
        "config": {},
        "status": StatusBoard::new().get(),
        "retries": {},
        "sample": null,
    })
}

async fn create(State(console): State<Console>, Json(body): Json<Value>) -> Response {
    let (job, mut body) = match job_from_json(&body, &console.state_dir()) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let name = job.job.clone();
    let exists = || {
        error(
            StatusCode::CONFLICT,
            format!("job {name:?} exists: delete it first, or give this one another `job` name"),
        )
    };
    {
        // Checked and taken in one step: two requests for one name cannot both create it.
        let mut jobs = console.lock();
        if jobs.contains_key(&name) || console.unloadable(&name).is_some() {
            return exists();
        }
        jobs.insert(
            name.clone(),
            Entry::new(console.with_nats(job), Desired::Running),
        );
    }
    let stored = match store::move_secrets(&mut body, &console.secrets(&name)) {
        Ok(()) => match toml_text(&body) {
            Ok(text) => console.store.create(&name, &text).await.map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "cannot store the job in {}: {e:#}",
                        console.store.describe()
                    ),
                )
            }),
            Err(response) => Err(*response),
        },
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the job's secrets: {e}"),
        )),
    };
    if !matches!(stored, Ok(true)) {
        console.lock().remove(&name);
        let _ = std::fs::remove_dir_all(console.secrets(&name));
        return stored.err().unwrap_or_else(exists);
    }
    // Said outright, so that no state left behind by an earlier job of the name counts.
    if let Err(e) = console.store.set_desired(&name, Desired::Running).await {
        tracing::warn!(job = name, error = %e, "cannot store that the job runs");
    }
    console.launch(&name);
    let shown = console.lock().get(&name).map(describe).unwrap_or_default();
    (StatusCode::CREATED, Json(shown)).into_response()
}

async fn show(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    if let Some(entry) = console.lock().get(&job) {
        return Json(describe(entry)).into_response();
    }
    match console.unloadable(&job) {
        Some(reason) => Json(describe_unloadable(&job, &reason)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {job:?}")),
    }
}

/// What `influx2td verify` says of the job: what the source holds against what the target
/// holds, over the part of the job its checkpoints say is written (also while it runs).
async fn verify(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    checked(&console, &job, false).await
}

/// What `influx2td verify --repair` does: the windows that differ are read again, then the job
/// is verified again; the answer is that verify's, with what each window read again wrote.
async fn repair(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    checked(&console, &job, true).await
}

async fn checked(console: &Console, job: &str, repair: bool) -> Response {
    let Some(config) = console.lock().get(job).map(|entry| entry.config.clone()) else {
        return error(StatusCode::NOT_FOUND, format!("no job {job:?}"));
    };
    let checks = async {
        let checkpoints = influx2td_job::checkpoints::read_checkpoints(&config).await?;
        let mut checks = influx2td_job::verify::verify(&config, &checkpoints).await?;
        let mut repaired = Vec::new();
        if repair {
            // Its status on a board of its own: no progress bar on the console's terminal.
            let board = StatusBoard::new();
            repaired = influx2td_job::verify::repair(&config, &checks, Some(&board)).await?;
            if !repaired.is_empty() {
                checks = influx2td_job::verify::verify(&config, &checkpoints).await?;
            }
        }
        anyhow::Ok((checks, repaired))
    };
    match checks.await {
        Ok((checks, repaired)) => {
            let matches = checks
                .iter()
                .all(influx2td_job::verify::MeasurementCheck::matches);
            let mut answer = json!({ "matches": matches, "measurements": checks });
            if repair {
                answer["repaired"] = json!(repaired);
            }
            Json(answer).into_response()
        }
        Err(failure) => error(StatusCode::BAD_GATEWAY, one_line(&format!("{failure:#}"))),
    }
}

/// Halts the job; `resume` goes on from its checkpoints.
async fn pause(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    halt(console, job, Desired::Paused).await
}

/// Ends the job for good (a continuous one stops syncing); it stays listed until deleted.
async fn stop(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    halt(console, job, Desired::Stopped).await
}

async fn halt(console: Console, job: String, desired: Desired) -> Response {
    match console.transition(&job, desired).await {
        Ok(run) => {
            if let Some(run) = run {
                run.halt().await;
            }
            show(State(console), UrlPath(job)).await
        }
        Err(response) => response,
    }
}

async fn resume(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    match console.transition(&job, Desired::Running).await {
        // A job already running goes on as it is.
        Ok(_) => {
            console.launch(&job);
            show(State(console), UrlPath(job)).await
        }
        Err(response) => response,
    }
}

/// Deletes the job, its secrets and its checkpoints: a new job of the same name starts from
/// its own begin.
async fn remove(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    // A job that cannot be loaded has no settings to go by: only what the console keeps of it
    // goes.
    let unloadable = console.unloadable(&job).is_some();
    if !unloadable {
        let run = match console.lock().get_mut(&job) {
            Some(entry) => entry.run.take(),
            None => return error(StatusCode::NOT_FOUND, format!("no job {job:?}")),
        };
        if let Some(run) = run {
            run.halt().await;
        }
    }
    if let Err(e) = console.store.remove(&job).await {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "cannot delete the job from {}: {e:#}",
                console.store.describe()
            ),
        );
    }
    let _ = std::fs::remove_dir_all(console.secrets(&job));
    if unloadable {
        lock(&console.unloadable).remove(&job);
        return StatusCode::NO_CONTENT.into_response();
    }
    let Some(entry) = console.lock().remove(&job) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let config = &entry.config;
    if config.nats.url.is_some() {
        let forgotten = match influx2td_job::connect::nats_bus(config, "console").await {
            Ok(bus) => bus.delete_job().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = forgotten {
            return error(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the job is deleted but its streams and checkpoints in NATS are not: {e:#}"
                ),
            );
        }
    } else {
        let _ = std::fs::remove_dir_all(config.state_dir.join(&config.job));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn download(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    // Where the job runs over the console's NATS (unknown for a job that cannot be loaded).
    let nats = match console.lock().get(&job) {
        Some(entry) => entry
            .config
            .nats
            .url
            .clone()
            .map(|url| (url, entry.config.nats.prefix.clone())),
        None if console.unloadable(&job).is_some() => None,
        None => return error(StatusCode::NOT_FOUND, format!("no job {job:?}")),
    };
    // The job as stored: its secrets are `*_file` keys naming files on the console's machine
    // (a job stored inline by an older console has them replaced).
    let stored = console
        .store
        .text(&job)
        .await
        .map_err(|e| format!("{e:#}"))
        .and_then(|text| text.parse::<toml::Table>().map_err(|e| e.to_string()));
    match stored {
        Ok(mut table) => {
            redact(&mut table, "");
            let left_out = without_console_secrets(&mut table, &console.secrets(&job));
            // A job run over the console's NATS: where that is (each role brings its own
            // credentials).
            if let (Some((url, prefix)), false) = (nats, table.contains_key("nats")) {
                let mut section = toml::Table::new();
                section.insert("url".into(), toml::Value::String(url));
                section.insert("prefix".into(), toml::Value::String(prefix));
                table.insert("nats".into(), toml::Value::Table(section));
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/toml"),
            );
            if let Ok(value) = format!("attachment; filename=\"{job}.toml\"").parse() {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            let mut text = format!("# Job {job:?} from the influx2td console.\n");
            if !left_out.is_empty() {
                text.push_str(
                    "# Its secrets stay with the console; give them where this job runs:\n",
                );
                for key in &left_out {
                    text.push_str(&format!(
                        "#   {} (or {}_file = \"<a file holding it>\")\n",
                        key.env_var(),
                        key.path
                    ));
                }
            }
            text.push_str(&table.to_string());
            (headers, text).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the stored job: {e}"),
        ),
    }
}

/// Takes out the `*_file` keys that name the console's own secret files (`secrets`), which
/// mean nothing elsewhere; returns the secret keys they stood for.
fn without_console_secrets(
    table: &mut toml::Table,
    secrets: &Path,
) -> Vec<&'static influx2td_config::keys::Key> {
    let mut left_out = Vec::new();
    for key in influx2td_config::keys::KEYS.iter().filter(|key| key.secret) {
        let (table_path, name) = key.path.rsplit_once('.').unwrap_or(("", key.path));
        let mut inner = Some(&mut *table);
        for part in table_path.split('.').filter(|part| !part.is_empty()) {
            inner = inner
                .and_then(|inner| inner.get_mut(part))
                .and_then(toml::Value::as_table_mut);
        }
        let Some(inner) = inner else {
            continue;
        };
        let file_key = format!("{name}_file");
        let ours = inner
            .get(&file_key)
            .and_then(toml::Value::as_str)
            .is_some_and(|file| Path::new(file).starts_with(secrets));
        if ours {
            inner.remove(&file_key);
            left_out.push(key);
        }
    }
    left_out
}

/// Replaces the value of every secret key (`source.password`, `target.dsn`, ...) in place.
fn redact(table: &mut toml::Table, prefix: &str) {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => redact(inner, &path),
            other => {
                if influx2td_config::keys::find(&path).is_some_and(|key| key.secret) {
                    *other = toml::Value::String(influx2td_config::REDACTED.to_owned());
                }
            }
        }
    }
}
