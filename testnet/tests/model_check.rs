//! The exhaustive model check of protocol.md §6 (every reachable state of one exchange, and of two
//! sharing the nodes, with loss, duplication, reordering, clocks moving on and crash-restarts),
//! and proof that it catches bugs.

use valex_testnet::model::{ModelConfig, Report, explore};

/// Runs `config`, which must pass with exactly `states` states and `transitions` transitions: a
/// change in coverage, either way, must be looked at (and the figures updated on purpose).
fn check_passes(name: &str, config: &ModelConfig, states: usize, transitions: usize) -> Report {
    let report = explore(config);
    println!("{name}: {report}");
    assert!(report.failure.is_none(), "{name}: {report}");
    assert!(report.violation.is_none(), "{name}: {report}");
    assert!(report.complete, "{name}: the state limit cut the exploration short: {report}");
    assert_eq!((report.states, report.transitions), (states, transitions), "{name}: states and transitions explored");
    report
}

#[test]
fn every_reachable_state_of_one_exchange_keeps_the_invariants() {
    check_passes("one-exchange", &ModelConfig::default(), 93_471, 1_490_149);
}

#[test]
fn two_exchanges_wanting_the_one_v2_keep_the_invariants() {
    check_passes("shared-v2", &ModelConfig::shared_v2(), 142_953, 683_275);
}

#[test]
fn a_reoffered_v1_keeps_the_invariants() {
    check_passes("reoffered-v1", &ModelConfig::reoffered_v1(), 33_799, 134_550);
}

#[test]
fn the_per_peer_cap_keeps_the_invariants() {
    check_passes("per-peer-cap", &ModelConfig::per_peer_cap(), 134_353, 620_262);
}

/// Bugs planted by the simulator around the honest cores (`valex_testnet::sim::PlantedBug`).
mod planted {
    use valex_node::exchange::responder::ResponderPhase;
    use valex_node::exchange::{Session, TimerKind};
    use valex_proto::message::{ArbiterResponse, ExchangeRequest};
    use valex_testnet::invariants::Invariant;
    use valex_testnet::model::{Counterexample, ModelConfig, explore};
    use valex_testnet::sim::{Action, Envelope, Payload, PlantedBug, Role, SimError, World, WorldConfig};

    fn config(bug: PlantedBug) -> ModelConfig {
        ModelConfig { world: WorldConfig { planted_bug: Some(bug), ..WorldConfig::default() }, ..ModelConfig::default() }
    }

    /// The checker reports `bug` as a violation of `invariant` (exactly that one: it is the first
    /// the breadth-first search meets), with a trace that replays and runs the planted step.
    /// Returns the counterexample and the world just before the planted step.
    fn check_catches(bug: PlantedBug, invariant: Invariant) -> (Counterexample, World) {
        let mut config = config(bug);
        if invariant == Invariant::Termination {
            // Termination is checked once every state is explored: a smaller world will do.
            (config.max_crashes, config.lossy_network) = (0, false);
        }
        let report = explore(&config);
        println!("planted {bug:?}: {report}");
        assert!(report.failure.is_none(), "{report}");
        let counterexample = report.violation.unwrap_or_else(|| panic!("the model checker missed planted bug {bug:?}"));
        assert_eq!(counterexample.violation.invariant, invariant, "{counterexample}");
        assert!(counterexample.trace.iter().all(|(_, state)| !state.starts_with("(failed")), "the trace must replay");
        let planted_at = counterexample.planted_at.unwrap_or_else(|| panic!("the trace never runs the planted bug: {counterexample}"));
        let mut world = World::new(config.world.clone());
        for (action, _) in &counterexample.trace[..planted_at] {
            world.apply(action).unwrap();
        }
        (counterexample, world)
    }

    /// The message delivered by `action` in `world`.
    fn delivered(world: &World, action: &Action) -> Envelope {
        match action {
            Action::Deliver { index, .. } | Action::CrashBetweenWrites { index } => world.network().get(*index).cloned().unwrap(),
            other => panic!("not a delivery: {other}"),
        }
    }

    fn responder_phase(world: &World) -> ResponderPhase {
        match world.session(Role::B) {
            Some(Session::Responder(s)) => s.phase.clone(),
            other => panic!("B has no responder session: {other:?}"),
        }
    }

