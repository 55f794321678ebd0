//! The exhaustive model check of protocol.md §6 (issue: every reachable state of one exchange,
//! with loss, duplication, reordering and crash-restarts), and proof that it catches bugs.

use valex_testnet::model::{ModelConfig, explore};

#[test]
fn every_reachable_state_keeps_the_invariants() {
    let report = explore(&ModelConfig::default());
    println!("{report}");
    assert!(report.violation.is_none(), "{report}");
    assert!(report.complete, "the state limit cut the exploration short: {report}");
    // The exploration must actually reach the interesting parts of the protocol.
    assert!(report.states > 10_000, "suspiciously few states: {report}");
}

/// Bugs planted by the simulator around the honest cores (`valex_testnet::sim::PlantedBug`).
mod planted {
    use valex_testnet::invariants::Invariant;
    use valex_testnet::model::{Counterexample, ModelConfig, explore};
    use valex_testnet::sim::{Action, PlantedBug, WorldConfig};

    fn check_catches(bug: PlantedBug) -> Counterexample {
        let config = ModelConfig { world: WorldConfig { planted_bug: Some(bug), ..WorldConfig::default() }, ..ModelConfig::default() };
        let report = explore(&config);
        println!("planted {bug:?}: {report}");
        let counterexample = report.violation.unwrap_or_else(|| panic!("the model checker missed planted bug {bug:?}"));
        assert!(!counterexample.trace.is_empty(), "a violation needs a trace from the initial state");
        assert!(counterexample.trace.iter().all(|(_, state)| !state.starts_with("(replay failed")), "the trace must replay");
        // The violation is the bug's doing: the trace passes through a step the bug changed.
        assert!(counterexample.planted_at.is_some(), "the trace never runs the planted bug: {counterexample}");
        counterexample
    }

    #[test]
    fn catches_responder_accepting_m3_while_pending() {
        // B ends DONE although T decided CANCELLED on B's own request.
        let invariant = check_catches(PlantedBug::ResponderAcceptsConfirmWhilePending).violation.invariant;
        assert!(matches!(invariant, Invariant::Agreement | Invariant::Conservation), "{invariant}");
    }

    #[test]
    fn catches_responder_storing_v1_without_ending_its_session() {
        // V1 lands in B's vault while B's still-open session escrows it (and, healed further, in two vaults).
        let counterexample = check_catches(PlantedBug::ResponderSplitsDoneWrite);
        let invariant = counterexample.violation.invariant;
        assert!(matches!(invariant, Invariant::SingleEscrow | Invariant::Conservation), "{invariant}");
        // Only a crash between the two writes exposes the split.
        assert!(
            counterexample.trace.iter().any(|(action, _)| matches!(action, Action::CrashBetweenWrites { .. })),
            "no crash between the two writes: {counterexample}"
        );
    }

    #[test]
    fn catches_initiator_restoring_v1_without_a_cancel_decision() {
        // V1 back in A's vault while B, holding Se, takes it too.
        let invariant = check_catches(PlantedBug::InitiatorRestoresV1WithoutDecision).violation.invariant;
        assert!(matches!(invariant, Invariant::Conservation | Invariant::Fairness), "{invariant}");
    }
}
