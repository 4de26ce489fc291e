//! The `influx2td` command line: argument parsing, logging set-up, and one call into
//! `influx2td-job` (or `influx2td-console`) per subcommand. No job logic lives here; each module
//! turns a subcommand's arguments into that call and its result into output (text or `--json`):
//!
//! - `run`, `coordinator`, `reader`, `writer`: `influx2td_job::pipeline` directly;
//! - `status`, `plan`, `verify`, `check`, `validate`: their output (a module each);
//! - `backfill`: `backfill` and `dead-letters list | replay`;
//! - `inspect`: one message of a job's streams as JSON;
//! - `console`: `influx2td_console::serve`.

mod backfill;
mod check;
mod inspect;
mod plan;
mod status;
mod validate;
mod verify;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use influx2td_config::{ConfigError, JobConfig, LogLevel};
use influx2td_telemetry::Traces;

/// Exit codes: 0 success, 1 the work failed, 2 usage or configuration error.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "influx2td",
    version,
    about = "Migrate and continuously sync time-series data from InfluxDB into TDengine",
    after_help = "Configuration: a TOML job file (--config), overridden by INFLUX2TD_* environment \
                  variables, overridden by --set KEY=VALUE. See examples/job.toml for every key."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The job file (TOML).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "INFLUX2TD_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Override one config key, e.g. --set batch_size=1000 --set source.url=http://influx:8086
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "INFLUX2TD_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that InfluxDB answers, the credentials work and the bucket and measurements exist.
    /// Exit code 0 when every step passed, 1 otherwise.
    Check {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the whole migration in this process (no NATS needed): plan, read, write, checkpoint.
    /// Without `end` it keeps syncing new data until stopped (SIGINT/SIGTERM); it resumes from
    /// its checkpoints when started again. Exit code 1 when windows failed or rows were
    /// dead-lettered.
    Run,
    /// Run the coordinator role over NATS (needs nats.url): plan the job, publish its windows,
    /// and keep its checkpoints. One per job; a second one waits out the first one's lease.
    Coordinator,
    /// Show a job's progress from its checkpoints: per measurement, the time up to which every
    /// row is written (the moment a user can cut over), rows, windows, dead letters, failures.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show what the job would do, writing nothing: measurements, series, field types and
    /// conflicts, windows to read, estimated rows, and the TDengine DDL.
    Plan {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare what InfluxDB holds with what the target holds, over the part of the job its
    /// checkpoints say is written: per measurement and field the number of values, and for
    /// every numeric field its sum, smallest and largest value. Integer sums are compared
    /// exactly, modulo 2^64 (both databases' SUM wraps around at 64 bits); float sums up to the
    /// rounding of adding in another order; smallest and largest values exactly. Where a
    /// measurement differs, counts and sums per window of the job say where. Exit code 1 on
    /// any difference.
    Verify {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Read the windows whose values the target lacks or holds otherwise again (like
        /// `backfill`: the rows read overwrite those in the target), then verify again.
        #[arg(long)]
        repair: bool,
    },
    /// Run the reader role over NATS (needs nats.url): read windows from the WORK stream and
    /// publish their rows to DATA. Stops on SIGINT/SIGTERM, letting windows in flight finish.
    Reader,
    /// Run the writer role over NATS (needs nats.url): write row batches from the DATA stream
    /// into TDengine (or the file sink) and report them on DONE. Stops on SIGINT/SIGTERM.
    Writer,
    /// Read a range of one measurement again and write it into the target, in this process,
    /// while the job itself goes on (writes are idempotent: same table, same timestamp).
    Backfill {
        /// The measurement, by its exact name.
        #[arg(long)]
        measurement: String,
        /// Start, inclusive: RFC 3339 or a date (UTC).
        #[arg(long)]
        from: String,
        /// End, exclusive: RFC 3339 or a date (UTC).
        #[arg(long)]
        to: String,
    },
    /// Rows TDengine refused: `list` shows the windows that had them and why; `replay` reads
    /// those windows again (after the cause is fixed) and says which rows are now written.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
    /// Decode one message of the job's streams on NATS into JSON: the oldest one, the one at a
    /// stream sequence, or the newest of a measurement.
    Inspect {
        /// Which stream.
        #[arg(long, value_enum)]
        stream: inspect::StreamName,
        /// The stream sequence number (`nats stream view` shows it).
        #[arg(long)]
        seq: Option<u64>,
        /// The newest message of this measurement.
        #[arg(long, conflicts_with = "seq")]
        measurement: Option<String>,
    },
    /// The web console: add a data source, check connectivity, configure and start jobs, watch
    /// them run, in the browser (and the JSON API behind it). Needs no job file.
    Console {
        /// Where to serve it; other than loopback only with --token-file.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the console keeps its jobs (job files, unless --nats-url), their secrets and
        /// their checkpoints.
        #[arg(long, default_value = ".influx2td")]
        state_dir: PathBuf,
        /// A file holding the token every API call must bring (`Authorization: Bearer`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Keep the jobs in this NATS server's KV bucket `<nats.prefix>-console` (secrets stay
        /// in files under --state-dir) and run them over it; its other `nats.*` settings come
        /// from --config, INFLUX2TD_NATS_* variables and --set (other keys are not looked at).
        #[arg(long, value_name = "URL")]
        nats_url: Option<String>,
    },
    /// Check a job's configuration and print it as it will run (secrets redacted).
    Validate {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersAction {
    /// Per measurement, the windows with dead-lettered rows, how many and why.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read those windows again and write them; exit code 1 when rows are still refused.
    Replay {
        /// Only this measurement.
        #[arg(long)]
        measurement: Option<String>,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main_with(cli: Cli, env: impl IntoIterator<Item = (String, String)>) -> u8 {
    if let Command::Console {
        listen,
        state_dir,
        token_file,
        nats_url,
    } = &cli.command
    {
        init_tracing(LogLevel::Info, cli.global.log_format, None);
        let token = match token_file
            .as_deref()
            .map(std::fs::read_to_string)
            .transpose()
        {
            Ok(token) => token.map(|t| t.trim().to_owned()),
            Err(error) => {
                eprintln!("error: --token-file: {error}");
                return exit::USAGE;
            }
        };
        let nats = match console_nats(&cli.global, env, nats_url.as_deref()) {
            Ok(nats) => nats,
            Err(error) => {
                eprintln!("error: {error}");
                return exit::USAGE;
            }
        };
        let served = runtime().and_then(|runtime| {
            runtime.block_on(influx2td_console::serve(influx2td_console::Settings {
                listen: listen.clone(),
                state_dir: state_dir.clone(),
                token,
                nats,
            }))
        });
        return match served {
            Ok(()) => exit::SUCCESS,
            Err(error) => {
                eprintln!("error: {}", describe(&error));
                exit::FAILURE
            }
        };
    }
    let job = match load_job(&cli.global, env) {
        Ok(job) => job,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::USAGE;
        }
    };
    let traces = match traced_service(&cli.command) {
        Some(service) => {
            match Traces::start(
                job.otlp_traces_endpoint.as_deref(),
                service,
                &job.job,
                |name| std::env::var(name).ok(),
            ) {
                Ok(traces) => traces,
                Err(error) => {
                    eprintln!("error: {error}");
                    return exit::USAGE;
                }
            }
        }
        None => None,
    };
    init_tracing(job.log_level, cli.global.log_format, traces.as_ref());
    if traces.is_some() {
        tracing::info!(job = job.job, "exporting OpenTelemetry traces (OTLP/HTTP)");
    }
    let result = run_command(cli.command, &job);
    // After the runtime is gone: the exporter sends what is left from its own thread.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    match result {
        Ok(()) => exit::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            exit::FAILURE
        }
    }
}

/// An error and its causes, `: ` between them, leaving out a cause the text before it already
/// says (an error that names its source in its own message, as `#[error("…: {0}")]` does).
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// The console's NATS settings when given `--nats-url`: its other `nats.*` keys come from
/// --config, `INFLUX2TD_NATS_*` and --set (a job's other keys there are not looked at). `None`
/// without it: jobs then live in the state directory.
fn console_nats(
    global: &GlobalArgs,
    env: impl IntoIterator<Item = (String, String)>,
    url: Option<&str>,
) -> Result<Option<influx2td_config::NatsConfig>, ConfigError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let mut layers = influx2td_config::Layers::default();
    if let Some(path) = &global.config {
        layers.file(path)?;
    }
    layers.env(env);
    let url = format!("nats.url={url}");
    layers.flags(
        global
            .overrides
            .iter()
            .map(String::as_str)
            .chain([url.as_str()]),
    );
    influx2td_config::validate_nats(layers).map(Some)
}

/// The `service.name` of the commands that move data (and so make traces); `None` for the rest.
fn traced_service(command: &Command) -> Option<&'static str> {
    match command {
        Command::Run => Some("influx2td"),
        Command::Coordinator => Some("influx2td-coordinator"),
        Command::Reader => Some("influx2td-reader"),
        Command::Writer => Some("influx2td-writer"),
        Command::Backfill { .. }
        | Command::DeadLetters {
            action: DeadLettersAction::Replay { .. },
        } => Some("influx2td-backfill"),
        _ => None,
    }
}

fn run_command(command: Command, job: &JobConfig) -> anyhow::Result<()> {
    match command {
        Command::Console { .. } => anyhow::bail!("the console runs without a job"),
        Command::Validate { json } => validate::validate(job, json),
        Command::Check { json } => {
            runtime().and_then(|runtime| runtime.block_on(check::check(job, json)))
        }
        Command::Run => {
            role_runtime().and_then(|runtime| runtime.block_on(influx2td_job::pipeline::run(job)))
        }
        Command::Coordinator => role_runtime()
            .and_then(|runtime| runtime.block_on(influx2td_job::pipeline::coordinator(job))),
        Command::Status { json } => {
            runtime().and_then(|runtime| runtime.block_on(status::status(job, json)))
        }
        Command::Plan { json } => {
            runtime().and_then(|runtime| runtime.block_on(plan::show_plan(job, json)))
        }
        Command::Verify { json, repair } => {
            runtime().and_then(|runtime| runtime.block_on(verify::verify(job, json, repair)))
        }
        Command::Reader => role_runtime()
            .and_then(|runtime| runtime.block_on(influx2td_job::pipeline::reader(job))),
        Command::Writer => role_runtime()
            .and_then(|runtime| runtime.block_on(influx2td_job::pipeline::writer(job))),
        Command::Inspect {
            stream,
            seq,
            measurement,
        } => runtime().and_then(|runtime| {
            runtime.block_on(inspect::inspect(job, stream, seq, measurement.as_deref()))
        }),
        Command::Backfill {
            measurement,
            from,
            to,
        } => runtime().and_then(|runtime| {
            runtime.block_on(backfill::backfill(job, &measurement, &from, &to))
        }),
        Command::DeadLetters {
            action: DeadLettersAction::List { json },
        } => runtime().and_then(|runtime| runtime.block_on(backfill::list_dead_letters(job, json))),
        Command::DeadLetters {
            action: DeadLettersAction::Replay { measurement },
        } => runtime().and_then(|runtime| {
            runtime.block_on(backfill::replay_dead_letters(job, measurement.as_deref()))
        }),
    }
}

fn load_job(
    global: &GlobalArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<JobConfig, ConfigError> {
    influx2td_config::load(
        global.config.as_deref(),
        env,
        global.overrides.iter().map(String::as_str),
    )
}

/// Logs go to stderr at the job's level; `RUST_LOG` refines per module. With `traces`, the
/// spans of influx2td also go to OpenTelemetry, whatever the log level.
pub fn init_tracing(level: LogLevel, format: LogFormat, traces: Option<&Traces>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str()));
    let logs = tracing_subscriber::fmt::layer().with_writer(influx2td_job::progress::LogWriter);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces.map(Traces::layer))
        .try_init();
}

/// The runtime of one role in a process of its own, and of `run` (every role in one process):
/// a single thread, as influx2td spends little CPU per row (about a third of what InfluxDB
/// spends answering) and scales out as processes over NATS. A multi-threaded runtime would
/// spend as much again on handing work between its threads (measured: a reader's CPU per row
/// halves on one thread, its context switches fall twelvefold; `run` into TDengine: CPU per row
/// −21 %, context switches a third, wall clock no longer). The TDengine client's blocking calls
/// still run on the blocking pool beside it.
fn role_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Data output of `--json`: pretty JSON on stdout.
fn print_json(stdout: &mut impl Write, value: &serde_json::Value) -> anyhow::Result<()> {
    writeln!(stdout, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}
