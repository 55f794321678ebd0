//! [`Node`]: a cheap, cloneable handle that sends commands to the event loop and subscribes to
//! its events.

use libp2p::Multiaddr;
use tokio::sync::{broadcast, mpsc, oneshot};
use valex_proto::PeerId;
use valex_proto::value::{Value, ValueId};

use super::error::NodeError;
use super::events::{EventError, NodeEvent, NodeEvents, subscribe};
use super::queries::Query;
use super::types::{ArbiterInfo, ExchangeResult, PeerInfo, SessionInfo, StartExchange, ValueInfo};
use crate::exchange::{NodeState, SessionId, SessionOutcome};

/// What the handle asks the event loop to do; each carries its reply channel.
#[derive(Debug)]
pub(crate) enum Command {
    /// Read-only: answered from the state, never through the write path.
    Query(Query),
    Dial(Multiaddr, oneshot::Sender<Result<(), NodeError>>),
    Issue {
        kind: String,
        amount: u64,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Value, NodeError>>,
    },
    Import(Value, oneshot::Sender<Result<(), NodeError>>),
    StartExchange(StartExchange, oneshot::Sender<Result<SessionId, NodeError>>),
    Shutdown(oneshot::Sender<()>),
}

/// A running node. Clone it freely; every clone talks to the same event loop.
///
/// Commands fail with [`NodeError::Stopped`] once the node has shut down.
#[derive(Debug, Clone)]
pub struct Node {
    pub(crate) peer_id: PeerId,
    pub(crate) commands: mpsc::Sender<Command>,
    /// Weak, so that a subscription ends when the event loop does, however many handles live.
    pub(crate) events: broadcast::WeakSender<NodeEvent>,
}

impl Node {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    async fn query<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, NodeError> {
        self.ask(|tx| Command::Query(make(tx))).await
    }

    /// Subscribes to the node's events from now on: sessions started, agreed and ended, values
    /// received and given, arbiters found and lost. See [`NodeEvents`] for the order and for what
    /// happens to a subscriber that falls behind. Once the node has stopped the subscription
    /// is closed.
    pub fn events(&self) -> NodeEvents {
        subscribe(&self.events)
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the node listens on (with the real ports).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.query(Query::ListenAddrs).await
    }

    /// Connects to `addr`; returns once the connection is established.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// Issues a value under the node's own key (serial from the OS rng) into its vault.
    pub async fn issue(&self, kind: String, amount: u64, payload: Vec<u8>) -> Result<Value, NodeError> {
        self.ask(|reply| Command::Issue { kind, amount, payload, reply }).await?
    }

    /// Adds a value the owner brings in (checked against the policy) to the vault.
    pub async fn import(&self, value: Value) -> Result<(), NodeError> {
        self.ask(|tx| Command::Import(value, tx)).await?
    }

    /// Every value in the vault.
    pub async fn values(&self) -> Result<Vec<ValueInfo>, NodeError> {
        self.query(Query::Values).await
    }

    /// One value of the vault.
    pub async fn value(&self, id: ValueId) -> Result<Option<ValueInfo>, NodeError> {
        self.query(|tx| Query::Value(id, tx)).await
    }

    /// Runs an exchange as initiator and waits until it has ended on this side.
    pub async fn exchange(&self, request: StartExchange) -> Result<ExchangeResult, NodeError> {
        let session = self.start_exchange(request).await?;
        self.wait_session(session).await
    }

    /// Starts an exchange; returns once M1 is persisted and sent.
    pub async fn start_exchange(&self, request: StartExchange) -> Result<SessionId, NodeError> {
        self.ask(|tx| Command::StartExchange(request, tx)).await?
    }

    /// Waits until `session` has ended on this side.
    ///
    /// Subscribes to the events first and only then reads the session, so an end cannot slip
    /// between the two: it is either in the state read or among the events that follow. A
    /// subscription that lags reads the state again.
    pub async fn wait_session(&self, session: SessionId) -> Result<ExchangeResult, NodeError> {
        let mut events = self.events();
        loop {
            match self.query(|tx| Query::Session(session, tx)).await? {
                None => return Err(NodeError::UnknownSession(session)),
                Some(result) if result.outcome != SessionOutcome::Open => return Ok(result),
                Some(_) => {}
            }
            loop {
                match events.recv().await {
                    Ok(NodeEvent::SessionEnded { session: ended, result }) if ended == session => {
                        return Ok(std::sync::Arc::unwrap_or_clone(result));
                    }
                    Ok(_) => {}
                    Err(EventError::Lagged { .. }) => break, // the end may be among the missed: read again
                    Err(EventError::Closed) => return Err(NodeError::Stopped),
                }
            }
        }
    }

    /// Every session, open or ended.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, NodeError> {
        self.query(Query::Sessions).await
    }

    /// The arbiter directory's live entries.
    pub async fn arbiters(&self) -> Result<Vec<ArbiterInfo>, NodeError> {
        self.query(Query::Arbiters).await
    }

    /// Known peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.query(Query::Peers).await
    }

    /// The node's state as last committed (for audits of protocol.md §6).
    pub async fn snapshot(&self) -> Result<NodeState, NodeError> {
        self.query(Query::Snapshot).await
    }

    /// Stops the node: the event loop ends, connections close. Open sessions resume at the next
    /// start from the same store.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.ask(Command::Shutdown).await
    }
}
