//! What a node tells its host as it happens: [`NodeEvent`]s, read from a [`NodeEvents`]
//! subscription ([`Node::events`](super::Node::events)), so a host learns that its node gave a
//! value away without polling `sessions()`.
//!
//! Session events are derived by the write-ahead driver from the phase a step leaves a session in
//! compared with the phase it found it in, and are published only after that step's write is
//! committed: an event never announces something a crash could undo. Arbiter events follow the
//! arbiter directory.
//!
//! # Order
//!
//! For one session the events come in protocol order: [`NodeEvent::SessionStarted`], then
//! [`NodeEvent::SessionAgreed`] (once both parties signed the terms; never, if the exchange is
//! aborted before), then for a swap [`NodeEvent::ValueReceived`] and [`NodeEvent::ValueGiven`],
//! and last [`NodeEvent::SessionEnded`]: after it, nothing more is said about that session.
//! A session resumed after a restart announces nothing again; a subscriber that needs the whole
//! picture reads `sessions()` after subscribing.
//!
//! # Lagging
//!
//! Every subscriber has its own buffer of [`EVENT_BUFFER`] events. The node never waits for a
//! slow subscriber: when its buffer is full the oldest events are dropped *for that subscriber*,
//! and its next [`NodeEvents::recv`] returns [`EventError::Lagged`] with how many it missed,
//! then carries on with the oldest event still buffered. A subscriber that must not miss an end
//! (like [`Node::wait_session`](super::Node::wait_session)) re-reads the state when told it
//! lagged. When the node stops, `recv` returns the buffered events, then [`EventError::Closed`].

use std::sync::Arc;

use tokio::sync::broadcast;
use valex_proto::PeerId;
use valex_proto::value::ValueId;

use super::types::ExchangeResult;
use crate::exchange::initiator::InitiatorPhase;
use crate::exchange::responder::ResponderPhase;
use crate::exchange::{NodeState, Session, SessionId};

/// How many events a subscriber may fall behind before it starts missing some.
pub const EVENT_BUFFER: usize = 1024;

/// This node's part in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A: offered V1 and started the session.
    Initiator,
    /// B: answered an offer with V2.
    Responder,
}

/// Something that happened on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session was created and persisted: as initiator when M1 is about to go out, as
    /// responder when an offer was accepted (and M2 is about to go out).
    SessionStarted {
        /// The session (s1).
        session: SessionId,
        /// This node's part.
        role: Role,
        /// The counterparty.
        peer: PeerId,
    },
    /// Both parties signed the terms: the initiator accepted M2, or the responder sent it.
    SessionAgreed {
        /// The session.
        session: SessionId,
    },
    /// A value came into the vault through the session (it is now this node's, with a receipt).
    ValueReceived {
        /// The value.
        value: ValueId,
        /// The session.
        session: SessionId,
    },
    /// A value of this node went to the counterparty for good.
    ValueGiven {
        /// The value.
        value: ValueId,
        /// The session.
        session: SessionId,
    },
    /// The session ended on this side; the last event about it.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// How it ended, as [`Node::wait_session`](super::Node::wait_session) reports it
        /// (shared: every subscriber gets the same one).
        result: Arc<ExchangeResult>,
    },
    /// An arbiter entered the directory (through Kademlia or gossipsub).
    ArbiterFound {
        /// The arbiter.
        peer: PeerId,
    },
    /// An arbiter left the directory: not seen again within the entry lifetime.
    ArbiterLost {
        /// The arbiter.
        peer: PeerId,
    },
}

/// Why [`NodeEvents::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The subscriber fell behind and `missed` events were dropped for it; the next `recv`
    /// returns the oldest event still buffered.
    #[error("fell behind: {missed} node events missed")]
    Lagged {
        /// How many.
        missed: u64,
    },
    /// The node has stopped; no more events will come.
    #[error("the node has stopped")]
    Closed,
}

/// A subscription to a node's events, from [`Node::events`](super::Node::events). It sees the
/// events published after it was made. Dropping it unsubscribes.
#[derive(Debug)]
pub struct NodeEvents {
    rx: broadcast::Receiver<NodeEvent>,
}

