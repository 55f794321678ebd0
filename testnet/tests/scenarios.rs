//! Named scenarios of protocol.md §4–§5, each scripted step by step through the real sans-IO cores
//! of A and B and the real arbiter rule, in the simulator ([`World`]).
//!
//! Every test checks the §6 invariants after every step ([`check_world`]), and at the end: both
//! parties' phases and outcomes, the arbiter's decisions, where V1 and V2 ended up, and the error
//! or refusal the case is about (its [`ErrorCode`] where the core returns one). Hostile messages
//! are real envelopes taken from the network, altered, and injected; where protocol.md says a
//! receiver rejects an input, the test also checks the input left the receiver's state unchanged.
//!
//! Messages are named by their `Display` label, e.g. `A->B M1`, `B->A refusal PENDING`,
//! `B->T CancelRequest`, `T->A Decision CANCELLED`.

use valex_node::exchange::initiator::InitiatorPhase;
use valex_node::exchange::responder::{PendingReason, ResponderPhase};
use valex_node::exchange::{
    ArbiterPolicy, Evidence, ExchangeError, NodeState, Session, SessionId, SessionOutcome, StaticPolicy, TimerKind,
};
use valex_proto::crypto::Keypair;
use valex_proto::message::{
    Agree, ArbiterRequest, ArbiterResponse, CancelRequest, Confirm, Decision, DecisionError, ExchangeRequest, ExchangeResponse, Outcome,
    Start, Terms,
};
use valex_proto::value::{Value, ValueId};
use valex_proto::wire::ErrorCode;
use valex_proto::{Digest, PeerId, Signature, canonical};
use valex_testnet::invariants::check_world;
use valex_testnet::sim::{Action, Envelope, Payload, Role, SecondExchange, SecondOffer, World, WorldConfig};

// ---------------------------------------------------------------------------------------------
// Driving the world
// ---------------------------------------------------------------------------------------------

/// Steps a fault-free heal may take before the test fails.
const HEAL_STEPS: usize = 500;

fn world() -> World {
    World::new(WorldConfig::default())
}

fn world_with(config: WorldConfig) -> World {
    World::new(config)
}

/// Panics with the world's state if an invariant of §6 is broken.
fn check(world: &World, after: &str) {
    if let Err(violation) = check_world(world) {
        panic!("after {after}: {violation}\n{world}");
    }
}

fn act(world: &mut World, action: Action) {
    if let Err(e) = world.apply(&action) {
        panic!("{action}: {e}\n{world}");
    }
    check(world, &action.to_string());
}

/// The index of the first message in flight labelled `label`.
fn index_of(world: &World, label: &str) -> usize {
    world.network().position(|e| e.to_string() == label).unwrap_or_else(|| panic!("no `{label}` in flight: {world}"))
}

fn in_flight(world: &World, label: &str) -> bool {
    world.network().iter().any(|e| e.to_string() == label)
}

/// A copy of the first message labelled `label`, left in flight.
fn peek(world: &World, label: &str) -> Envelope {
    world.network().get(index_of(world, label)).cloned().unwrap_or_else(|| unreachable!())
}

fn deliver(world: &mut World, label: &str) {
    let index = index_of(world, label);
    act(world, Action::Deliver { index, keep: false });
}

/// Delivers a copy of `label` and keeps the original in flight (a duplicate).
fn deliver_copy(world: &mut World, label: &str) {
    let index = index_of(world, label);
    act(world, Action::Deliver { index, keep: true });
}

/// The network loses `label`; returns what was lost.
fn lose(world: &mut World, label: &str) -> Envelope {
    let lost = peek(world, label);
    act(world, Action::Drop { index: index_of(world, label) });
    lost
}

/// Removes `label` from the network and returns it, for the test to alter and inject.
fn intercept(world: &mut World, label: &str) -> Envelope {
    lose(world, label)
}

fn inject(world: &mut World, envelope: Envelope) {
    let what = format!("injecting {envelope}");
    world.inject(envelope);
    check(world, &what);
}

/// Injects `envelope` and delivers exactly it at once.
fn inject_and_deliver(world: &mut World, envelope: Envelope) {
    inject(world, envelope.clone());
    let index = world.network().position(|e| *e == envelope).unwrap_or_else(|| unreachable!());
    act(world, Action::Deliver { index, keep: false });
}

/// Delivers B's reply `label` to A at once, checking it is addressed to A's session (a response
/// travels on the stream of the request it answers).
fn deliver_reply(world: &mut World, label: &str) {
    let reply = intercept(world, label);
    assert_eq!(reply.session, session_id(world, reply.to), "a reply must belong to the session of its request");
    inject_and_deliver(world, reply);
}

fn session_id(world: &World, role: Role) -> SessionId {
    world.session(role).map(Session::id).unwrap_or_else(|| panic!("{role} has no session: {world}"))
}

fn fire(world: &mut World, role: Role, kind: TimerKind) {
    let session = session_id(world, role);
    act(world, Action::Fire { role, session, kind });
}

/// Moves `role`'s clock on (without firing its timers) and checks where it lands.
fn advance_clock(world: &mut World, role: Role, to: u64) {
    assert!(world.enabled(false).contains(&Action::AdvanceClock { role }), "{role}'s clock cannot move on: {world}");
    act(world, Action::AdvanceClock { role });
    assert_eq!(world.party(role).now_ms, to, "{role}'s clock");
}

fn restart(world: &mut World, role: Role) {
    act(world, Action::Restart { role });
}

fn heal(world: &mut World) {
    if let Err(e) = world.heal(HEAL_STEPS) {
        panic!("heal: {e}");
    }
    check(world, "healing");
    assert!(world.network().is_empty(), "healed but messages in flight: {world}");
}

// ---------------------------------------------------------------------------------------------
// Looking at the world
// ---------------------------------------------------------------------------------------------

fn phase(world: &World, role: Role) -> Option<&'static str> {
    world.session(role).map(Session::phase_name)
}

fn outcome(world: &World, role: Role) -> Option<SessionOutcome> {
    world.session(role).map(Session::outcome)
}

/// Asserts both parties' phase names (`None`: no session) and that memory and disk agree.
fn assert_phases(world: &World, a: Option<&str>, b: Option<&str>) {
    assert_eq!(phase(world, Role::A), a, "A's phase: {world}");
    assert_eq!(phase(world, Role::B), b, "B's phase: {world}");
    for role in [Role::A, Role::B] {
        assert_eq!(world.party(role).persisted, world.party(role).volatile, "{role}: disk and memory differ at rest");
    }
}

fn v1(world: &World) -> ValueId {
    world.cast().v1.id()
}

fn v2(world: &World) -> ValueId {
    world.cast().v2.id()
}

/// Who can spend `id` (checked in memory and on disk alike).
fn holder(world: &World, id: &ValueId) -> Option<Role> {
    let mut holders = Vec::new();
    for role in [Role::A, Role::B] {
        let party = world.party(role);
        assert_eq!(party.volatile.is_spendable(id), party.persisted.is_spendable(id), "{role}: disk and memory disagree on {id}");
        if party.volatile.is_spendable(id) {
            holders.push(role);
        }
    }
    assert!(holders.len() <= 1, "{id} spendable in {holders:?}");
    holders.first().copied()
}

/// Asserts where V1 and V2 can be spent (`None`: nowhere, i.e. locked or in escrow).
fn assert_values(world: &World, v1_at: Option<Role>, v2_at: Option<Role>) {
    assert_eq!(holder(world, &v1(world)), v1_at, "V1's holder: {world}");
    assert_eq!(holder(world, &v2(world)), v2_at, "V2's holder: {world}");
}

