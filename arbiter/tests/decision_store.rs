//! DecisionStore: decisions round-trip through a reopen, the Arbiter rebuilt from them keeps
//! first-request-wins, the store itself never replaces a stored decision (first wins on disk too),
//! tampered or foreign decisions are set aside, equivocation evidence is appended.

use std::path::Path;

use valex_arbiter::store::{DecisionStore, EquivocationEvidence, InvalidDecision, RecordDefect, RecordError, StoreError, columns};
use valex_arbiter::{Arbiter, ArbiterStep, DecisionRecord};
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterRequest, ArbiterResponse, CancelRequest, CompleteRequest, Decision, Outcome, Terms};
use valex_proto::{Digest, canonical};

struct Parties {
    a: Keypair,
    b: Keypair,
    t: Keypair,
}

fn parties() -> Parties {
    Parties { a: Keypair::from_seed([1; 32]), b: Keypair::from_seed([2; 32]), t: Keypair::from_seed([3; 32]) }
}

impl Parties {
    fn terms(&self, n: u8) -> Terms {
        Terms {
            s1: Digest([n; 32]),
            initiator: self.a.peer_id(),
            responder: self.b.peer_id(),
            arbiter: self.t.peer_id(),
            v1_id: Digest([n.wrapping_add(100); 32]),
            v2_id: Digest([n.wrapping_add(200); 32]),
            expires_at_ms: 10_000,
        }
    }

    fn cancel(&self, terms: &Terms, s2: Digest) -> ArbiterRequest {
        let h = terms.h();
        ArbiterRequest::Cancel(CancelRequest {
            terms: terms.clone(),
            s2,
            sa: self.b.sign(&canonical::agree_bytes(&h, &s2)),
            sab: self.b.sign(&canonical::cancel_bytes(&h, &s2)),
        })
    }

    fn complete(&self, terms: &Terms, s2: Digest) -> ArbiterRequest {
        let h = terms.h();
        ArbiterRequest::Complete(CompleteRequest {
            terms: terms.clone(),
            s2,
            sa: self.b.sign(&canonical::agree_bytes(&h, &s2)),
            se: self.a.sign(&canonical::confirm_bytes(&h, &s2)),
        })
    }
}

fn decision(step: &ArbiterStep) -> &Decision {
    match &step.response {
        ArbiterResponse::Decision(d) => d,
        ArbiterResponse::Refusal(r) => panic!("refused: {r}"),
    }
}

/// Decides `n` sessions (alternately cancelled and completed), persisting each decision.
fn decide(p: &Parties, store: &mut DecisionStore, n: u8) -> Arbiter {
    let mut arbiter = Arbiter::new(p.t.clone(), Default::default());
    for i in 0..n {
        let (terms, s2) = (p.terms(i), Digest([i.wrapping_add(50); 32]));
        let (from, request) = if i % 2 == 0 { (p.b.peer_id(), p.cancel(&terms, s2)) } else { (p.a.peer_id(), p.complete(&terms, s2)) };
        let step = arbiter.handle(from, request, 1_000 + u64::from(i)).unwrap();
        store.put(step.persist.as_ref().unwrap()).unwrap();
    }
    arbiter
}

#[test]
fn decisions_round_trip_and_the_rebuilt_arbiter_keeps_the_first_decision() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let before = decide(&p, &mut store, 6);
    drop(store);

    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.set_aside.is_empty());
    assert_eq!(&loaded.decisions, before.decisions());
    assert_eq!(loaded.decisions.values().filter(|r| r.decision.outcome == Outcome::Cancelled).count(), 3);

    // First request wins is the Arbiter's rule: rebuilt from the store, it answers a late
    // CompleteRequest for a cancelled s2 with the stored decision and persists nothing.
    let mut after = Arbiter::new(p.t.clone(), loaded.decisions.clone());
    let (terms, s2) = (p.terms(0), Digest([50; 32]));
    let late = after.handle(p.a.peer_id(), p.complete(&terms, s2), 9_999).unwrap();
    assert!(late.persist.is_none());
    assert_eq!(decision(&late), &loaded.decisions[&s2].decision);
    assert_eq!(decision(&late).outcome, Outcome::Cancelled);
}

