//! The `influx2td` command line: argument parsing, logging set-up and the subcommands. Each
//! subcommand arrives with the capability behind it; none pretends to work.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use influx2td_config::{ConfigError, JobConfig, LogLevel};

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
    /// Check a job's configuration and print it as it will run (secrets redacted).
    Validate {
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main_with(cli: Cli, env: impl IntoIterator<Item = (String, String)>) -> ExitCode {
    let job = match load_job(&cli.global, env) {
        Ok(job) => job,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    init_tracing(job.log_level, cli.global.log_format);
    let result = match cli.command {
        Command::Validate { json } => validate(&job, json),
    };
    match result {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::FAILURE)
        }
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

/// Logs go to stderr at the job's level; `RUST_LOG` refines per module.
pub fn init_tracing(level: LogLevel, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn validate(job: &JobConfig, json: bool) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(job)?
    } else {
        toml::to_string(job)?
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", text.trim_end())?;
    tracing::info!(job = job.job, "configuration is valid");
    Ok(())
}