    #[test]
    fn catches_responder_accepting_m3_while_pending() {
        // B ends DONE although T decided CANCELLED on B's own request.
        let (counterexample, before) = check_catches(PlantedBug::ResponderAcceptsConfirmWhilePending, Invariant::Agreement);
        let planted_at = counterexample.planted_at.unwrap();
        // The planted step: M3 delivered to B while B is PENDING.
        let m3 = delivered(&before, &counterexample.trace[planted_at].0);
        assert!(m3.to == Role::B && matches!(m3.payload, Payload::Request(ExchangeRequest::Confirm(_))), "{m3}: {counterexample}");
        assert!(matches!(responder_phase(&before), ResponderPhase::Pending { .. }), "{before}");
    }

    #[test]
    fn catches_responder_storing_v1_without_ending_its_session() {
        // V1 lands in B's vault while B's still-open session escrows it.
        let (counterexample, before) = check_catches(PlantedBug::ResponderSplitsDoneWrite, Invariant::SingleEscrow);
        let planted_at = counterexample.planted_at.unwrap();
        // Only a crash between the two writes exposes the split: the planted step is that crash,
        // while B handles an M3 in VALID.
        let (action, _) = &counterexample.trace[planted_at];
        assert!(matches!(action, Action::CrashBetweenWrites { .. }), "{counterexample}");
        let m3 = delivered(&before, action);
        assert!(m3.to == Role::B && matches!(m3.payload, Payload::Request(ExchangeRequest::Confirm(_))), "{m3}: {counterexample}");
        assert!(matches!(responder_phase(&before), ResponderPhase::Valid), "{before}");
    }

    #[test]
    fn catches_initiator_restoring_v1_without_a_cancel_decision() {
        // V1 back in A's vault after A sent Se, with no CANCELLED decision: §6.3 (a value
        // returned from escrow needs T's cancellation) fires at once, before B takes V1 too.
        let (counterexample, before) = check_catches(PlantedBug::InitiatorRestoresV1WithoutDecision, Invariant::Agreement);
        let planted_at = counterexample.planted_at.unwrap();
        // The planted step: A's deadline in VALID.
        let (action, _) = &counterexample.trace[planted_at];
        assert!(matches!(action, Action::Fire { role: Role::A, kind: TimerKind::Deadline, .. }), "{counterexample}");
        assert_eq!(before.session(Role::A).map(Session::phase_name), Some("VALID"), "{before}");
    }

    #[test]
    fn catches_a_retry_loop_that_never_ends() {
        // B, PENDING, ignores T's decision and asks again forever: no safety invariant breaks,
        // but a fair fault-free schedule never ends.
        let (counterexample, before) = check_catches(PlantedBug::ResponderIgnoresDecision, Invariant::Termination);
        let planted_at = counterexample.planted_at.unwrap();
        let loop_from = counterexample.loop_from.unwrap_or_else(|| panic!("no loop in the counterexample: {counterexample}"));
        assert!(loop_from < counterexample.trace.len(), "{counterexample}");
        // The planted step: T's decision delivered to a PENDING B, inside the loop.
        let decision = delivered(&before, &counterexample.trace[planted_at].0);
        assert!(
            decision.to == Role::B && matches!(decision.payload, Payload::ArbiterResponse(ArbiterResponse::Decision(_))),
            "{decision}: {counterexample}"
        );
        assert!(matches!(responder_phase(&before), ResponderPhase::Pending { .. }), "{before}");
        // The loop is fault-free and B's retry is in it.
        let looped = &counterexample.trace[loop_from..];
        assert!(
            looped.iter().all(|(action, _)| matches!(action, Action::Deliver { keep: false, .. } | Action::Fire { .. })),
            "{counterexample}"
        );
        assert!(
            looped.iter().any(|(action, _)| matches!(action, Action::Fire { role: Role::B, kind: TimerKind::Retry, .. })),
            "{counterexample}"
        );
    }

    #[test]
    fn a_core_that_changes_on_a_refusal_fails_the_run() {
        // B's core keeps a refused M1's V1: the simulator's step finds the core changed and the
        // run fails at that delivery.
        let config = config(PlantedBug::ResponderKeepsRefusedOffer);
        let report = explore(&config);
        println!("{report}");
        let failure = report.failure.clone().unwrap_or_else(|| panic!("a core changed by a refusal went unnoticed: {report}"));
        assert!(matches!(failure.error, SimError::ChangedOnRefusal { role: Role::B, .. }), "{failure}");
        let (last, _) = failure.trace.last().unwrap();
        let mut world = World::new(config.world.clone());
        for (action, _) in &failure.trace[..failure.trace.len() - 1] {
            world.apply(action).unwrap();
        }
        let m1 = delivered(&world, last);
        assert!(m1.to == Role::B && matches!(m1.payload, Payload::Request(ExchangeRequest::Start(_))), "{m1}: {failure}");
        assert!(world.apply(last).is_err());
    }
}
