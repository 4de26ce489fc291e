//! The `influx2td` binary: parses arguments and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = influx2td::Cli::parse();
    influx2td::main_with(cli, std::env::vars())
}
