//! `influx2td console`: the web console and the JSON API behind it. Jobs are job files
//! (`<state dir>/console/<job>.toml`, the same keys the CLI reads, owner-only permissions since
//! they hold secrets), each with its own checkpoints and status: run whole in this process over
//! the embedded bus, or, with `nats.url`, coordinated from here (its lease and checkpoints in
//! the NATS KV bucket) while readers and writers run as their own processes. The API takes a job as JSON shaped like the TOML file:
//!
//! - `POST /api/check` — the connectivity check of both ends (`{passed, ends}`), or `400`
//!   `{problems: [{key, message}]}` naming each bad key;
//! - `POST /api/discover` — the buckets to pick from, and the chosen bucket's measurements;
//! - `GET /api/jobs`, `POST /api/jobs` (creates and starts), `GET /api/jobs/{job}` (status),
//!   `POST /api/jobs/{job}/stop`, `POST /api/jobs/{job}/start` (resumes from its
//!   checkpoints), `DELETE /api/jobs/{job}`, `GET /api/jobs/{job}/toml` (secrets redacted).
//!
//! `GET /api/openapi.json` describes it all (OpenAPI 3.1, `console-openapi.json`; the tests
//! validate every answer against it). It listens on loopback unless given a token; with a token every API call needs
//! `Authorization: Bearer <token>`. Secrets are never sent back: the job shows `[redacted]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use influx2td_config::{ConfigError, JobConfig};
use influx2td_coordinator::StatusBoard;
use serde_json::{Value, json};

const PAGE: &str = include_str!("console.html");
/// The API, described (OpenAPI 3.1); served at `/api/openapi.json`.
pub const OPENAPI: &str = include_str!("console-openapi.json");

/// One job of the console.
struct Entry {
    config: JobConfig,
    board: StatusBoard,
    run: Option<Running>,
    /// How the last run ended: `finished`, `stopped`, or `failed: <reason>`.
    ended: Option<String>,
    /// Counts the runs, so that a run ending late never clears a newer one.
    generation: u64,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Console {
    directory: PathBuf,
    token: Option<String>,
    jobs: Arc<Mutex<BTreeMap<String, Entry>>>,
}

/// Serves the console on `listen` until SIGINT/SIGTERM; jobs running then stop gracefully.
pub async fn serve(listen: &str, state_dir: &Path, token: Option<String>) -> anyhow::Result<()> {
    let address: SocketAddr = listen.parse().map_err(|e| {
        anyhow::anyhow!("--listen {listen:?}: {e} (host:port, e.g. 127.0.0.1:8080)")
    })?;
    if !address.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "--listen {listen} is reachable from other machines: give --token-file (every API call then needs it) or listen on 127.0.0.1"
        );
    }
    let directory = state_dir.join("console");
    std::fs::create_dir_all(&directory)?;
    let console = Console {
        directory: directory.clone(),
        token,
        jobs: Arc::default(),
    };
    // Jobs of earlier sessions come back stopped; `start` resumes them from their checkpoints.
    for entry in std::fs::read_dir(&directory)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            match job_from_file(&path) {
                Ok(config) => {
                    console.lock().insert(
                        config.job.clone(),
                        Entry {
                            config,
                            board: StatusBoard::new(),
                            run: None,
                            ended: Some("stopped".into()),
                            generation: 0,
                        },
                    );
                }
                Err(error) => tracing::warn!(file = %path.display(), %error, "ignoring a job file"),
            }
        }
    }
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/api/check", post(check))
        .route("/api/discover", post(discover))
        .route("/api/jobs", get(list).post(create))
        .route("/api/jobs/{job}", get(show).delete(remove))
        .route("/api/jobs/{job}/stop", post(stop))
        .route("/api/jobs/{job}/start", post(start))
        .route("/api/jobs/{job}/toml", get(download))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            authorize,
        ))
        .with_state(console.clone());
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(
        url = format!("http://{}", listener.local_addr()?),
        "console listening"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    let running: Vec<Running> = console
        .lock()
        .values_mut()
        .filter_map(|entry| entry.run.take())
        .collect();
    for run in running {
        let _ = run.stop.send(());
        let _ = run.task.await;
    }
    Ok(())
}

impl Console {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the console's jobs keep their checkpoints (one state file per job).
    fn state_dir(&self) -> PathBuf {
        self.directory.join("state")
    }

    fn file(&self, job: &str) -> PathBuf {
        self.directory.join(format!("{job}.toml"))
    }