/// First request wins on disk, not only in the Arbiter's memory: an arbiter that has forgotten
/// a decision (a fresh `Arbiter` over an empty map, as after a lost load) decides the same s2 the
/// other way, and the store, reopened, refuses to let the second decision replace the first.
#[test]
fn a_second_decision_for_a_stored_s2_never_replaces_the_first_on_disk() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    let (terms, s2) = (p.terms(1), Digest([42; 32]));
    let first = Arbiter::new(p.t.clone(), Default::default()).handle(p.b.peer_id(), p.cancel(&terms, s2), 1_000).unwrap();
    let first = first.persist.unwrap();
    DecisionStore::open(dir.path(), p.t.peer_id()).unwrap().put(&first).unwrap();

    let second = Arbiter::new(p.t.clone(), Default::default()).handle(p.a.peer_id(), p.complete(&terms, s2), 2_000).unwrap();
    let second = second.persist.unwrap();
    assert_eq!((first.decision.outcome, second.decision.outcome), (Outcome::Cancelled, Outcome::Completed));
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let err = store.put(&second).unwrap_err();
    let refused_with = match &err {
        StoreError::Record(RecordError { column: columns::DECISIONS, key, defect: RecordDefect::Invalid(why) }) if key == &s2.0 => {
            why.downcast_ref::<InvalidDecision>().cloned()
        }
        _ => None,
    };
    assert_eq!(refused_with, Some(InvalidDecision::AlreadyDecided { stored: Box::new(first.clone()) }), "{err}");
    // The same record again is accepted (a retried write), and changes nothing.
    store.put(&first).unwrap();
    drop(store);

    let loaded = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap().load().unwrap();
    assert!(loaded.set_aside.is_empty());
    assert_eq!(loaded.decisions.len(), 1);
    assert_eq!(loaded.decisions[&s2], first, "the first decision stands on disk");
}

/// A key holding a record that does not check out is not overwritten either: the next load sets
/// it aside (and reports it), instead of a put silently burying it.
#[test]
fn put_does_not_overwrite_an_unreadable_record() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    let (terms, s2) = (p.terms(1), Digest([42; 32]));
    drop(DecisionStore::open(dir.path(), p.t.peer_id()).unwrap());
    write_raw(dir.path(), columns::DECISIONS, &s2.0, b"\x01{\"decision\":");
    let step = Arbiter::new(p.t.clone(), Default::default()).handle(p.b.peer_id(), p.cancel(&terms, s2), 1_000).unwrap();
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let err = store.put(step.persist.as_ref().unwrap()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Record(RecordError { defect: RecordDefect::Invalid(why), .. })
            if matches!(why.downcast_ref::<InvalidDecision>(), Some(InvalidDecision::OccupiedByUnreadable { .. }))),
        "{err}"
    );
    let loaded = store.load().unwrap();
    assert_eq!(loaded.set_aside.len(), 1, "the unreadable record is still there to be set aside");
    assert!(loaded.decisions.is_empty());
}

#[test]
fn put_refuses_a_decision_this_arbiter_did_not_sign() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let other = Keypair::from_seed([9; 32]);
    let mut terms = p.terms(1);
    terms.arbiter = other.peer_id();
    let s2 = Digest([7; 32]);
    let mut foreign = Arbiter::new(other, Default::default());
    let step = foreign.handle(p.b.peer_id(), p.cancel(&terms, s2), 5).unwrap();
    let err = store.put(step.persist.as_ref().unwrap()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Record(RecordError { column: columns::DECISIONS, key, defect: RecordDefect::Invalid(why) })
            if key == &s2.0 && matches!(why.downcast_ref::<InvalidDecision>(), Some(InvalidDecision::ForeignArbiter { .. }))),
        "{err}"
    );
    assert!(store.load().unwrap().decisions.is_empty());
}

fn write_raw(dir: &Path, column: &str, key: &[u8], value: &[u8]) {
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, columns::ALL).unwrap();
    db.put_cf(db.cf_handle(column).unwrap(), key, value).unwrap();
}

fn encode(record: &DecisionRecord) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend(serde_json::to_vec(record).unwrap());
    bytes
}

