//! The event loop: a dispatcher. It owns the write-ahead driver (`WriteAhead`: core, store,
//! timers) and the network (`Network`: swarm, discovery), and routes each command, swarm event
//! and timer to the module that handles it:
//!
//! - inputs to the exchange core (a started exchange, a request, a response, an arbiter's answer,
//!   a timer) go through `WriteAhead::step`, which commits before anything is sent
//!   (`write_ahead.rs`);
//! - read-only commands are answered by `queries.rs`;
//! - identify, Kademlia and gossipsub events feed [`crate::net::Discovery`];
//! - dials are tracked here until their connection is up or has failed.
//!
//! An inbound request that arrives whole but does not decode (or announces a frame over the size
//! limit) never reaches the core: it is answered with a refusal carrying the decode error's code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::net::codec::{ArbiterRequestFrame, ExchangeRequestFrame};
use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, gossipsub, identify};
use rand::RngCore;
use rand::rngs::OsRng;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use valex_proto::PeerId;
use valex_proto::message::{ArbiterResponse, DecodeError, ExchangeRequest, ExchangeResponse, Refusal};
use valex_proto::value::Value;

use super::config::NodeConfig;
use super::error::NodeError;
use super::events::{EventSink, NodeEvent};
use super::handle::{Command, Node};
use super::network::{Network, ReplyTo, request_name};
use super::queries::{View, answer};
use super::types::StartExchange;
use super::write_ahead::{Outbox, WriteAhead};
use crate::exchange::{CoreConfig, Ctx, Input, Proposal, SessionId};
use crate::net::addr::{peer_of, strip_p2p};
use crate::net::behaviour::{NodeBehaviourEvent, build_swarm};
use crate::net::swarm::{self, SwarmTransport, default_transport};
use crate::net::{DirectoryChange, Discovery};
use crate::store::Store;
use crate::time::now_ms;

/// How long [`start`] waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Depth of the command queue.
const COMMAND_QUEUE: usize = 256;

/// The running event loop's task.
#[derive(Debug)]
pub struct EventLoopHandle {
    task: tokio::task::JoinHandle<()>,
}

impl EventLoopHandle {
    /// Waits for the event loop to end (after [`Node::shutdown`], or when every handle is dropped).
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "node event loop task failed");
        }
    }
}

/// The wall clock and 32 bytes from the OS rng: one step's [`Ctx`].
pub(crate) fn fresh_ctx() -> Ctx {
    let mut entropy = [0u8; 32];
    OsRng.fill_bytes(&mut entropy);
    Ctx { now_ms: now_ms(), entropy }
}

/// Starts a node on the current tokio runtime over tcp + noise + yamux ([`default_transport`]):
/// loads `store`, listens, dials the bootstrap peers, resumes every open session (re-sending its
/// pending request and re-arming its timers) and spawns the event loop. Returns once the listen
/// addresses are known.
pub async fn start<S: Store + Send + 'static>(config: NodeConfig, store: S) -> Result<(Node, EventLoopHandle), NodeError> {
    let transport = default_transport(&config.keypair)?;
    start_with_transport(config, store, transport).await
}

/// [`start`] over a transport the caller supplies: an in-memory transport, another stack
/// (websocket, QUIC, a relay), or a wrapper around the default one (a test harness injecting
/// faults, bandwidth metering). The transport must authenticate connections as
/// `config.keypair`'s peer id (as noise does with that key) and yield a multiplexed connection;
/// `config.listen` and the bootstrap addresses must be addresses it can listen on and dial.
pub async fn start_with_transport<S: Store + Send + 'static>(
    config: NodeConfig,
    store: S,
    transport: SwarmTransport,
) -> Result<(Node, EventLoopHandle), NodeError> {
    let core_config = CoreConfig { policy: config.policy.clone(), timing: config.timing };
    let events = EventSink::new();
    let mut driver = WriteAhead::open(config.keypair.clone(), core_config, store, events.clone(), fresh_ctx)?;
    let mut swarm = build_swarm(&config.keypair, transport, config.idle_connection_timeout)?;
    // Wait until every listener has an address, so listen_addrs() answers with real ports.
    swarm::listen(&mut swarm, &config.listen, LISTEN_TIMEOUT).await?;

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let peer_id = config.keypair.peer_id();
    let mut net = Network {
        swarm,
        discovery: Discovery::new(peer_id, config.discovery.clone()),
        pending_exchange: HashMap::new(),
        pending_arbiter: HashMap::new(),
        observe_sends: config.observe_sends.clone(),
    };
    bootstrap(&mut net, &config.bootstrap);
    driver.resume(&mut net);
    tracing::info!(peer = %peer_id, open_sessions = driver.state().open_sessions().count(), "node started");
    let node = Node { peer_id, commands: commands_tx, events: events.downgrade() };
    let event_loop = EventLoop { driver, net, events, config, commands: commands_rx, dials: HashMap::new() };
    let span = tracing::info_span!("node", peer = %peer_id);
    let task = tokio::spawn(event_loop.run().instrument(span));
    Ok((node, EventLoopHandle { task }))
}

