//! What goes into the core and what comes out.

use valex_proto::PeerId;
use valex_proto::message::{ArbiterRequest, ArbiterResponse, ExchangeRequest, ExchangeResponse, Want};
use valex_proto::value::ValueId;

use super::state::{SessionId, WriteBatch};

/// The outside world as the core sees it for one step: the time and fresh randomness.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// 32 fresh random bytes; used as r1 or r2 when a session starts.
    pub entropy: [u8; 32],
}

/// A's proposal of terms, as the core starts a session with it: offer `give` to `responder` for
/// `want`, with the arbiter and expiry already chosen. (The runtime's
/// [`StartExchange`](../runtime/struct.StartExchange.html) is what a host asks for; the runtime picks
/// the arbiter and turns the time-to-live into `expires_at_ms`.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// B.
    pub responder: PeerId,
    /// V1, a spendable value in this node's vault.
    pub give: ValueId,
    /// What to get for it.
    pub want: Want,
    /// T, an arbiter B accepts.
    pub arbiter: PeerId,
    /// When the offer expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Time to send the session's current request again.
    Retry,
    /// The session's deadline (expiry, or expiry + grace).
    Deadline,
}

/// One input to the core.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    /// A local command to start an exchange as initiator.
    Start(Proposal),
    /// An exchange request (M1 or M3) from a peer; the reply goes in [`Effects::reply`].
    Request {
        /// The authenticated sender.
        from: PeerId,
        /// The request.
        request: ExchangeRequest,
    },
    /// An exchange response (M2, M4 or a refusal) to a request this node sent for `session`.
    Response {
        /// The authenticated sender.
        from: PeerId,
        /// The session the request was for.
        session: SessionId,
        /// The response.
        response: ExchangeResponse,
    },
    /// The arbiter's answer to a request this node sent for `session`.
    Arbiter {
        /// The authenticated sender.
        from: PeerId,
        /// The session the request was for.
        session: SessionId,
        /// The answer.
        response: ArbiterResponse,
    },
    /// A timer armed by an earlier step fired.
    Timer {
        /// Its session.
        session: SessionId,
        /// Which one.
        kind: TimerKind,
    },
}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outgoing {
    /// To a peer, on the exchange protocol.
    Exchange {
        /// The peer.
        to: PeerId,
        /// Its session.
        session: SessionId,
        /// M1 or M3.
        request: ExchangeRequest,
    },
    /// To an arbiter, on the arbiter protocol.
    Arbiter {
        /// The arbiter.
        to: PeerId,
        /// Its session.
        session: SessionId,
        /// A cancel or complete request.
        request: ArbiterRequest,
    },
}

/// A timer to arm. Arming a timer replaces the session's earlier timer of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer {
    /// Its session.
    pub session: SessionId,
    /// Which one.
    pub kind: TimerKind,
    /// When it fires, ms since the Unix epoch.
    pub at_ms: u64,
}

/// What one step asks the driver to do, in this order: commit [`Effects::persist`] as one synced
/// write; only then send the reply and the requests, and arm the timers. If the commit fails the
/// driver must not send anything: it treats the failure as a crash and restarts from the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effects {
    /// The session this step concerned, if any.
    pub session: Option<SessionId>,
    /// The one atomic write to commit first.
    pub persist: Option<WriteBatch>,
    /// The response to an [`Input::Request`].
    pub reply: Option<ExchangeResponse>,
    /// Requests to send.
    pub send: Vec<Outgoing>,
    /// Timers to arm.
    pub timers: Vec<Timer>,
}

impl Effects {
    pub(crate) fn for_session(session: SessionId) -> Self {
        Self { session: Some(session), ..Self::default() }
    }
}
