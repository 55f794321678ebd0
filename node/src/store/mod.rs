//! Where a node's state lives between steps.
//!
//! A [`Store`] commits a [`WriteBatch`] atomically and durably (synced) and loads the whole
//! [`NodeState`] back after a restart. [`MemoryStore`] serves the tests and the model checker.

use std::convert::Infallible;

use crate::exchange::{NodeState, WriteBatch};

/// Durable storage for a node's vault and sessions.
///
/// ```
/// use valex_node::exchange::WriteBatch;
/// use valex_node::store::{MemoryStore, Store};
/// let mut store = MemoryStore::default();
/// store.commit(&WriteBatch::default()).unwrap();
/// assert!(store.load().unwrap().vault.is_empty());
/// ```
pub trait Store {
    /// Why a commit or load failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Commits `batch` as one atomic, synced write: after it returns `Ok`, a crash loses none of
    /// it; if it fails or the process dies during it, none of it is visible after a restart.
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), Self::Error>;

    /// Loads everything committed so far.
    fn load(&self) -> Result<NodeState, Self::Error>;
}

/// A store in memory: a commit is applied whole, so it is atomic; "durable" for as long as the
/// value lives, which is what crash-restart tests need (they rebuild the core from it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MemoryStore {
    state: NodeState,
}

impl Store for MemoryStore {
    type Error = Infallible;

    fn commit(&mut self, batch: &WriteBatch) -> Result<(), Infallible> {
        self.state.apply(batch);
        Ok(())
    }

    fn load(&self) -> Result<NodeState, Infallible> {
        Ok(self.state.clone())
    }
}
