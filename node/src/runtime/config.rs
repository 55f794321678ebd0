//! How a node is set up: [`NodeConfig`] and [`DiscoveryConfig`].

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use valex_proto::crypto::Keypair;

use super::observe::SendObserver;
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
    /// Called with every message the node sends, as it sends it (none by default; for tests
    /// that check what is sent and when, see [`SendObserver`]).
    pub observe_sends: Option<SendObserver>,
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
            observe_sends: None,
        }
    }
}
