//! The audit after a run: every node's and every arbiter's durable state, read back from their
//! databases once the processes have stopped, checked against protocol.md §6 — each issued value
//! spendable in exactly one vault, every session ended on both sides with matching outcomes, no
//! outcome contradicting an arbiter's decision, no value escrowed twice. A violation comes with
//! the offending session's records from both parties and the arbiter, and its log lines.

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

use crate::invariants::{NamedState, Violation, all_terminal, check_always, check_at_rest, session_s2};

/// What the audit read and found.
#[derive(Debug)]
pub struct Audit {
    /// Each node's name and state.
    pub nodes: Vec<(String, NodeState)>,
    /// Every arbiter's decisions, merged by s2, with the arbiter's name.
    pub decisions: BTreeMap<Digest, (String, DecisionRecord)>,
    /// Records set aside as corrupt while loading (there should be none).
    pub set_aside: Vec<String>,
    /// The first violation, with its session's history.
    pub violation: Option<(Violation, String)>,
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
        let mut audit = Self { nodes: Vec::new(), decisions: BTreeMap::new(), set_aside: Vec::new(), violation: None };
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
            for (s2, record) in loaded.decisions {
                audit.decisions.insert(s2, (name.clone(), record));
            }
        }
        Ok(audit)
    }

    /// Checks §6 over everything read; `issued` are the ids of every value issued in the run.
    pub fn check(&mut self, issued: &[ValueId], logs: &Path) {
        let named: Vec<NamedState<'_>> = self.nodes.iter().map(|(name, state)| NamedState { name, state }).collect();
        let decisions: BTreeMap<Digest, DecisionRecord> = self.decisions.iter().map(|(s2, (_, r))| (*s2, r.clone())).collect();
        let mut result = check_always(&named, &decisions).and_then(|()| check_at_rest(&named, issued));
        if result.is_ok() && !all_terminal(&named) {
            let open: Vec<String> = named
                .iter()
                .flat_map(|n| n.state.open_sessions().map(move |s| format!("{} {} {}", n.name, s.id().short(), s.phase_name())))
                .collect();
            result =
                Err(Violation { invariant: crate::invariants::Invariant::Termination, detail: format!("sessions still open: {open:?}") });
        }
        if let Err(violation) = result {
            let history = self.history_for(&violation.detail, logs);
            self.violation = Some((violation, history));
        }
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
