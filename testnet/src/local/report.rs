//! The run's figures: a table for people, a JSON document for scripts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::RunConfig;
use super::audit::{Audit, Outcomes};
use super::chaos::ChaosEvent;
use super::driver::Attempt;

/// One process's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessFigures {
    /// "node-3".
    pub name: String,
    /// How many times it was started (1 + restarts).
    pub starts: u32,
    /// Highest peak resident memory of its incarnations, MiB.
    pub peak_rss_mib: f64,
}

/// The audit's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditFigures {
    /// Whether protocol.md §6 held over every database.
    pub passed: bool,
    /// The violation, if any.
    pub violation: Option<String>,
    /// The offending session's history, if any.
    pub history: Option<String>,
    /// Records set aside as corrupt while loading.
    pub set_aside: Vec<String>,
    /// Why the run proved too little to pass (see [`Audit::shortfalls`]).
    pub shortfalls: Vec<String>,
    /// Values audited.
    pub values: usize,
}

/// Everything a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Nodes, arbiters, exchanges, concurrency, chaos, seed.
    pub nodes: usize,
    /// Arbiter processes.
    pub arbiters: usize,
    /// Exchanges planned.
    pub exchanges_planned: usize,
    /// In flight at once.
    pub concurrency: usize,
    /// Chaos on.
    pub chaos: bool,
    /// The seed.
    pub seed: u64,
    /// Sessions by the initiators' final outcome, from their databases.
    pub outcomes: Outcomes,
    /// Planned exchanges the driver could not start (initiator down, no free value), by reason.
    pub not_started: BTreeMap<String, usize>,
    /// Driver-observed latency of exchanges that ended, ms.
    pub latency_p50_ms: f64,
    /// 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Exchanges that ended per second of the exchange phase.
    pub exchanges_per_second: f64,
    /// Length of the exchange phase, s.
    pub exchange_seconds: f64,
    /// Time from the last exchange to every session settled, s.
    pub settle_seconds: f64,
    /// Nodes that still had open sessions when the settle wait gave up.
    pub still_open: BTreeMap<usize, usize>,
    /// Kills and restarts.
    pub chaos_events: Vec<ChaosEvent>,
    /// Per process.
    pub processes: Vec<ProcessFigures>,
    /// The audit.
    pub audit: AuditFigures,
}

/// The reason with 64-hex-digit ids replaced by `<id>`, so equal reasons count together.
fn without_ids(reason: &str) -> String {
    reason
        .split(' ')
        .map(|word| if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit()) { "<id>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

impl Report {
    /// Assembles the report.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &RunConfig,
        attempts: &[Attempt],
        audit: &Audit,
        chaos_events: &[ChaosEvent],
        exchange_time: Duration,
        settle_time: Duration,
        still_open: BTreeMap<usize, usize>,
        processes: Vec<ProcessFigures>,
        values: usize,
    ) -> Self {
        let ended: Vec<&Attempt> = attempts.iter().filter(|a| matches!(a.outcome.as_str(), "done" | "cancelled" | "aborted")).collect();
        let mut latencies: Vec<Duration> = ended.iter().map(|a| a.latency).collect();
        latencies.sort();
        let mut not_started = BTreeMap::new();
        for attempt in attempts.iter().filter(|a| a.session.is_none()) {
            *not_started.entry(without_ids(&attempt.outcome)).or_insert(0) += 1;
        }
        let seconds = exchange_time.as_secs_f64();
        Self {
            nodes: config.nodes,
            arbiters: config.arbiters,
            exchanges_planned: config.exchanges,
            concurrency: config.concurrency,
            chaos: config.chaos,
            seed: config.seed,
            outcomes: audit.outcomes(),
            not_started,
            latency_p50_ms: percentile(&latencies, 50.0),
            latency_p99_ms: percentile(&latencies, 99.0),
            exchanges_per_second: if seconds > 0.0 { ended.len() as f64 / seconds } else { 0.0 },
            exchange_seconds: seconds,
            settle_seconds: settle_time.as_secs_f64(),
            still_open,
            chaos_events: chaos_events.to_vec(),
            processes,
            audit: AuditFigures {
                passed: audit.passed(),
                violation: audit.violation.as_ref().map(|(v, _)| v.to_string()),
                history: audit.violation.as_ref().map(|(_, h)| h.clone()),
                set_aside: audit.set_aside.clone(),
                shortfalls: audit.shortfalls.clone(),
                values,
            },
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.outcomes;
        writeln!(
            f,
            "valex testnet: {} nodes, {} arbiters, {} exchanges planned, {} in flight, chaos {}, seed {}",
            self.nodes,
            self.arbiters,
            self.exchanges_planned,
            self.concurrency,
            if self.chaos { "on" } else { "off" },
            self.seed
        )?;
        writeln!(f, "  sessions started        {:>8}", o.sessions)?;
        writeln!(f, "  completed               {:>8}", o.completed)?;
        writeln!(f, "  cancelled               {:>8}", o.cancelled)?;
        writeln!(f, "  aborted                 {:>8}", o.aborted)?;
        writeln!(f, "  open                    {:>8}", o.open)?;
        writeln!(f, "  settled by an arbiter   {:>8}", o.settled_by_arbiter)?;
        let not_started: usize = self.not_started.values().sum();
        writeln!(f, "  not started             {:>8}", not_started)?;
        writeln!(f, "  latency p50             {:>8.0} ms", self.latency_p50_ms)?;
        writeln!(f, "  latency p99             {:>8.0} ms", self.latency_p99_ms)?;
        writeln!(f, "  exchanges per second    {:>8.1}", self.exchanges_per_second)?;
        writeln!(f, "  exchange phase          {:>8.1} s (+{:.1} s to settle)", self.exchange_seconds, self.settle_seconds)?;
        writeln!(f, "  processes killed        {:>8}", self.chaos_events.len())?;
        writeln!(f, "  kills inside exchanges  {:>8}", self.chaos_events.iter().filter(|e| e.inside_exchange()).count())?;
        let peak = self.processes.iter().filter(|p| p.name.starts_with("node")).map(|p| p.peak_rss_mib).fold(0.0, f64::max);
        writeln!(f, "  peak memory per node    {:>8.1} MiB (max)", peak)?;
        if self.audit.passed {
            write!(
                f,
                "  audit: PASSED — {} values, each spendable in exactly one vault; every session ended alike on both sides; no outcome contradicts an arbiter",
                self.audit.values
            )
        } else {
            let why = self.audit.violation.as_deref().or(self.audit.shortfalls.first().map(String::as_str));
            writeln!(f, "  audit: FAILED — {}", why.unwrap_or("records set aside as corrupt"))?;
            for line in &self.audit.set_aside {
                writeln!(f, "    set aside: {line}")?;
            }
            for line in &self.audit.shortfalls {
                writeln!(f, "    shortfall: {line}")?;
            }
            if let Some(history) = &self.audit.history {
                write!(f, "{history}")?;
            }
            Ok(())
        }
    }
}
