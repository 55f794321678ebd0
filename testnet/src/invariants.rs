//! protocol.md §6, checked over any set of nodes and an arbiter's decisions.
//!
//! The checks take plain [`NodeState`]s and decision records, so the same code audits a
//! simulated [`World`] in every state the model checker reaches and, later,
//! the vaults of real nodes after a testnet run.
//!
//! - [`check_always`]: what must hold at every moment — no value spendable in two vaults (§6.1),
//!   no outcome contradicting a decision (§6.3), no value offered or escrowed twice (§6.5);
//! - [`check_at_rest`]: what must hold once every session has ended — every issued value spendable
//!   in exactly one vault (§6.1) and both sides of each exchange ending alike (§6.2);
//! - [`check_world`]: both, for a simulated exchange, plus the literal fairness of §6.2
//!   (A holds V2 and B holds V1, or A holds V1 and B holds V2);
//! - termination (§6.4) is [`World::heal`](crate::sim::World::heal) followed by [`check_at_rest`].
//!
//! ```
//! use valex_testnet::invariants::check_world;
//! use valex_testnet::sim::{World, WorldConfig};
//! let world = World::new(WorldConfig::default());
//! assert!(check_world(&world).is_ok());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use valex_arbiter::DecisionRecord;
use valex_node::exchange::{NodeState, Session, SessionOutcome};
use valex_proto::Digest;
use valex_proto::message::Outcome;
use valex_proto::value::ValueId;

use crate::sim::{Role, World};

/// Which invariant of protocol.md §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// §6.1: every issued value spendable in exactly one vault at rest, never in two.
    Conservation,
    /// §6.2: both parties end alike.
    Fairness,
    /// §6.3: no outcome contradicts the arbiter's decision.
    Agreement,
    /// §6.4: once faults stop, every session ends.
    Termination,
    /// §6.5: no value offered or escrowed in two sessions at once.
    SingleEscrow,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conservation => "§6.1 conservation",
            Self::Fairness => "§6.2 fairness",
            Self::Agreement => "§6.3 agreement",
            Self::Termination => "§6.4 termination",
            Self::SingleEscrow => "§6.5 single escrow",
        })
    }
}

/// A broken invariant and what broke it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{invariant} violated: {detail}")]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was found.
    pub detail: String,
}

impl Violation {
    fn new(invariant: Invariant, detail: impl Into<String>) -> Self {
        Self { invariant, detail: detail.into() }
    }
}

/// A node's state under a name, for the checks.
#[derive(Debug, Clone, Copy)]
pub struct NamedState<'a> {
    /// How reports name the node.
    pub name: &'a str,
    /// Its durable state.
    pub state: &'a NodeState,
}

/// s2 of a session, once it has one.
pub fn session_s2(session: &Session) -> Option<Digest> {
    match session {
        Session::Initiator(s) => s.agreement().map(|a| a.s2),
        Session::Responder(s) => Some(s.s2),
    }
}

