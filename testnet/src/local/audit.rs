//! The audit after a run: every node's and every arbiter's durable state, read back from their
//! databases once the processes have stopped, checked against protocol.md §6 — each issued value
//! spendable in exactly one vault and nothing else in any, every session ended on both sides
//! alike with the vault contents its outcome says, every received value backed by a receipt, no
//! outcome contradicting an arbiter's decision and no two arbiters deciding one session
//! differently, no value escrowed twice. A violation comes with the offending session's records
//! from both parties and the arbiter, and its log lines.
//!
//! The run itself must also show something: every issued id readable, at least one exchange
//! completed, and (with chaos) at least one kill inside an exchange — otherwise it fails too
//! ([`Audit::shortfalls`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use valex_arbiter::DecisionRecord;
use valex_arbiter::store::DecisionStore;
use valex_node::exchange::{NodeState, Session, SessionOutcome};
use valex_node::store::{RocksStore, Store};
use valex_proto::value::ValueId;
use valex_proto::{Digest, PeerId};

use super::chaos::ChaosEvent;
use crate::invariants::{Invariant, NamedState, Violation, all_terminal, check_always, check_at_rest, session_s2};

/// What the audit read and found.
#[derive(Debug, Default)]
pub struct Audit {
    /// Each node's name and state.
    pub nodes: Vec<(String, NodeState)>,
    /// Every arbiter's decisions, merged by s2, with the arbiter's name (the first arbiter read,
    /// where several recorded one s2: see `conflicts`).
    pub decisions: BTreeMap<Digest, (String, DecisionRecord)>,
    /// Decisions for an s2 that another arbiter had already decided otherwise: the arbiter's name
    /// and its record (there should be none).
    pub conflicts: Vec<(String, DecisionRecord)>,
    /// Records set aside as corrupt while loading (there should be none).
    pub set_aside: Vec<String>,
    /// The first violation, with its session's history.
    pub violation: Option<(Violation, String)>,
    /// Why the run proves too little to pass, though no invariant broke: an issued id that does
    /// not parse, no exchange completed, no kill inside an exchange.
    pub shortfalls: Vec<String>,
}

/// Session counts by the initiator's outcome, and how many an arbiter settled.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcomes {
    /// Sessions started (initiator records).
    pub sessions: usize,
    /// Swapped.
    pub completed: usize,
    /// Cancelled by an arbiter.
    pub cancelled: usize,
    /// Aborted before A committed.
    pub aborted: usize,
    /// Still open (a failed run).
    pub open: usize,
    /// Decisions the arbiters made.
    pub settled_by_arbiter: usize,
}

impl Audit {
    /// Reads every store. `nodes` and `arbiters` are (name, data dir[, peer id]).
    pub fn read(nodes: &[(String, PathBuf)], arbiters: &[(String, PathBuf, PeerId)]) -> Result<Self> {
        let mut audit = Self::default();
        for (name, dir) in nodes {
            let mut store = RocksStore::open(dir.join("db")).with_context(|| format!("opening {name}'s store"))?;
            let loaded = store.load().with_context(|| format!("loading {name}'s store"))?;
            audit.set_aside.extend(loaded.set_aside.iter().map(|s| format!("{name}: {}/{}: {}", s.column, s.key_hex, s.reason)));
            audit.nodes.push((name.clone(), loaded.state));
        }
        for (name, dir, peer) in arbiters {
            let mut store = DecisionStore::open(dir.join("decisions"), *peer).with_context(|| format!("opening {name}'s decisions"))?;
            let loaded = store.load().with_context(|| format!("loading {name}'s decisions"))?;
            audit.set_aside.extend(loaded.set_aside.iter().map(|s| format!("{name}: {}/{}: {}", s.column, s.key_hex, s.reason)));
            audit.merge_decisions(name, loaded.decisions);
        }
        Ok(audit)
    }

    /// Adds one arbiter's decisions. A decision for an s2 already decided by another arbiter is
    /// kept aside as a conflict unless it is the same record.
    pub fn merge_decisions(&mut self, arbiter: &str, decisions: BTreeMap<Digest, DecisionRecord>) {
        for (s2, record) in decisions {
            match self.decisions.get(&s2) {
                None => {
                    self.decisions.insert(s2, (arbiter.to_string(), record));
                }
                Some((_, first)) if *first == record => {}
                Some(_) => self.conflicts.push((arbiter.to_string(), record)),
            }
        }
    }

