//! `valex-testnet`: model-check the exchange protocol (and, later, run local networks).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use valex_testnet::model::{ModelConfig, explore};

#[derive(Parser)]
#[command(name = "valex-testnet", version, about = "valex testnet: model checking and local networks of valex nodes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explore every reachable state of one exchange among A, B and T under message loss,
    /// duplication, reordering and crash-restarts, checking protocol.md §6 in each.
    ModelCheck {
        /// Crash-restarts allowed on any path.
        #[arg(long, default_value_t = 2)]
        max_crashes: u8,
        /// Stop after this many states.
        #[arg(long, default_value_t = 20_000_000)]
        max_states: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ModelCheck { max_crashes, max_states } => {
            let config = ModelConfig { max_crashes, max_states, ..ModelConfig::default() };
            let report = explore(&config);
            println!("{report}");
            if report.violation.is_some() || !report.complete { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
    }
}
