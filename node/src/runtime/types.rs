//! What the [`Node`](super::Node) handle answers with.

use libp2p::Multiaddr;
use valex_proto::message::Want;
use valex_proto::value::{Value, ValueId};
use valex_proto::{Digest, PeerId};

use crate::exchange::initiator::InitiatorPhase;
use crate::exchange::responder::ResponderPhase;
use crate::exchange::{Acquired, Evidence, NodeState, Receipt, Session, SessionId, SessionOutcome};

/// A value in the node's vault.
#[derive(Debug, Clone)]
pub struct ValueInfo {
    /// The value.
    pub value: Value,
    /// How it got here.
    pub acquired: Acquired,
    /// The open session it is offered in, if any.
    pub locked_by: Option<SessionId>,
    /// Its receipt, when acquired by exchange.
    pub receipt: Option<Receipt>,
}

impl ValueInfo {
    pub(crate) fn of(state: &NodeState, id: &ValueId) -> Option<Self> {
        let entry = state.vault.get(id)?;
        Some(Self {
            value: entry.value.clone(),
            acquired: entry.acquired.clone(),
            locked_by: state.locks.get(id).copied(),
            receipt: state.receipts.get(id).cloned(),
        })
    }
}

/// What a host asks for to start an exchange: `give` to `peer` for `want`. The node picks the
/// arbiter when none is named and computes the expiry, and hands the core a
/// [`Proposal`](crate::exchange::Proposal). The control API's `StartExchangeRequest` carries the same.
#[derive(Debug, Clone)]
pub struct StartExchange {
    /// The responder B.
    pub peer: PeerId,
    /// V1: a spendable value of this node.
    pub give: ValueId,
    /// What to get for it.
    pub want: Want,
    /// The arbiter T; `None` picks one from the directory that the local policy accepts.
    pub arbiter: Option<PeerId>,
    /// Time to expiry; `None` uses the node's default.
    pub ttl_ms: Option<u64>,
}

/// How a session ended, on this side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeResult {
    /// The session (s1).
    pub session: SessionId,
    /// Its outcome (`Open` only when asked about a session that has not ended).
    pub outcome: SessionOutcome,
    /// Whether the arbiter's decision settled it.
    pub settled_by_arbiter: bool,
    /// The value received, when swapped.
    pub received: Option<Value>,
    /// The receipt for it.
    pub receipt: Option<Receipt>,
    /// The session's phase, e.g. `DONE` or `ABORTED`.
    pub phase: &'static str,
    /// For an aborted exchange, the error code that ended it (e.g. `ARBITER_NOT_ACCEPTED` when
    /// the responder refused the arbiter picked from the directory).
    pub aborted_reason: Option<&'static str>,
}

impl ExchangeResult {
    pub(crate) fn of(state: &NodeState, session: &Session) -> Self {
        let (received, settled_by_arbiter, aborted_reason) = match session {
            Session::Initiator(s) => match &s.phase {
                InitiatorPhase::Done { agreement, evidence } => {
                    (Some(agreement.v2.clone()), matches!(evidence, Evidence::Decision(_)), None)
                }
                InitiatorPhase::Cancelled { .. } => (None, true, None),
                InitiatorPhase::Aborted { reason } => (None, false, Some(reason.as_str_name())),
                _ => (None, false, None),
            },
            Session::Responder(s) => match &s.phase {
                ResponderPhase::Done { decision, .. } => (Some(s.offer.v1.clone()), decision.is_some(), None),
                ResponderPhase::Cancelled { .. } => (None, true, None),
                _ => (None, false, None),
            },
        };
        let receipt = received.as_ref().and_then(|v| state.receipts.get(&v.id()).cloned());
        Self {
            session: session.id(),
            outcome: session.outcome(),
            settled_by_arbiter,
            received,
            receipt,
            phase: session.phase_name(),
            aborted_reason,
        }
    }
}

/// One session, as listed.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// s1.
    pub id: SessionId,
    /// `initiator` or `responder`.
    pub role: &'static str,
    /// The counterparty.
    pub peer: PeerId,
    /// The arbiter.
    pub arbiter: PeerId,
    /// Phase name, e.g. `PENDING`.
    pub phase: &'static str,
    /// Outcome so far.
    pub outcome: SessionOutcome,
    /// Expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// s2, once known.
    pub s2: Option<Digest>,
    /// Whether the arbiter settled it.
    pub settled_by_arbiter: bool,
}

impl SessionInfo {
    pub(crate) fn of(state: &NodeState, session: &Session) -> Self {
        let result = ExchangeResult::of(state, session);
        match session {
            Session::Initiator(s) => Self {
                id: s.s1,
                role: "initiator",
                peer: s.responder,
                arbiter: s.arbiter,
                phase: session.phase_name(),
                outcome: session.outcome(),
                expires_at_ms: s.expires_at_ms,
                s2: s.agreement().map(|a| a.s2),
                settled_by_arbiter: result.settled_by_arbiter,
            },
            Session::Responder(s) => Self {
                id: s.s1,
                role: "responder",
                peer: s.initiator,
                arbiter: s.terms.arbiter,
                phase: session.phase_name(),
                outcome: session.outcome(),
                expires_at_ms: s.terms.expires_at_ms,
                s2: Some(s.s2),
                settled_by_arbiter: result.settled_by_arbiter,
            },
        }
    }
}

/// A known arbiter.
#[derive(Debug, Clone)]
pub struct ArbiterInfo {
    /// Its PeerId.
    pub peer: PeerId,
    /// Its addresses.
    pub addrs: Vec<Multiaddr>,
    /// Its announced name.
    pub name: Option<String>,
    /// Found through a Kademlia provider record.
    pub via_kademlia: bool,
    /// Found through a gossipsub announcement.
    pub via_gossipsub: bool,
    /// When last seen, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

/// A known peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its PeerId.
    pub peer: PeerId,
    /// Its known addresses.
    pub addrs: Vec<Multiaddr>,
    /// Whether a connection is open.
    pub connected: bool,
}