/// Remembers the bootstrap peers' addresses and dials them.
fn bootstrap(net: &mut Network, addrs: &[Multiaddr]) {
    for addr in addrs {
        if let Some(peer) = peer_of(addr) {
            net.discovery.remember(&mut net.swarm.behaviour_mut().kad, peer, strip_p2p(addr));
        }
        if let Err(error) = net.swarm.dial(addr.clone()) {
            tracing::warn!(%addr, %error, "bootstrap dial failed");
        }
    }
}

struct EventLoop<S> {
    driver: WriteAhead<S>,
    net: Network,
    events: EventSink,
    config: NodeConfig,
    commands: mpsc::Receiver<Command>,
    /// Dials awaiting their connection, with the caller to tell.
    dials: HashMap<ConnectionId, oneshot::Sender<Result<(), NodeError>>>,
}

impl<S: Store> EventLoop<S> {
    async fn run(mut self) {
        let mut provider_query = tokio::time::interval(self.config.discovery.provider_query_interval);
        provider_query.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.driver.next_deadline();
            let timer = async move {
                match next_timer {
                    Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        tracing::info!("node shutting down");
                        let _ = done.send(());
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.net.swarm.select_next_some() => self.on_swarm_event(event),
                () = timer => self.driver.fire_due(&mut self.net),
                _ = provider_query.tick() => self.net.discovery.query_providers(&mut self.net.swarm),
                _ = expiry.tick() => {
                    let lost = self.net.discovery.expire(now_ms());
                    self.announce(lost);
                }
            }
        }
    }

    /// Tells the host which arbiters came and went.
    fn announce(&self, changes: Vec<DirectoryChange>) {
        for change in changes {
            self.events.emit(match change {
                DirectoryChange::Found(peer) => NodeEvent::ArbiterFound { peer },
                DirectoryChange::Lost(peer) => NodeEvent::ArbiterLost { peer },
            });
        }
    }

