//! Each check shown to fire: real states from the simulator, each with one planted violation.

use std::collections::BTreeMap;

use valex_arbiter::DecisionRecord;
use valex_node::exchange::initiator::InitiatorPhase;
use valex_node::exchange::{Acquired, Evidence, NodeState, Session, SessionOutcome, TimerKind, VaultEntry};
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterRequest, Outcome};
use valex_proto::value::Value;
use valex_proto::wire::ErrorCode;
use valex_proto::{Digest, Signature};

use super::{Invariant, NamedState, Violation, all_terminal, check_always, check_at_rest};
use crate::sim::{Action, Payload, Role, World, WorldConfig};

/// A and B's persisted states, T's decisions and the two values, taken from a simulated world.
#[derive(Clone)]
struct Snapshot {
    a: NodeState,
    b: NodeState,
    t: BTreeMap<Digest, DecisionRecord>,
    issued: [Digest; 2],
    s1: Digest,
}

impl Snapshot {
    fn of(world: &World) -> Self {
        let s1 = world.session(Role::A).map_or(Digest::default(), Session::id);
        Self {
            a: world.a.persisted.clone(),
            b: world.b.persisted.clone(),
            t: world.t.clone(),
            issued: [world.cast().v1.id(), world.cast().v2.id()],
            s1,
        }
    }

    fn named(&self) -> [NamedState<'_>; 2] {
        [NamedState { name: "A", state: &self.a }, NamedState { name: "B", state: &self.b }]
    }

    fn always(&self) -> Result<(), Violation> {
        check_always(&self.named(), &self.t, &self.issued)
    }

    fn at_rest(&self) -> Result<(), Violation> {
        check_at_rest(&self.named(), &self.issued)
    }

    fn a_session(&mut self) -> &mut Session {
        self.a.sessions.values_mut().next().expect("A has a session")
    }

    fn b_session(&mut self) -> &mut Session {
        self.b.sessions.values_mut().next().expect("B has a session")
    }
}

/// Asserts `result` is a violation of `invariant` whose detail says each of `words`.
fn assert_fires(result: Result<(), Violation>, invariant: Invariant, words: &[&str]) {
    let violation = result.expect_err("the planted violation went unseen");
    assert_eq!(violation.invariant, invariant, "{violation}");
    for word in words {
        assert!(violation.detail.contains(word), "{violation:?} does not say {word:?}");
    }
}

fn apply(world: &mut World, action: Action) {
    world.apply(&action).unwrap_or_else(|e| panic!("{action}: {e}"));
}

fn deliver_next(world: &mut World) {
    apply(world, Action::Deliver { index: 0, keep: false });
}

fn fire_deadline(world: &mut World, role: Role) {
    let (session, kind) = *world.party(role).timers.keys().find(|(_, k)| *k == TimerKind::Deadline).expect("a deadline is armed");
    apply(world, Action::Fire { role, session, kind });
}

fn deliver_arbiter_request(world: &mut World) {
    let index = world.network().iter().position(|e| matches!(e.payload, Payload::ArbiterRequest(_))).expect("a request to T in flight");
    apply(world, Action::Deliver { index, keep: false });
}

fn started() -> World {
    let mut world = World::new(WorldConfig::default());
    apply(&mut world, Action::Start { exchange: 0 });
    world
}

/// A VALID (M3 in flight), B VALID.
fn both_valid() -> World {
    let mut world = started();
    deliver_next(&mut world); // M1
    deliver_next(&mut world); // M2
    world
}

/// Both DONE by M3 and M4.
fn done() -> World {
    let mut world = both_valid();
    deliver_next(&mut world); // M3
    deliver_next(&mut world); // M4
    world
}

/// M3 lost; A asked T, which decided COMPLETED; B still VALID.
fn completed_by_arbiter() -> World {
    let mut world = both_valid();
    apply(&mut world, Action::Drop { index: 0 });
    fire_deadline(&mut world, Role::A);
    let request = world.network().iter().any(|e| matches!(e.payload, Payload::ArbiterRequest(ArbiterRequest::Complete(_))));
    assert!(request, "A asks T to complete: {world}");
    deliver_arbiter_request(&mut world);
    assert!(world.t.values().all(|r| r.decision.outcome == Outcome::Completed) && world.t.len() == 1, "{world}");
    world
}

/// B went PENDING before M2 reached A; T cancelled; everything delivered.
fn cancelled() -> World {
    let mut world = started();
    deliver_next(&mut world); // M1
    fire_deadline(&mut world, Role::B);
    deliver_arbiter_request(&mut world);
    world.heal(200).expect("heals");
    world
}

/// A gave up waiting for M2: ABORTED.
fn aborted() -> World {
    let mut world = started();
    fire_deadline(&mut world, Role::A);
    world
}

