//! A simulated node: what it persisted, what it holds in memory, its timers and its clock.

use std::collections::BTreeMap;

use valex_node::exchange::{Acquired, NodeState, SessionId, TimerKind, VaultEntry, WriteBatch, WriteOp};
use valex_proto::value::Value;

/// A node's state in the simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PartyState {
    /// What survives a crash: every committed write.
    pub persisted: NodeState,
    /// The core's in-memory state (equal to `persisted` except inside a crashing step).
    pub volatile: NodeState,
    /// Armed timers and their deadlines (0 for retries, whose time is abstracted).
    pub timers: BTreeMap<(SessionId, TimerKind), u64>,
    /// The node's clock, in ms; it advances when a deadline fires or it moves on by itself.
    pub now_ms: u64,
}

impl PartyState {
    pub(crate) fn seed_value(&mut self, value: Value) {
        let batch = WriteBatch::new(vec![WriteOp::PutValue(VaultEntry { value, acquired: Acquired::Issued })]);
        self.persisted.apply(&batch);
        self.volatile.apply(&batch);
    }
}
