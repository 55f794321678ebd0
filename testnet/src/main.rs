//! `valex-testnet`: run a local network of valex nodes and arbiters doing real exchanges under
//! chaos and audit every value (`run`), or model-check the exchange protocol (`model-check`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use valex_testnet::local::{RunConfig, run};
use valex_testnet::model::{ModelConfig, explore};
use valex_testnet::sim::PlantedBug;

#[derive(Parser)]
#[command(name = "valex-testnet", version, about = "valex testnet: local networks of valex nodes, and model checking")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start nodes and arbiters on 127.0.0.1, run exchanges between random pairs (optionally
    /// killing and restarting processes), then audit every vault and arbiter decision.
    Run {
        /// Node processes.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Arbiter processes.
        #[arg(long, default_value_t = 2)]
        arbiters: usize,
        /// Exchanges to run.
        #[arg(long, default_value_t = 200)]
        exchanges: usize,
        /// Exchanges in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Exchanges started per second (0: as fast as they finish). The default spreads the
        /// default run over about a minute, so chaos lands in every protocol step.
        #[arg(long, default_value_t = 4.0)]
        rate: f64,
        /// Values issued to each node first.
        #[arg(long, default_value_t = 20)]
        values_per_node: usize,
        /// SIGKILL random nodes and arbiters during the run and restart them.
        #[arg(long)]
        chaos: bool,
        /// Seed for pairs, values, identities and faults.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Exchange expiry, ms.
        #[arg(long, default_value_t = 4_000)]
        ttl_ms: u64,
        /// Data directories and logs (emptied first).
        #[arg(long, default_value = "testnet-data")]
        dir: PathBuf,
        /// The JSON report.
        #[arg(long, default_value = "testnet-data/report.json")]
        report: PathBuf,
        /// Give up on the exchanges after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Explore every reachable state of one exchange among A, B and T (and of two exchanges
    /// sharing the nodes) under message loss, duplication, reordering, clocks moving and
    /// crash-restarts, checking protocol.md §6 in each and termination under every fair schedule.
    ModelCheck {
        /// Run only this configuration (one-exchange, shared-v2, reoffered-v1, per-peer-cap);
        /// by default all of them, each with its own crash budget.
        #[arg(long)]
        config: Option<String>,
        /// Crash-restarts allowed on any path (default: the configuration's budget).
        #[arg(long)]
        max_crashes: Option<u8>,
        /// Stop after this many states.
        #[arg(long, default_value_t = 20_000_000)]
        max_states: usize,
        /// Plant a known protocol bug in the simulated nodes, to watch the checker catch it
        /// (responder-accepts-confirm-while-pending, responder-splits-done-write,
        /// initiator-restores-v1-without-decision, responder-ignores-decision,
        /// responder-keeps-refused-offer).
        #[arg(long)]
        plant: Option<PlantedBug>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run {
            nodes,
            arbiters,
            exchanges,
            concurrency,
            rate,
            values_per_node,
            chaos,
            seed,
            ttl_ms,
            dir,
            report,
            timeout_secs,
            quiet,
        } => {
            if nodes < 2 || arbiters < 1 {
                eprintln!("error: a testnet needs at least 2 nodes and 1 arbiter");
                return ExitCode::FAILURE;
            }
            let config = RunConfig {
                nodes,
                arbiters,
                exchanges,
                concurrency,
                rate,
                values_per_node,
                chaos,
                seed,
                dir,
                report: report.clone(),
                ttl_ms,
                progress: !quiet,
                timeout: Duration::from_secs(timeout_secs),
            };
            match run(&config).await {
                Ok(result) => {
                    println!("{result}");
                    println!("report: {}", report.display());
                    if result.audit.passed && result.outcomes.open == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::ModelCheck { config, max_crashes, max_states, plant } => {
            let mut configs = ModelConfig::named();
            if let Some(name) = &config {
                configs.retain(|(named, _)| named == name);
                if configs.is_empty() {
                    let names: Vec<_> = ModelConfig::named().into_iter().map(|(name, _)| name).collect();
                    eprintln!("error: unknown configuration {name:?}; one of: {}", names.join(", "));
                    return ExitCode::FAILURE;
                }
            }
            let mut passed = true;
            for (name, mut config) in configs {
                config.world.planted_bug = plant;
                config.max_crashes = max_crashes.unwrap_or(config.max_crashes);
                config.max_states = max_states;
                let lossy = if config.lossy_network { "lossy" } else { "lossless" };
                println!("== {name} ({} crash-restarts, {lossy} network)", config.max_crashes);
                let report = explore(&config);
                println!("{report}");
                passed &= report.passed();
            }
            if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}
