//! Every value a node received is backed by what the protocol accepts as proof: a value received
//! in exchange by its DONE session and a receipt that verifies (Sa by B and Se by A over the
//! terms' h and s2, and r2 hashing to s2 or the arbiter's COMPLETED decision), a value returned
//! from escrow by its session CANCELLED under the arbiter's verifying CANCELLED decision.

use std::cell::RefCell;
use std::collections::HashMap;

use valex_node::exchange::initiator::InitiatorPhase;
use valex_node::exchange::responder::ResponderPhase;
use valex_node::exchange::{Acquired, Evidence, Receipt, Session};
use valex_proto::message::{Decision, Outcome};
use valex_proto::value::ValueId;
use valex_proto::{Digest, PeerId, canonical, crypto};

use super::sides::{agreed, given, received};
use super::{Invariant, NamedState, Violation};
use crate::sim::fingerprint;

/// Checks the provenance of every value in `node`'s vault.
pub(super) fn vault_is_justified(node: &NamedState<'_>) -> Result<(), Violation> {
    for (id, entry) in &node.state.vault {
        match entry.acquired {
            Acquired::Issued => {}
            Acquired::Exchange(s1) => {
                let session = node.state.sessions.get(&s1);
                if let Err(why) = received_with_receipt(session, id, node.state.receipts.get(id)) {
                    return Err(Violation::new(
                        Invariant::Conservation,
                        format!(
                            "{}: holds value {} received in session {} without a verifying receipt: {why}",
                            node.name,
                            id.short(),
                            s1.short()
                        ),
                    ));
                }
            }
            Acquired::Returned(s1) => {
                if let Err(why) = returned_by_cancel(node.state.sessions.get(&s1), id) {
                    return Err(Violation::new(
                        Invariant::Agreement,
                        format!(
                            "{}: holds value {} returned by session {} without the arbiter cancelling it: {why}",
                            node.name,
                            id.short(),
                            s1.short()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn received_with_receipt(session: Option<&Session>, id: &ValueId, receipt: Option<&Receipt>) -> Result<(), String> {
    let session = session.ok_or("no such session")?;
    let done = matches!(session, Session::Initiator(s) if matches!(s.phase, InitiatorPhase::Done { .. }))
        || matches!(session, Session::Responder(s) if matches!(s.phase, ResponderPhase::Done { .. }));
    if !done {
        return Err(format!("the session is {}, not DONE", session.phase_name()));
    }
    if received(session).as_ref() != Some(id) {
        return Err("the session received another value".into());
    }
    let receipt = receipt.ok_or("no receipt")?;
    let ours = agreed(session).ok_or("the session has no agreement")?;
    if receipt.s2 != ours.s2 || receipt.terms.s1 != session.id() {
        return Err("the receipt is for another exchange".into());
    }
    let by_initiator = matches!(session, Session::Initiator(_));
    let wanted = if by_initiator { receipt.terms.v2_id } else { receipt.terms.v1_id };
    if wanted != *id {
        return Err("the receipt's terms move another value".into());
    }
    let verdict = memoized(fingerprint(&("receipt", receipt, by_initiator)), || verify_receipt(receipt, by_initiator));
    verdict?;
    if receipt.terms.h() != ours.h {
        return Err("the receipt's terms are not the session's".into());
    }
    Ok(())
}

/// Sa by B and Se (if any) by A over (h, s2); the settlement: r2 hashing to s2 or a verifying
/// COMPLETED decision. B, whose r2 is its own, needs A's Se or the decision.
fn verify_receipt(receipt: &Receipt, by_initiator: bool) -> Result<(), String> {
    let (terms, s2) = (&receipt.terms, &receipt.s2);
    let h = terms.h();
    crypto::verify(&terms.responder, &canonical::agree_bytes(&h, s2), &receipt.sa).map_err(|e| format!("Sa does not verify: {e}"))?;
    if let Some(se) = &receipt.se {
        crypto::verify(&terms.initiator, &canonical::confirm_bytes(&h, s2), se).map_err(|e| format!("Se does not verify: {e}"))?;
    }
    match &receipt.evidence {
        Evidence::Secret(r2) => {
            if Digest::of(&canonical::s2_preimage(r2)) != *s2 {
                return Err("r2 does not hash to s2".into());
            }
            if !by_initiator && receipt.se.is_none() {
                return Err("settled by B's own r2 without A's Se".into());
            }
            Ok(())
        }
        Evidence::Decision(decision) => decided(decision, Outcome::Completed, &terms.arbiter, s2, &h),
    }
}

fn returned_by_cancel(session: Option<&Session>, id: &ValueId) -> Result<(), String> {
    let session = session.ok_or("no such session")?;
    let decision = match session {
        Session::Initiator(s) => match &s.phase {
            InitiatorPhase::Cancelled { decision, .. } => decision,
            _ => return Err(format!("the session is {}, not CANCELLED", session.phase_name())),
        },
        Session::Responder(s) => match &s.phase {
            ResponderPhase::Cancelled { decision } => decision,
            _ => return Err(format!("the session is {}, not CANCELLED", session.phase_name())),
        },
    };
    if given(session) != *id {
        return Err("the session offered another value".into());
    }
    let ours = agreed(session).ok_or("the session has no agreement")?;
    memoized(fingerprint(&("cancel", decision, ours.arbiter, ours.s2, ours.h)), || {
        decided(decision, Outcome::Cancelled, &ours.arbiter, &ours.s2, &ours.h)
    })
}

fn decided(decision: &Decision, outcome: Outcome, arbiter: &PeerId, s2: &Digest, h: &Digest) -> Result<(), String> {
    if decision.outcome != outcome {
        return Err(format!("the decision is {}, not {}", decision.outcome.name(), outcome.name()));
    }
    decision.verify(arbiter, s2, h).map_err(|e| format!("the decision does not verify: {e}"))
}

/// Signature checks are deterministic: the model checker asks the same ones in many states.
fn memoized(key: u128, check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    thread_local! {
        static VERDICTS: RefCell<HashMap<u128, Result<(), String>>> = RefCell::new(HashMap::new());
    }
    if let Some(verdict) = VERDICTS.with(|v| v.borrow().get(&key).cloned()) {
        return verdict;
    }
    let verdict = check();
    VERDICTS.with(|v| {
        let mut verdicts = v.borrow_mut();
        if verdicts.len() >= 1 << 16 {
            verdicts.clear();
        }
        verdicts.insert(key, verdict.clone());
    });
    verdict
}
