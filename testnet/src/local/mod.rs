//! A local testnet: N `valex` node processes and M `valex-arbiter` processes on 127.0.0.1, real
//! exchanges between random pairs, optional chaos (SIGKILL and restart), and an audit of every
//! value at the end.
//!
//! - [`cluster`]: the processes, their data directories and ports;
//! - [`driver`]: values and exchanges through the nodes' control APIs;
//! - [`chaos`]: kills and restarts;
//! - [`audit`]: protocol.md §6 over every database after the run;
//! - [`report`]: the table and the JSON report.

pub mod audit;
pub mod chaos;
pub mod cluster;
pub mod driver;
pub mod report;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use self::audit::Audit;
use self::chaos::ChaosConfig;
use self::cluster::{Binaries, Cluster, Kind, NodeSettings};
use self::driver::Clients;
use self::report::{ProcessFigures, Report};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Node processes.
    pub nodes: usize,
    /// Arbiter processes.
    pub arbiters: usize,
    /// Exchanges to run.
    pub exchanges: usize,
    /// Exchanges in flight at once.
    pub concurrency: usize,
    /// Exchanges started per second (0: as fast as they finish).
    pub rate: f64,
    /// Values issued to each node before the exchanges.
    pub values_per_node: usize,
    /// Kill and restart processes during the run.
    pub chaos: bool,
    /// Seed for pairs, values, identities and faults.
    pub seed: u64,
    /// Where data directories and logs go (emptied first).
    pub dir: PathBuf,
    /// Where the JSON report goes.
    pub report: PathBuf,
    /// Exchange expiry, ms.
    pub ttl_ms: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// Give up on the exchanges after this long.
    pub timeout: Duration,
}

/// Runs a testnet as configured; returns the report (its `audit.passed` says whether §6 held).
pub async fn run(config: &RunConfig) -> Result<Report> {
    if config.dir.exists() {
        std::fs::remove_dir_all(&config.dir).with_context(|| format!("emptying {}", config.dir.display()))?;
    }
    std::fs::create_dir_all(&config.dir)?;
    let binaries = Binaries::beside_current_exe()?;
    let settings = NodeSettings { ttl_ms: config.ttl_ms, retry_ms: 300, grace_ms: 1_000, arbiter_retry_max_ms: 2_000 };
    let mut cluster = Cluster::prepare(&config.dir, binaries, settings, config.nodes, config.arbiters, config.seed)?;
    let status = |text: &str| {
        if config.progress {
            eprintln!("valex-testnet: {text}");
        }
    };

    status(&format!("starting {} nodes and {} arbiters in {}", config.nodes, config.arbiters, config.dir.display()));
    let boot = Instant::now();
    cluster.start(0)?;
    cluster.connect(0, Duration::from_secs(30)).await?;
    for index in 1..cluster.members.len() {
        cluster.start(index)?;
    }
    for index in 0..config.nodes {
        cluster.connect(index, Duration::from_secs(30)).await?;
    }
    let node_addrs: Vec<_> = cluster.members.iter().filter(|m| m.kind == Kind::Node).map(|m| m.control_addr()).collect();
    let peer_ids: Vec<String> = cluster.members.iter().filter(|m| m.kind == Kind::Node).map(|m| m.peer_id.clone()).collect();
    let clients = Clients::new(&node_addrs)?;
    let discovery = driver::await_discovery(&clients, config.arbiters, Duration::from_secs(60)).await?;
    status(&format!(
        "every node found {} arbiters ({:.1} s after start)",
        config.arbiters,
        discovery.as_secs_f64().max(boot.elapsed().as_secs_f64())
    ));
    let issued = driver::issue_values(&clients, config.values_per_node).await?;
    status(&format!("issued {} values", issued.len()));

    let cluster = Arc::new(Mutex::new(cluster));
    let (stop_chaos, chaos_stopped) = tokio::sync::watch::channel(false);
    let (starts, starts_seen) = tokio::sync::broadcast::channel(64);
    let chaos_task =
        config.chaos.then(|| tokio::spawn(chaos::run(cluster.clone(), config.seed, ChaosConfig::default(), chaos_stopped, starts_seen)));

    let plan = driver::plan(config.seed, config.nodes, config.exchanges);
    let bar = if config.progress { ProgressBar::new(plan.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} exchanges {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let deadline = started + config.timeout;
    let progress = bar.clone();
    let attempts =
        driver::run_exchanges(&clients, &plan, config.seed, config.concurrency, config.rate, &peer_ids, deadline, starts, move |attempt| {
            progress.set_message(format!("last: {}", attempt.outcome));
            progress.inc(1);
        })
        .await;
    let exchange_time = started.elapsed();
    bar.finish_and_clear();

    let _ = stop_chaos.send(true);
    let chaos_events = match chaos_task {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    // Everyone up again, then every session must end (expiry + arbiters) on its own.
    {
        let mut cluster = cluster.lock().map_err(|_| anyhow::anyhow!("cluster lock poisoned"))?;
        for index in 0..cluster.members.len() {
            cluster.start(index)?;
        }
    }
    status("waiting for every session to end");
    let still_open = driver::await_settled(&clients, Duration::from_secs(120)).await;
    let settle_time = started.elapsed() - exchange_time;

    let (nodes, arbiters, logs, processes) = {
        let mut cluster = cluster.lock().map_err(|_| anyhow::anyhow!("cluster lock poisoned"))?;
        cluster.stop_all();
        let processes: Vec<_> = cluster
            .members
            .iter()
            .map(|m| ProcessFigures { name: m.name.clone(), starts: m.starts, peak_rss_mib: m.peak_rss_kib as f64 / 1024.0 })
            .collect();
        let nodes: Vec<_> = cluster.members.iter().filter(|m| m.kind == Kind::Node).map(|m| (m.name.clone(), m.data_dir.clone())).collect();
        let arbiters: Vec<_> = cluster
            .members
            .iter()
            .filter(|m| m.kind == Kind::Arbiter)
            .map(|m| Ok((m.name.clone(), m.data_dir.clone(), m.peer_id.parse().context("arbiter peer id")?)))
            .collect::<Result<_>>()?;
        (nodes, arbiters, config.dir.join("logs"), processes)
    };
    status("auditing every vault and every arbiter decision");
    let mut audit = Audit::read(&nodes, &arbiters)?;
    audit.check(&issued, &logs);
    audit.check_coverage(plan.len(), config.chaos.then_some(chaos_events.as_slice()));

    let report = Report::new(config, &attempts, &audit, &chaos_events, exchange_time, settle_time, still_open, processes, issued.len());
    std::fs::write(&config.report, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", config.report.display()))?;
    Ok(report)
}