/// Both kept what they had.
fn assert_kept(world: &World) {
    assert_values(world, Some(Role::A), Some(Role::B));
}

/// The values swapped.
fn assert_swapped(world: &World) {
    assert_values(world, Some(Role::B), Some(Role::A));
}

/// T's decisions as (outcome, who asked first).
fn decisions(world: &World) -> Vec<(Outcome, Role)> {
    world
        .t
        .values()
        .map(|record| (record.decision.outcome, world.cast().role(&record.requested_by).unwrap_or_else(|| panic!("unknown requester"))))
        .collect()
}

fn initiator_phase(world: &World) -> InitiatorPhase {
    match world.session(Role::A) {
        Some(Session::Initiator(s)) => s.phase.clone(),
        other => panic!("A has no initiator session: {other:?}"),
    }
}

fn responder_phase(world: &World) -> ResponderPhase {
    match world.session(Role::B) {
        Some(Session::Responder(s)) => s.phase.clone(),
        other => panic!("B has no responder session: {other:?}"),
    }
}

fn aborted_reason(world: &World) -> ErrorCode {
    match initiator_phase(world) {
        InitiatorPhase::Aborted { reason } => reason,
        other => panic!("A is {}, not ABORTED", other.name()),
    }
}

/// B's terms, h and s2.
fn b_terms(world: &World) -> (Terms, Digest, Digest) {
    match world.session(Role::B) {
        Some(Session::Responder(s)) => (s.terms.clone(), s.h, s.s2),
        other => panic!("B has no responder session: {other:?}"),
    }
}

fn state(world: &World, role: Role) -> NodeState {
    assert_eq!(world.party(role).persisted, world.party(role).volatile);
    world.party(role).volatile.clone()
}

/// Whether some log line of `role` contains `text`.
fn logged(world: &World, role: Role, text: &str) -> bool {
    let prefix = format!("{role}: ");
    world.log().iter().any(|line| line.starts_with(&prefix) && line.contains(text))
}

/// The code of a refusal in flight.
fn refusal_code(envelope: &Envelope) -> ErrorCode {
    match &envelope.payload {
        Payload::Response(ExchangeResponse::Refusal(r)) | Payload::ArbiterResponse(ArbiterResponse::Refusal(r)) => r.code,
        other => panic!("not a refusal: {other:?}"),
    }
}

/// The error the receiver's core returns for `envelope` (which it must refuse), after checking
/// that the core, having refused it, holds exactly the state it held before.
fn refused_with(world: &World, envelope: &Envelope) -> ExchangeError {
    let Some(verdict) = world.probe_delivery(envelope) else { panic!("{envelope} is for T") };
    match verdict {
        Err(refused) => {
            assert_eq!(refused.core_state, world.party(envelope.to).volatile, "the core changed its state refusing {envelope}");
            refused.error
        }
        Ok(effects) => panic!("{envelope} was accepted: {effects:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Building messages
// ---------------------------------------------------------------------------------------------

fn m1(envelope: &Envelope) -> Start {
    match &envelope.payload {
        Payload::Request(ExchangeRequest::Start(m)) => m.clone(),
        other => panic!("not M1: {other:?}"),
    }
}

fn m2(envelope: &Envelope) -> Agree {
    match &envelope.payload {
        Payload::Response(ExchangeResponse::Agree(m)) => m.clone(),
        other => panic!("not M2: {other:?}"),
    }
}

fn m3(envelope: &Envelope) -> Confirm {
    match &envelope.payload {
        Payload::Request(ExchangeRequest::Confirm(m)) => m.clone(),
        other => panic!("not M3: {other:?}"),
    }
}

fn cancel_request(envelope: &Envelope) -> CancelRequest {
    match &envelope.payload {
        Payload::ArbiterRequest(ArbiterRequest::Cancel(r)) => r.clone(),
        other => panic!("not a CancelRequest: {other:?}"),
    }
}

fn with(envelope: &Envelope, payload: Payload) -> Envelope {
    Envelope { payload, ..envelope.clone() }
}

/// A signature that does not verify: `sig` with one bit flipped.
fn corrupt(sig: Signature) -> Signature {
    let mut bytes = sig.0;
    bytes[0] ^= 1;
    Signature(bytes)
}

fn sign_decision(key: &Keypair, s2: Digest, h: Digest, outcome: Outcome) -> Decision {
    Decision { s2, h, outcome, decided_at_ms: 0, sig: key.sign(&canonical::decision_bytes(&h, &s2, outcome)) }
}

/// A decision from T's address, to `to`, for `session`.
fn decision_envelope(to: Role, session: SessionId, decision: Decision) -> Envelope {
    Envelope { from: Role::T, to, session, payload: Payload::ArbiterResponse(ArbiterResponse::Decision(decision)) }
}

/// Start, M1, M2: A and B VALID, M3 in flight.
fn up_to_m3(world: &mut World) {
    act(world, Action::Start { exchange: 0 });
    deliver(world, "A->B M1");
    deliver(world, "B->A M2");
    assert_phases(world, Some("VALID"), Some("VALID"));
    assert!(in_flight(world, "A->B M3"));
}

/// M3 lost for good: B PENDING at its expiry with its CancelRequest in flight, A RESOLVING at
/// expiry + grace with its CompleteRequest in flight; nothing delivered to T yet.
fn both_ask_the_arbiter(world: &mut World) {
    up_to_m3(world);
    lose(world, "A->B M3");
    fire(world, Role::B, TimerKind::Deadline);
    assert_phases(world, Some("VALID"), Some("PENDING"));
    assert!(matches!(responder_phase(world), ResponderPhase::Pending { reason: PendingReason::Expired, .. }));
    fire(world, Role::A, TimerKind::Retry);
    lose(world, "A->B M3");
    fire(world, Role::A, TimerKind::Deadline);
    assert_phases(world, Some("RESOLVING"), Some("PENDING"));
    assert!(in_flight(world, "B->T CancelRequest") && in_flight(world, "A->T CompleteRequest"), "{world}");
    assert_values(world, None, None);
    assert!(world.t.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The normal path
// ---------------------------------------------------------------------------------------------

#[test]
fn happy_path() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    assert_phases(&w, Some("STARTED"), None);
    assert_values(&w, None, Some(Role::B)); // V1 locked in A's vault
    deliver(&mut w, "A->B M1");
    assert_phases(&w, Some("STARTED"), Some("VALID"));
    assert_values(&w, None, None); // V2 out of B's vault, into escrow
    deliver(&mut w, "B->A M2");
    assert_phases(&w, Some("VALID"), Some("VALID"));
    deliver(&mut w, "A->B M3");
    assert_phases(&w, Some("VALID"), Some("DONE"));
    assert_values(&w, Some(Role::B), None);
    deliver(&mut w, "B->A M4");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_eq!(outcome(&w, Role::A), Some(SessionOutcome::Done));
    assert_eq!(outcome(&w, Role::B), Some(SessionOutcome::Done));
    assert_swapped(&w);
    assert!(w.t.is_empty(), "the arbiter is not involved on the normal path");
    assert!(w.log().is_empty(), "{:?}", w.log());
    assert!(w.network().is_empty());
    // Each holds its new value with a receipt settled by r2.
    let a_receipt = &w.party(Role::A).volatile.receipts[&v2(&w)];
    let b_receipt = &w.party(Role::B).volatile.receipts[&v1(&w)];
    assert!(matches!(a_receipt.evidence, Evidence::Secret(_)) && a_receipt.se.is_some());
    assert!(matches!(b_receipt.evidence, Evidence::Secret(_)) && b_receipt.se.is_some());
    assert_eq!(a_receipt.terms, b_receipt.terms);
    heal(&mut w); // nothing left to do
}

// ---------------------------------------------------------------------------------------------
// Lost messages
// ---------------------------------------------------------------------------------------------

#[test]
fn m1_lost() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    lose(&mut w, "A->B M1");
    assert_phases(&w, Some("STARTED"), None);
    fire(&mut w, Role::A, TimerKind::Retry); // A sends M1 again
    assert!(in_flight(&w, "A->B M1"));
    heal(&mut w);
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    assert!(w.t.is_empty());
    assert!(w.log().is_empty(), "{:?}", w.log());
}

#[test]
fn m1_lost_until_expiry() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    lose(&mut w, "A->B M1");
    fire(&mut w, Role::A, TimerKind::Retry);
    lose(&mut w, "A->B M1");
    fire(&mut w, Role::A, TimerKind::Deadline);
    assert_phases(&w, Some("ABORTED"), None);
    assert_eq!(outcome(&w, Role::A), Some(SessionOutcome::Aborted));
    assert_eq!(aborted_reason(&w), ErrorCode::Expired);
    assert_kept(&w); // V1 unlocked, B never committed anything
    assert!(w.party(Role::A).volatile.locks.is_empty());
    assert!(w.t.is_empty());
    heal(&mut w);
    assert_phases(&w, Some("ABORTED"), None);
}

#[test]
fn m2_lost() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    deliver(&mut w, "A->B M1");
    let lost = lose(&mut w, "B->A M2");
    assert_phases(&w, Some("STARTED"), Some("VALID"));
    assert_values(&w, None, None);
    // A retries M1; B answers the same M2 again and changes nothing.
    fire(&mut w, Role::A, TimerKind::Retry);
    let b_before = state(&w, Role::B);
    deliver(&mut w, "A->B M1");
    assert_eq!(state(&w, Role::B), b_before, "a repeated M1 must not change B");
    assert_eq!(peek(&w, "B->A M2").payload, lost.payload, "B answers a repeated M1 with the same M2");
    deliver_reply(&mut w, "B->A M2");
    assert_phases(&w, Some("VALID"), Some("VALID"));
    heal(&mut w);
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    assert!(w.t.is_empty());
    assert!(w.log().is_empty(), "{:?}", w.log());
}

#[test]
fn m2_lost_until_expiry() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    deliver(&mut w, "A->B M1");
    lose(&mut w, "B->A M2");
    // A never committed: at its expiry it aborts and unlocks V1.
    fire(&mut w, Role::A, TimerKind::Deadline);
    assert_phases(&w, Some("ABORTED"), Some("VALID"));
    assert_eq!(aborted_reason(&w), ErrorCode::Expired);
    assert_values(&w, Some(Role::A), None);
    // B, with V2 in escrow, gets no M3 by expiry: PENDING, and asks T to cancel.
    fire(&mut w, Role::B, TimerKind::Deadline);
    assert_phases(&w, Some("ABORTED"), Some("PENDING"));
    deliver(&mut w, "B->T CancelRequest");
    deliver(&mut w, "T->B Decision CANCELLED");
    assert_phases(&w, Some("ABORTED"), Some("CANCELLED"));
    assert_eq!(outcome(&w, Role::B), Some(SessionOutcome::Cancelled));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
    heal(&mut w);
}