    /// Checks §6 over everything read; `issued` are the ids (hex) of every value issued in the
    /// run, each of which must parse.
    pub fn check(&mut self, issued: &[String], logs: &Path) {
        let mut ids: Vec<ValueId> = Vec::with_capacity(issued.len());
        for id in issued {
            match Digest::from_hex(id) {
                Some(parsed) => ids.push(parsed),
                None => self.shortfalls.push(format!("issued value id {id:?} is not a 64-digit hex id: that value cannot be audited")),
            }
        }
        let named: Vec<NamedState<'_>> = self.nodes.iter().map(|(name, state)| NamedState { name, state }).collect();
        let decisions: BTreeMap<Digest, DecisionRecord> = self.decisions.iter().map(|(s2, (_, r))| (*s2, r.clone())).collect();
        let mut result = self.arbiters_agree().and_then(|()| check_always(&named, &decisions, &ids));
        if result.is_ok() && !all_terminal(&named) {
            let open: Vec<String> = named
                .iter()
                .flat_map(|n| n.state.open_sessions().map(move |s| format!("{} {} {}", n.name, s.id().short(), s.phase_name())))
                .collect();
            result = Err(Violation { invariant: Invariant::Termination, detail: format!("sessions still open: {open:?}") });
        }
        let result = result.and_then(|()| check_at_rest(&named, &ids));
        if let Err(violation) = result {
            let history = self.history_for(&violation.detail, logs);
            self.violation = Some((violation, history));
        }
    }

    /// §6.3 across arbiters: no s2 decided by two arbiters in different ways.
    fn arbiters_agree(&self) -> Result<(), Violation> {
        let Some((second, other)) = self.conflicts.first() else { return Ok(()) };
        let s2 = other.decision.s2;
        let (first, record) = self.decisions.get(&s2).map_or(("?", None), |(name, r)| (name.as_str(), Some(r)));
        let describe =
            |r: &DecisionRecord| format!("{} on h {} (session {})", r.decision.outcome.name(), r.decision.h.short(), r.terms.s1.short());
        Err(Violation {
            invariant: Invariant::Agreement,
            detail: format!(
                "{first} and {second} both decided s2 {}: {first} {}, {second} {}",
                s2.short(),
                record.map_or("-".to_string(), describe),
                describe(other)
            ),
        })
    }

    /// Checks that the run exercised what it claims to: `planned` exchanges were planned, so at
    /// least one must have completed (per the initiators' databases); with chaos (`kills`), at
    /// least one kill must have landed inside an exchange (its victim's store held an open
    /// session when it died).
    pub fn check_coverage(&mut self, planned: usize, kills: Option<&[ChaosEvent]>) {
        if planned > 0 && self.outcomes().completed == 0 {
            self.shortfalls.push(format!("none of the {planned} planned exchanges completed: the run never exercised a swap"));
        }
        if let Some(kills) = kills
            && !kills.iter().any(ChaosEvent::inside_exchange)
        {
            self.shortfalls.push(format!(
                "none of the {} kills landed inside an exchange (no victim's store held an open session when it died)",
                kills.len()
            ));
        }
    }

    /// Whether the audit passed: no violation, nothing set aside, no shortfall.
    pub fn passed(&self) -> bool {
        self.violation.is_none() && self.set_aside.is_empty() && self.shortfalls.is_empty()
    }

    /// Counts by the initiators' outcomes.
    pub fn outcomes(&self) -> Outcomes {
        let mut outcomes = Outcomes { settled_by_arbiter: self.decisions.len(), ..Outcomes::default() };
        for (_, state) in &self.nodes {
            for session in state.sessions.values().filter(|s| matches!(s, Session::Initiator(_))) {
                outcomes.sessions += 1;
                match session.outcome() {
                    SessionOutcome::Done => outcomes.completed += 1,
                    SessionOutcome::Cancelled => outcomes.cancelled += 1,
                    SessionOutcome::Aborted => outcomes.aborted += 1,
                    SessionOutcome::Open => outcomes.open += 1,
                }
            }
        }
        outcomes
    }

