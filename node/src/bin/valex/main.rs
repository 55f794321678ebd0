//! `valex`: the node daemon and its command line. See `valex --help`.
//!
//! ```text
//! valex --data-dir ~/.valex-a init                      # identity key (0600); prints the PeerId
//! valex --data-dir ~/.valex-a run --bootstrap /ip4/…/p2p/<arbiter>   # daemon; Ctrl-C stops it
//! valex --data-dir ~/.valex-a value issue --kind ticket --amount 1 --payload-hex 12a0
//! valex --data-dir ~/.valex-a value list
//! valex --data-dir ~/.valex-a exchange --peer <B> --give <value id> --want voucher:5
//! valex --data-dir ~/.valex-a --json sessions           # one JSON document
//! ```
//!
//! `init` and `run` work on the data directory; the other commands call the daemon's control API
//! (gRPC on 127.0.0.1, address in `<data-dir>/control.addr`, or `--control ADDR`). Errors are one
//! `error: …` line on stderr and a non-zero exit (2 for usage errors); an exchange that ends
//! without swapping prints its result, then fails.

mod args;
mod client;
mod command;
mod daemon;
mod identity;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    // The daemon logs at info; other commands only say something when it matters. RUST_LOG overrides.
    let default_level = if matches!(cli.command, Command::Run(_)) { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, colon-separated.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap renders them; a usage error becomes one `error: …` line.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        let _ = error.print();
        return if error.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
    }
    let rendered = error.render().to_string();
    let line: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    let line = line.join(" ");
    eprintln!("{}", if line.starts_with("error:") { line } else { format!("error: {line}") });
    ExitCode::from(2)
}