    /// Runs `job` in this process; its status goes to its board.
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
                crate::coordinator_with(&config, board, stopped).await
            } else {
                crate::pipeline_with(&config, board, stopped).await
            };
            let ended = match outcome {
                Ok(summary) if summary.complete => "finished".to_owned(),
                Ok(_) => "stopped".to_owned(),
                Err(error) => format!("failed: {error:#}"),
            };
            tracing::info!(job, ended, "console job ended");
            if let Some(entry) = console.lock().get_mut(&job)
                && entry.generation == generation
            {
                entry.run = None;
                entry.ended = Some(ended);
            }
        });
        entry.run = Some(Running { stop, task });
        entry.ended = None;
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
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if given == Some(token.as_str()) {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` is needed",
        )
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A job from the JSON the console sends (the TOML file's shape): the job, its TOML text,
/// or the problems as a `400` answer.
fn job_from_json(body: &Value, state_dir: &Path) -> Result<(JobConfig, String), Box<Response>> {
    let mut body = without_empty(body.clone());
    // Checkpoints go under the console's state directory unless the job says otherwise.
    if let Value::Object(map) = &mut body {
        map.entry("state_dir")
            .or_insert_with(|| Value::String(state_dir.display().to_string()));
    }
    let text = toml::to_string(&body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the job is not a table of keys: {e}"),
        ))
    })?;
    let mut layers = influx2td_config::Layers::default();
    let parsed = layers
        .toml_text(&text, "console")
        .and_then(|()| influx2td_config::validate(layers));
    parsed
        .map(|job| (job, text))
        .map_err(|e| Box::new(problems(&e)))
}

fn job_from_file(path: &Path) -> Result<JobConfig, ConfigError> {
    influx2td_config::load(Some(path), std::iter::empty(), std::iter::empty())
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
    let (ends, passed) = crate::check_ends(&job).await;
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
    let state = if entry.run.is_some() {
        "running".to_owned()
    } else {
        entry.ended.clone().unwrap_or_else(|| "stopped".into())
    };
    json!({
        "job": entry.config.job,
        "state": state,
        "config": entry.config,
        "status": entry.board.get(),
        "retries": influx2td_telemetry::metrics().retries_of(&entry.config.job),
    })
}

async fn list(State(console): State<Console>) -> Json<Value> {
    let jobs: Vec<Value> = console.lock().values().map(describe).collect();
    Json(json!({ "jobs": jobs }))
}

async fn create(State(console): State<Console>, Json(body): Json<Value>) -> Response {
    let (job, text) = match job_from_json(&body, &console.state_dir()) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let name = job.job.clone();
    {
        // Checked and taken in one step: two requests for one name cannot both create it.
        let mut jobs = console.lock();
        if jobs.contains_key(&name) {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "job {name:?} exists: delete it first, or give this one another `job` name"
                ),
            );
        }
        jobs.insert(
            name.clone(),
            Entry {
                config: job,
                board: StatusBoard::new(),
                run: None,
                ended: None,
                generation: 0,
            },
        );
    }
    if let Err(e) = write_private(&console.file(&name), &text) {
        console.lock().remove(&name);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the job: {e}"),
        );
    }
    console.launch(&name);
    let shown = console.lock().get(&name).map(describe).unwrap_or_default();
    (StatusCode::CREATED, Json(shown)).into_response()
}

/// Writes a job file only its owner can read (it holds the job's secrets).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

async fn show(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    match console.lock().get(&job) {
        Some(entry) => Json(describe(entry)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {job:?}")),
    }
}

async fn stop(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    let run = match console.lock().get_mut(&job) {
        Some(entry) => entry.run.take(),
        None => return error(StatusCode::NOT_FOUND, format!("no job {job:?}")),
    };
    if let Some(run) = run {
        let _ = run.stop.send(());
        let _ = run.task.await;
    }
    if let Some(entry) = console.lock().get_mut(&job) {
        entry.ended = Some("stopped".into());
    }
    show(State(console), UrlPath(job)).await
}

async fn start(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    if !console.lock().contains_key(&job) {
        return error(StatusCode::NOT_FOUND, format!("no job {job:?}"));
    }
    console.launch(&job);
    show(State(console), UrlPath(job)).await
}

async fn remove(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    let response = stop(State(console.clone()), UrlPath(job.clone())).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let removed = console.lock().remove(&job);
    let _ = std::fs::remove_file(console.file(&job));
    // Its checkpoints go too: a new job of the same name starts from its own begin.
    if let Some(entry) = removed {
        let _ = std::fs::remove_dir_all(entry.config.state_dir.join(&entry.config.job));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn download(State(console): State<Console>, UrlPath(job): UrlPath<String>) -> Response {
    if !console.lock().contains_key(&job) {
        return error(StatusCode::NOT_FOUND, format!("no job {job:?}"));
    }
    // The job file as stored, each secret replaced: a file `influx2td run --config` reads
    // once the secrets are put back (or given as *_file keys or INFLUX2TD_* variables).
    let stored = std::fs::read_to_string(console.file(&job))
        .map_err(|e| e.to_string())
        .and_then(|text| text.parse::<toml::Table>().map_err(|e| e.to_string()));
    match stored {
        Ok(mut table) => {
            redact(&mut table, "");
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/toml"),
            );
            if let Ok(value) = format!("attachment; filename=\"{job}.toml\"").parse() {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            (headers, table.to_string()).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the job file: {e}"),
        ),
    }
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