    // ---- commands ------------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Query(query) => {
                let view = View { state: self.driver.state(), discovery: &self.net.discovery, swarm: &self.net.swarm, now_ms: now_ms() };
                answer(query, &view);
            }
            Command::Dial(addr, reply) => self.dial(addr, reply),
            Command::Issue { kind, amount, payload, reply } => {
                let _ = reply.send(self.issue(&kind, amount, payload));
            }
            Command::Import(value, reply) => {
                let _ = reply.send(self.import(value));
            }
            Command::StartExchange(request, reply) => {
                let _ = reply.send(self.start_exchange(request));
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<(), NodeError>>) {
        if let Some(peer) = peer_of(&addr) {
            self.net.discovery.remember(&mut self.net.swarm.behaviour_mut().kad, peer, strip_p2p(&addr));
            if self.net.swarm.is_connected(&peer) {
                let _ = reply.send(Ok(()));
                return;
            }
        }
        let opts = DialOpts::from(addr);
        let id = opts.connection_id();
        match self.net.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, reply);
            }
            Err(DialError::DialPeerConditionFalse(_)) => {
                // Already dialing that peer.
                let _ = reply.send(Ok(()));
            }
            Err(error) => {
                let _ = reply.send(Err(NodeError::Dial(Arc::new(error))));
            }
        }
    }

    fn issue(&mut self, kind: &str, amount: u64, payload: Vec<u8>) -> Result<Value, NodeError> {
        let mut serial = [0u8; 16];
        OsRng.fill_bytes(&mut serial);
        let value = Value::issue(&self.config.keypair, kind, amount, payload, serial)?;
        self.driver.put_value(value.clone(), &mut self.net)?;
        Ok(value)
    }

    fn import(&mut self, value: Value) -> Result<(), NodeError> {
        self.driver.core().policy().check_value(&value)?;
        self.driver.put_value(value, &mut self.net)
    }

    fn start_exchange(&mut self, request: StartExchange) -> Result<SessionId, NodeError> {
        let now = now_ms();
        let me = self.config.keypair.peer_id();
        let arbiter = match request.arbiter {
            Some(arbiter) => arbiter,
            None => {
                let policy = self.driver.core().policy().as_ref();
                self.net.discovery.directory().pick(policy, &[me, request.peer], now).ok_or(NodeError::NoArbiter)?
            }
        };
        let expires_at_ms = now.saturating_add(request.ttl_ms.unwrap_or(self.config.default_ttl_ms));
        let start = Proposal { responder: request.peer, give: request.give, want: request.want, arbiter, expires_at_ms };
        let session =
            self.driver.step(Input::Start(start), None, &mut self.net)?.ok_or(NodeError::Internal("start produced no session"))?;
        tracing::info!(session = %session.short(), peer = %request.peer, %arbiter, "exchange started");
        Ok(session)
    }

    // ---- network -------------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<NodeBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(NodeBehaviourEvent::Exchange(event)) => self.on_exchange_event(event),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Arbiter(event)) => self.on_arbiter_event(event),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for addr in info.listen_addrs {
                    self.net.discovery.remember(&mut self.net.swarm.behaviour_mut().kad, peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Kad(event)) => {
                let changes = self.net.discovery.on_kad_event(&mut self.net.swarm, event, now_ms());
                self.announce(changes);
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                let changes = self.net.discovery.on_announcement(&mut self.net.swarm.behaviour_mut().kad, &message, now_ms());
                self.announce(changes);
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                tracing::debug!(peer = %peer_id, "connected");
                if endpoint.is_dialer() {
                    let addr = strip_p2p(endpoint.get_remote_address());
                    self.net.discovery.remember(&mut self.net.swarm.behaviour_mut().kad, peer_id, addr);
                }
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, peer_id } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let connected = peer_id.is_some_and(|p| self.net.swarm.is_connected(&p));
                    let _ = reply.send(if connected { Ok(()) } else { Err(NodeError::Dial(Arc::new(error))) });
                }
            }
            _ => {}
        }
    }

    fn on_exchange_event(&mut self, event: request_response::Event<ExchangeRequestFrame, ExchangeResponse>) {
        match event {
            request_response::Event::Message { peer: from, message, .. } => match message {
                request_response::Message::Request { request: Ok(request), channel, .. } => self.on_request(from, request, channel),
                request_response::Message::Request { request: Err(error), channel, .. } => {
                    self.on_undecodable_request(from, &error, channel);
                }
                request_response::Message::Response { request_id, response } => {
                    let Some(session) = self.net.pending_exchange.remove(&request_id) else { return };
                    match self.driver.step(Input::Response { from, session, response }, None, &mut self.net) {
                        Ok(_) => {}
                        Err(NodeError::Exchange(error)) => tracing::info!(session = %session.short(), %error, "response refused"),
                        Err(error) => tracing::warn!(session = %session.short(), %error, "response step failed"),
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                if let Some(session) = self.net.pending_exchange.remove(&request_id) {
                    tracing::debug!(session = %session.short(), %peer, %error, "request lost; the core retries");
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound exchange request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(&mut self, from: PeerId, request: ExchangeRequest, channel: ResponseChannel<ExchangeResponse>) {
        let s1 = request.s1();
        tracing::debug!(session = %s1.short(), %from, kind = request_name(&request), "request");
        let reply_to = ReplyTo { channel, peer: from };
        match self.driver.step(Input::Request { from, request }, Some(reply_to), &mut self.net) {
            Ok(_) => {}
            // The driver answered with the refusal.
            Err(NodeError::Exchange(error)) => tracing::info!(session = %s1.short(), %from, %error, "request refused"),
            Err(error) => tracing::warn!(session = %s1.short(), %error, "request step failed"),
        }
    }

    /// A request that arrived whole (or with an oversize length prefix) but does not decode: the
    /// core never sees it; the peer gets a refusal with the decode error's code.
    fn on_undecodable_request(&mut self, from: PeerId, error: &DecodeError, channel: ResponseChannel<ExchangeResponse>) {
        tracing::info!(%from, %error, "undecodable request refused");
        let refusal = ExchangeResponse::Refusal(Refusal::new(error.code(), error.to_string(), None));
        self.net.reply(ReplyTo { channel, peer: from }, refusal);
    }

    fn on_arbiter_event(&mut self, event: request_response::Event<ArbiterRequestFrame, ArbiterResponse>) {
        match event {
            request_response::Event::Message {
                peer: from, message: request_response::Message::Response { request_id, response }, ..
            } => {
                let Some(session) = self.net.pending_arbiter.remove(&request_id) else { return };
                match self.driver.step(Input::Arbiter { from, session, response }, None, &mut self.net) {
                    Ok(_) => tracing::info!(session = %session.short(), "arbiter decision applied"),
                    Err(NodeError::Exchange(error)) => {
                        tracing::info!(session = %session.short(), %error, "arbiter answer not applied; retrying");
                    }
                    Err(error) => tracing::warn!(session = %session.short(), %error, "decision step failed"),
                }
            }
            request_response::Event::Message { message: request_response::Message::Request { .. }, .. } => {}
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(session) = self.net.pending_arbiter.remove(&request_id) {
                    tracing::debug!(session = %session.short(), %error, "arbiter request lost; retrying with backoff");
                }
            }
            _ => {}
        }
    }
}
