use valex_proto::message::{CancelRequest, CompleteRequest};

use super::*;

struct Parties {
    a: Keypair,
    b: Keypair,
    t: Keypair,
    terms: Terms,
    s2: Digest,
}

fn parties() -> Parties {
    let (a, b, t) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
    let terms = Terms {
        s1: Digest([4; 32]),
        initiator: a.peer_id(),
        responder: b.peer_id(),
        arbiter: t.peer_id(),
        v1_id: Digest([5; 32]),
        v2_id: Digest([6; 32]),
        expires_at_ms: 10_000,
    };
    Parties { a, b, t, terms, s2: Digest([7; 32]) }
}

impl Parties {
    fn cancel(&self) -> ArbiterRequest {
        let h = self.terms.h();
        ArbiterRequest::Cancel(CancelRequest {
            terms: self.terms.clone(),
            s2: self.s2,
            sa: self.b.sign(&canonical::agree_bytes(&h, &self.s2)),
            sab: self.b.sign(&canonical::cancel_bytes(&h, &self.s2)),
        })
    }

    fn complete(&self) -> ArbiterRequest {
        let h = self.terms.h();
        ArbiterRequest::Complete(CompleteRequest {
            terms: self.terms.clone(),
            s2: self.s2,
            sa: self.b.sign(&canonical::agree_bytes(&h, &self.s2)),
            se: self.a.sign(&canonical::confirm_bytes(&h, &self.s2)),
        })
    }

    fn arbiter(&self) -> Arbiter {
        Arbiter::new(self.t.clone(), BTreeMap::new())
    }
}

fn decision(step: &ArbiterStep) -> &Decision {
    match &step.response {
        ArbiterResponse::Decision(d) => d,
        ArbiterResponse::Refusal(r) => panic!("refused: {r}"),
    }
}

#[test]
fn first_request_wins_and_later_ones_get_the_same_decision() {
    let p = parties();
    let mut t = p.arbiter();
    let first = t.handle(p.b.peer_id(), p.cancel(), 100).unwrap();
    assert!(first.persist.is_some());
    let d = decision(&first).clone();
    assert_eq!(d.outcome, Outcome::Cancelled);
    assert!(d.verify(&p.t.peer_id(), &p.s2, &p.terms.h()).is_ok());

    let late_complete = t.handle(p.a.peer_id(), p.complete(), 200).unwrap();
    assert!(late_complete.persist.is_none(), "a decided s2 is never decided again");
    assert_eq!(decision(&late_complete), &d);
    let repeat = t.handle(p.b.peer_id(), p.cancel(), 300).unwrap();
    assert_eq!(decision(&repeat), &d);
    let query = t.handle(p.a.peer_id(), ArbiterRequest::Query { s2: p.s2 }, 400).unwrap();
    assert_eq!(decision(&query), &d);
}

#[test]
fn complete_first_decides_completed() {
    let p = parties();
    let mut t = p.arbiter();
    let step = t.handle(p.a.peer_id(), p.complete(), 1).unwrap();
    assert_eq!(decision(&step).outcome, Outcome::Completed);
    let cancel = t.handle(p.b.peer_id(), p.cancel(), 2).unwrap();
    assert_eq!(decision(&cancel).outcome, Outcome::Completed);
}

#[test]
fn another_h_for_a_decided_s2_is_equivocation() {
    let p = parties();
    let mut t = p.arbiter();
    t.handle(p.b.peer_id(), p.cancel(), 1).unwrap();
    let mut other = parties();
    other.terms.v2_id = Digest([9; 32]);
    let before = t.decisions().clone();
    let err = t.handle(other.a.peer_id(), other.complete(), 2).unwrap_err();
    assert!(matches!(err, ArbiterError::Equivocation { .. }));
    assert_eq!(err.code(), ErrorCode::Equivocation);
    assert_eq!(t.decisions(), &before);
}

#[test]
fn terms_naming_another_arbiter_are_refused() {
    let mut p = parties();
    p.terms.arbiter = p.a.peer_id();
    let mut t = Arbiter::new(p.t.clone(), BTreeMap::new());
    let err = t.handle(p.b.peer_id(), p.cancel(), 1).unwrap_err();
    assert!(matches!(err, ArbiterError::NotTheArbiter { .. }));
    assert!(t.decisions().is_empty());
}

#[test]
fn bad_signatures_are_refused_and_decide_nothing() {
    let p = parties();
    let mut t = p.arbiter();
    let ArbiterRequest::Cancel(mut bad_sab) = p.cancel() else { unreachable!() };
    bad_sab.sab.0[0] ^= 1;
    assert_eq!(t.handle(p.b.peer_id(), ArbiterRequest::Cancel(bad_sab), 1), Err(ArbiterError::InvalidSignature("Sab")));
    let ArbiterRequest::Complete(mut bad_se) = p.complete() else { unreachable!() };
    bad_se.se = p.b.sign(&canonical::confirm_bytes(&p.terms.h(), &p.s2));
    assert_eq!(t.handle(p.a.peer_id(), ArbiterRequest::Complete(bad_se), 1), Err(ArbiterError::InvalidSignature("Se")));
    let ArbiterRequest::Cancel(mut bad_sa) = p.cancel() else { unreachable!() };
    bad_sa.sa.0[5] ^= 1;
    assert_eq!(t.handle(p.b.peer_id(), ArbiterRequest::Cancel(bad_sa), 1), Err(ArbiterError::InvalidSignature("Sa")));
    assert!(t.decisions().is_empty());
}

#[test]
fn only_b_cancels_and_only_a_completes() {
    let p = parties();
    let mut t = p.arbiter();
    assert!(matches!(t.handle(p.a.peer_id(), p.cancel(), 1), Err(ArbiterError::WrongSender { .. })));
    assert!(matches!(t.handle(p.b.peer_id(), p.complete(), 1), Err(ArbiterError::WrongSender { .. })));
    assert!(t.decisions().is_empty());
}

#[test]
fn query_before_any_decision_is_no_decision() {
    let p = parties();
    let mut t = p.arbiter();
    assert_eq!(t.handle(p.a.peer_id(), ArbiterRequest::Query { s2: p.s2 }, 1), Err(ArbiterError::NoDecision(p.s2)));
}
