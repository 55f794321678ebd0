//! Why the core refused an input. A refused input leaves the node's state untouched; the
//! networking layer answers a refused request with [`ExchangeError::refusal`].

use valex_proto::PeerId;
use valex_proto::message::{DecisionError, Refusal};
use valex_proto::value::{ValueError, ValueId};
use valex_proto::wire::ErrorCode;

use super::state::SessionId;

/// A refused input, with the error code sent back to the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// A value is bad or its issuer not accepted.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The message came from a peer other than the one the session names.
    #[error("session {session}: message from {got}, expected {expected}")]
    WrongSender {
        /// The session.
        session: SessionId,
        /// The party the terms name.
        expected: PeerId,
        /// The actual sender.
        got: PeerId,
    },
    /// A signature does not verify.
    #[error("session {session}: {what} does not verify")]
    InvalidSignature {
        /// The session.
        session: SessionId,
        /// Which signature.
        what: &'static str,
    },
    /// A hash or s2 differs from what this node computed or agreed.
    #[error("session {session}: {what} does not match")]
    HashMismatch {
        /// The session.
        session: SessionId,
        /// What differs.
        what: &'static str,
    },
    /// The arbiter's decision does not bind this session or is not the arbiter's.
    #[error("session {session}: decision refused: {source}")]
    Decision {
        /// The session.
        session: SessionId,
        /// Why.
        source: DecisionError,
    },
    /// This node holds no spendable value matching the want.
    #[error("no spendable value matches the want {0}")]
    WantUnavailable(String),
    /// The arbiter is outside this node's policy.
    #[error("arbiter {0} is not accepted")]
    ArbiterNotAccepted(PeerId),
    /// The expiry is in the past or outside this node's policy.
    #[error("expiry {expires_at_ms} is outside the accepted window at {now_ms}")]
    ExpiryOutOfPolicy {
        /// The proposed expiry.
        expires_at_ms: u64,
        /// This node's time.
        now_ms: u64,
    },
    /// No such session.
    #[error("unknown session {0}")]
    UnknownSession(SessionId),
    /// A message conflicts with an existing session (a replay, or a reused s1).
    #[error("session {0}: conflicting or replayed message")]
    SessionConflict(SessionId),
    /// The session has ended.
    #[error("session {0} has ended")]
    SessionClosed(SessionId),
    /// The session is PENDING: only the arbiter decides now.
    #[error("session {0} is pending: only the arbiter decides now")]
    Pending(SessionId),
    /// The value is not in the vault, or is locked or escrowed in another session.
    #[error("value {0} is not available: absent, or offered or escrowed in another session")]
    ValueBusy(ValueId),
    /// The peer has too many open sessions with this node.
    #[error("peer {peer} already has {cap} open sessions")]
    TooManySessions {
        /// The peer.
        peer: PeerId,
        /// The cap.
        cap: usize,
    },
    /// The message does not fit the session's phase (e.g. M4 before M3 was sent).
    #[error("session {session}: unexpected {what} in phase {phase}")]
    Unexpected {
        /// The session.
        session: SessionId,
        /// What arrived.
        what: &'static str,
        /// The session's phase.
        phase: &'static str,
    },
    /// The arbiter refused our request; we keep retrying.
    #[error("session {session}: arbiter refused: {refusal}")]
    ArbiterRefused {
        /// The session.
        session: SessionId,
        /// What it said.
        refusal: Refusal,
    },
    /// A local command named this node as its own counterparty.
    #[error("cannot exchange with ourselves")]
    SelfExchange,
}

impl ExchangeError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Value(ValueError::UnknownIssuer { .. }) => ErrorCode::IssuerNotAccepted,
            Self::Value(ValueError::KindTooLong { .. } | ValueError::PayloadTooLarge { .. }) => ErrorCode::TooLarge,
            Self::Value(_) => ErrorCode::InvalidValue,
            Self::WrongSender { .. } | Self::SelfExchange => ErrorCode::WrongSender,
            Self::InvalidSignature { .. } => ErrorCode::InvalidSignature,
            Self::Decision { source: DecisionError::BadSignature(_), .. } => ErrorCode::InvalidSignature,
            Self::HashMismatch { .. } | Self::Decision { .. } => ErrorCode::HashMismatch,
            Self::WantUnavailable(_) => ErrorCode::WantUnavailable,
            Self::ArbiterNotAccepted(_) => ErrorCode::ArbiterNotAccepted,
            Self::ExpiryOutOfPolicy { .. } => ErrorCode::ExpiryOutOfPolicy,
            Self::UnknownSession(_) => ErrorCode::UnknownSession,
            Self::SessionConflict(_) => ErrorCode::SessionConflict,
            Self::SessionClosed(_) => ErrorCode::SessionClosed,
            Self::Pending(_) => ErrorCode::Pending,
            Self::ValueBusy(_) => ErrorCode::ValueBusy,
            Self::TooManySessions { .. } => ErrorCode::TooManySessions,
            Self::Unexpected { .. } => ErrorCode::Malformed,
            Self::ArbiterRefused { refusal, .. } => refusal.code,
        }
    }

    /// The refusal to send back to the peer.
    pub fn refusal(&self, session: Option<SessionId>) -> Refusal {
        Refusal::new(self.code(), self.to_string(), session)
    }
}
