//! A store that tells the test what it commits.
//!
//! The write-ahead rule makes this a precise hook: a node commits each step's batch before it
//! sends the message that reveals it, so a callback run inside the commit happens before that
//! message leaves. Cutting a [`Partition`](super::partition::Partition) there loses exactly the
//! message that follows (A's commit of VALID precedes M3, B's commit of VALID precedes M2, B's
//! commit of DONE precedes M4), and notifying the test there says the message is about to go.

use std::sync::Arc;

use valex_node::exchange::{Session, WriteBatch, WriteOp};
use valex_node::store::{Loaded, Store};
use valex_proto::PeerId;

/// Called with every batch a store has committed.
pub type OnCommit = Arc<dyn Fn(&WriteBatch) + Send + Sync>;

/// `inner`, calling `on_commit` with each batch once it is committed (before `commit` returns).
pub struct ObservedStore<S> {
    inner: S,
    on_commit: OnCommit,
}

impl<S: Store> ObservedStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, on_commit: OnCommit) -> Self {
        Self { inner, on_commit }
    }
}

impl<S: Store> Store for ObservedStore<S> {
    type Error = S::Error;

    fn commit(&mut self, batch: &WriteBatch) -> Result<(), S::Error> {
        self.inner.commit(batch)?;
        (self.on_commit)(batch);
        Ok(())
    }

    fn load(&mut self) -> Result<Loaded, S::Error> {
        self.inner.load()
    }
}

/// The session records `batch` writes.
pub fn sessions(batch: &WriteBatch) -> impl Iterator<Item = &Session> {
    batch.ops.iter().filter_map(|op| match op {
        WriteOp::PutSession(session) => Some(&**session),
        _ => None,
    })
}

/// The counterparty of the first initiator (A-side) session `batch` puts into `phase`: B.
pub fn initiator_enters(batch: &WriteBatch, phase: &str) -> Option<PeerId> {
    sessions(batch).find_map(|s| match s {
        Session::Initiator(a) if s.phase_name() == phase => Some(a.responder),
        _ => None,
    })
}

/// The counterparty of the first responder (B-side) session `batch` puts into `phase`: A.
#[allow(dead_code, reason = "not every test binary that shares this module loses B's messages")]
pub fn responder_enters(batch: &WriteBatch, phase: &str) -> Option<PeerId> {
    sessions(batch).find_map(|s| match s {
        Session::Responder(b) if s.phase_name() == phase => Some(b.initiator),
        _ => None,
    })
}