    /// Every record and log line of the sessions a violation's text names (by short id).
    fn history_for(&self, detail: &str, logs: &Path) -> String {
        let mut out = String::new();
        for (name, state) in &self.nodes {
            for session in state.sessions.values() {
                let short = session.id().short();
                if !detail.contains(&short) && !session.escrowed().iter().any(|v| detail.contains(&v.short())) {
                    continue;
                }
                let _ = writeln!(out, "== {name}: session {short} ({}) ==\n{session:#?}", session.phase_name());
                if let Some((arbiter, record)) = session_s2(session).and_then(|s2| self.decisions.get(&s2)) {
                    let _ = writeln!(out, "== {arbiter}: decision for s2 {} ==\n{record:#?}", record.decision.s2.short());
                }
                let _ = writeln!(out, "== log lines mentioning {short} ==");
                if let Ok(entries) = std::fs::read_dir(logs) {
                    for entry in entries.flatten() {
                        if let Ok(text) = std::fs::read_to_string(entry.path()) {
                            for line in text.lines().filter(|l| l.contains(&short)) {
                                let _ = writeln!(out, "{}: {line}", entry.file_name().to_string_lossy());
                            }
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            out = format!("(no session record matched; full states follow)\n{:#?}", self.nodes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use valex_node::exchange::WriteBatch;
    use valex_proto::canonical;
    use valex_proto::crypto::Keypair;
    use valex_proto::message::{Decision, Outcome, Terms};

    use super::*;
    use crate::sim::{Action, World, WorldConfig};

    /// A decision by `arbiter` on terms naming it, for the session with this s1 and s2.
    fn decision(arbiter: &Keypair, s1: Digest, s2: Digest, outcome: Outcome) -> DecisionRecord {
        let (a, b) = (Keypair::from_seed([0xA1; 32]), Keypair::from_seed([0xB2; 32]));
        let terms = Terms {
            s1,
            initiator: a.peer_id(),
            responder: b.peer_id(),
            arbiter: arbiter.peer_id(),
            v1_id: Digest::of(b"v1"),
            v2_id: Digest::of(b"v2"),
            expires_at_ms: 10_000,
        };
        let h = terms.h();
        let sig = arbiter.sign(&canonical::decision_bytes(&h, &s2, outcome));
        DecisionRecord { decision: Decision { s2, h, outcome, decided_at_ms: 1, sig }, terms, requested_by: b.peer_id() }
    }

    /// The persisted state of a node after a simulated exchange run through `actions`.
    fn node_after(actions: &[Action], role: crate::sim::Role) -> NodeState {
        let mut world = World::new(WorldConfig::default());
        for action in actions {
            world.apply(action).unwrap();
        }
        world.party(role).persisted.clone()
    }

    fn deliver() -> Action {
        Action::Deliver { index: 0, keep: false }
    }

    #[test]
    fn two_arbiters_deciding_one_session_differently_fail_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let (t0, t1) = (Keypair::from_seed([0x70; 32]), Keypair::from_seed([0x71; 32]));
        let (s1, s2) = (Digest::of(b"s1"), Digest::of(b"s2"));
        let mut arbiters = Vec::new();
        for (i, (key, outcome)) in [(&t0, Outcome::Cancelled), (&t1, Outcome::Completed)].into_iter().enumerate() {
            let arbiter_dir = dir.path().join(format!("arbiter-{i}"));
            let mut store = DecisionStore::open(arbiter_dir.join("decisions"), key.peer_id()).unwrap();
            store.put(&decision(key, s1, s2, outcome)).unwrap();
            arbiters.push((format!("arbiter-{i}"), arbiter_dir, key.peer_id()));
        }
        let mut audit = Audit::read(&[], &arbiters).unwrap();
        assert_eq!(audit.conflicts.len(), 1, "the second arbiter's decision is kept aside, not dropped");
        audit.check(&[], dir.path());
        let (violation, _) = audit.violation.clone().expect("conflicting decisions must fail the audit");
        assert_eq!(violation.invariant, Invariant::Agreement, "{violation}");
        assert!(violation.detail.contains("arbiter-0 and arbiter-1 both decided s2"), "{violation}");
        assert!(violation.detail.contains("CANCELLED") && violation.detail.contains("COMPLETED"), "{violation}");
        assert!(!audit.passed());

        // The same record read twice (one arbiter listed twice) is no conflict.
        let mut same = Audit::default();
        let record = decision(&t0, s1, s2, Outcome::Cancelled);
        same.merge_decisions("arbiter-0", BTreeMap::from([(s2, record.clone())]));
        same.merge_decisions("arbiter-0", BTreeMap::from([(s2, record)]));
        same.check(&[], dir.path());
        assert!(same.passed(), "{:?}", same.violation);
    }

    #[test]
    fn an_unparsable_issued_id_fails_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let mut audit = Audit::default();
        audit.check(&["not-a-value-id".to_string()], dir.path());
        assert!(audit.violation.is_none());
        assert_eq!(audit.shortfalls.len(), 1, "{:?}", audit.shortfalls);
        assert!(audit.shortfalls[0].contains("\"not-a-value-id\" is not a 64-digit hex id"), "{:?}", audit.shortfalls);
        assert!(!audit.passed());

        // A well-formed id is audited: held by nobody, it is a violation.
        let mut audit = Audit::default();
        audit.check(&[Digest::of(b"a value nobody holds").to_hex()], dir.path());
        let (violation, _) = audit.violation.expect("an issued value held by nobody");
        assert_eq!(violation.invariant, Invariant::Conservation, "{violation}");
    }

    #[test]
    fn a_run_where_no_exchange_completed_fails_the_audit() {
        let world = World::new(WorldConfig::default());
        let issued: Vec<String> = [world.cast().v1.id(), world.cast().v2.id()].iter().map(Digest::to_hex).collect();
        let dir = tempfile::tempdir().unwrap();
        // A aborted (M1 lost, its deadline fired); B never heard of it.
        let fire = |w: &World| {
            let (session, kind) = *w.a.timers.keys().find(|(_, k)| *k == valex_node::exchange::TimerKind::Deadline).unwrap();
            Action::Fire { role: crate::sim::Role::A, session, kind }
        };
        let mut aborted = world.clone();
        aborted.apply(&Action::Start { exchange: 0 }).unwrap();
        aborted.apply(&Action::Drop { index: 0 }).unwrap();
        let action = fire(&aborted);
        aborted.apply(&action).unwrap();
        let mut audit =
            Audit { nodes: vec![("A".into(), aborted.a.persisted.clone()), ("B".into(), aborted.b.persisted.clone())], ..Audit::default() };
        audit.check(&issued, dir.path());
        assert!(audit.violation.is_none(), "{:?}", audit.violation);
        audit.check_coverage(1, None);
        assert_eq!(audit.shortfalls.len(), 1, "{:?}", audit.shortfalls);
        assert!(audit.shortfalls[0].contains("none of the 1 planned exchanges completed"), "{:?}", audit.shortfalls);
        assert!(!audit.passed());

        // The same with the exchange done passes.
        let done = [Action::Start { exchange: 0 }, deliver(), deliver(), deliver(), deliver()];
        let nodes = vec![("A".into(), node_after(&done, crate::sim::Role::A)), ("B".into(), node_after(&done, crate::sim::Role::B))];
        let mut audit = Audit { nodes, ..Audit::default() };
        audit.check(&issued, dir.path());
        audit.check_coverage(1, None);
        assert!(audit.passed(), "{:?} {:?}", audit.violation, audit.shortfalls);
    }

    #[test]
    fn a_chaos_run_with_no_kill_inside_an_exchange_fails_the_audit() {
        let done = [Action::Start { exchange: 0 }, deliver(), deliver(), deliver(), deliver()];
        let nodes = vec![("A".into(), node_after(&done, crate::sim::Role::A)), ("B".into(), node_after(&done, crate::sim::Role::B))];
        let kill = |victim: &str, open: Option<Vec<String>>| ChaosEvent {
            at_ms: 5,
            victim: victim.into(),
            down_ms: 300,
            restarted: true,
            open_sessions: open,
        };
        let outside = [kill("node-0", Some(Vec::new())), kill("arbiter-0", None), kill("node-1", None)];
        let mut audit = Audit { nodes: nodes.clone(), ..Audit::default() };
        audit.check_coverage(1, Some(&outside));
        assert_eq!(audit.shortfalls.len(), 1, "{:?}", audit.shortfalls);
        assert!(audit.shortfalls[0].contains("none of the 3 kills landed inside an exchange"), "{:?}", audit.shortfalls);

        let mut inside = outside.to_vec();
        inside.push(kill("node-1", Some(vec!["0a1b2c3d".into()])));
        let mut audit = Audit { nodes, ..Audit::default() };
        audit.check_coverage(1, Some(&inside));
        assert!(audit.shortfalls.is_empty(), "{:?}", audit.shortfalls);
    }

    #[test]
    fn the_audit_reads_sessions_and_values_from_the_stores() {
        // The state a node commits reaches the audit through RocksDB, and a store with a session
        // left open fails it (§6.4).
        let dir = tempfile::tempdir().unwrap();
        let started = node_after(&[Action::Start { exchange: 0 }], crate::sim::Role::A);
        let node_dir = dir.path().join("node-0");
        let mut store = RocksStore::open(node_dir.join("db")).unwrap();
        let ops = started
            .vault
            .values()
            .cloned()
            .map(valex_node::exchange::WriteOp::PutValue)
            .chain(started.locks.iter().map(|(v, s)| valex_node::exchange::WriteOp::Lock { value: *v, session: *s }));
        let ops = ops.chain(started.sessions.values().map(|s| valex_node::exchange::WriteOp::PutSession(Box::new(s.clone()))));
        store.commit(&WriteBatch::new(ops.collect())).unwrap();
        drop(store);
        let mut audit = Audit::read(&[("node-0".into(), node_dir)], &[]).unwrap();
        assert_eq!(audit.nodes[0].1, started);
        audit.check(&started.vault.keys().map(Digest::to_hex).collect::<Vec<_>>(), dir.path());
        let (violation, _) = audit.violation.expect("an open session at the end fails");
        assert_eq!(violation.invariant, Invariant::Termination, "{violation}");
    }
}
