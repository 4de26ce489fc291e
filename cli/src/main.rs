//! The `influx2td` binary: parses arguments and hands over to the library.

use std::io::Write;
use std::os::unix::process::CommandExt;

use clap::Parser;

/// The argument that makes the binary exit at once with the code after it (see below).
const EXIT_WITH: &str = "--influx2td-exit-with";

fn main() {
    let mut arguments = std::env::args();
    if arguments.nth(1).as_deref() == Some(EXIT_WITH) {
        std::process::exit(
            arguments
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(1),
        );
    }
    let cli = influx2td::Cli::parse();
    let code = influx2td::main_with(cli, std::env::vars());
    if influx2td_writer::tdengine::native_client_used() {
        // Everything is done and durable by now (rows acknowledged by TDengine, checkpoints and
        // files synced, traces sent). TDengine's native client joins, at exit, a heartbeat
        // thread that sleeps 1.5 s between beats: every command would end up to 1.5 s late.
        // Replacing this process by the binary itself, exiting at once with the same code,
        // leaves without running that exit handler. Should the exec fail, exit normally.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("/proc/self/exe")
            .arg(EXIT_WITH)
            .arg(code.to_string())
            .exec();
    }
    std::process::exit(i32::from(code))
}
