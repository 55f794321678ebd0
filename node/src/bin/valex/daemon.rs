//! `valex run`: the node daemon — the node on its RocksDB store, the control API, until Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use valex_node::control::{self, parse_peer};
use valex_node::exchange::{ArbiterPolicy, StaticPolicy, Timing};
use valex_node::runtime::{self, NodeConfig};
use valex_node::store::RocksStore;
use valex_proto::PeerId;
use valex_proto::value::IssuerPolicy;

use crate::args::RunArgs;
use crate::identity;

/// The control address when `--control` is not given: loopback, a free port.
const DEFAULT_CONTROL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Runs the daemon until a stop signal.
pub async fn run(data_dir: &Path, control_addr: Option<SocketAddr>, args: RunArgs) -> Result<()> {
    let keypair = identity::load(data_dir)?;
    let control_addr = control_addr.unwrap_or(DEFAULT_CONTROL);
    if !control_addr.ip().is_loopback() {
        bail!("--control {control_addr}: the control API is served on loopback only (use 127.0.0.1:PORT)");
    }
    refuse_second_daemon(data_dir).await?;
    let config = node_config(keypair, args)?;

    let db = data_dir.join("db");
    let store = RocksStore::open(&db).with_context(|| format!("cannot open the store at {}", db.display()))?;
    let (node, event_loop) = runtime::start(config, store).await.context("cannot start the node")?;
    let control = match control::serve(node.clone(), control_addr).await {
        Ok(control) => control,
        Err(error) => {
            let _ = node.shutdown().await;
            event_loop.join().await;
            return Err(error.into());
        }
    };
    if let Err(error) = identity::write_control_addr(data_dir, control.local_addr()) {
        control.shutdown().await;
        let _ = node.shutdown().await;
        event_loop.join().await;
        return Err(error);
    }
    let listen = node.listen_addrs().await.unwrap_or_default();
    tracing::info!(peer = %node.peer_id(), ?listen, control = %control.local_addr(), data_dir = %data_dir.display(), "valex node running");

    let join = event_loop.join();
    tokio::pin!(join);
    let loop_ended = tokio::select! {
        signal = stop_signal() => {
            tracing::info!(signal, "stopping");
            false
        }
        () = &mut join => true,
    };
    identity::remove_control_addr(data_dir);
    control.shutdown().await;
    if loop_ended {
        bail!("the node's event loop ended unexpectedly (see the log above)");
    }
    if let Err(error) = node.shutdown().await {
        tracing::warn!(%error, "node shutdown");
    }
    join.await;
    tracing::info!("stopped");
    Ok(())
}

/// The node's settings from the command line.
fn node_config(keypair: valex_proto::crypto::Keypair, args: RunArgs) -> Result<NodeConfig> {
    let arbiters = peers("--accept-arbiter", &args.accept_arbiter)?;
    let issuers = peers("--accept-issuer", &args.accept_issuer)?;
    let policy = StaticPolicy {
        arbiters: if arbiters.is_empty() { ArbiterPolicy::Any } else { ArbiterPolicy::only(arbiters) },
        issuers: if issuers.is_empty() { IssuerPolicy::Any } else { IssuerPolicy::only(issuers) },
        ..StaticPolicy::default()
    };
    if args.ttl_ms < policy.min_ttl_ms || args.ttl_ms > policy.max_ttl_ms {
        bail!("--ttl-ms {} is outside the accepted range {}..={} ms", args.ttl_ms, policy.min_ttl_ms, policy.max_ttl_ms);
    }
    let mut config = NodeConfig::new(keypair);
    config.listen = args.listen;
    config.bootstrap = args.bootstrap;
    config.policy = Arc::new(policy);
    config.default_ttl_ms = args.ttl_ms;
    if args.retry_ms == 0 {
        bail!("--retry-ms must be at least 1");
    }
    config.timing =
        Timing { grace_ms: args.grace_ms, retry_ms: args.retry_ms, arbiter_retry_max_ms: args.arbiter_retry_max_ms.max(args.retry_ms) };
    Ok(config)
}

fn peers(flag: &'static str, texts: &[String]) -> Result<Vec<PeerId>> {
    texts.iter().map(|text| parse_peer("peer id", text).with_context(|| format!("bad {flag}"))).collect()
}

/// Refuses to start when a daemon already answers at this data directory's control address.
async fn refuse_second_daemon(data_dir: &Path) -> Result<()> {
    if let Some(addr) = identity::read_control_addr(data_dir).unwrap_or(None) {
        let probe = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
        if matches!(probe, Ok(Ok(_))) {
            bail!("a daemon is already running for {} (control API at {addr})", data_dir.display());
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, with the signal's name.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
