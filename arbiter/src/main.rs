//! `valex-arbiter`: runs an arbiter server.
//!
//! ```text
//! valex-arbiter --data-dir D [--listen MA]... [--bootstrap MA]... [--name N]
//! ```
//! The key lives in `D/arbiter.key` (32-byte ed25519 seed, hex; created with mode 0600 when
//! missing), the decisions in the RocksDB database `D/decisions`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use libp2p::Multiaddr;
use valex_arbiter::server::{ArbiterConfig, start};
use valex_arbiter::store::DecisionStore;
use valex_proto::crypto::Keypair;

/// Runs a valex arbiter: decides CANCELLED or COMPLETED for exchanges that went wrong.
#[derive(Debug, Parser)]
#[command(name = "valex-arbiter", version)]
struct Args {
    /// Directory for the key file and the decision database.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on (repeatable).
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4100")]
    listen: Vec<Multiaddr>,
    /// Peer to connect to at start, with /p2p/<peer id> (repeatable).
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
    /// Name to announce.
    #[arg(long, default_value = "valex-arbiter")]
    name: String,
    /// Seconds between gossipsub announcements.
    #[arg(long, default_value_t = 30)]
    announce_secs: u64,
}

fn load_or_create_key(path: &Path) -> anyhow::Result<Keypair> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
            let Ok(seed) = <[u8; 32]>::try_from(bytes.as_slice()) else { bail!("{} must hold a 32-byte seed", path.display()) };
            Ok(Keypair::from_seed(seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate();
            write_private(path, &hex::encode(key.seed()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let key = load_or_create_key(&args.data_dir.join("arbiter.key"))?;
    let store = DecisionStore::open(args.data_dir.join("decisions"), key.peer_id()).context("opening the decision store")?;
    let mut config = ArbiterConfig::new(key, args.name);
    config.listen = args.listen;
    config.bootstrap = args.bootstrap;
    config.announce_interval = Duration::from_secs(args.announce_secs.max(1));
    let (handle, task) = start(config, store).await?;
    println!("peer id: {}", handle.peer_id());
    for addr in handle.listen_addrs().await? {
        println!("listening on {addr}/p2p/{}", handle.peer_id());
    }
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            result.context("waiting for ctrl-c")?;
            handle.shutdown().await?;
        }
        _ = task => {}
    }
    Ok(())
}
