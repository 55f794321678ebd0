//! The event loop: owns the swarm, the [`ExchangeCore`] and the [`Store`], and drives the core
//! from commands, network events and timers.
//!
//! Every core step's [`Effects`] are carried out in the order the write-ahead rule demands: the
//! write batch is committed (one synced write) first; if that fails nothing is sent, the command
//! fails, and the core is rebuilt from the store as after a crash. Only then does the reply or
//! request go out and are the timers armed. Outbound requests that fail (dial failure, timeout,
//! closed connection) are simply lost messages: the core's retry timers send them again. An
//! inbound request that arrives whole but does not decode (or announces a frame over the size
//! limit) never reaches the core: it is answered with a refusal carrying the decode error's code.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::kad::{self, GetProvidersOk, QueryResult};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, Swarm, gossipsub, identify};
use rand::RngCore;
use rand::rngs::OsRng;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use valex_proto::PeerId;
use valex_proto::crypto::Keypair;
use valex_proto::discovery::arbiter_provider_key;
use valex_proto::message::{ArbiterAnnouncement, ArbiterResponse, DecodeError, ExchangeRequest, ExchangeResponse, Refusal};
use valex_proto::value::Value;

use super::config::{FaultPoint, NodeConfig};
use super::error::NodeError;
use super::handle::{Command, Node};
use super::types::{ArbiterInfo, ExchangeRequestCmd, ExchangeResult, PeerInfo, SessionInfo, ValueInfo};
use crate::exchange::{CoreConfig, Ctx, Effects, ExchangeCore, Input, NodeState, Outgoing, SessionId, StartExchange, Timer, TimerKind};
use crate::net::behaviour::{NodeBehaviour, NodeBehaviourEvent, build_swarm};
use crate::net::codec::{ArbiterRequestFrame, ExchangeRequestFrame};
use crate::net::{ArbiterDirectory, DiscoverySource, NetError};
use crate::store::Store;

/// How long [`start`] waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Most addresses remembered per peer.
const MAX_ADDRS_PER_PEER: usize = 8;
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

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

fn fresh_ctx() -> Ctx {
    let mut entropy = [0u8; 32];
    OsRng.fill_bytes(&mut entropy);
    Ctx { now_ms: now_ms(), entropy }
}

/// Loads the committed state from `store`, logging the records it had to set aside.
fn load_state<S: Store>(store: &mut S) -> Result<NodeState, NodeError> {
    let loaded = store.load().map_err(|e| NodeError::Store(e.to_string()))?;
    for record in &loaded.set_aside {
        tracing::error!(column = %record.column, key = %record.key_hex, reason = %record.reason, "store record set aside");
    }
    Ok(loaded.state)
}

/// Starts a node on the current tokio runtime: loads `store`, listens, dials the bootstrap
/// peers, resumes every open session (re-sending its pending request and re-arming its timers)
/// and spawns the event loop. Returns once the listen addresses are known.
pub async fn start<S: Store + Send + 'static>(config: NodeConfig, mut store: S) -> Result<(Node, EventLoopHandle), NodeError> {
    let state = load_state(&mut store)?;
    let mut swarm = build_swarm(&config.keypair, config.idle_connection_timeout)?;
    let mut pending_listeners = Vec::new();
    for addr in &config.listen {
        let id = swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen { addr: addr.to_string(), reason: e.to_string() })?;
        pending_listeners.push(id);
    }
    // Wait until every listener has an address, so listen_addrs() answers with real ports.
    let waited = tokio::time::timeout(LISTEN_TIMEOUT, async {
        while !pending_listeners.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { listener_id, .. } => pending_listeners.retain(|l| *l != listener_id),
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    return Err(NetError::Listen { addr: format!("{listener_id:?}"), reason: format!("{reason:?}") });
                }
                _ => {}
            }
        }
        Ok(())
    })
    .await;
    match waited {
        Ok(result) => result?,
        Err(_) => return Err(NetError::Listen { addr: "listeners".into(), reason: "no address reported in time".into() }.into()),
    }

    // The update fills `planted_bug` when the planted-bugs feature is on.
    #[allow(clippy::needless_update)]
    let core_config = CoreConfig { policy: config.policy.clone(), timing: config.timing, ..CoreConfig::default() };
    let core = ExchangeCore::new(config.keypair.clone(), core_config.clone(), state);
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let peer_id = config.keypair.peer_id();
    let mut event_loop = EventLoop {
        swarm,
        core,
        core_config,
        store,
        directory: ArbiterDirectory::new(config.discovery.entry_ttl),
        config,
        commands: commands_rx,
        timers: BTreeSet::new(),
        armed: HashMap::new(),
        pending_exchange: HashMap::new(),
        pending_arbiter: HashMap::new(),
        waiters: HashMap::new(),
        dials: HashMap::new(),
        addr_book: HashMap::new(),
    };
    event_loop.bootstrap();
    let resumed = event_loop.core.resume(now_ms());
    tracing::info!(peer = %peer_id, open_sessions = event_loop.core.state().open_sessions().count(), "node started");
    // Resume effects carry no write: requests go out again and timers are re-armed.
    if let Err(error) = event_loop.apply(resumed, None) {
        tracing::error!(%error, "resuming sessions failed");
    }
    let span = tracing::info_span!("node", peer = %peer_id);
    let task = tokio::spawn(event_loop.run().instrument(span));
    Ok((Node { peer_id, commands: commands_tx }, EventLoopHandle { task }))
}