#[test]
fn real_states_pass_every_check() {
    let worlds = [
        ("started", started()),
        ("both valid", both_valid()),
        ("done", done()),
        ("by arbiter", completed_by_arbiter()),
        ("cancelled", cancelled()),
        ("aborted", aborted()),
    ];
    for (name, world) in worlds {
        let snapshot = Snapshot::of(&world);
        snapshot.always().unwrap_or_else(|v| panic!("{name}: {v}"));
        if all_terminal(&snapshot.named()) {
            snapshot.at_rest().unwrap_or_else(|v| panic!("{name}: {v}"));
        }
    }
    let outcome = |world: &World, role| world.session(role).map(Session::outcome);
    let (done, cancelled, aborted) = (done(), cancelled(), aborted());
    assert_eq!((outcome(&done, Role::A), outcome(&done, Role::B)), (Some(SessionOutcome::Done), Some(SessionOutcome::Done)));
    assert_eq!(outcome(&cancelled, Role::A), Some(SessionOutcome::Cancelled), "{cancelled}");
    assert_eq!(outcome(&cancelled, Role::B), Some(SessionOutcome::Cancelled), "{cancelled}");
    assert_eq!(outcome(&aborted, Role::A), Some(SessionOutcome::Aborted), "{aborted}");
}

// -- §6.3 agreement --

#[test]
fn agreement_flags_an_initiator_aborted_or_started_against_a_completed_decision() {
    let base = Snapshot::of(&completed_by_arbiter());
    base.always().unwrap();
    for phase in [InitiatorPhase::Aborted { reason: ErrorCode::Expired }, InitiatorPhase::Started] {
        let mut planted = base.clone();
        let name = phase.name();
        let Session::Initiator(a) = planted.a_session() else { unreachable!() };
        a.phase = phase;
        if name == "STARTED" {
            // A STARTED session keeps V1 locked in the vault.
            let v1 = a.v1.clone();
            planted.a.vault.insert(v1.id(), VaultEntry { value: v1.clone(), acquired: Acquired::Issued });
            planted.a.locks.insert(v1.id(), planted.s1);
        }
        assert_fires(planted.always(), Invariant::Agreement, &["A: initiator session", name, "decided COMPLETED"]);
    }
}

#[test]
fn agreement_flags_a_decision_bound_to_another_h_or_arbiter() {
    let base = Snapshot::of(&completed_by_arbiter());
    let mut other_h = base.clone();
    other_h.t.values_mut().for_each(|r| r.decision.h = Digest::of(b"another h"));
    assert_fires(other_h.always(), Invariant::Agreement, &["bound to h", &Digest::of(b"another h").short()]);

    let mut other_arbiter = base.clone();
    let stranger = Keypair::from_seed([0x5E; 32]).peer_id();
    other_arbiter.t.values_mut().for_each(|r| r.terms.arbiter = stranger);
    assert_fires(other_arbiter.always(), Invariant::Agreement, &["and arbiter", &stranger.to_string()]);
}

// -- §6.1 and §6.5 at every moment --

#[test]
fn check_always_flags_a_vanished_value() {
    let mut planted = Snapshot::of(&World::new(WorldConfig::default()));
    let v2 = planted.issued[1];
    planted.b.vault.remove(&v2);
    assert_fires(planted.always(), Invariant::Conservation, &[&v2.short(), "vanished"]);

    // Mid-exchange: V2 out of B's vault, in escrow of both open sessions; B's session forgets it.
    let mut planted = Snapshot::of(&both_valid());
    planted.always().unwrap();
    planted.a.sessions.clear();
    planted.a.vault.clear();
    planted.b.sessions.clear();
    assert_fires(planted.always(), Invariant::Conservation, &["vanished"]);
}

#[test]
fn check_always_flags_a_value_spendable_while_another_node_holds_it() {
    let mut planted = Snapshot::of(&started());
    let v1 = planted.a.vault[&planted.issued[0]].clone();
    planted.b.vault.insert(v1.value.id(), v1);
    assert_fires(planted.always(), Invariant::Conservation, &["spendable at B while A's open initiator session", "STARTED"]);
}

#[test]
fn check_always_flags_a_started_session_whose_v1_is_not_locked() {
    let mut planted = Snapshot::of(&started());
    planted.a.locks.clear();
    assert_fires(planted.always(), Invariant::SingleEscrow, &["STARTED session", "has not locked it"]);
}

#[test]
fn check_always_flags_a_lock_left_by_an_ended_session() {
    let mut planted = Snapshot::of(&aborted());
    planted.always().unwrap();
    planted.a.locks.insert(planted.issued[0], planted.s1);
    assert_fires(planted.always(), Invariant::Conservation, &["still locked", "ended ABORTED"]);
}

