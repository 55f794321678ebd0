//! protocol.md §6 over what the databases hold: a node's state is read from its RocksDB after the
//! node has crashed (reopened and loaded, as a restart would), never from the running core.
//!
//! The one place the end-to-end tests call `valex_testnet::invariants`, so a change of the
//! checks' signatures is absorbed here.

use std::collections::BTreeMap;
use std::path::Path;

use valex_arbiter::DecisionRecord;
use valex_arbiter::store::DecisionStore;
use valex_node::exchange::NodeState;
use valex_node::store::{RocksStore, Store};
use valex_proto::value::ValueId;
use valex_proto::{Digest, PeerId};
use valex_testnet::invariants::{NamedState, all_terminal, check_always, check_at_rest};

/// The state a node's database holds: `RocksStore::open` + `load`, as a restart does. Fails the
/// test if the load had to set any record aside (the node wrote nothing undecodable).
pub fn stored_state(dir: &Path) -> NodeState {
    let loaded = RocksStore::open(dir).unwrap_or_else(|e| panic!("reopening {}: {e}", dir.display())).load().unwrap();
    assert!(loaded.set_aside.is_empty(), "{}: records set aside: {:?}", dir.display(), loaded.set_aside);
    loaded.state
}

/// The decisions an arbiter's database holds (reopened and loaded); fails the test if any record
/// had to be set aside.
pub fn stored_decisions(dir: &Path, arbiter: PeerId) -> BTreeMap<Digest, DecisionRecord> {
    let loaded = DecisionStore::open(dir, arbiter).unwrap().load().unwrap();
    assert!(loaded.set_aside.is_empty(), "{}: decisions set aside: {:?}", dir.display(), loaded.set_aside);
    loaded.decisions
}

/// What must always hold (protocol.md §6.1, §6.3, §6.5) over the nodes' stored states and the
/// arbiters' stored decisions, for the values `issued` in the test.
pub fn audit_always(states: &[(&str, NodeState)], decisions: &BTreeMap<Digest, DecisionRecord>, issued: &[ValueId]) {
    let named: Vec<NamedState<'_>> = states.iter().map(|(name, state)| NamedState { name, state }).collect();
    if let Err(violation) = check_always(&named, decisions, issued) {
        panic!("{violation}");
    }
}

/// [`audit_always`], then what must hold at rest for the values `issued` in the test: every
/// session ended, each value spendable in exactly one vault, both sides of each exchange alike.
pub fn audit_at_rest(states: &[(&str, NodeState)], decisions: &BTreeMap<Digest, DecisionRecord>, issued: &[ValueId]) {
    audit_always(states, decisions, issued);
    let named: Vec<NamedState<'_>> = states.iter().map(|(name, state)| NamedState { name, state }).collect();
    assert!(
        all_terminal(&named),
        "not at rest: {:?}",
        states.iter().map(|(n, s)| (n, s.open_sessions().map(|s| s.phase_name()).collect::<Vec<_>>())).collect::<Vec<_>>()
    );
    if let Err(violation) = check_at_rest(&named, issued) {
        panic!("{violation}");
    }
}
