//! Why a node command failed.

use std::sync::Arc;

use libp2p::swarm::DialError;

use crate::exchange::{ExchangeError, SessionId};
use crate::net::NetError;

/// Why a [`Node`](super::Node) command failed.
///
/// It is `Clone` (one failure may answer several waiters), so the foreign errors it carries whole
/// — the store's, libp2p's `DialError` — sit behind an `Arc`: neither is `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The store failed; the command's effects were not committed (and nothing was sent). The
    /// source is the store's own error (for a `RocksStore`, a
    /// [`StoreError`](crate::store::StoreError)).
    #[error("store: {0}")]
    Store(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The exchange core refused the command.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// No arbiter was given and the directory has none the local policy accepts.
    #[error("no known arbiter is acceptable")]
    NoArbiter,
    /// Dialing failed.
    #[error("dial failed: {0}")]
    Dial(#[source] Arc<DialError>),
    /// No such value in the vault.
    #[error("unknown value")]
    UnknownValue,
    /// No such session.
    #[error("unknown session {0}")]
    UnknownSession(SessionId),
    /// A value could not be issued or was refused.
    #[error("value: {0}")]
    Value(#[from] valex_proto::value::ValueError),
    /// The network could not be set up.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The node broke one of its own invariants (a bug); the command did nothing.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl NodeError {
    /// A store failure, keeping the store's error whole as the source.
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Arc::new(error))
    }
}
