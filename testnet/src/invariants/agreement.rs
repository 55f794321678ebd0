//! §6.3: no session, of either role and in any phase, contradicts an arbiter's decision on its
//! exchange, and a decision found for a session's s2 is bound to that session's own h and arbiter.

use std::collections::BTreeMap;

use valex_arbiter::DecisionRecord;
use valex_node::exchange::{Session, SessionOutcome};
use valex_proto::Digest;
use valex_proto::message::Outcome;

use super::sides::{agreed, role};
use super::{Invariant, NamedState, Violation};

/// The decisions by the s1 of the terms they were made on.
pub(super) fn by_s1(decisions: &BTreeMap<Digest, DecisionRecord>) -> BTreeMap<Digest, Vec<&DecisionRecord>> {
    let mut index: BTreeMap<Digest, Vec<&DecisionRecord>> = BTreeMap::new();
    for record in decisions.values() {
        index.entry(record.terms.s1).or_default().push(record);
    }
    index
}

/// Checks every session of `node` against the decisions.
pub(super) fn agrees_with_decisions(
    node: &NamedState<'_>,
    decisions: &BTreeMap<Digest, DecisionRecord>,
    by_s1: &BTreeMap<Digest, Vec<&DecisionRecord>>,
) -> Result<(), Violation> {
    for session in node.state.sessions.values() {
        match agreed(session) {
            Some(ours) => {
                let Some(record) = decisions.get(&ours.s2) else { continue };
                let decision = &record.decision;
                if decision.h != ours.h || record.terms.h() != ours.h || record.terms.arbiter != ours.arbiter {
                    return Err(Violation::new(
                        Invariant::Agreement,
                        format!(
                            "{}: the arbiter's decision for s2 {} of {} session {} is bound to h {} and arbiter {}, but the session agreed h {} with arbiter {}",
                            node.name,
                            ours.s2.short(),
                            role(session),
                            session.id().short(),
                            decision.h.short(),
                            record.terms.arbiter,
                            ours.h.short(),
                            ours.arbiter
                        ),
                    ));
                }
                contradicts(node, session, record)?;
            }
            // An initiator before a valid M2 (STARTED) or that never got one (ABORTED) has signed no
            // Se, so no arbiter can have completed its exchange: a COMPLETED decision on terms with
            // its s1 and its responder means it did commit, and its record hides that.
            None => {
                let Session::Initiator(s) = session else { continue };
                let completed = by_s1
                    .get(&s.s1)
                    .into_iter()
                    .flatten()
                    .find(|r| r.terms.responder == s.responder && r.decision.outcome == Outcome::Completed);
                if let Some(record) = completed {
                    return Err(Violation::new(
                        Invariant::Agreement,
                        format!(
                            "{}: initiator session {} is {} (it never committed, per its record) but the arbiter decided COMPLETED for h {}",
                            node.name,
                            s.s1.short(),
                            session.phase_name(),
                            record.decision.h.short()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn contradicts(node: &NamedState<'_>, session: &Session, record: &DecisionRecord) -> Result<(), Violation> {
    let outcome = session.outcome();
    let contradicts = match record.decision.outcome {
        Outcome::Completed => matches!(outcome, SessionOutcome::Cancelled | SessionOutcome::Aborted),
        Outcome::Cancelled => outcome == SessionOutcome::Done,
    };
    if contradicts {
        return Err(Violation::new(
            Invariant::Agreement,
            format!(
                "{}: {} session {} ended {} but the arbiter decided {}",
                node.name,
                role(session),
                session.id().short(),
                outcome.as_str(),
                record.decision.outcome.name()
            ),
        ));
    }
    Ok(())
}
