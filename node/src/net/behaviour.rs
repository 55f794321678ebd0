//! The node's libp2p swarm: the shared building blocks of [`super::swarm`] (tcp + noise + yamux,
//! identify, ping, Kademlia, gossipsub on `valex/arbiters/v1`) plus the two valex request-response
//! protocols as the node speaks them: exchange both ways, arbiter requests outbound only.

use std::time::Duration;

use super::codec::{ARBITER_PROTOCOL, ArbiterCodec, EXCHANGE_PROTOCOL, ExchangeCodec};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, gossipsub, identify, kad, ping, request_response};
use valex_proto::crypto::Keypair;

use super::NetError;
use super::swarm;

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

/// Builds the node's swarm over `transport` ([`swarm::default_transport`] unless the embedder
/// brings its own), subscribed to the announcement topic.
pub fn build_swarm(
    keypair: &Keypair,
    transport: swarm::SwarmTransport,
    idle_connection_timeout: Duration,
) -> Result<Swarm<NodeBehaviour>, NetError> {
    let mut swarm = swarm::build(keypair, transport, idle_connection_timeout, |key| {
        Ok(NodeBehaviour {
            identify: swarm::identify_behaviour(key, format!("valex/{}", env!("CARGO_PKG_VERSION"))),
            ping: swarm::ping_behaviour(),
            kad: swarm::kad_behaviour(key),
            gossipsub: swarm::gossipsub_behaviour(key)?,
            exchange: swarm::request_response(ExchangeCodec, EXCHANGE_PROTOCOL, request_response::ProtocolSupport::Full),
            arbiter: swarm::request_response(ArbiterCodec, ARBITER_PROTOCOL, request_response::ProtocolSupport::Outbound),
        })
    })?;
    swarm::subscribe_announcements(&mut swarm.behaviour_mut().gossipsub)?;
    Ok(swarm)
}
