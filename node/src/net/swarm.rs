//! The building blocks of every valex swarm, the node's and the arbiter's alike: tcp + noise +
//! yamux with an idle-connection timeout, identify under valex's protocol version, ping, Kademlia
//! under `/valex/kad/1.0.0` in server mode, gossipsub for the signed arbiter announcements on
//! `valex/arbiters/v1`, and the request-response settings.
//!
//! Node and arbiter speak different protocol sets, so each composes its own `NetworkBehaviour`
//! struct from these parts ([`NodeBehaviour`](super::NodeBehaviour), the arbiter's
//! `ArbiterBehaviour`) and builds it with [`build`]; what must agree between them for the network
//! to work (protocol names, Kademlia mode, gossipsub validation and frame size) is decided here once.

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair as Libp2pKeypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, Swarm, Transport as _, gossipsub, identify, kad, noise, ping, request_response, tcp, yamux};
use valex_proto::discovery::ARBITER_TOPIC;

use super::codec::{IDENTIFY_PROTOCOL, KAD_PROTOCOL};
use valex_proto::crypto::Keypair;

use super::NetError;

/// How long a request waits for its response before it counts as lost (the node's core retries;
/// the arbiter only answers).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a Kademlia query (provider lookup, closest peers) may run.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The gossipsub heartbeat: short, so announcements spread within a second on a small network.
pub const GOSSIP_HEARTBEAT: Duration = Duration::from_millis(500);

/// The gossipsub topic of arbiter announcements.
pub fn arbiter_topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(ARBITER_TOPIC)
}

/// Identify under valex's protocol version; `agent_version` names the program, e.g.
/// `valex/0.1.0` or `valex-arbiter/0.1.0`.
pub fn identify_behaviour(key: &Libp2pKeypair, agent_version: String) -> identify::Behaviour {
    identify::Behaviour::new(identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public()).with_agent_version(agent_version))
}

/// Liveness, with libp2p's defaults.
pub fn ping_behaviour() -> ping::Behaviour {
    ping::Behaviour::default()
}

/// Kademlia under valex's protocol name, in server mode: libp2p would otherwise stay in client
/// mode until it learns a public address, which never happens on loopback or private networks,
/// and arbiters could not be found through provider records.
pub fn kad_behaviour(key: &Libp2pKeypair) -> kad::Behaviour<kad::store::MemoryStore> {
    let peer = key.public().to_peer_id();
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(KAD_QUERY_TIMEOUT);
    let mut kad = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config);
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// Gossipsub configured for announcements: signed by their publisher, strictly validated, no
/// larger than a protocol frame.
pub fn gossipsub_behaviour(key: &Libp2pKeypair) -> Result<gossipsub::Behaviour, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(GOSSIP_HEARTBEAT)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .max_transmit_size(valex_proto::limits::MAX_FRAME_BYTES)
        .build()
        .map_err(|e| NetError::GossipsubConfig(e.into()))?;
    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config).map_err(NetError::Gossipsub)
}

/// Subscribes to the announcement topic (both sides do: the node to hear arbiters, the arbiter so
/// that the mesh forms and it learns when a new subscriber should hear it at once).
pub fn subscribe_announcements(gossipsub: &mut gossipsub::Behaviour) -> Result<(), NetError> {
    gossipsub.subscribe(&arbiter_topic()).map(drop).map_err(|e| NetError::Subscribe { topic: ARBITER_TOPIC, source: e.into() })
}

/// The request-response settings of every valex protocol: a request unanswered for
/// [`REQUEST_TIMEOUT`] counts as lost.
pub fn request_response_config() -> request_response::Config {
    request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT)
}

/// A request-response behaviour for one protocol with [`request_response_config`]; `support`
/// says whether this side sends requests, answers them, or both.
pub fn request_response<C>(codec: C, protocol: StreamProtocol, support: request_response::ProtocolSupport) -> request_response::Behaviour<C>
where
    C: request_response::Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
{
    request_response::Behaviour::with_codec(codec, [(protocol, support)], request_response_config())
}

/// What a swarm runs over: connections authenticated as a peer and multiplexed.
pub type SwarmTransport = Boxed<(libp2p::PeerId, StreamMuxerBox)>;

/// The default transport: tcp (no Nagle delay, exchanges are small request-response messages) +
/// noise with `keypair` + yamux.
pub fn default_transport(keypair: &Keypair) -> Result<SwarmTransport, NetError> {
    let noise = noise::Config::new(&keypair.to_libp2p()).map_err(|e| NetError::Noise(e.into()))?;
    Ok(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

/// Builds a swarm for `keypair` over `transport` (see [`default_transport`]) with the behaviour
/// `make` composes from the parts of this module, closing connections idle for
/// `idle_connection_timeout` (request-response does not keep them alive between messages).
pub fn build<B: NetworkBehaviour>(
    keypair: &Keypair,
    transport: SwarmTransport,
    idle_connection_timeout: Duration,
    make: impl FnOnce(&Libp2pKeypair) -> Result<B, NetError>,
) -> Result<Swarm<B>, NetError> {
    let key = keypair.to_libp2p();
    let behaviour = make(&key)?;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport)
        .unwrap_or_else(|never| match never {})
        .with_behaviour(|_| behaviour)
        .unwrap_or_else(|never| match never {})
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_connection_timeout))
        .build();
    Ok(swarm)
}

/// Listens on every address of `addrs` and waits (at most `timeout`) until each listener reports
/// its address, so that `Swarm::listeners` answers with the real ports. Other events seen meanwhile
/// are dropped: nothing is connected yet.
pub async fn listen<B: NetworkBehaviour>(swarm: &mut Swarm<B>, addrs: &[Multiaddr], timeout: Duration) -> Result<(), NetError> {
    use futures::StreamExt;
    let mut pending = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let id = swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen { addr: addr.clone(), source: e.into() })?;
        pending.push((id, addr));
    }
    let waited = tokio::time::timeout(timeout, async {
        while !pending.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { listener_id, .. } => pending.retain(|(l, _)| *l != listener_id),
                SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                    if let Some((_, addr)) = pending.iter().find(|(l, _)| *l == listener_id) {
                        return Err(NetError::ListenerClosed { addr: (*addr).clone(), reason: reason.err().map(Into::into) });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    })
    .await;
    match waited {
        Ok(result) => result,
        Err(_) => Err(NetError::ListenTimeout { addrs: pending.into_iter().map(|(_, a)| a.clone()).collect(), timeout }),
    }
}