/// An inbound request's reply channel, with its sender.
type Responder = (ResponseChannel<ExchangeResponse>, PeerId);

struct EventLoop<S> {
    swarm: Swarm<NodeBehaviour>,
    core: ExchangeCore,
    core_config: CoreConfig,
    store: S,
    config: NodeConfig,
    commands: mpsc::Receiver<Command>,
    /// Armed timers in firing order, and each (session, kind)'s current deadline.
    timers: BTreeSet<(u64, SessionId, TimerKind)>,
    armed: HashMap<(SessionId, TimerKind), u64>,
    /// Outbound requests awaiting their response: the session and the addressee.
    pending_exchange: HashMap<OutboundRequestId, SessionId>,
    pending_arbiter: HashMap<OutboundRequestId, SessionId>,
    waiters: HashMap<SessionId, Vec<oneshot::Sender<Result<ExchangeResult, NodeError>>>>,
    dials: HashMap<ConnectionId, oneshot::Sender<Result<(), NodeError>>>,
    addr_book: HashMap<libp2p::PeerId, Vec<Multiaddr>>,
    directory: ArbiterDirectory,
}

impl<S: Store> EventLoop<S> {
    fn me(&self) -> PeerId {
        self.config.keypair.peer_id()
    }

    fn keypair(&self) -> &Keypair {
        &self.config.keypair
    }

