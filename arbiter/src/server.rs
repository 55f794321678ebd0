//! The networked arbiter: a libp2p swarm (identify, ping, Kademlia in server mode, gossipsub and
//! the `/valex/arbiter/1.0.0` request-response protocol) driving the [`Arbiter`] decision rule.
//!
//! It advertises itself both ways of protocol.md §7: it provides the Kademlia key
//! `H("valex/arbiter/v1")` (re-provided every `provide_interval`) and publishes a signed
//! [`ArbiterAnnouncement`] on `valex/arbiters/v1` every `announce_interval`. A new decision is
//! persisted through the [`DecisionLog`] (synced) before the answer leaves; if that fails the
//! request is not answered and the arbiter reloads its decisions from the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, gossipsub, identify, kad, ping};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use valex_node::net::addr::{peer_of, strip_p2p};
use valex_node::net::codec::{ARBITER_PROTOCOL, ArbiterCodec};
use valex_node::net::{NetError, swarm};
use valex_node::time::now_ms;
use valex_proto::crypto::Keypair;
use valex_proto::discovery::arbiter_provider_key;
use valex_proto::message::{ArbiterAnnouncement, ArbiterRequest, ArbiterResponse};
use valex_proto::{Digest, PeerId};

use crate::store::{DecisionStore, EquivocationEvidence, StoreError};
use crate::{Arbiter, ArbiterError, DecisionRecord};

/// Where an arbiter keeps its decisions. `persist` must be durable (synced) when it returns `Ok`.
pub trait DecisionLog: Send + 'static {
    /// Why loading or persisting failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Every decision recorded so far, by s2.
    fn load_decisions(&mut self) -> Result<BTreeMap<Digest, DecisionRecord>, Self::Error>;
    /// Records one new decision, synced.
    fn persist_decision(&mut self, record: &DecisionRecord) -> Result<(), Self::Error>;
    /// Keeps the evidence of a refused equivocation (default: only logged).
    fn record_equivocation(&mut self, error: &ArbiterError, requester: PeerId, at_ms: u64) {
        let _ = (error, requester, at_ms);
    }
}

impl DecisionLog for DecisionStore {
    type Error = StoreError;

    fn load_decisions(&mut self) -> Result<BTreeMap<Digest, DecisionRecord>, StoreError> {
        let loaded = self.load()?;
        for record in &loaded.set_aside {
            tracing::error!(column = %record.column, key = %record.key_hex, reason = %record.reason, "decision record set aside");
        }
        Ok(loaded.decisions)
    }

    fn persist_decision(&mut self, record: &DecisionRecord) -> Result<(), StoreError> {
        self.put(record)
    }

    fn record_equivocation(&mut self, error: &ArbiterError, requester: PeerId, at_ms: u64) {
        if let Some(evidence) = EquivocationEvidence::from_error(error, requester, at_ms)
            && let Err(error) = DecisionStore::record_equivocation(self, &evidence)
        {
            tracing::error!(%error, "cannot record equivocation evidence");
        }
    }
}

/// Decisions in memory, shared between clones: "durable" for as long as one clone lives, which is
/// what restart tests need.
#[derive(Debug, Clone, Default)]
pub struct MemoryDecisionLog {
    decisions: Arc<Mutex<BTreeMap<Digest, DecisionRecord>>>,
}

