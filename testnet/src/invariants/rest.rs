//! What must hold once every session has ended (protocol.md §6.1, §6.2).

use std::collections::BTreeSet;

use valex_node::exchange::{Acquired, NodeState, Session, SessionOutcome};
use valex_proto::value::ValueId;

use super::sides::{agreed, given, opposite, passed_on, received, role};
use super::{Invariant, NamedState, Violation};

/// §6.1: every value of `issued` spendable in exactly one vault; with `closed`, also every value
/// in any vault (spendable or not) one of `issued`.
pub(super) fn each_value_once(nodes: &[NamedState<'_>], issued: &[ValueId], closed: bool) -> Result<(), Violation> {
    for id in issued {
        let holders: Vec<&str> = nodes.iter().filter(|n| n.state.is_spendable(id)).map(|n| n.name).collect();
        if holders.len() != 1 {
            return Err(Violation::new(
                Invariant::Conservation,
                format!("at rest, value {} is spendable in {} vaults {holders:?}, not exactly one", id.short(), holders.len()),
            ));
        }
    }
    if closed {
        let issued: BTreeSet<&ValueId> = issued.iter().collect();
        for node in nodes {
            if let Some(entry) = node.state.vault.values().find(|e| !issued.contains(&e.value.id())) {
                return Err(Violation::new(
                    Invariant::Conservation,
                    format!(
                        "{}: value {} ({}) is in the vault but was never issued: minted",
                        node.name,
                        entry.value.id().short(),
                        entry.value.kind()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// §6.2 per exchange, from both sides: the counterpart ended alike on the same terms. With
/// `closed`, every responder session and every initiator that agreed terms must have one.
pub(super) fn both_sides_alike(nodes: &[NamedState<'_>], closed: bool) -> Result<(), Violation> {
    for (index, node) in nodes.iter().enumerate() {
        for session in node.state.sessions.values() {
            let counterpart =
                nodes.iter().enumerate().filter(|(i, _)| *i != index).find_map(|(_, other)| {
                    other.state.sessions.get(&session.id()).filter(|o| opposite(session, o)).map(|o| (other.name, o))
                });
            let Some((other_name, other)) = counterpart else {
                let needs_one = matches!(session, Session::Responder(_)) || agreed(session).is_some();
                if closed && needs_one {
                    return Err(Violation::new(
                        Invariant::Fairness,
                        format!(
                            "{}'s {} session {} ({}) has no counterpart session on any other node",
                            node.name,
                            role(session),
                            session.id().short(),
                            session.phase_name()
                        ),
                    ));
                }
                continue;
            };
            let (ours, theirs) = (session.outcome(), other.outcome());
            let alike = match (ours, theirs) {
                (SessionOutcome::Open, _) | (_, SessionOutcome::Open) => true, // not at rest: nothing to compare yet
                (SessionOutcome::Done, theirs) => theirs == SessionOutcome::Done,
                (_, theirs) => theirs != SessionOutcome::Done,
            };
            if !alike {
                return Err(Violation::new(
                    Invariant::Fairness,
                    format!(
                        "session {}: {} {} ended {}, {} {} ended {}",
                        session.id().short(),
                        role(session),
                        node.name,
                        ours.as_str(),
                        role(other),
                        other_name,
                        theirs.as_str()
                    ),
                ));
            }
            if let (Some(a), Some(b)) = (agreed(session), agreed(other))
                && (a.h != b.h || a.s2 != b.s2)
            {
                return Err(Violation::new(
                    Invariant::Fairness,
                    format!(
                        "session {}: {} holds terms h {} with s2 {}, {} holds h {} with s2 {}",
                        session.id().short(),
                        node.name,
                        a.h.short(),
                        a.s2.short(),
                        other_name,
                        b.h.short(),
                        b.s2.short()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// §6.2 in the vaults: after each ended session a node holds (or has since passed on in another
/// DONE session) what the outcome gives it — DONE: the value received; CANCELLED or ABORTED: the
/// value it offered — and holds the other one only if a later session brought it back.
pub(super) fn vaults_match_outcomes(nodes: &[NamedState<'_>]) -> Result<(), Violation> {
    for node in nodes {
        for session in node.state.sessions.values() {
            let (keep, lose) = match session.outcome() {
                SessionOutcome::Open => continue,
                SessionOutcome::Done => (received(session), Some(given(session))),
                SessionOutcome::Cancelled | SessionOutcome::Aborted => (Some(given(session)), received(session)),
            };
            let outcome = session.outcome().as_str();
            if let Some(keep) = keep
                && !node.state.is_spendable(&keep)
                && !passed_on(node.state, &keep, session.id())
            {
                return Err(Violation::new(
                    Invariant::Fairness,
                    format!(
                        "{}: {} session {} ended {outcome}, but {} neither holds value {} nor passed it on in a later exchange",
                        node.name,
                        role(session),
                        session.id().short(),
                        node.name,
                        keep.short()
                    ),
                ));
            }
            if let Some(lose) = lose
                && brought_back_by(node.state, &lose).is_none_or(|by| by == session.id())
                && node.state.vault.contains_key(&lose)
            {
                return Err(Violation::new(
                    Invariant::Fairness,
                    format!(
                        "{}: {} session {} ended {outcome}, but {} still holds value {}, which that outcome gives the other party",
                        node.name,
                        role(session),
                        session.id().short(),
                        node.name,
                        lose.short()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The session that put `value` into the vault, unless it was issued there.
fn brought_back_by(state: &NodeState, value: &ValueId) -> Option<valex_node::exchange::SessionId> {
    state.vault.get(value).and_then(|entry| match entry.acquired {
        Acquired::Issued => None,
        Acquired::Exchange(s1) | Acquired::Returned(s1) => Some(s1),
    })
}