#[test]
fn m3_lost() {
    let mut w = world();
    up_to_m3(&mut w);
    lose(&mut w, "A->B M3");
    fire(&mut w, Role::A, TimerKind::Retry);
    deliver(&mut w, "A->B M3");
    assert_phases(&w, Some("VALID"), Some("DONE"));
    deliver(&mut w, "B->A M4");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    assert!(w.t.is_empty());
    assert!(w.log().is_empty(), "{:?}", w.log());
    heal(&mut w);
}

#[test]
fn m4_lost() {
    let mut w = world();
    up_to_m3(&mut w);
    deliver(&mut w, "A->B M3");
    let lost = lose(&mut w, "B->A M4");
    assert_phases(&w, Some("VALID"), Some("DONE"));
    assert_values(&w, Some(Role::B), None);
    // A retries M3; B, DONE, answers the same r2 again without changing anything.
    fire(&mut w, Role::A, TimerKind::Retry);
    let b_before = state(&w, Role::B);
    deliver(&mut w, "A->B M3");
    assert_eq!(state(&w, Role::B), b_before);
    assert_eq!(peek(&w, "B->A M4").payload, lost.payload, "B answers a repeated M3 with the same r2");
    deliver_reply(&mut w, "B->A M4");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    assert!(w.t.is_empty());
    assert!(w.log().is_empty(), "{:?}", w.log());
    heal(&mut w);
}

#[test]
fn m4_lost_until_expiry() {
    let mut w = world();
    up_to_m3(&mut w);
    deliver(&mut w, "A->B M3");
    lose(&mut w, "B->A M4");
    fire(&mut w, Role::A, TimerKind::Retry);
    deliver(&mut w, "A->B M3");
    lose(&mut w, "B->A M4");
    // No r2 by expiry + grace: A asks T to complete; B never asks anything (it is DONE).
    fire(&mut w, Role::A, TimerKind::Deadline);
    assert_phases(&w, Some("RESOLVING"), Some("DONE"));
    deliver(&mut w, "A->T CompleteRequest");
    deliver(&mut w, "T->A Decision COMPLETED");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_eq!(decisions(&w), vec![(Outcome::Completed, Role::A)]);
    assert_swapped(&w);
    let receipt = &w.party(Role::A).volatile.receipts[&v2(&w)];
    assert!(matches!(&receipt.evidence, Evidence::Decision(d) if d.outcome == Outcome::Completed));
    heal(&mut w);
}

// ---------------------------------------------------------------------------------------------
// Races at the arbiter
// ---------------------------------------------------------------------------------------------

#[test]
fn b_cancels_first() {
    let mut w = world();
    both_ask_the_arbiter(&mut w);
    deliver(&mut w, "B->T CancelRequest");
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    deliver(&mut w, "T->B Decision CANCELLED");
    assert_phases(&w, Some("RESOLVING"), Some("CANCELLED"));
    assert_values(&w, None, Some(Role::B));
    // A's CompleteRequest comes second: T answers with the decision it already made.
    deliver(&mut w, "A->T CompleteRequest");
    deliver(&mut w, "T->A Decision CANCELLED");
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(outcome(&w, Role::A), Some(SessionOutcome::Cancelled));
    assert_eq!(outcome(&w, Role::B), Some(SessionOutcome::Cancelled));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
    heal(&mut w);
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
}

#[test]
fn a_completes_first() {
    let mut w = world();
    both_ask_the_arbiter(&mut w);
    deliver(&mut w, "A->T CompleteRequest");
    assert_eq!(decisions(&w), vec![(Outcome::Completed, Role::A)]);
    deliver(&mut w, "T->A Decision COMPLETED");
    assert_phases(&w, Some("DONE"), Some("PENDING"));
    assert_values(&w, None, Some(Role::A));
    // B's CancelRequest comes second: T answers COMPLETED, and B takes V1.
    deliver(&mut w, "B->T CancelRequest");
    deliver(&mut w, "T->B Decision COMPLETED");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_eq!(decisions(&w), vec![(Outcome::Completed, Role::A)]);
    assert_swapped(&w);
    let receipt = &w.party(Role::B).volatile.receipts[&v1(&w)];
    assert!(receipt.se.is_none() && matches!(&receipt.evidence, Evidence::Decision(d) if d.outcome == Outcome::Completed));
    assert!(matches!(responder_phase(&w), ResponderPhase::Done { decision: Some(_), se: None }));
    heal(&mut w);
}