/// Checks what must hold at every moment; returns the first violation.
pub fn check_always(nodes: &[NamedState<'_>], decisions: &BTreeMap<Digest, DecisionRecord>) -> Result<(), Violation> {
    // §6.1: never spendable in two vaults.
    let mut holders: BTreeMap<ValueId, &str> = BTreeMap::new();
    for node in nodes {
        for value in node.state.spendable() {
            if let Some(other) = holders.insert(value.id(), node.name) {
                return Err(Violation::new(
                    Invariant::Conservation,
                    format!("value {} ({}) is spendable in the vaults of both {other} and {}", value.id().short(), value.kind(), node.name),
                ));
            }
        }
    }
    for node in nodes {
        // §6.5: each value offered (locked) or escrowed by at most one open session of a node,
        // and an escrowed value is not also spendable there.
        let mut offered: BTreeMap<ValueId, Digest> = BTreeMap::new();
        for (value, session) in &node.state.locks {
            offered.insert(*value, *session);
        }
        for session in node.state.open_sessions() {
            for value in session.escrowed() {
                if let Some(other) = offered.insert(value, session.id())
                    && other != session.id()
                {
                    return Err(Violation::new(
                        Invariant::SingleEscrow,
                        format!(
                            "{}: value {} is held by sessions {} and {}",
                            node.name,
                            value.short(),
                            other.short(),
                            session.id().short()
                        ),
                    ));
                }
                if node.state.is_spendable(&value) {
                    return Err(Violation::new(
                        Invariant::SingleEscrow,
                        format!(
                            "{}: value {} is escrowed by session {} and spendable in the vault",
                            node.name,
                            value.short(),
                            session.id().short()
                        ),
                    ));
                }
            }
        }
        // §6.3: a terminal session agrees with the arbiter's decision for its s2.
        for session in node.state.sessions.values() {
            let Some(record) = session_s2(session).and_then(|s2| decisions.get(&s2)) else { continue };
            let outcome = session.outcome();
            let contradicts = match record.decision.outcome {
                Outcome::Completed => matches!(outcome, SessionOutcome::Cancelled | SessionOutcome::Aborted),
                Outcome::Cancelled => outcome == SessionOutcome::Done,
            };
            if contradicts {
                return Err(Violation::new(
                    Invariant::Agreement,
                    format!(
                        "{}: session {} ended {} but the arbiter decided {}",
                        node.name,
                        session.id().short(),
                        outcome.as_str(),
                        record.decision.outcome.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks what must hold once every session has ended: every value of `issued` spendable in
/// exactly one vault, and the two sides of every exchange ending alike.
pub fn check_at_rest(nodes: &[NamedState<'_>], issued: &[ValueId]) -> Result<(), Violation> {
    for id in issued {
        let holders: Vec<&str> = nodes.iter().filter(|n| n.state.is_spendable(id)).map(|n| n.name).collect();
        if holders.len() != 1 {
            return Err(Violation::new(
                Invariant::Conservation,
                format!("at rest, value {} is spendable in {} vaults {holders:?}, not exactly one", id.short(), holders.len()),
            ));
        }
    }
    // §6.2 per exchange: pair each initiator session with the responder session of the same s1.
    for a in nodes {
        for session in a.state.sessions.values().filter(|s| matches!(s, Session::Initiator(_))) {
            let counterpart = nodes.iter().find_map(|b| match b.state.sessions.get(&session.id()) {
                Some(other @ Session::Responder(_)) => Some((b.name, other.outcome())),
                _ => None,
            });
            let ours = session.outcome();
            let theirs = counterpart.map(|(_, o)| o);
            let alike = match ours {
                SessionOutcome::Done => theirs == Some(SessionOutcome::Done),
                SessionOutcome::Cancelled | SessionOutcome::Aborted => theirs != Some(SessionOutcome::Done),
                SessionOutcome::Open => true, // not at rest: nothing to compare yet
            };
            if !alike {
                return Err(Violation::new(
                    Invariant::Fairness,
                    format!(
                        "session {}: initiator {} ended {}, responder {} ended {}",
                        session.id().short(),
                        a.name,
                        ours.as_str(),
                        counterpart.map_or("-", |(n, _)| n),
                        theirs.map_or("with no session", SessionOutcome::as_str)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether every session of every node has ended.
pub fn all_terminal(nodes: &[NamedState<'_>]) -> bool {
    nodes.iter().all(|n| n.state.open_sessions().next().is_none())
}

fn world_nodes(world: &World, durable: bool) -> [NamedState<'_>; 2] {
    let pick = |role: Role| if durable { &world.party(role).persisted } else { &world.party(role).volatile };
    [NamedState { name: "A", state: pick(Role::A) }, NamedState { name: "B", state: pick(Role::B) }]
}

/// Checks §6.1, §6.3 and §6.5 in this state of a simulated world, over what the nodes hold in
/// memory and what they persisted; once every session has ended also §6.1's "exactly one" and
/// §6.2; and, per exchange that has ended on both sides, §6.2 literally (see [`check_exchanges_ended`]).
pub fn check_world(world: &World) -> Result<(), Violation> {
    let issued = world.issued();
    let ids: Vec<ValueId> = issued.iter().map(|(id, _)| *id).collect();
    for durable in [false, true] {
        let nodes = world_nodes(world, durable);
        check_always(&nodes, &world.t)?;
        if all_terminal(&nodes) {
            check_at_rest(&nodes, &ids)?;
        }
        check_exchanges_ended(&nodes, &issued)?;
    }
    Ok(())
}

/// §6.2 literally, per exchange between an initiator `nodes[0]` (A) and a responder `nodes[1]`
/// (B): a value that an exchange ended DONE moved is spendable at its receiver alone (V1 at B,
/// V2 at A), and a value no exchange moved is spendable at the party it was `issued` to alone.
/// Values some open session still holds (offered, locked or in escrow, on either side) are not
/// at rest yet and are skipped.
pub fn check_exchanges_ended(nodes: &[NamedState<'_>; 2], issued: &[(ValueId, Role)]) -> Result<(), Violation> {
    let name = |role: Role| if role == Role::A { nodes[0].name } else { nodes[1].name };
    let mut expected: BTreeMap<ValueId, &str> = issued.iter().map(|(id, role)| (*id, name(*role))).collect();
    let mut held_open: BTreeSet<ValueId> = BTreeSet::new();
    for node in nodes {
        for session in node.state.sessions.values() {
            let (v1, v2) = match session {
                Session::Initiator(s) => (s.v1.id(), s.agreement().map(|a| a.v2.id())),
                Session::Responder(s) => (s.offer.v1.id(), Some(s.v2.id())),
            };
            match session.outcome() {
                SessionOutcome::Open => held_open.extend([Some(v1), v2].into_iter().flatten()),
                SessionOutcome::Done => {
                    expected.insert(v1, name(Role::B));
                    if let Some(v2) = v2 {
                        expected.insert(v2, name(Role::A));
                    }
                }
                SessionOutcome::Cancelled | SessionOutcome::Aborted => {}
            }
        }
    }
    for (id, holder) in expected.iter().filter(|(id, _)| !held_open.contains(id)) {
        let holders: Vec<&str> = nodes.iter().filter(|n| n.state.is_spendable(id)).map(|n| n.name).collect();
        if holders.is_empty() {
            return Err(Violation::new(
                Invariant::Conservation,
                format!("value {} is held by no open session and spendable nowhere (expected at {holder})", id.short()),
            ));
        }
        if holders != [*holder] {
            return Err(Violation::new(
                Invariant::Fairness,
                format!("value {}: the exchanges that ended leave it to {holder}, but it is spendable at {holders:?}", id.short()),
            ));
        }
    }
    Ok(())
}

/// §6.4 for a simulated exchange: from this state, with faults stopped, every session ends
/// within `max_steps` and the end state satisfies [`check_world`].
pub fn check_termination(world: &World, max_steps: usize) -> Result<World, Violation> {
    let mut healed = world.clone();
    healed.heal(max_steps).map_err(|e| Violation::new(Invariant::Termination, e))?;
    check_world(&healed)?;
    Ok(healed)
}
