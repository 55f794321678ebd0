//! How a node is set up: [`NodeConfig`], [`DiscoveryConfig`] and the test-only [`Faults`].

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use valex_proto::PeerId;
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterRequest, ExchangeRequest, ExchangeResponse};

use crate::exchange::{Policy, StaticPolicy, Timing};

/// How the node finds arbiters (protocol.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Look arbiters up as Kademlia providers of `H("valex/arbiter/v1")`.
    pub kademlia: bool,
    /// Take in signed gossipsub announcements on `valex/arbiters/v1`.
    pub gossipsub: bool,
    /// How long an entry lives after it was last seen.
    pub entry_ttl: Duration,
    /// How often to run the provider query (the first runs at start).
    pub provider_query_interval: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self { kademlia: true, gossipsub: true, entry_ttl: Duration::from_secs(10 * 60), provider_query_interval: Duration::from_secs(30) }
    }
}

/// A message at a point where a test may drop it.
#[doc(hidden)]
#[derive(Debug)]
pub enum FaultPoint<'a> {
    /// An exchange request (M1, M3) about to be sent.
    SendRequest {
        /// The peer.
        to: &'a PeerId,
        /// The request.
        request: &'a ExchangeRequest,
    },
    /// An exchange response (M2, M4, refusal) about to be sent.
    SendResponse {
        /// The peer.
        to: &'a PeerId,
        /// The response.
        response: &'a ExchangeResponse,
    },
    /// An arbiter request about to be sent.
    SendArbiter {
        /// The arbiter.
        to: &'a PeerId,
        /// The request.
        request: &'a ArbiterRequest,
    },
    /// An exchange response just received.
    ReceiveResponse {
        /// The peer.
        from: &'a PeerId,
        /// The response.
        response: &'a ExchangeResponse,
    },
}

/// A predicate choosing which messages to drop.
#[doc(hidden)]
pub type DropPredicate = Arc<dyn Fn(&FaultPoint<'_>) -> bool + Send + Sync>;

/// Fault injection for tests: messages matching the predicate are dropped (lost).
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct Faults {
    /// Drops every message it returns `true` for.
    pub drop: Option<DropPredicate>,
}

impl Faults {
    pub(crate) fn drops(&self, point: &FaultPoint<'_>) -> bool {
        let dropped = self.drop.as_ref().is_some_and(|f| f(point));
        if dropped {
            tracing::info!(?point, "fault injection: message dropped");
        }
        dropped
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").field("drop", &self.drop.is_some()).finish()
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's identity and signing key.
    pub keypair: Keypair,
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start, with a `/p2p/<peer id>` suffix.
    pub bootstrap: Vec<Multiaddr>,
    /// What the node accepts.
    pub policy: Arc<dyn Policy>,
    /// Retry and grace timing.
    pub timing: Timing,
    /// Exchange expiry when the caller gives none, in ms.
    pub default_ttl_ms: u64,
    /// How long an idle connection stays open (exchanges need it open between messages).
    pub idle_connection_timeout: Duration,
    /// Arbiter discovery.
    pub discovery: DiscoveryConfig,
    /// Fault injection (tests only).
    #[doc(hidden)]
    pub faults: Faults,
}

impl NodeConfig {
    /// A config with defaults: listen on `/ip4/127.0.0.1/tcp/0`, no bootstrap, the default
    /// policy and timing, 60 s exchanges, 5 min idle timeout, both discovery sources.
    pub fn new(keypair: Keypair) -> Self {
        let listen = "/ip4/127.0.0.1/tcp/0".parse().map(|a| vec![a]).unwrap_or_default();
        Self {
            keypair,
            listen,
            bootstrap: Vec::new(),
            policy: Arc::new(StaticPolicy::default()),
            timing: Timing::default(),
            default_ttl_ms: 60_000,
            idle_connection_timeout: Duration::from_secs(300),
            discovery: DiscoveryConfig::default(),
            faults: Faults::default(),
        }
    }
}
