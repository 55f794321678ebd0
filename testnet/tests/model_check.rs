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

#[cfg(feature = "planted-bugs")]
mod planted {
    use valex_node::exchange::PlantedBug;
    use valex_testnet::invariants::Invariant;
    use valex_testnet::model::{ModelConfig, explore};
    use valex_testnet::sim::WorldConfig;

    fn check_catches(bug: PlantedBug) -> Invariant {
        let config = ModelConfig { world: WorldConfig { planted_bug: Some(bug), ..WorldConfig::default() }, ..ModelConfig::default() };
        let report = explore(&config);
        println!("planted {bug:?}: {report}");
        let counterexample = report.violation.unwrap_or_else(|| panic!("the model checker missed planted bug {bug:?}"));
        assert!(!counterexample.trace.is_empty(), "a violation needs a trace from the initial state");
        assert!(counterexample.trace.iter().all(|(_, state)| !state.starts_with("(replay failed")), "the trace must replay");
        counterexample.violation.invariant
    }

    #[test]
    fn catches_responder_accepting_m3_while_pending() {
        // B ends DONE although T decided CANCELLED on B's own request.
        let invariant = check_catches(PlantedBug::ResponderAcceptsConfirmWhilePending);
        assert!(matches!(invariant, Invariant::Agreement | Invariant::Conservation), "{invariant}");
    }

    #[test]
    fn catches_responder_storing_v1_without_ending_its_session() {
        // V1 lands in B's vault while B's still-open session escrows it (and, healed further, in two vaults).
        let invariant = check_catches(PlantedBug::ResponderSplitsDoneWrite);
        assert!(matches!(invariant, Invariant::SingleEscrow | Invariant::Conservation), "{invariant}");
    }

    #[test]
    fn catches_initiator_restoring_v1_without_a_cancel_decision() {
        // V1 back in A's vault while B, holding Se, takes it too.
        let invariant = check_catches(PlantedBug::InitiatorRestoresV1WithoutDecision);
        assert!(matches!(invariant, Invariant::Conservation | Invariant::Fairness), "{invariant}");
    }
}
