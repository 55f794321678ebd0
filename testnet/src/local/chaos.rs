//! Chaos: SIGKILL a random node or arbiter at a random moment, restart it after a random delay,
//! repeat until told to stop. One victim at a time, so every crash is followed by a restart and
//! crashes land in every protocol step over a long enough run. Deterministic given the seed
//! (which victims, which delays); where in the protocol each kill lands depends on timing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use super::cluster::Cluster;

/// Timing of the chaos.
#[derive(Debug, Clone, Copy)]
pub struct ChaosConfig {
    /// Time between a restart and the next kill, ms (uniform in this range).
    pub interval_ms: (u64, u64),
    /// Time a victim stays down, ms (uniform in this range).
    pub down_ms: (u64, u64),
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self { interval_ms: (300, 1_500), down_ms: (200, 1_500) }
    }
}

/// One kill and restart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChaosEvent {
    /// When the kill happened, ms since the exchanges started.
    pub at_ms: u64,
    /// Who.
    pub victim: String,
    /// How long it stayed down, ms.
    pub down_ms: u64,
    /// Whether the restart succeeded.
    pub restarted: bool,
}

/// Runs until `stop` turns true; returns what it did.
pub async fn run(cluster: Arc<Mutex<Cluster>>, seed: u64, config: ChaosConfig, mut stop: watch::Receiver<bool>) -> Vec<ChaosEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC4A0_5C4A_05C4_A05C);
    let started = Instant::now();
    let mut events = Vec::new();
    let members = cluster.lock().map(|c| c.members.len()).unwrap_or(0);
    if members == 0 {
        return events;
    }
    loop {
        let wait = Duration::from_millis(rng.gen_range(config.interval_ms.0..=config.interval_ms.1));
        if tokio::time::timeout(wait, stop.wait_for(|s| *s)).await.is_ok() {
            return events;
        }
        let victim = rng.gen_range(0..members);
        let down_ms = rng.gen_range(config.down_ms.0..=config.down_ms.1);
        let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let name = match cluster.lock() {
            Ok(mut c) => {
                c.members[victim].kill();
                c.members[victim].name.clone()
            }
            Err(_) => return events,
        };
        tracing::info!(victim = %name, down_ms, "chaos: SIGKILL");
        // Stay down for the whole delay even if told to stop: the restart always happens.
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        let restarted = cluster.lock().map(|mut c| c.start(victim).is_ok()).unwrap_or(false);
        events.push(ChaosEvent { at_ms, victim: name, down_ms, restarted });
    }
}
