//! The node's libp2p swarm: tcp + noise + yamux, identify, ping, Kademlia (`/valex/kad/1.0.0`,
//! server mode), gossipsub (signed messages, topic `valex/arbiters/v1`) and the two valex
//! request-response protocols.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, gossipsub, identify, kad, noise, ping, request_response, tcp, yamux};
use valex_proto::crypto::Keypair;
use valex_proto::discovery::ARBITER_TOPIC;

use super::NetError;
use super::codec::{ARBITER_PROTOCOL, ArbiterCodec, EXCHANGE_PROTOCOL, ExchangeCodec, IDENTIFY_PROTOCOL, KAD_PROTOCOL};

/// How long a request waits for its response before it counts as lost (the core retries).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Every protocol a valex node speaks.
#[derive(NetworkBehaviour)]
pub struct NodeBehaviour {
    /// Exchanges listen addresses (fed into Kademlia) and agent versions.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// The DHT: arbiter provider records and peer routing.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Arbiter announcements.
    pub gossipsub: gossipsub::Behaviour,
    /// M1–M4.
    pub exchange: request_response::Behaviour<ExchangeCodec>,
    /// Requests to arbiters.
    pub arbiter: request_response::Behaviour<ArbiterCodec>,
}

/// The gossipsub topic of arbiter announcements.
pub fn arbiter_topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(ARBITER_TOPIC)
}

/// Gossipsub configured for announcements: signed, strictly validated, small messages.
pub fn gossipsub_behaviour(key: &libp2p::identity::Keypair) -> Result<gossipsub::Behaviour, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(500))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .max_transmit_size(valex_proto::limits::MAX_FRAME_BYTES)
        .build()
        .map_err(|e| NetError::Config(e.to_string()))?;
    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config).map_err(|e| NetError::Config(e.to_string()))
}

/// Kademlia under valex's protocol name, in server mode (needed on loopback/private networks).
pub fn kad_behaviour(key: &libp2p::identity::Keypair) -> kad::Behaviour<kad::store::MemoryStore> {
    let peer = key.public().to_peer_id();
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(Duration::from_secs(10));
    let mut kad = kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config);
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// Identify under valex's protocol version.
pub fn identify_behaviour(key: &libp2p::identity::Keypair) -> identify::Behaviour {
    identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
            .with_agent_version(format!("valex/{}", env!("CARGO_PKG_VERSION"))),
    )
}

/// Builds the node's swarm over tcp + noise + yamux, subscribed to the announcement topic.
pub fn build_swarm(keypair: &Keypair, idle_connection_timeout: Duration) -> Result<Swarm<NodeBehaviour>, NetError> {
    let key = keypair.to_libp2p();
    let rr_config = request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT);
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Config(e.to_string()))?
        .with_behaviour(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(NodeBehaviour {
                identify: identify_behaviour(key),
                ping: ping::Behaviour::default(),
                kad: kad_behaviour(key),
                gossipsub: gossipsub_behaviour(key)?,
                exchange: request_response::Behaviour::with_codec(
                    ExchangeCodec,
                    [(EXCHANGE_PROTOCOL, request_response::ProtocolSupport::Full)],
                    rr_config.clone(),
                ),
                arbiter: request_response::Behaviour::with_codec(
                    ArbiterCodec,
                    [(ARBITER_PROTOCOL, request_response::ProtocolSupport::Outbound)],
                    rr_config,
                ),
            })
        })
        .map_err(|e| NetError::Config(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_connection_timeout))
        .build();
    swarm.behaviour_mut().gossipsub.subscribe(&arbiter_topic()).map_err(|e| NetError::Config(e.to_string()))?;
    Ok(swarm)
}
