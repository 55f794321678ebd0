//! Where each value is at any moment (protocol.md §6.1, §6.5): in a vault, spendable or locked by
//! the open session that offers it, or in escrow of an open session — nowhere else, and never in
//! two of those places unless the protocol has it in transit between two ended and open sides.

use std::collections::{BTreeMap, BTreeSet};

use valex_node::exchange::Session;
use valex_proto::Digest;
use valex_proto::value::ValueId;

use super::sides::{ends_with, given, is_started, opposite, role};
use super::{Invariant, NamedState, Violation};

/// §6.1: no value spendable in two vaults.
pub(super) fn spendable_once(nodes: &[NamedState<'_>]) -> Result<(), Violation> {
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
    Ok(())
}

/// Locks: each lock is on a vault value and held by the open STARTED initiator session that
/// offers it; each STARTED session's V1 is locked by it.
pub(super) fn locks_match_offers(node: &NamedState<'_>) -> Result<(), Violation> {
    let name = node.name;
    for (value, session_id) in &node.state.locks {
        if !node.state.vault.contains_key(value) {
            return Err(Violation::new(
                Invariant::Conservation,
                format!("{name}: value {} is locked by session {} but is not in the vault", value.short(), session_id.short()),
            ));
        }
        let Some(session) = node.state.sessions.get(session_id) else {
            return Err(Violation::new(
                Invariant::Conservation,
                format!("{name}: value {} is locked by session {}, which {name} has no record of", value.short(), session_id.short()),
            ));
        };
        if session.is_terminal() {
            return Err(Violation::new(
                Invariant::Conservation,
                format!(
                    "{name}: value {} is still locked by session {}, which ended {}: a lock left by an ended session freezes it",
                    value.short(),
                    session_id.short(),
                    session.phase_name()
                ),
            ));
        }
        if !is_started(session) || given(session) != *value {
            return Err(Violation::new(
                Invariant::SingleEscrow,
                format!(
                    "{name}: value {} is locked by {} session {} ({}), which does not offer it from the vault",
                    value.short(),
                    role(session),
                    session_id.short(),
                    session.phase_name()
                ),
            ));
        }
    }
    for session in node.state.open_sessions().filter(|s| is_started(s)) {
        let v1 = given(session);
        if node.state.locks.get(&v1) != Some(&session.id()) || !node.state.vault.contains_key(&v1) {
            return Err(Violation::new(
                Invariant::SingleEscrow,
                format!(
                    "{name}: STARTED session {} offers value {} but has not locked it in the vault (in the vault: {}, locked by: {})",
                    session.id().short(),
                    v1.short(),
                    node.state.vault.contains_key(&v1),
                    node.state.locks.get(&v1).map_or("nobody".to_string(), Digest::short)
                ),
            ));
        }
    }
    Ok(())
}

/// §6.5 within a node: each value offered (locked) or escrowed by at most one open session, and
/// an escrowed value is out of the vault.
pub(super) fn escrowed_once(node: &NamedState<'_>) -> Result<(), Violation> {
    let mut offered: BTreeMap<ValueId, Digest> = node.state.locks.iter().map(|(v, s)| (*v, *s)).collect();
    for session in node.state.open_sessions() {
        for value in session.escrowed() {
            if let Some(other) = offered.insert(value, session.id())
                && other != session.id()
            {
                return Err(Violation::new(
                    Invariant::SingleEscrow,
                    format!("{}: value {} is held by sessions {} and {}", node.name, value.short(), other.short(), session.id().short()),
                ));
            }
            if node.state.vault.contains_key(&value) {
                return Err(Violation::new(
                    Invariant::SingleEscrow,
                    format!(
                        "{}: value {} is escrowed by session {} and also in the vault ({})",
                        node.name,
                        value.short(),
                        session.id().short(),
                        if node.state.is_spendable(&value) { "spendable" } else { "locked" }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The values each node's open sessions hold (locked or escrowed), with the node's index.
fn held_by_open_sessions<'a>(nodes: &'a [NamedState<'a>]) -> Vec<(usize, &'a Session, ValueId)> {
    let mut held = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        for session in node.state.open_sessions() {
            let mut values = session.escrowed();
            if is_started(session) {
                values.push(given(session));
            }
            held.extend(values.into_iter().map(|v| (index, session, v)));
        }
    }
    held
}

/// §6.1 across nodes: a value spendable at one node while an open session of another holds it is
/// in transit only if that session's counterpart has ended with the value on its side (it
/// received it, or kept what it offered); otherwise two nodes can both claim it.
pub(super) fn not_spendable_while_held_elsewhere(nodes: &[NamedState<'_>]) -> Result<(), Violation> {
    for (index, session, value) in held_by_open_sessions(nodes) {
        let Some(spender) = nodes.iter().enumerate().find(|(i, n)| *i != index && n.state.is_spendable(&value)).map(|(_, n)| n) else {
            continue;
        };
        let released = nodes.iter().enumerate().any(|(i, n)| {
            i != index && n.state.sessions.get(&session.id()).is_some_and(|other| opposite(session, other) && ends_with(other, &value))
        });
        if !released {
            let holder = nodes[index].name;
            return Err(Violation::new(
                Invariant::Conservation,
                format!(
                    "value {} is spendable at {} while {holder}'s open {} session {} ({}) holds it, and no ended counterpart released it",
                    value.short(),
                    spender.name,
                    role(session),
                    session.id().short(),
                    session.phase_name()
                ),
            ));
        }
    }
    Ok(())
}

/// §6.1 at every moment: every value of `issued` is somewhere — in a vault (spendable or locked by
/// its offer), or in escrow of an open session.
pub(super) fn nothing_vanished(nodes: &[NamedState<'_>], issued: &[ValueId]) -> Result<(), Violation> {
    let held: BTreeSet<ValueId> = held_by_open_sessions(nodes).into_iter().map(|(_, _, v)| v).collect();
    for id in issued {
        if !held.contains(id) && !nodes.iter().any(|n| n.state.vault.contains_key(id)) {
            return Err(Violation::new(
                Invariant::Conservation,
                format!("value {} vanished: it is in no vault and no open session holds it", id.short()),
            ));
        }
    }
    Ok(())
}