#[test]
fn arbiter_unreachable_then_back() {
    let mut w = world();
    both_ask_the_arbiter(&mut w);
    // T is unreachable: every request is lost, the retry timers send them again.
    for _ in 0..3 {
        lose(&mut w, "B->T CancelRequest");
        lose(&mut w, "A->T CompleteRequest");
        assert!(w.network().is_empty());
        fire(&mut w, Role::B, TimerKind::Retry);
        fire(&mut w, Role::A, TimerKind::Retry);
    }
    // A crash while waiting changes nothing: both resume asking.
    lose(&mut w, "B->T CancelRequest");
    lose(&mut w, "A->T CompleteRequest");
    restart(&mut w, Role::A);
    restart(&mut w, Role::B);
    assert_phases(&w, Some("RESOLVING"), Some("PENDING"));
    assert!(in_flight(&w, "B->T CancelRequest") && in_flight(&w, "A->T CompleteRequest"), "{w}");
    assert!(w.t.is_empty());
    assert_values(&w, None, None);
    // T is back.
    deliver(&mut w, "B->T CancelRequest");
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

#[test]
fn arbiter_unreachable_then_back_for_a_alone() {
    // Only A needs T (B is DONE and never asks): A keeps retrying until T answers.
    let mut w = world();
    up_to_m3(&mut w);
    deliver(&mut w, "A->B M3");
    lose(&mut w, "B->A M4");
    fire(&mut w, Role::A, TimerKind::Deadline);
    for _ in 0..3 {
        lose(&mut w, "A->T CompleteRequest");
        fire(&mut w, Role::A, TimerKind::Retry);
    }
    assert_phases(&w, Some("RESOLVING"), Some("DONE"));
    assert!(w.t.is_empty());
    heal(&mut w);
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_eq!(decisions(&w), vec![(Outcome::Completed, Role::A)]);
    assert_swapped(&w);
}

#[test]
fn duplicate_requests_to_the_arbiter() {
    let mut w = world();
    both_ask_the_arbiter(&mut w);
    deliver_copy(&mut w, "B->T CancelRequest");
    let first = w.t.clone();
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    let answer = peek(&w, "T->B Decision CANCELLED");
    // The same request again, and A's request: the same decision, nothing new recorded.
    deliver_copy(&mut w, "B->T CancelRequest");
    deliver_copy(&mut w, "A->T CompleteRequest");
    assert_eq!(w.t, first, "a repeated request must not change T's record");
    assert_eq!(peek(&w, "T->B Decision CANCELLED"), answer, "T answers a repeat with the identical decision");
    // Anyone may query the decision; the answer is the same.
    let s2 = b_terms(&w).2;
    let query = Envelope {
        from: Role::A,
        to: Role::T,
        session: session_id(&w, Role::A),
        payload: Payload::ArbiterRequest(ArbiterRequest::Query { s2 }),
    };
    inject_and_deliver(&mut w, query);
    assert_eq!(w.t, first);
    // Duplicate decisions reach both parties; the second copy changes nothing.
    deliver_copy(&mut w, "T->B Decision CANCELLED");
    let b_after = state(&w, Role::B);
    deliver_copy(&mut w, "T->B Decision CANCELLED");
    assert_eq!(state(&w, Role::B), b_after);
    deliver_copy(&mut w, "T->A Decision CANCELLED");
    let a_after = state(&w, Role::A);
    deliver(&mut w, "T->A Decision CANCELLED");
    assert_eq!(state(&w, Role::A), a_after);
    // The remaining copies of both requests reach T again.
    heal(&mut w);
    assert_eq!(w.t, first);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
    assert!(w.log().is_empty(), "{:?}", w.log());
}

// ---------------------------------------------------------------------------------------------
// Bad input (§4 checks)
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_sa_is_refused() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    deliver(&mut w, "A->B M1");
    let genuine = intercept(&mut w, "B->A M2");
    let mut forged = m2(&genuine);
    forged.sa = corrupt(forged.sa);
    // protocol.md §5: in STARTED, an invalid M2 aborts A locally (it has not committed).
    inject_and_deliver(&mut w, with(&genuine, Payload::Response(ExchangeResponse::Agree(forged))));
    assert_phases(&w, Some("ABORTED"), Some("VALID"));
    assert_eq!(aborted_reason(&w), ErrorCode::InvalidSignature);
    assert_values(&w, Some(Role::A), None);
    // The genuine M2, late, no longer changes A.
    let a_before = state(&w, Role::A);
    inject_and_deliver(&mut w, genuine);
    assert_eq!(state(&w, Role::A), a_before);
    // B hears nothing more, goes PENDING at expiry and has T cancel.
    heal(&mut w);
    assert_phases(&w, Some("ABORTED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

#[test]
fn bad_sa_is_refused_by_the_arbiter() {
    // A CancelRequest whose Sa does not verify is refused by T, which records nothing.
    let mut w = world();
    up_to_m3(&mut w);
    lose(&mut w, "A->B M3");
    fire(&mut w, Role::B, TimerKind::Deadline);
    let genuine = intercept(&mut w, "B->T CancelRequest");
    let mut forged = cancel_request(&genuine);
    forged.sa = corrupt(forged.sa);
    let refused = w.probe_arbiter(Role::B, ArbiterRequest::Cancel(forged.clone())).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidSignature);
    inject_and_deliver(&mut w, with(&genuine, Payload::ArbiterRequest(ArbiterRequest::Cancel(forged))));
    assert!(w.t.is_empty());
    assert_eq!(refusal_code(&peek(&w, "T->B arbiter refusal INVALID_SIGNATURE")), ErrorCode::InvalidSignature);
    let b_before = state(&w, Role::B);
    deliver(&mut w, "T->B arbiter refusal INVALID_SIGNATURE");
    assert_eq!(state(&w, Role::B), b_before, "a refusal from T changes nothing; B keeps asking");
    assert!(logged(&w, Role::B, "arbiter refused"), "{:?}", w.log());
    fire(&mut w, Role::B, TimerKind::Retry);
    deliver(&mut w, "B->T CancelRequest");
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

#[test]
fn bad_se_sends_b_pending() {
    let mut w = world();
    up_to_m3(&mut w);
    let genuine = intercept(&mut w, "A->B M3");
    let mut forged = m3(&genuine);
    forged.se = corrupt(forged.se);
    let forged = with(&genuine, Payload::Request(ExchangeRequest::Confirm(forged)));
    inject_and_deliver(&mut w, forged);
    // protocol.md §5: B VALID + M3 with an invalid Se → PENDING, CancelRequest to T.
    assert_phases(&w, Some("VALID"), Some("PENDING"));
    assert!(matches!(responder_phase(&w), ResponderPhase::Pending { reason: PendingReason::InvalidConfirm, .. }));
    assert_eq!(refusal_code(&peek(&w, "B->A refusal INVALID_SIGNATURE")), ErrorCode::InvalidSignature);
    assert!(in_flight(&w, "B->T CancelRequest"));
    assert_values(&w, None, None);
    // The refusal tells A that r2 will not come: A asks T to complete.
    deliver(&mut w, "B->A refusal INVALID_SIGNATURE");
    assert_phases(&w, Some("RESOLVING"), Some("PENDING"));
    // Whichever request T sees first decides; both orders end fair.
    let mut complete_first = w.clone();
    deliver(&mut w, "B->T CancelRequest");
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
    deliver(&mut complete_first, "A->T CompleteRequest");
    heal(&mut complete_first);
    assert_phases(&complete_first, Some("DONE"), Some("DONE"));
    assert_eq!(decisions(&complete_first), vec![(Outcome::Completed, Role::A)]);
    assert_swapped(&complete_first);
}

#[test]
fn h_mismatch_is_refused() {
    // 1. M2 whose Sa signs another h (terms with another expiry, or naming another arbiter):
    //    A recomputes h from its own terms, Sa does not verify, A aborts before committing.
    let other_t = Keypair::from_seed([0x74; 32]).peer_id();
    let alterations: [fn(&mut Terms, PeerId); 2] = [|t, _| t.expires_at_ms += 1, |t, other| t.arbiter = other];
    for alter in alterations {
        let mut w = world();
        act(&mut w, Action::Start { exchange: 0 });
        deliver(&mut w, "A->B M1");
        let genuine = intercept(&mut w, "B->A M2");
        let (mut terms, _, s2) = b_terms(&w);
        alter(&mut terms, other_t);
        let mut forged = m2(&genuine);
        forged.sa = w.cast().b.sign(&canonical::agree_bytes(&terms.h(), &s2));
        inject_and_deliver(&mut w, with(&genuine, Payload::Response(ExchangeResponse::Agree(forged))));
        assert_phases(&w, Some("ABORTED"), Some("VALID"));
        assert_eq!(aborted_reason(&w), ErrorCode::InvalidSignature);
        heal(&mut w);
        assert_phases(&w, Some("ABORTED"), Some("CANCELLED"));
        assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
        assert_kept(&w);
    }

    // 2. M3 whose Se signs another h: B refuses it and goes PENDING (its state does not take the
    //    M3's content); M3 with another s2: refused as HASH_MISMATCH, PENDING as well.
    let mut w = world();
    up_to_m3(&mut w);
    let genuine = intercept(&mut w, "A->B M3");
    let (mut terms, h, s2) = b_terms(&w);
    terms.expires_at_ms += 1;
    let other_h = w.cast().a.sign(&canonical::confirm_bytes(&terms.h(), &s2));
    let mut other_s2 = m3(&genuine);
    other_s2.s2 = Digest([9; 32]);
    other_s2.se = w.cast().a.sign(&canonical::confirm_bytes(&h, &other_s2.s2));
    let with_other_s2 = with(&genuine, Payload::Request(ExchangeRequest::Confirm(other_s2)));
    let mut pending = w.clone();
    inject_and_deliver(&mut pending, with_other_s2);
    assert_phases(&pending, Some("VALID"), Some("PENDING"));
    assert_eq!(refusal_code(&peek(&pending, "B->A refusal HASH_MISMATCH")), ErrorCode::HashMismatch);
    heal(&mut pending);
    assert_eq!(outcome(&pending, Role::A), outcome(&pending, Role::B));
    let mut forged = m3(&genuine);
    forged.se = other_h;
    inject_and_deliver(&mut w, with(&genuine, Payload::Request(ExchangeRequest::Confirm(forged))));
    assert_phases(&w, Some("VALID"), Some("PENDING"));
    assert_eq!(refusal_code(&peek(&w, "B->A refusal INVALID_SIGNATURE")), ErrorCode::InvalidSignature);

    // 3. Terms altered in a request to T: T recomputes h, Sa no longer verifies, nothing recorded.
    let genuine = peek(&w, "B->T CancelRequest");
    let mut altered = cancel_request(&genuine);
    altered.terms.expires_at_ms += 1;
    let refused = w.probe_arbiter(Role::B, ArbiterRequest::Cancel(altered.clone())).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidSignature);
    inject_and_deliver(&mut w, with(&genuine, Payload::ArbiterRequest(ArbiterRequest::Cancel(altered))));
    assert!(w.t.is_empty());
    assert!(in_flight(&w, "T->B arbiter refusal INVALID_SIGNATURE"));

    // 4. After T decided for s2 under h, a request for the same s2 under another h — even one
    //    B really signed — is refused as equivocation, and the decision stays.
    deliver(&mut w, "B->T CancelRequest");
    let decided = w.t.clone();
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    let (mut terms, _, s2) = b_terms(&w);
    terms.expires_at_ms += 1;
    let b = w.cast().b.clone();
    let h2 = terms.h();
    let equivocation =
        CancelRequest { terms, s2, sa: b.sign(&canonical::agree_bytes(&h2, &s2)), sab: b.sign(&canonical::cancel_bytes(&h2, &s2)) };
    assert_eq!(w.probe_arbiter(Role::B, ArbiterRequest::Cancel(equivocation.clone())).unwrap_err().code(), ErrorCode::Equivocation);
    inject_and_deliver(&mut w, with(&genuine, Payload::ArbiterRequest(ArbiterRequest::Cancel(equivocation))));
    assert_eq!(w.t, decided);
    assert!(in_flight(&w, "T->B arbiter refusal EQUIVOCATION"));
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

#[test]
fn v2_not_what_was_wanted() {
    let issuer = Keypair::from_seed([0x15; 32]);
    let wrong_amount = Value::issue(&issuer, "voucher", 499, Vec::new(), [3; 16]).unwrap();
    // A value whose issuer signature does not verify (its id still matches its fields).
    let mut wire = v2_wire();
    wire.issuer_sig[0] ^= 1;
    let forged_value = Value::from_wire(wire).unwrap();
    for (bad_v2, expected) in [(wrong_amount, ErrorCode::WantMismatch), (forged_value, ErrorCode::InvalidValue)] {
        let mut w = world();
        act(&mut w, Action::Start { exchange: 0 });
        deliver(&mut w, "A->B M1");
        let genuine = intercept(&mut w, "B->A M2");
        // Everything else is right: B signs the terms naming the bad V2.
        let (mut terms, _, s2) = b_terms(&w);
        terms.v2_id = bad_v2.id();
        let forged = Agree { v2: bad_v2, sa: w.cast().b.sign(&canonical::agree_bytes(&terms.h(), &s2)), ..m2(&genuine) };
        inject_and_deliver(&mut w, with(&genuine, Payload::Response(ExchangeResponse::Agree(forged))));
        assert_phases(&w, Some("ABORTED"), Some("VALID"));
        assert_eq!(aborted_reason(&w), expected);
        assert_values(&w, Some(Role::A), None);
        heal(&mut w);
        assert_phases(&w, Some("ABORTED"), Some("CANCELLED"));
        assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
        assert_kept(&w);
    }
}

/// V2's wire form, as issued in the fixed cast.
fn v2_wire() -> valex_proto::wire::Value {
    world().cast().v2.to_wire()
}

#[test]
fn arbiter_not_acceptable_to_b() {
    let other = Keypair::from_seed([0x74; 32]).peer_id();
    let config = WorldConfig {
        policy_b: StaticPolicy { arbiters: ArbiterPolicy::only([other]), ..WorldConfig::default().policy_b },
        ..WorldConfig::default()
    };
    let mut w = world_with(config);
    act(&mut w, Action::Start { exchange: 0 });
    let m1 = peek(&w, "A->B M1");
    let error = refused_with(&w, &m1);
    assert!(matches!(error, ExchangeError::ArbiterNotAccepted(t) if t == w.cast().peer(Role::T)), "{error}");
    assert_eq!(error.code(), ErrorCode::ArbiterNotAccepted);
    let b_before = state(&w, Role::B);
    deliver(&mut w, "A->B M1");
    assert_eq!(state(&w, Role::B), b_before, "a refused M1 leaves B untouched");
    assert!(logged(&w, Role::B, "is not accepted"), "{:?}", w.log());
    assert_eq!(refusal_code(&peek(&w, "B->A refusal ARBITER_NOT_ACCEPTED")), ErrorCode::ArbiterNotAccepted);
    deliver_reply(&mut w, "B->A refusal ARBITER_NOT_ACCEPTED");
    assert_phases(&w, Some("ABORTED"), None);
    assert_eq!(aborted_reason(&w), ErrorCode::ArbiterNotAccepted);
    assert_kept(&w);
    assert!(w.t.is_empty());
    heal(&mut w);
}

#[test]
fn expired_terms_are_refused() {
    // 1. M1 reaching B at or after its expiry (B's clock is ahead, or M1 was delayed).
    // 2. M1 whose expiry is further ahead than B's policy allows.
    let far = WorldConfig { policy_b: StaticPolicy { max_ttl_ms: 5_000, ..WorldConfig::default().policy_b }, ..WorldConfig::default() };
    for (mut w, b_clock) in [(world(), 10_000), (world_with(far), 0)] {
        act(&mut w, Action::Start { exchange: 0 });
        if b_clock > 0 {
            // With M1 in flight, B's clock moves on to the expiry (as the model checker explores too).
            advance_clock(&mut w, Role::B, b_clock);
        }
        let m1 = peek(&w, "A->B M1");
        let error = refused_with(&w, &m1);
        assert!(matches!(error, ExchangeError::ExpiryOutOfPolicy { expires_at_ms: 10_000, now_ms } if now_ms == b_clock), "{error}");
        let b_before = state(&w, Role::B);
        deliver(&mut w, "A->B M1");
        assert_eq!(state(&w, Role::B), b_before);
        assert!(logged(&w, Role::B, "outside the accepted window"), "{:?}", w.log());
        assert_eq!(refusal_code(&peek(&w, "B->A refusal EXPIRY_OUT_OF_POLICY")), ErrorCode::ExpiryOutOfPolicy);
        deliver_reply(&mut w, "B->A refusal EXPIRY_OUT_OF_POLICY");
        assert_phases(&w, Some("ABORTED"), None);
        assert_eq!(aborted_reason(&w), ErrorCode::ExpiryOutOfPolicy);
        assert_kept(&w);
        assert!(w.t.is_empty());
        heal(&mut w);
    }

    // 3. M2 reaching A after the expiry, before A's deadline fires: A does not commit, it aborts.
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    deliver(&mut w, "A->B M1");
    advance_clock(&mut w, Role::A, 10_000);
    assert!(w.party(Role::A).timers.keys().any(|(_, kind)| *kind == TimerKind::Deadline), "A's deadline has not fired");
    deliver(&mut w, "B->A M2");
    assert_phases(&w, Some("ABORTED"), Some("VALID"));
    assert_eq!(aborted_reason(&w), ErrorCode::Expired);
    heal(&mut w);
    assert_phases(&w, Some("ABORTED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);

    // 4. A valid M3 reaching B after the expiry, before B's deadline fires: B refuses it
    //    (PENDING) and asks T to cancel.
    let mut w = world();
    up_to_m3(&mut w);
    advance_clock(&mut w, Role::B, 10_000);
    assert!(w.party(Role::B).timers.keys().any(|(_, kind)| *kind == TimerKind::Deadline), "B's deadline has not fired");
    deliver(&mut w, "A->B M3");
    assert_phases(&w, Some("VALID"), Some("PENDING"));
    assert!(matches!(responder_phase(&w), ResponderPhase::Pending { reason: PendingReason::Expired, .. }));
    assert_eq!(refusal_code(&peek(&w, "B->A refusal PENDING")), ErrorCode::Pending);
    assert_values(&w, None, None);
    deliver(&mut w, "B->A refusal PENDING");
    assert_phases(&w, Some("RESOLVING"), Some("PENDING"));
    deliver(&mut w, "B->T CancelRequest");
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

#[test]
fn replayed_m1_is_refused() {
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    let original = peek(&w, "A->B M1");
    heal(&mut w);
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    let (a_done, b_done) = (state(&w, Role::A), state(&w, Role::B));

    // 1. The same M1 after the session ended: SESSION_CLOSED, B unchanged.
    let error = refused_with(&w, &original);
    assert!(matches!(error, ExchangeError::SessionClosed(s) if s == session_id(&w, Role::B)), "{error}");
    inject_and_deliver(&mut w, original.clone());
    assert_eq!(state(&w, Role::B), b_done);
    assert!(logged(&w, Role::B, "has ended"), "{:?}", w.log());
    deliver(&mut w, "B->A refusal SESSION_CLOSED");
    assert_eq!(state(&w, Role::A), a_done, "a refusal for an ended session changes nothing");

    // 2. The same s1 with other content (another expiry): SESSION_CONFLICT.
    let conflicting = Start { expires_at_ms: 9_000, ..m1(&original) };
    let conflicting = with(&original, Payload::Request(ExchangeRequest::Start(conflicting)));
    assert_eq!(refused_with(&w, &conflicting).code(), ErrorCode::SessionConflict);
    inject_and_deliver(&mut w, conflicting);
    assert_eq!(state(&w, Role::B), b_done);
    assert!(in_flight(&w, "B->A refusal SESSION_CONFLICT"));

    // 3. M1 from an earlier session (another s1) offering V1, which B now holds: VALUE_BUSY.
    let earlier_s1 = Digest::of(&canonical::s1_preimage(&[0xEE; 32]));
    let earlier = Envelope {
        session: earlier_s1,
        ..with(&original, Payload::Request(ExchangeRequest::Start(Start { s1: earlier_s1, ..m1(&original) })))
    };
    assert_eq!(refused_with(&w, &earlier).code(), ErrorCode::ValueBusy);
    inject_and_deliver(&mut w, earlier.clone());
    assert_eq!(state(&w, Role::B), b_done);
    assert!(logged(&w, Role::B, "is not available"), "{:?}", w.log());
    // … and once its expiry has passed, it is refused for that first.
    inject(&mut w, earlier.clone());
    advance_clock(&mut w, Role::B, 10_000);
    assert_eq!(refused_with(&w, &earlier).code(), ErrorCode::ExpiryOutOfPolicy);
    let index = w.network().position(|e| *e == earlier).unwrap();
    act(&mut w, Action::Deliver { index, keep: false });
    assert_eq!(state(&w, Role::B), b_done);

    // A gets refusals for a session it does not know: ignored.
    heal(&mut w);
    assert_eq!(state(&w, Role::A), a_done);
    assert_eq!(state(&w, Role::B), b_done);
    assert!(logged(&w, Role::A, "unknown session"), "{:?}", w.log());
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    assert!(w.t.is_empty());
}

#[test]
fn replayed_m3_is_answered_or_refused_correctly() {
    let mut w = world();
    up_to_m3(&mut w);
    let original = peek(&w, "A->B M3");
    deliver(&mut w, "A->B M3");
    let reveal = peek(&w, "B->A M4");
    deliver(&mut w, "B->A M4");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    let (a_done, b_done) = (state(&w, Role::A), state(&w, Role::B));

    // After DONE, the same M3 again: the same r2 again, nothing changes.
    inject_and_deliver(&mut w, original.clone());
    assert_eq!(state(&w, Role::B), b_done);
    assert_eq!(peek(&w, "B->A M4").payload, reveal.payload);
    deliver_reply(&mut w, "B->A M4");
    assert_eq!(state(&w, Role::A), a_done);

    // An M3 with a different s2 (correctly signed by A over it): refused, B unchanged.
    let (_, h, _) = b_terms(&w);
    let mut other = m3(&original);
    other.s2 = Digest([9; 32]);
    other.se = w.cast().a.sign(&canonical::confirm_bytes(&h, &other.s2));
    let other = with(&original, Payload::Request(ExchangeRequest::Confirm(other)));
    let error = refused_with(&w, &other);
    assert!(matches!(error, ExchangeError::HashMismatch { what: "s2 of M3", .. }), "{error}");
    inject_and_deliver(&mut w, other);
    assert_eq!(state(&w, Role::B), b_done);
    assert_eq!(refusal_code(&peek(&w, "B->A refusal HASH_MISMATCH")), ErrorCode::HashMismatch);
    assert!(!in_flight(&w, "B->A M4"), "r2 is only ever revealed for the agreed s2");

    // An M3 with the right s2 but a bad Se: refused, B unchanged.
    let mut bad = m3(&original);
    bad.se = corrupt(bad.se);
    let bad = with(&original, Payload::Request(ExchangeRequest::Confirm(bad)));
    assert_eq!(refused_with(&w, &bad).code(), ErrorCode::InvalidSignature);
    inject_and_deliver(&mut w, bad);
    assert_eq!(state(&w, Role::B), b_done);
    assert!(in_flight(&w, "B->A refusal INVALID_SIGNATURE"));

    heal(&mut w);
    assert_eq!(state(&w, Role::A), a_done, "refusals for a DONE session change nothing");
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_swapped(&w);
    assert!(w.t.is_empty());
}

#[test]
fn replayed_m3_after_cancel_is_refused() {
    let mut w = world();
    up_to_m3(&mut w);
    let original = intercept(&mut w, "A->B M3");
    fire(&mut w, Role::B, TimerKind::Deadline);
    deliver(&mut w, "B->T CancelRequest");
    deliver(&mut w, "T->B Decision CANCELLED");
    assert_phases(&w, Some("VALID"), Some("CANCELLED"));
    let b_cancelled = state(&w, Role::B);
    assert_eq!(refused_with(&w, &original).code(), ErrorCode::SessionClosed);
    inject_and_deliver(&mut w, original);
    assert_eq!(state(&w, Role::B), b_cancelled);
    assert!(!in_flight(&w, "B->A M4"));
    // The refusal sends A to T, which answers CANCELLED.
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

#[test]
fn valid_m3_while_b_pending_is_refused() {
    let mut w = world();
    up_to_m3(&mut w);
    lose(&mut w, "A->B M3");
    fire(&mut w, Role::B, TimerKind::Deadline);
    assert_phases(&w, Some("VALID"), Some("PENDING"));
    lose(&mut w, "B->T CancelRequest"); // T does not decide before the M3 arrives
    fire(&mut w, Role::A, TimerKind::Retry);
    let valid = peek(&w, "A->B M3");
    let error = refused_with(&w, &valid);
    assert_eq!(error, ExchangeError::Pending(session_id(&w, Role::B)));
    assert_eq!(error.code(), ErrorCode::Pending);
    let b_before = state(&w, Role::B);
    deliver(&mut w, "A->B M3");
    assert_eq!(state(&w, Role::B), b_before, "PENDING: only T decides now");
    assert!(logged(&w, Role::B, "is pending"), "{:?}", w.log());
    assert!(!in_flight(&w, "B->A M4"));
    assert_values(&w, None, None);
    deliver(&mut w, "B->A refusal PENDING");
    assert_phases(&w, Some("RESOLVING"), Some("PENDING"));
    // Even after a restart, B keeps refusing and keeps asking T.
    restart(&mut w, Role::B);
    assert_eq!(refused_with(&w, &valid).code(), ErrorCode::Pending);
    // Either request may reach T first; both end fair.
    let mut complete_first = w.clone();
    deliver(&mut w, "B->T CancelRequest");
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
    deliver(&mut complete_first, "A->T CompleteRequest");
    heal(&mut complete_first);
    assert_phases(&complete_first, Some("DONE"), Some("DONE"));
    assert_eq!(decisions(&complete_first), vec![(Outcome::Completed, Role::A)]);
    assert_swapped(&complete_first);
}

#[test]
fn decision_signed_by_another_key_is_ignored() {
    let mut w = world();
    both_ask_the_arbiter(&mut w);
    let (_, h, s2) = b_terms(&w);
    let (a_session, b_session) = (session_id(&w, Role::A), session_id(&w, Role::B));
    let (a_before, b_before) = (state(&w, Role::A), state(&w, Role::B));
    let impostor = Keypair::from_seed([0x66; 32]);
    let genuine_cancel = sign_decision(&w.cast().t, s2, h, Outcome::Cancelled);
    let forgeries = [
        // Signed by another key, in both outcomes, to both parties.
        (Role::T, sign_decision(&impostor, s2, h, Outcome::Completed)),
        (Role::T, sign_decision(&impostor, s2, h, Outcome::Cancelled)),
        // T's genuine signature with the outcome flipped.
        (Role::T, Decision { outcome: Outcome::Completed, ..genuine_cancel.clone() }),
    ];
    for (from, forged) in forgeries {
        for (to, session) in [(Role::A, a_session), (Role::B, b_session)] {
            let envelope = Envelope { from, ..decision_envelope(to, session, forged.clone()) };
            let error = refused_with(&w, &envelope);
            assert!(matches!(error, ExchangeError::Decision { source: DecisionError::BadSignature(_), .. }), "{error}");
            assert_eq!(error.code(), ErrorCode::InvalidSignature);
            inject_and_deliver(&mut w, envelope);
        }
    }
    // A genuine decision, but delivered by someone other than the terms' T (B passing it to A).
    let relayed = Envelope { from: Role::B, ..decision_envelope(Role::A, a_session, genuine_cancel) };
    assert!(matches!(refused_with(&w, &relayed), ExchangeError::WrongSender { .. }));
    inject_and_deliver(&mut w, relayed);
    assert_eq!(state(&w, Role::A), a_before, "forged decisions must not move A");
    assert_eq!(state(&w, Role::B), b_before, "forged decisions must not move B");
    assert!(logged(&w, Role::A, "decision refused") && logged(&w, Role::B, "decision refused"), "{:?}", w.log());
    assert!(w.t.is_empty());
    assert_values(&w, None, None);
    // The real T settles it.
    deliver(&mut w, "A->T CompleteRequest");
    heal(&mut w);
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert_eq!(decisions(&w), vec![(Outcome::Completed, Role::A)]);
    assert_swapped(&w);
}

#[test]
fn decision_bound_to_another_s2_or_h_is_ignored() {
    let mut w = world();
    both_ask_the_arbiter(&mut w);
    let (terms, h, s2) = b_terms(&w);
    let (a_session, b_session) = (session_id(&w, Role::A), session_id(&w, Role::B));
    let (a_before, b_before) = (state(&w, Role::A), state(&w, Role::B));
    let t = w.cast().t.clone();
    let other_h = Terms { expires_at_ms: terms.expires_at_ms + 1, ..terms }.h();
    let other_s2 = Digest::of(&canonical::s2_preimage(&[0xEE; 32]));
    // All genuinely signed by T, but for another session: another s2, another h, or both.
    for (s2, h) in [(other_s2, h), (s2, other_h), (other_s2, other_h)] {
        for outcome in [Outcome::Completed, Outcome::Cancelled] {
            for (to, session) in [(Role::A, a_session), (Role::B, b_session)] {
                let envelope = decision_envelope(to, session, sign_decision(&t, s2, h, outcome));
                let error = refused_with(&w, &envelope);
                assert!(matches!(error, ExchangeError::Decision { source: DecisionError::WrongBinding, .. }), "{error}");
                assert_eq!(error.code(), ErrorCode::HashMismatch);
                inject_and_deliver(&mut w, envelope);
            }
        }
    }
    assert_eq!(state(&w, Role::A), a_before, "a decision for another session must not move A");
    assert_eq!(state(&w, Role::B), b_before, "a decision for another session must not move B");
    assert!(w.t.is_empty());
    assert_values(&w, None, None);
    deliver(&mut w, "B->T CancelRequest");
    heal(&mut w);
    assert_phases(&w, Some("CANCELLED"), Some("CANCELLED"));
    assert_eq!(decisions(&w), vec![(Outcome::Cancelled, Role::B)]);
    assert_kept(&w);
}

/// A reply belongs to the session of the request it answers (as on the real transport, where it
/// travels on that request's stream) — also when the responder answers a repeated M1 or M3
/// without a state change, and when it refuses before finding a session. So a lost M2 or M4 is
/// recovered by A's retries alone, and B's refusal of M1 aborts A at once.
#[test]
fn replies_belong_to_the_requests_session() {
    // A repeated M1 is answered with the same M2, addressed to A's session.
    let mut w = world();
    act(&mut w, Action::Start { exchange: 0 });
    deliver(&mut w, "A->B M1");
    lose(&mut w, "B->A M2");
    fire(&mut w, Role::A, TimerKind::Retry);
    deliver(&mut w, "A->B M1");
    assert_eq!(peek(&w, "B->A M2").session, session_id(&w, Role::A));
    // So the retry alone settles the exchange, without the arbiter.
    heal(&mut w);
    assert_phases(&w, Some("DONE"), Some("DONE"));
    assert!(w.t.is_empty());

    // A refusal of M1 is addressed to A's session, so A aborts at once.
    let config = WorldConfig {
        policy_b: StaticPolicy {
            arbiters: ArbiterPolicy::only([Keypair::from_seed([0x74; 32]).peer_id()]),
            ..WorldConfig::default().policy_b
        },
        ..WorldConfig::default()
    };
    let mut w = world_with(config);
    act(&mut w, Action::Start { exchange: 0 });
    deliver(&mut w, "A->B M1");
    assert_eq!(peek(&w, "B->A refusal ARBITER_NOT_ACCEPTED").session, session_id(&w, Role::A));
    deliver(&mut w, "B->A refusal ARBITER_NOT_ACCEPTED");
    assert_phases(&w, Some("ABORTED"), None);
}

// ---------------------------------------------------------------------------------------------
// Two exchanges sharing the nodes
// ---------------------------------------------------------------------------------------------

/// A world in which A may start a second exchange, offering `give`, for the same want.
fn two_exchanges(give: SecondOffer) -> World {
    world_with(WorldConfig { second: Some(SecondExchange { give, expires_at_ms: 11_000 }), ..WorldConfig::default() })
}

/// The outcomes of `role`'s sessions, sorted.
fn outcomes(world: &World, role: Role) -> Vec<SessionOutcome> {
    let mut outcomes: Vec<_> = world.party(role).volatile.sessions.values().map(Session::outcome).collect();
    outcomes.sort();
    outcomes
}

#[test]
fn two_exchanges_want_the_one_v2() {
    let mut w = two_exchanges(SecondOffer::V3);
    act(&mut w, Action::Start { exchange: 0 });
    act(&mut w, Action::Start { exchange: 1 });
    assert_eq!(outcomes(&w, Role::A), vec![SessionOutcome::Open; 2]);
    // B answers whichever M1 comes first with V2, and has nothing left for the other.
    deliver(&mut w, "A->B M1");
    deliver(&mut w, "A->B M1");
    assert!(in_flight(&w, "B->A M2"), "{w}");
    assert_eq!(refusal_code(&peek(&w, "B->A refusal WANT_UNAVAILABLE")), ErrorCode::WantUnavailable);
    assert_eq!(outcomes(&w, Role::B), vec![SessionOutcome::Open]);
    heal(&mut w);
    assert_eq!(outcomes(&w, Role::A), vec![SessionOutcome::Done, SessionOutcome::Aborted]);
    assert_eq!(outcomes(&w, Role::B), vec![SessionOutcome::Done]);
    // V2 went to A for exactly one of the two tickets; A kept the other.
    let (v1_id, v3_id) = (v1(&w), w.cast().v3.id());
    assert_eq!(holder(&w, &v2(&w)), Some(Role::A));
    let tickets = [holder(&w, &v1_id), holder(&w, &v3_id)];
    assert!(tickets == [Some(Role::B), Some(Role::A)] || tickets == [Some(Role::A), Some(Role::B)], "{w}");
}

#[test]
fn second_m1_over_the_per_peer_cap_is_refused() {
    let mut config =
        WorldConfig { second: Some(SecondExchange { give: SecondOffer::V3, expires_at_ms: 11_000 }), ..WorldConfig::default() };
    config.policy_b.max_open_sessions_per_peer = 1;
    let mut w = world_with(config);
    act(&mut w, Action::Start { exchange: 0 });
    act(&mut w, Action::Start { exchange: 1 });
    deliver(&mut w, "A->B M1");
    let second = peek(&w, "A->B M1");
    let error = refused_with(&w, &second);
    assert!(matches!(error, ExchangeError::TooManySessions { cap: 1, .. }), "{error}");
    deliver(&mut w, "A->B M1");
    assert_eq!(refusal_code(&peek(&w, "B->A refusal TOO_MANY_SESSIONS")), ErrorCode::TooManySessions);
    heal(&mut w);
    assert_eq!(outcomes(&w, Role::A), vec![SessionOutcome::Done, SessionOutcome::Aborted]);
    assert_eq!(outcomes(&w, Role::B), vec![SessionOutcome::Done]);
}

#[test]
fn a_locked_v1_cannot_be_offered_again_until_released() {
    // While the first exchange holds V1, A's core refuses to offer it again.
    let mut w = two_exchanges(SecondOffer::V1);
    act(&mut w, Action::Start { exchange: 0 });
    let a_before = state(&w, Role::A);
    act(&mut w, Action::Start { exchange: 1 });
    assert_eq!(state(&w, Role::A), a_before, "a refused start changes nothing");
    assert!(logged(&w, Role::A, "is not available"), "{:?}", w.log());
    assert_eq!(outcomes(&w, Role::A), vec![SessionOutcome::Open]);
    heal(&mut w);
    assert_swapped(&w);

    // Once the first exchange has aborted and released V1, A may offer it again.
    let mut w = two_exchanges(SecondOffer::V1);
    act(&mut w, Action::Start { exchange: 0 });
    lose(&mut w, "A->B M1");
    fire(&mut w, Role::A, TimerKind::Deadline);
    assert_eq!(outcomes(&w, Role::A), vec![SessionOutcome::Aborted]);
    act(&mut w, Action::Start { exchange: 1 });
    heal(&mut w);
    assert_eq!(outcomes(&w, Role::A), vec![SessionOutcome::Done, SessionOutcome::Aborted]);
    assert_swapped(&w);
}