#[test]
fn check_always_flags_a_received_value_without_a_verifying_receipt() {
    let base = Snapshot::of(&done());
    base.always().unwrap();
    let (v1, v2) = (base.issued[0], base.issued[1]);

    let mut no_receipt = base.clone();
    no_receipt.a.receipts.clear();
    assert_fires(no_receipt.always(), Invariant::Conservation, &["A: holds value", &v2.short(), "no receipt"]);

    let mut wrong_r2 = base.clone();
    wrong_r2.a.receipts.get_mut(&v2).unwrap().evidence = Evidence::Secret([7; 32]);
    assert_fires(wrong_r2.always(), Invariant::Conservation, &["r2 does not hash to s2"]);

    let mut no_se = base.clone();
    no_se.b.receipts.get_mut(&v1).unwrap().se = None;
    assert_fires(no_se.always(), Invariant::Conservation, &["B: holds value", "without A's Se"]);

    let mut forged_se = base.clone();
    forged_se.b.receipts.get_mut(&v1).unwrap().se = Some(Signature([3; 64]));
    assert_fires(forged_se.always(), Invariant::Conservation, &["Se does not verify"]);

    let mut unknown_session = base.clone();
    unknown_session.a.vault.get_mut(&v2).unwrap().acquired = Acquired::Exchange(Digest::of(b"no such session"));
    assert_fires(unknown_session.always(), Invariant::Conservation, &["without a verifying receipt", "no such session"]);
}

#[test]
fn check_always_flags_a_value_returned_without_a_cancel_decision() {
    let mut aborted = Snapshot::of(&aborted());
    let v1 = aborted.issued[0];
    aborted.a.vault.get_mut(&v1).unwrap().acquired = Acquired::Returned(aborted.s1);
    assert_fires(aborted.always(), Invariant::Agreement, &["returned by session", "ABORTED, not CANCELLED"]);

    let mut cancelled = Snapshot::of(&cancelled());
    cancelled.always().unwrap();
    let Session::Responder(b) = cancelled.b_session() else { unreachable!() };
    let valex_node::exchange::responder::ResponderPhase::Cancelled { decision } = &mut b.phase else { unreachable!() };
    decision.sig = Signature([9; 64]);
    assert_fires(cancelled.always(), Invariant::Agreement, &["B: holds value", "the decision does not verify"]);
}

// -- at rest --

#[test]
fn check_at_rest_flags_a_minted_value() {
    let mut planted = Snapshot::of(&done());
    planted.at_rest().unwrap();
    let minted = Value::issue(&Keypair::from_seed([0x66; 32]), "voucher", 500, Vec::new(), [9; 16]).unwrap();
    let id = minted.id();
    planted.a.vault.insert(id, VaultEntry { value: minted, acquired: Acquired::Issued });
    assert_fires(planted.at_rest(), Invariant::Conservation, &[&id.short(), "never issued: minted"]);
}

#[test]
fn check_at_rest_flags_a_responder_session_without_its_initiator() {
    let mut planted = Snapshot::of(&done());
    planted.a.sessions.clear();
    assert_fires(planted.at_rest(), Invariant::Fairness, &["B's responder session", "DONE", "no counterpart"]);
}

#[test]
fn check_at_rest_flags_a_done_responder_against_an_initiator_that_is_not_done() {
    let mut planted = Snapshot::of(&done());
    let Session::Initiator(a) = planted.a_session() else { unreachable!() };
    a.phase = InitiatorPhase::Aborted { reason: ErrorCode::Expired };
    assert_fires(planted.at_rest(), Invariant::Fairness, &["initiator A ended aborted, responder B ended done"]);
}

#[test]
fn check_at_rest_flags_sides_on_different_terms() {
    let mut planted = Snapshot::of(&done());
    let Session::Responder(b) = planted.b_session() else { unreachable!() };
    b.h = Digest::of(b"other terms");
    assert_fires(planted.at_rest(), Invariant::Fairness, &["holds terms h", &Digest::of(b"other terms").short()]);
}

#[test]
fn check_at_rest_flags_vaults_that_contradict_the_outcome() {
    // Both DONE, but V1 went back to A: exactly one vault holds each value, yet A kept what it gave.
    let mut planted = Snapshot::of(&done());
    let v1 = planted.issued[0];
    let mut entry = planted.b.vault.remove(&v1).unwrap();
    entry.acquired = Acquired::Issued;
    planted.a.vault.insert(v1, entry);
    assert_fires(planted.at_rest(), Invariant::Fairness, &["A: initiator session", "ended done", "still holds value", &v1.short()]);

    // Both CANCELLED, but B's V2 is gone to A.
    let mut planted = Snapshot::of(&cancelled());
    planted.at_rest().unwrap();
    let v2 = planted.issued[1];
    let mut entry = planted.b.vault.remove(&v2).unwrap();
    entry.acquired = Acquired::Exchange(Digest::of(b"a later exchange"));
    planted.a.vault.insert(v2, entry);
    assert_fires(planted.at_rest(), Invariant::Fairness, &["ended cancelled", "neither holds value", &v2.short()]);
}