impl NodeEvents {
    pub(crate) fn new(rx: broadcast::Receiver<NodeEvent>) -> Self {
        Self { rx }
    }

    /// The next event; see the [module docs](self) for lagging and closing.
    pub async fn recv(&mut self) -> Result<NodeEvent, EventError> {
        self.rx.recv().await.map_err(|error| match error {
            broadcast::error::RecvError::Lagged(missed) => EventError::Lagged { missed },
            broadcast::error::RecvError::Closed => EventError::Closed,
        })
    }

    /// The subscription as a stream that ends when the node stops; a lag is an `Err` item.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<NodeEvent, EventError>> + Send + 'static {
        futures::stream::unfold(self, |mut events| async move {
            match events.recv().await {
                Err(EventError::Closed) => None,
                item => Some((item, events)),
            }
        })
    }
}

/// Where the event loop publishes events. Only the event loop holds senders, so subscribers see
/// [`EventError::Closed`] once it has stopped.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    tx: broadcast::Sender<NodeEvent>,
}

impl EventSink {
    pub(crate) fn new() -> Self {
        Self { tx: broadcast::Sender::new(EVENT_BUFFER) }
    }

    /// A handle that can subscribe without keeping the channel open.
    pub(crate) fn downgrade(&self) -> broadcast::WeakSender<NodeEvent> {
        self.tx.downgrade()
    }

    /// Publishes `event` to every current subscriber (none is fine).
    pub(crate) fn emit(&self, event: NodeEvent) {
        tracing::trace!(?event, "node event");
        let _ = self.tx.send(event);
    }
}

/// Subscribes through `weak`; once the node has stopped, a subscription that is already closed.
pub(crate) fn subscribe(weak: &broadcast::WeakSender<NodeEvent>) -> NodeEvents {
    match weak.upgrade() {
        Some(tx) => NodeEvents::new(tx.subscribe()),
        None => NodeEvents::new(broadcast::channel(1).1),
    }
}

/// How far a session has come, as far as events are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    agreed: bool,
    ended: bool,
}

impl Progress {
    pub(crate) fn of(session: &Session) -> Self {
        let agreed = match session {
            Session::Initiator(s) => s.agreement().is_some(),
            // B signs the terms before it persists the session: a responder session is agreed.
            Session::Responder(_) => true,
        };
        Self { agreed, ended: session.is_terminal() }
    }
}

/// The events a step that took a session from `before` (`None`: it did not exist) to `after`
/// announces, in order. `state` is the state after the step.
pub(crate) fn session_events(before: Option<Progress>, after: &Session, state: &NodeState) -> Vec<NodeEvent> {
    let session = after.id();
    let now = Progress::of(after);
    let mut events = Vec::new();
    if before.is_none() {
        let (role, peer) = match after {
            Session::Initiator(s) => (Role::Initiator, s.responder),
            Session::Responder(s) => (Role::Responder, s.initiator),
        };
        events.push(NodeEvent::SessionStarted { session, role, peer });
    }
    if now.agreed && !before.is_some_and(|b| b.agreed) {
        events.push(NodeEvent::SessionAgreed { session });
    }
    if now.ended && !before.is_some_and(|b| b.ended) {
        let swapped = match after {
            Session::Initiator(s) => match &s.phase {
                InitiatorPhase::Done { agreement, .. } => Some((agreement.v2.id(), s.v1.id())),
                _ => None,
            },
            Session::Responder(s) => match &s.phase {
                ResponderPhase::Done { .. } => Some((s.offer.v1.id(), s.v2.id())),
                _ => None,
            },
        };
        if let Some((received, given)) = swapped {
            events.push(NodeEvent::ValueReceived { value: received, session });
            events.push(NodeEvent::ValueGiven { value: given, session });
        }
        events.push(NodeEvent::SessionEnded { session, result: Arc::new(ExchangeResult::of(state, after)) });
    }
    events
}
