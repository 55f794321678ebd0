//! Chaos: SIGKILL a node or arbiter, restart it after a random delay (sometimes longer than an
//! exchange's expiry, so arbiters get work), repeat until told to stop. One victim at a time, so
//! every crash is followed by a restart. Most kills hit a party of an exchange that has just
//! started, a random few milliseconds in, so crashes land in every protocol step. Deterministic
//! given the seed (which victims, which delays); where in the protocol each kill lands depends on
//! timing, so each kill of a node records the sessions its store held open when it died (read
//! while it is down: nothing writes the store then), and the audit fails a run where none did.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;

use valex_node::store::{RocksStore, Store};

use super::cluster::{Cluster, Kind};

/// Timing of the chaos.
#[derive(Debug, Clone, Copy)]
pub struct ChaosConfig {
    /// Time between a restart and the next kill, ms (uniform in this range).
    pub interval_ms: (u64, u64),
    /// Time a victim stays down, ms (uniform in this range) …
    pub down_ms: (u64, u64),
    /// … except for this share of kills (percent), which stay down this long: past an exchange's
    /// expiry, so the other party gives up waiting and an arbiter settles.
    pub long_down: (u32, (u64, u64)),
    /// How far into an exchange a targeted kill lands, ms (uniform up to this).
    pub into_exchange_ms: u64,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self { interval_ms: (100, 800), down_ms: (200, 1_500), long_down: (30, (4_500, 8_000)), into_exchange_ms: 6 }
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
    /// The sessions (short ids) the victim's store held open when it was killed — the exchanges
    /// the kill landed inside; `None` for an arbiter, or a store that could not be read.
    pub open_sessions: Option<Vec<String>>,
}

impl ChaosEvent {
    /// Whether the kill landed inside an exchange: its victim had an open session.
    pub fn inside_exchange(&self) -> bool {
        self.open_sessions.as_ref().is_some_and(|open| !open.is_empty())
    }
}

/// The open sessions in the store of a node that is down (short ids), or `None` if it cannot be
/// read. Opening the store is what the node itself does first on restart.
fn open_sessions_at(db: std::path::PathBuf) -> Option<Vec<String>> {
    let mut store =
        RocksStore::open(&db).map_err(|e| tracing::warn!(db = %db.display(), error = %e, "chaos: reading the victim's store")).ok()?;
    let loaded = store.load().map_err(|e| tracing::warn!(db = %db.display(), error = %e, "chaos: loading the victim's store")).ok()?;
    Some(loaded.state.open_sessions().map(|s| s.id().short()).collect())
}

/// Runs until `stop` turns true; returns what it did. `starts` announces each exchange's
/// (initiator, responder) node indexes as it begins: most kills take one of the two a few
/// milliseconds later, so crashes land inside exchanges, in every protocol step; the rest take a
/// random process, arbiters included.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    seed: u64,
    config: ChaosConfig,
    mut stop: watch::Receiver<bool>,
    mut starts: tokio::sync::broadcast::Receiver<(usize, usize)>,
) -> Vec<ChaosEvent> {
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
        let roll = rng.gen_range(0..100u32);
        let victim = if roll < 80 {
            // The next exchange to start: kill its initiator or responder a few ms into it.
            starts = starts.resubscribe();
            match tokio::time::timeout(Duration::from_secs(2), starts.recv()).await {
                Ok(Ok((initiator, responder))) => {
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=config.into_exchange_ms))).await;
                    if roll < 40 { initiator } else { responder }
                }
                _ => rng.gen_range(0..members),
            }
        } else {
            rng.gen_range(0..members)
        };
        let (long_share, long_range) = config.long_down;
        let range = if rng.gen_range(0..100) < long_share { long_range } else { config.down_ms };
        let down_ms = rng.gen_range(range.0..=range.1);
        let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (name, db) = match cluster.lock() {
            Ok(mut c) => {
                let member = &mut c.members[victim];
                member.kill();
                (member.name.clone(), (member.kind == Kind::Node).then(|| member.data_dir.join("db")))
            }
            Err(_) => return events,
        };
        tracing::info!(victim = %name, down_ms, "chaos: SIGKILL");
        let down_until = tokio::time::Instant::now() + Duration::from_millis(down_ms);
        let open_sessions = match db {
            Some(db) => tokio::task::spawn_blocking(move || open_sessions_at(db)).await.ok().flatten(),
            None => None,
        };
        // Stay down for the whole delay even if told to stop: the restart always happens.
        tokio::time::sleep_until(down_until).await;
        let restarted = cluster.lock().map(|mut c| c.start(victim).is_ok()).unwrap_or(false);
        events.push(ChaosEvent { at_ms, victim: name, down_ms, restarted, open_sessions });
    }
}

#[cfg(test)]
mod tests {
    use valex_node::exchange::{WriteBatch, WriteOp};

    use super::*;
    use crate::sim::{Action, Role, World, WorldConfig};

    #[test]
    fn a_kill_reads_the_sessions_its_victim_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let mut world = World::new(WorldConfig::default());
        world.apply(&Action::Start { exchange: 0 }).unwrap();
        let session = world.party(Role::A).persisted.sessions.values().next().cloned().unwrap();
        let mut store = RocksStore::open(&db).unwrap();
        store.commit(&WriteBatch::new(vec![WriteOp::PutSession(Box::new(session.clone()))])).unwrap();
        drop(store);
        let open = open_sessions_at(db.clone());
        assert_eq!(open, Some(vec![session.id().short()]));
        let event = ChaosEvent { at_ms: 0, victim: "node-0".into(), down_ms: 1, restarted: true, open_sessions: open };
        assert!(event.inside_exchange());
        // An ended session is not an exchange the kill landed inside.
        world.apply(&Action::Drop { index: 0 }).unwrap();
        let (id, kind) = *world.a.timers.keys().find(|(_, k)| *k == valex_node::exchange::TimerKind::Deadline).unwrap();
        world.apply(&Action::Fire { role: Role::A, session: id, kind }).unwrap();
        let ended = world.party(Role::A).persisted.sessions.values().next().cloned().unwrap();
        let mut store = RocksStore::open(&db).unwrap();
        store.commit(&WriteBatch::new(vec![WriteOp::PutSession(Box::new(ended))])).unwrap();
        drop(store);
        assert_eq!(open_sessions_at(db), Some(Vec::new()));
    }
}
