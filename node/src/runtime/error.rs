//! Why a node command failed.

use crate::exchange::{ExchangeError, SessionId};
use crate::net::NetError;

/// Why a [`Node`](super::Node) command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The store failed; the command's effects were not committed (and nothing was sent).
    #[error("store: {0}")]
    Store(String),
    /// The exchange core refused the command.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// No arbiter was given and the directory has none the local policy accepts.
    #[error("no known arbiter is acceptable")]
    NoArbiter,
    /// Dialing failed.
    #[error("dial failed: {0}")]
    Dial(String),
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
}