impl MemoryDecisionLog {
    /// A copy of every decision.
    pub fn decisions(&self) -> BTreeMap<Digest, DecisionRecord> {
        self.decisions.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// The shared map's lock was poisoned (a thread panicked while holding it).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("decision log lock poisoned")]
pub struct PoisonedLog;

impl DecisionLog for MemoryDecisionLog {
    type Error = PoisonedLog;

    fn load_decisions(&mut self) -> Result<BTreeMap<Digest, DecisionRecord>, PoisonedLog> {
        Ok(self.decisions.lock().map_err(|_| PoisonedLog)?.clone())
    }

    fn persist_decision(&mut self, record: &DecisionRecord) -> Result<(), PoisonedLog> {
        self.decisions.lock().map_err(|_| PoisonedLog)?.insert(record.decision.s2, record.clone());
        Ok(())
    }
}

/// How an arbiter server is set up.
#[derive(Debug, Clone)]
pub struct ArbiterConfig {
    /// Its identity and signing key.
    pub keypair: Keypair,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start (with `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Human-readable name, announced.
    pub name: String,
    /// How often to publish the gossipsub announcement (the first goes out at start).
    pub announce_interval: Duration,
    /// How often to re-provide the Kademlia key (the first at start).
    pub provide_interval: Duration,
    /// How long idle connections stay open.
    pub idle_connection_timeout: Duration,
}

impl ArbiterConfig {
    /// Defaults: listen on `/ip4/127.0.0.1/tcp/0`, announce every 30 s, re-provide every 5 min.
    pub fn new(keypair: Keypair, name: impl Into<String>) -> Self {
        Self {
            keypair,
            listen: "/ip4/127.0.0.1/tcp/0".parse().map(|a| vec![a]).unwrap_or_default(),
            bootstrap: Vec::new(),
            name: name.into(),
            announce_interval: Duration::from_secs(30),
            provide_interval: Duration::from_secs(300),
            idle_connection_timeout: Duration::from_secs(300),
        }
    }
}

/// How long [`start`] waits for the listeners to report their addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The network could not be set up.
    #[error("network: {0}")]
    Net(#[from] NetError),
    /// The decision log failed to load.
    #[error("decision log: {0}")]
    Log(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server has stopped.
    #[error("the arbiter server has stopped")]
    Stopped,
}

/// The arbiter's protocols.
#[derive(NetworkBehaviour)]
struct ArbiterBehaviour {
    /// Listen addresses for Kademlia.
    identify: identify::Behaviour,
    /// Liveness.
    ping: ping::Behaviour,
    /// Provider record and routing.
    kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Announcements.
    gossipsub: gossipsub::Behaviour,
    /// Cancel, complete and query requests.
    arbiter: request_response::Behaviour<ArbiterCodec>,
}

/// Builds the arbiter's swarm from the shared building blocks, subscribed to the announcement
/// topic (to publish on it).
fn build_swarm(config: &ArbiterConfig) -> Result<Swarm<ArbiterBehaviour>, NetError> {
    let mut swarm = swarm::build(&config.keypair, swarm::default_transport(&config.keypair)?, config.idle_connection_timeout, |key| {
        Ok(ArbiterBehaviour {
            identify: swarm::identify_behaviour(key, format!("valex-arbiter/{}", env!("CARGO_PKG_VERSION"))),
            ping: swarm::ping_behaviour(),
            kad: swarm::kad_behaviour(key),
            gossipsub: swarm::gossipsub_behaviour(key)?,
            arbiter: swarm::request_response(ArbiterCodec, ARBITER_PROTOCOL, request_response::ProtocolSupport::Inbound),
        })
    })?;
    swarm::subscribe_announcements(&mut swarm.behaviour_mut().gossipsub)?;
    Ok(swarm)
}

enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Decisions(oneshot::Sender<BTreeMap<Digest, DecisionRecord>>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on a running arbiter server.
#[derive(Debug, Clone)]
pub struct ArbiterHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ListenAddrs(_) => "ListenAddrs",
            Self::Decisions(_) => "Decisions",
            Self::Shutdown(_) => "Shutdown",
        })
    }
}

impl ArbiterHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ServerError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| ServerError::Stopped)?;
        rx.await.map_err(|_| ServerError::Stopped)
    }

    /// The arbiter's PeerId (the T of the terms).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Its listen addresses, with the real ports.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, ServerError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Every decision so far, by s2.
    pub async fn decisions(&self) -> Result<BTreeMap<Digest, DecisionRecord>, ServerError> {
        self.ask(Command::Decisions).await
    }

    /// Stops the server.
    pub async fn shutdown(&self) -> Result<(), ServerError> {
        self.ask(Command::Shutdown).await
    }
}

/// Starts an arbiter server on the current tokio runtime over the decisions in `log`. Returns once
/// its listen addresses are known.
pub async fn start<L: DecisionLog>(config: ArbiterConfig, mut log: L) -> Result<(ArbiterHandle, tokio::task::JoinHandle<()>), ServerError> {
    let decisions = log.load_decisions().map_err(|e| ServerError::Log(Box::new(e)))?;
    let mut swarm = build_swarm(&config)?;
    swarm::listen(&mut swarm, &config.listen, LISTEN_TIMEOUT).await?;
    for addr in &config.bootstrap {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, strip_p2p(addr));
        }
        if let Err(error) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, %error, "bootstrap dial failed");
        }
    }
    let peer_id = config.keypair.peer_id();
    let arbiter = Arbiter::new(config.keypair.clone(), decisions);
    tracing::info!(arbiter = %peer_id, decisions = arbiter.decisions().len(), "arbiter started");
    let (tx, rx) = mpsc::channel(64);
    let server = Server { swarm, arbiter, log, config, commands: rx };
    let span = tracing::info_span!("arbiter", peer = %peer_id);
    let task = tokio::spawn(server.run().instrument(span));
    Ok((ArbiterHandle { peer_id, commands: tx }, task))
}

struct Server<L> {
    swarm: Swarm<ArbiterBehaviour>,
    arbiter: Arbiter,
    log: L,
    config: ArbiterConfig,
    commands: mpsc::Receiver<Command>,
}

impl<L: DecisionLog> Server<L> {
    async fn run(mut self) {
        let mut announce = tokio::time::interval(self.config.announce_interval);
        announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut provide = tokio::time::interval(self.config.provide_interval);
        provide.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::ListenAddrs(reply)) => { let _ = reply.send(self.swarm.listeners().cloned().collect()); }
                    Some(Command::Decisions(reply)) => { let _ = reply.send(self.arbiter.decisions().clone()); }
                    Some(Command::Shutdown(reply)) => {
                        tracing::info!("arbiter shutting down");
                        let _ = reply.send(());
                        break;
                    }
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = announce.tick() => self.announce(),
                _ = provide.tick() => self.provide(),
            }
        }
    }

    fn announce(&mut self) {
        let me = *self.swarm.local_peer_id();
        let addrs: Vec<String> = self
            .swarm
            .listeners()
            .chain(self.swarm.external_addresses())
            .take(valex_proto::limits::MAX_ANNOUNCED_ADDRS)
            .map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a).to_string())
            .filter(|a| a.len() <= valex_proto::limits::MAX_ANNOUNCED_STRING_BYTES)
            .collect();
        let announcement = ArbiterAnnouncement::sign(
            &self.config.keypair,
            addrs,
            self.config.name.clone(),
            env!("CARGO_PKG_VERSION").to_string(),
            now_ms(),
        );
        match self.swarm.behaviour_mut().gossipsub.publish(swarm::arbiter_topic(), announcement.encode()) {
            Ok(_) => tracing::debug!("announced"),
            Err(error) => tracing::debug!(%error, "announcement not published"),
        }
    }

    fn provide(&mut self) {
        if let Err(error) = self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&arbiter_provider_key())) {
            tracing::warn!(%error, "cannot provide the arbiter key");
        }
    }

    fn on_event(&mut self, event: SwarmEvent<ArbiterBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(ArbiterBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(ArbiterBehaviourEvent::Arbiter(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => match request {
                Ok(request) => self.on_request(peer, request, channel),
                Err(error) => {
                    // Undecodable or oversize: answer with a typed refusal, decide nothing.
                    tracing::debug!(%peer, %error, "undecodable arbiter request");
                    let refusal = valex_proto::message::Refusal::new(error.code(), error.to_string(), None);
                    let _ = self.swarm.behaviour_mut().arbiter.send_response(channel, ArbiterResponse::Refusal(refusal));
                }
            },
            SwarmEvent::Behaviour(ArbiterBehaviourEvent::Arbiter(request_response::Event::InboundFailure { peer, error, .. })) => {
                tracing::debug!(%peer, %error, "inbound arbiter request failed");
            }
            SwarmEvent::Behaviour(ArbiterBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) => {
                // A new subscriber: announce now rather than at the next tick.
                self.announce();
            }
            _ => {}
        }
    }

    fn on_request(&mut self, peer: libp2p::PeerId, request: ArbiterRequest, channel: ResponseChannel<ArbiterResponse>) {
        let from = peer;
        let response = match self.arbiter.handle(from, request, now_ms()) {
            Ok(step) => {
                if let Some(record) = &step.persist
                    && let Err(error) = self.log.persist_decision(record)
                {
                    // Not durable: do not answer, and forget the decision by reloading the log.
                    tracing::error!(%error, s2 = %record.decision.s2.short(), "decision not persisted; not answering");
                    match self.log.load_decisions() {
                        Ok(decisions) => self.arbiter = Arbiter::new(self.config.keypair.clone(), decisions),
                        Err(error) => tracing::error!(%error, "cannot reload the decision log"),
                    }
                    return;
                }
                step.response
            }
            Err(error) => {
                tracing::info!(%from, %error, "arbiter request refused");
                if matches!(error, ArbiterError::Equivocation { .. }) {
                    self.log.record_equivocation(&error, from, now_ms());
                }
                ArbiterResponse::Refusal(error.refusal(None))
            }
        };
        if self.swarm.behaviour_mut().arbiter.send_response(channel, response).is_err() {
            tracing::debug!(%peer, "arbiter response not sent: connection closed");
        }
    }
}
