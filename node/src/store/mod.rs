//! Where a node's state lives between steps.
//!
//! A [`Store`] commits a [`WriteBatch`] atomically and durably (synced) and loads the whole
//! [`NodeState`] back after a restart. [`RocksStore`] is the durable one (RocksDB, one column
//! family per part of the state, records encoded by [`record`], following the RocksDB conventions
//! of [`rocks_db`] that the arbiter's decision store shares); [`MemoryStore`] serves the tests
//! and the model checker.

pub mod quarantine;
pub mod record;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(feature = "rocksdb")]
pub mod rocks_db;

use std::convert::Infallible;

#[cfg(feature = "rocksdb")]
pub use rocks::{RocksStore, columns};
#[cfg(feature = "rocksdb")]
pub use rocks_db::StoreError;

use self::quarantine::SetAside;
use crate::exchange::{NodeState, WriteBatch};

/// Durable storage for a node's vault and sessions.
///
/// A store is `Send`: the node's event loop owns it inside a tokio task.
///
/// ```
/// use valex_node::exchange::WriteBatch;
/// use valex_node::store::{MemoryStore, Store};
/// let mut store = MemoryStore::default();
/// store.commit(&WriteBatch::default()).unwrap();
/// let loaded = store.load().unwrap();
/// assert!(loaded.state.vault.is_empty());
/// assert!(loaded.set_aside.is_empty());
/// ```
pub trait Store: Send {
    /// Why a commit or load failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Commits `batch` as one atomic, synced write: after it returns `Ok`, a crash loses none of
    /// it; if it fails or the process dies during it, none of it is visible after a restart.
    fn commit(&mut self, batch: &WriteBatch) -> Result<(), Self::Error>;

    /// Loads everything committed so far. Records that cannot be decoded are not an error: they
    /// are reported in [`Loaded::set_aside`] (and a durable store moves them out of the way, so
    /// the next load does not meet them again); the rest loads.
    fn load(&mut self) -> Result<Loaded, Self::Error>;
}

/// What [`Store::load`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The state made of every record that decoded.
    pub state: NodeState,
    /// The records that did not, and were set aside.
    pub set_aside: Vec<SetAside>,
}

/// A store in memory: a commit is applied whole, so it is atomic; "durable" for as long as the
/// value lives, which is what crash-restart tests need (they rebuild the core from it). It never
/// sets anything aside.
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

    fn load(&mut self) -> Result<Loaded, Infallible> {
        Ok(Loaded { state: self.state.clone(), set_aside: Vec::new() })
    }
}