#[test]
fn tampered_foreign_and_garbage_decisions_are_set_aside() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let arbiter = decide(&p, &mut store, 4);
    drop(store);
    let mut expected = arbiter.decisions().clone();

    // Outcome flipped after signing.
    let s2_flip = Digest([50; 32]);
    let mut flipped = expected.remove(&s2_flip).unwrap();
    flipped.decision.outcome = Outcome::Completed;
    // A genuine record filed under another s2.
    let moved = expected[&Digest([51; 32])].clone();
    // A decision by another arbiter, for terms naming it.
    let other = Keypair::from_seed([9; 32]);
    let mut foreign_terms = p.terms(9);
    foreign_terms.arbiter = other.peer_id();
    let foreign_step =
        Arbiter::new(other, Default::default()).handle(p.b.peer_id(), p.cancel(&foreign_terms, Digest([60; 32])), 5).unwrap();
    // A genuine decision whose stored terms were altered (h no longer matches).
    let s2_terms = Digest([52; 32]);
    let mut altered = expected.remove(&s2_terms).unwrap();
    altered.terms.expires_at_ms += 1;

    let corrupt: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        (s2_flip.0.to_vec(), encode(&flipped), "decision does not check out"),
        (vec![70; 32], encode(&moved), "decision does not check out"),
        (vec![60; 32], encode(foreign_step.persist.as_ref().unwrap()), "not this store's"),
        (s2_terms.0.to_vec(), encode(&altered), "decision does not check out"),
        (vec![71; 32], b"\x01{\"decision\":".to_vec(), "undecodable record"),
        (vec![72; 32], b"\x05{}".to_vec(), "format version 5"),
        (vec![73; 3], encode(&moved), "key is 3 bytes"),
        (vec![74; 32], vec![1; 64 * 1024 + 1], "over the 65536-byte limit"),
    ];
    for (key, value, _) in &corrupt {
        write_raw(dir.path(), columns::DECISIONS, key, value);
    }

    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.decisions, expected);
    assert_eq!(loaded.set_aside.len(), corrupt.len(), "{:#?}", loaded.set_aside);
    let quarantined = store.quarantined().unwrap();
    for (key, raw, reason) in &corrupt {
        let s = loaded.set_aside.iter().find(|s| s.key_hex == hex::encode(key)).unwrap();
        assert_eq!(s.column, columns::DECISIONS);
        assert!(s.reason.contains(reason), "reason {:?} lacks {reason:?}", s.reason);
        let q = quarantined.iter().find(|q| q.key == *key).unwrap();
        assert_eq!(&q.raw, raw);
    }
    drop(store);
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let again = store.load().unwrap();
    assert!(again.set_aside.is_empty());
    assert_eq!(again.decisions, expected);
}

#[test]
fn equivocation_evidence_is_appended_across_reopens() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let mut arbiter = decide(&p, &mut store, 1);
    let s2 = Digest([50; 32]);
    let mut other_terms = p.terms(0);
    other_terms.expires_at_ms += 5;
    let err = arbiter.handle(p.b.peer_id(), p.cancel(&other_terms, s2), 2_000).unwrap_err();
    let evidence = EquivocationEvidence::from_error(&err, p.b.peer_id(), 2_000).unwrap();
    assert_eq!((evidence.decided_h, evidence.asked_h), (p.terms(0).h(), other_terms.h()));
    assert_eq!(store.record_equivocation(&evidence).unwrap(), 0);
    drop(store);

    let mut store = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap();
    let second = EquivocationEvidence { at_ms: 3_000, ..evidence.clone() };
    assert_eq!(store.record_equivocation(&second).unwrap(), 1, "numbering continues after a reopen");
    assert_eq!(store.equivocations().unwrap(), vec![evidence, second]);
    assert!(store.load().unwrap().set_aside.is_empty(), "evidence does not disturb decisions");
}

#[test]
fn a_store_of_another_format_version_is_refused() {
    let p = parties();
    let dir = tempfile::tempdir().unwrap();
    drop(DecisionStore::open(dir.path(), p.t.peer_id()).unwrap());
    write_raw(dir.path(), columns::META, b"format_version", &[9]);
    let err = DecisionStore::open(dir.path(), p.t.peer_id()).unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedFormat { supported: 1, .. }), "{err}");
}
