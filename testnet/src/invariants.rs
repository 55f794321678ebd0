//! protocol.md §6, checked over any set of nodes and an arbiter's decisions.
//!
//! The checks take plain [`NodeState`]s and decision records, so the same code audits a
//! simulated [`World`] in every state the model checker reaches and, later,
//! the vaults of real nodes after a testnet run.
//!
//! - [`check_always`]: what must hold at every moment — every value in one place: no value
//!   spendable in two vaults or vanished, every received value backed by a receipt (§6.1); no
//!   session of either role contradicting a decision on its own terms (§6.3); no value offered or
//!   escrowed twice, every offered value locked (§6.5);
//! - [`check_at_rest`]: what must hold once every session has ended — every issued value spendable
//!   in exactly one vault and no other value in any vault (§6.1), both sides of each exchange
//!   ending alike on the same terms, with the vault contents their outcome says (§6.2);
//!   [`check_at_rest_partial`] when some counterparties are not audited;
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

mod agreement;
mod holding;
mod receipts;
mod rest;
mod sides;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use valex_arbiter::DecisionRecord;
use valex_node::exchange::{NodeState, Session, SessionOutcome};
use valex_proto::Digest;
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

/// Checks what must hold at every moment; returns the first violation. `issued` are the values
/// that never leave these nodes (every value issued, when `nodes` are all the parties; none, when
/// some counterparties are not audited): each must be somewhere at every moment.
///
/// - §6.1: no value spendable in two vaults, nor spendable at one node while an open session of
///   another holds it (unless that session's counterpart has ended with it); every value of
///   `issued` in a vault or held by an open session; every lock held by the open STARTED session
///   that offers the value (no lock left by an ended session); every value received in exchange
///   backed by its DONE session and a receipt that verifies;
/// - §6.3: no session, of either role in any phase, contradicts a decision on its exchange (an
///   initiator that is STARTED or ABORTED contradicts a COMPLETED one), a decision for a
///   session's s2 is bound to the session's own h and arbiter, and a value returned from escrow
///   comes with the arbiter's CANCELLED decision;
/// - §6.5: each value offered or escrowed by at most one open session, an escrowed value out of
///   the vault, and every STARTED session's V1 locked.
pub fn check_always(nodes: &[NamedState<'_>], decisions: &BTreeMap<Digest, DecisionRecord>, issued: &[ValueId]) -> Result<(), Violation> {
    holding::spendable_once(nodes)?;
    for node in nodes {
        holding::locks_match_offers(node)?;
        holding::escrowed_once(node)?;
    }
    holding::not_spendable_while_held_elsewhere(nodes)?;
    holding::nothing_vanished(nodes, issued)?;
    let by_s1 = agreement::by_s1(decisions);
    for node in nodes {
        agreement::agrees_with_decisions(node, decisions, &by_s1)?;
    }
    for node in nodes {
        receipts::vault_is_justified(node)?;
    }
    Ok(())
}

/// Checks what must hold once every session has ended, when `nodes` are every party of their
/// exchanges and `issued` every value issued to them:
///
/// - §6.1: every value of `issued` spendable in exactly one vault, and every value in any vault
///   one of `issued` (nothing minted);
/// - §6.2: every session, initiator or responder, has its counterpart on another node (a
///   responder, or an initiator that agreed terms), both ended alike (both DONE, or neither) on
///   the same h and s2, and each node's vault holds what the outcome gives it (DONE: the value
///   received, not the one given; CANCELLED or ABORTED: the one offered) unless a later exchange
///   moved it on.
pub fn check_at_rest(nodes: &[NamedState<'_>], issued: &[ValueId]) -> Result<(), Violation> {
    rest::each_value_once(nodes, issued, true)?;
    rest::both_sides_alike(nodes, true)?;
    rest::vaults_match_outcomes(nodes)
}

/// [`check_at_rest`] for an audit that sees only some of the parties (honest nodes that also
/// exchanged with peers not audited, as in the hostile-peer tests): values outside `issued` may
/// be in the vaults, and a session whose counterpart is not among `nodes` is not compared.
pub fn check_at_rest_partial(nodes: &[NamedState<'_>], issued: &[ValueId]) -> Result<(), Violation> {
    rest::each_value_once(nodes, issued, false)?;
    rest::both_sides_alike(nodes, false)?;
    rest::vaults_match_outcomes(nodes)
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
        check_always(&nodes, &world.t, &ids)?;
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