    async fn run(mut self) {
        let mut provider_query = tokio::time::interval(self.config.discovery.provider_query_interval);
        provider_query.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.first().map(|(at, _, _)| *at);
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
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                () = timer => self.fire_timers(),
                _ = provider_query.tick() => self.query_providers(),
                _ = expiry.tick() => self.directory.expire(now_ms()),
            }
        }
    }

    // ---- effects -------------------------------------------------------------------------

    /// Carries out one step's effects: commit first, then reply and send, then arm timers.
    fn apply(&mut self, effects: Effects, responder: Option<Responder>) -> Result<(), NodeError> {
        let span = tracing::debug_span!("session", id = %effects.session.map(|s| s.short()).unwrap_or_default());
        let _guard = span.enter();
        if let Some(batch) = &effects.persist
            && let Err(error) = self.store.commit(batch)
        {
            tracing::error!(%error, "commit failed: nothing sent; rebuilding the core from the store");
            drop(responder);
            self.recover_from_store();
            return Err(NodeError::Store(error.to_string()));
        }
        #[cfg(feature = "planted-bugs")]
        if let Some(batch) = &effects.planted_second_write
            && let Err(error) = self.store.commit(batch)
        {
            tracing::error!(%error, "second commit failed");
            self.recover_from_store();
            return Err(NodeError::Store(error.to_string()));
        }
        if let (Some((channel, to)), Some(reply)) = (responder, effects.reply) {
            self.respond(channel, &to, reply);
        }
        for outgoing in effects.send {
            self.send(outgoing);
        }
        for timer in effects.timers {
            self.arm(timer);
        }
        if let Some(session) = effects.session {
            self.notify(session);
        }
        Ok(())
    }

    /// After a failed commit the in-memory core is ahead of the store: rebuild it from the store
    /// and resume, as after a crash.
    fn recover_from_store(&mut self) {
        match load_state(&mut self.store) {
            Ok(state) => {
                self.core = ExchangeCore::new(self.keypair().clone(), self.core_config.clone(), state);
                self.timers.clear();
                self.armed.clear();
                let resumed = self.core.resume(now_ms());
                if let Err(error) = self.apply(resumed, None) {
                    tracing::error!(%error, "resume after a failed commit failed");
                }
            }
            Err(error) => tracing::error!(%error, "cannot reload the store after a failed commit"),
        }
    }

    fn respond(&mut self, channel: ResponseChannel<ExchangeResponse>, to: &PeerId, response: ExchangeResponse) {
        if self.config.faults.drops(&FaultPoint::SendResponse { to, response: &response }) {
            return; // dropping the channel: the requester sees a lost response
        }
        if self.swarm.behaviour_mut().exchange.send_response(channel, response).is_err() {
            tracing::debug!(peer = %to, "response not sent: the connection closed");
        }
    }

    fn send(&mut self, outgoing: Outgoing) {
        match outgoing {
            Outgoing::Exchange { to, session, request } => {
                if self.config.faults.drops(&FaultPoint::SendRequest { to: &to, request: &request }) {
                    return;
                }
                let peer = to;
                let addrs = self.addr_book.get(&peer).cloned().unwrap_or_default();
                tracing::debug!(to = %to, kind = request_name(&request), "sending");
                let id = self.swarm.behaviour_mut().exchange.send_request_with_addresses(&peer, Ok(request), addrs);
                self.pending_exchange.insert(id, session);
            }
            Outgoing::Arbiter { to, session, request } => {
                if self.config.faults.drops(&FaultPoint::SendArbiter { to: &to, request: &request }) {
                    return;
                }
                let peer = to;
                let mut addrs = self.addr_book.get(&peer).cloned().unwrap_or_default();
                if let Some(entry) = self.directory.get(&to) {
                    addrs.extend(entry.addrs.iter().cloned());
                }
                if addrs.is_empty() && !self.swarm.is_connected(&peer) {
                    // No known address: look the arbiter up in the DHT (the retry will use it).
                    self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                }
                tracing::debug!(to = %to, "sending arbiter request");
                let id = self.swarm.behaviour_mut().arbiter.send_request_with_addresses(&peer, Ok(request), addrs);
                self.pending_arbiter.insert(id, session);
            }
        }
    }

    fn arm(&mut self, timer: Timer) {
        let key = (timer.session, timer.kind);
        if let Some(old) = self.armed.insert(key, timer.at_ms) {
            self.timers.remove(&(old, timer.session, timer.kind));
        }
        self.timers.insert((timer.at_ms, timer.session, timer.kind));
    }

    fn fire_timers(&mut self) {
        let now = now_ms();
        while let Some(&(at, session, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, session, kind));
            self.armed.remove(&(session, kind));
            match self.core.handle(fresh_ctx(), Input::Timer { session, kind }) {
                Ok(effects) => {
                    if let Err(error) = self.apply(effects, None) {
                        tracing::warn!(session = %session.short(), %error, "timer step failed");
                    }
                }
                Err(error) => tracing::debug!(session = %session.short(), %error, "timer refused"),
            }
        }
    }

    /// Answers everyone waiting on `session` once it has ended.
    fn notify(&mut self, session: SessionId) {
        let Some(record) = self.core.state().sessions.get(&session) else { return };
        if !record.is_terminal() {
            return;
        }
        if let Some(waiters) = self.waiters.remove(&session) {
            let result = ExchangeResult::of(self.core.state(), record);
            for waiter in waiters {
                let _ = waiter.send(Ok(result.clone()));
            }
        }
    }

    // ---- commands ------------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial(addr, reply) => self.dial(addr, reply),
            Command::Issue { kind, amount, payload, reply } => {
                let _ = reply.send(self.issue(&kind, amount, payload));
            }
            Command::Import(value, reply) => {
                let _ = reply.send(self.import(value));
            }
            Command::Values(reply) => {
                let state = self.core.state();
                let _ = reply.send(state.vault.keys().filter_map(|id| ValueInfo::of(state, id)).collect());
            }
            Command::Value(id, reply) => {
                let _ = reply.send(ValueInfo::of(self.core.state(), &id));
            }
            Command::StartExchange(request, reply) => {
                let _ = reply.send(self.start_exchange(request));
            }
            Command::WaitSession(session, reply) => match self.core.state().sessions.get(&session) {
                None => {
                    let _ = reply.send(Err(NodeError::UnknownSession(session)));
                }
                Some(record) if record.is_terminal() => {
                    let _ = reply.send(Ok(ExchangeResult::of(self.core.state(), record)));
                }
                Some(_) => self.waiters.entry(session).or_default().push(reply),
            },
            Command::Sessions(reply) => {
                let state = self.core.state();
                let _ = reply.send(state.sessions.values().map(|s| SessionInfo::of(state, s)).collect());
            }
            Command::Arbiters(reply) => {
                let now = now_ms();
                let list = self
                    .directory
                    .entries(now)
                    .map(|e| ArbiterInfo {
                        peer: e.peer,
                        addrs: e.addrs.clone(),
                        name: e.name.clone(),
                        via_kademlia: e.kademlia_seen_ms.is_some(),
                        via_gossipsub: e.gossipsub_seen_ms.is_some(),
                        last_seen_ms: e.last_seen_ms(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Peers(reply) => {
                let mut peers: Vec<PeerInfo> = Vec::new();
                for (peer, addrs) in &self.addr_book {
                    peers.push(PeerInfo { peer: *peer, addrs: addrs.clone(), connected: self.swarm.is_connected(peer) });
                }
                for peer in self.swarm.connected_peers() {
                    if !self.addr_book.contains_key(peer) {
                        peers.push(PeerInfo { peer: *peer, addrs: Vec::new(), connected: true });
                    }
                }
                let _ = reply.send(peers);
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.core.state().clone());
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<(), NodeError>>) {
        let peer = peer_of(&addr);
        if let Some(peer) = peer {
            self.remember(peer, strip_p2p(&addr));
            if self.swarm.is_connected(&peer) {
                let _ = reply.send(Ok(()));
                return;
            }
        }
        let opts = DialOpts::from(addr);
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, reply);
            }
            Err(DialError::DialPeerConditionFalse(_)) => {
                // Already dialing that peer.
                let _ = reply.send(Ok(()));
            }
            Err(error) => {
                let _ = reply.send(Err(NodeError::Dial(error.to_string())));
            }
        }
    }

    fn issue(&mut self, kind: &str, amount: u64, payload: Vec<u8>) -> Result<Value, NodeError> {
        let mut serial = [0u8; 16];
        OsRng.fill_bytes(&mut serial);
        let value = Value::issue(self.keypair(), kind, amount, payload, serial)?;
        self.put_value(value.clone())?;
        Ok(value)
    }

    fn import(&mut self, value: Value) -> Result<(), NodeError> {
        self.core.policy().check_value(&value)?;
        self.put_value(value)
    }

    fn put_value(&mut self, value: Value) -> Result<(), NodeError> {
        let Some(batch) = self.core.issue(value) else { return Ok(()) };
        if let Err(error) = self.store.commit(&batch) {
            self.recover_from_store();
            return Err(NodeError::Store(error.to_string()));
        }
        Ok(())
    }

    fn start_exchange(&mut self, request: ExchangeRequestCmd) -> Result<SessionId, NodeError> {
        let now = now_ms();
        let arbiter = match request.arbiter {
            Some(arbiter) => arbiter,
            None => self.directory.pick(self.core.policy().as_ref(), &[self.me(), request.peer], now).ok_or(NodeError::NoArbiter)?,
        };
        let expires_at_ms = now.saturating_add(request.ttl_ms.unwrap_or(self.config.default_ttl_ms));
        let start = StartExchange { responder: request.peer, give: request.give, want: request.want, arbiter, expires_at_ms };
        let effects = self.core.handle(fresh_ctx(), Input::Start(start))?;
        let session = effects.session.ok_or_else(|| NodeError::Store("start produced no session".into()))?;
        tracing::info!(session = %session.short(), peer = %request.peer, %arbiter, "exchange started");
        self.apply(effects, None)?;
        Ok(session)
    }

    // ---- network -------------------------------------------------------------------------

    fn bootstrap(&mut self) {
        for addr in self.config.bootstrap.clone() {
            if let Some(peer) = peer_of(&addr) {
                self.remember(peer, strip_p2p(&addr));
            }
            if let Err(error) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, %error, "bootstrap dial failed");
            }
        }
    }

    fn remember(&mut self, peer: libp2p::PeerId, addr: Multiaddr) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        let addrs = self.addr_book.entry(peer).or_default();
        if !addrs.contains(&addr) {
            if addrs.len() >= MAX_ADDRS_PER_PEER {
                addrs.remove(0);
            }
            addrs.push(addr.clone());
        }
        self.swarm.behaviour_mut().kad.add_address(&peer, addr);
    }

    fn query_providers(&mut self) {
        if self.config.discovery.kademlia && self.swarm.connected_peers().next().is_some() {
            self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&arbiter_provider_key()));
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<NodeBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(NodeBehaviourEvent::Exchange(event)) => self.on_exchange_event(event),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Arbiter(event)) => self.on_arbiter_event(event),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for addr in info.listen_addrs {
                    self.remember(peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Kad(event)) => self.on_kad_event(event),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                self.on_announcement(message);
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                tracing::debug!(peer = %peer_id, "connected");
                if endpoint.is_dialer() {
                    self.remember(peer_id, strip_p2p(endpoint.get_remote_address()));
                }
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, peer_id } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let connected = peer_id.is_some_and(|p| self.swarm.is_connected(&p));
                    let _ = reply.send(if connected { Ok(()) } else { Err(NodeError::Dial(error.to_string())) });
                }
            }
            _ => {}
        }
    }

    fn on_exchange_event(&mut self, event: request_response::Event<ExchangeRequestFrame, ExchangeResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => {
                let from = peer;
                match message {
                    request_response::Message::Request { request: Ok(request), channel, .. } => self.on_request(from, request, channel),
                    request_response::Message::Request { request: Err(error), channel, .. } => {
                        self.on_undecodable_request(from, &error, channel);
                    }
                    request_response::Message::Response { request_id, response } => {
                        let Some(session) = self.pending_exchange.remove(&request_id) else { return };
                        if self.config.faults.drops(&FaultPoint::ReceiveResponse { from: &from, response: &response }) {
                            return;
                        }
                        match self.core.handle(fresh_ctx(), Input::Response { from, session, response }) {
                            Ok(effects) => {
                                if let Err(error) = self.apply(effects, None) {
                                    tracing::warn!(session = %session.short(), %error, "response step failed");
                                }
                            }
                            Err(error) => tracing::info!(session = %session.short(), %error, "response refused"),
                        }
                    }
                }
            }
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                if let Some(session) = self.pending_exchange.remove(&request_id) {
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
        match self.core.handle(fresh_ctx(), Input::Request { from, request }) {
            Ok(effects) => {
                if let Err(error) = self.apply(effects, Some((channel, from))) {
                    tracing::warn!(session = %s1.short(), %error, "request step failed");
                }
            }
            Err(error) => {
                tracing::info!(session = %s1.short(), %from, %error, "request refused");
                self.respond(channel, &from, ExchangeResponse::Refusal(error.refusal(Some(s1))));
            }
        }
    }

    /// A request that arrived whole (or with an oversize length prefix) but does not decode: the
    /// core never sees it; the peer gets a refusal with the decode error's code.
    fn on_undecodable_request(&mut self, from: PeerId, error: &DecodeError, channel: ResponseChannel<ExchangeResponse>) {
        tracing::info!(%from, %error, "undecodable request refused");
        self.respond(channel, &from, ExchangeResponse::Refusal(Refusal::new(error.code(), error.to_string(), None)));
    }

    fn on_arbiter_event(&mut self, event: request_response::Event<ArbiterRequestFrame, ArbiterResponse>) {
        match event {
            request_response::Event::Message { peer, message: request_response::Message::Response { request_id, response }, .. } => {
                let Some(session) = self.pending_arbiter.remove(&request_id) else { return };
                let from = peer;
                match self.core.handle(fresh_ctx(), Input::Arbiter { from, session, response }) {
                    Ok(effects) => {
                        tracing::info!(session = %session.short(), "arbiter decision applied");
                        if let Err(error) = self.apply(effects, None) {
                            tracing::warn!(session = %session.short(), %error, "decision step failed");
                        }
                    }
                    Err(error) => tracing::info!(session = %session.short(), %error, "arbiter answer not applied; retrying"),
                }
            }
            request_response::Event::Message { message: request_response::Message::Request { .. }, .. } => {}
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(session) = self.pending_arbiter.remove(&request_id) {
                    tracing::debug!(session = %session.short(), %error, "arbiter request lost; retrying with backoff");
                }
            }
            _ => {}
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, is_new_peer, addresses, .. } => {
                for addr in addresses.iter() {
                    let addrs = self.addr_book.entry(peer).or_default();
                    if !addrs.contains(addr) && addrs.len() < MAX_ADDRS_PER_PEER {
                        addrs.push(addr.clone());
                    }
                }
                self.directory.add_addrs(&peer, addresses.iter().cloned());
                if is_new_peer {
                    self.query_providers();
                }
            }
            kad::Event::OutboundQueryProgressed {
                result: QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })),
                ..
            } => {
                if !self.config.discovery.kademlia {
                    return;
                }
                let now = now_ms();
                for provider in providers {
                    let peer = provider;
                    if peer == self.me() {
                        continue;
                    }
                    let addrs = self.addr_book.get(&provider).cloned().unwrap_or_default();
                    if self.directory.get(&peer).is_none() {
                        tracing::info!(arbiter = %peer, "arbiter found through Kademlia");
                    }
                    self.directory.saw(peer, addrs, None, DiscoverySource::Kademlia, now);
                }
            }
            _ => {}
        }
    }

    fn on_announcement(&mut self, message: gossipsub::Message) {
        if !self.config.discovery.gossipsub {
            return;
        }
        let announcement = match ArbiterAnnouncement::decode(&message.data) {
            Ok(a) => a,
            Err(error) => {
                tracing::debug!(%error, "undecodable announcement");
                return;
            }
        };
        if let Err(error) = announcement.verify() {
            tracing::warn!(peer = %announcement.peer, %error, "announcement with a bad signature");
            return;
        }
        let source = message.source;
        if source != Some(announcement.peer) {
            tracing::debug!(peer = %announcement.peer, "announcement published by another peer; ignored");
            return;
        }
        let now = now_ms();
        let ttl = u64::try_from(self.config.discovery.entry_ttl.as_millis()).unwrap_or(u64::MAX);
        if announcement.issued_at_ms.saturating_add(ttl) < now || announcement.peer == self.me() {
            return;
        }
        let addrs: Vec<Multiaddr> = announcement.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let peer = announcement.peer;
        for addr in &addrs {
            self.remember(peer, strip_p2p(addr));
        }
        if self.directory.get(&announcement.peer).is_none() {
            tracing::info!(arbiter = %announcement.peer, name = %announcement.name, "arbiter found through gossipsub");
        }
        self.directory.saw(announcement.peer, addrs, Some(announcement.name), DiscoverySource::Gossipsub, now);
    }
}

fn request_name(request: &ExchangeRequest) -> &'static str {
    match request {
        ExchangeRequest::Start(_) => "M1",
        ExchangeRequest::Confirm(_) => "M3",
    }
}

/// The `/p2p/<peer>` of an address, if it has one.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The address without its `/p2p/<peer>` part.
pub(crate) fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}
