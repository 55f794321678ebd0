//! The node's networking: the swarm building blocks node and arbiter share ([`swarm`]), the
//! node's own behaviour ([`behaviour`]), the request-response codecs of the exchange and arbiter
//! protocols ([`codec`]), multiaddr helpers ([`addr`]) and the arbiter directory
//! ([`directory`]) fed by Kademlia provider records and gossipsub announcements.
//! [`discovery`] feeds the directory and the [`address_book`] from the swarm's events.

pub mod addr;
pub mod address_book;
// The `NetworkBehaviour` derive generates `NodeBehaviourEvent`, one variant per field, and cannot
// document it (an attribute on the struct does not reach the generated enum).
#[allow(missing_docs)]
pub mod behaviour;
pub mod codec;
pub mod directory;
pub mod discovery;
pub mod swarm;

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, TransportError, gossipsub, noise};

pub use address_book::AddressBook;
pub use behaviour::{NodeBehaviour, build_swarm};
pub use directory::{ArbiterDirectory, ArbiterEntry, DirectoryChange, DiscoverySource};
pub use discovery::Discovery;

/// Why a swarm could not be built or start listening.
///
/// libp2p's errors are neither `Clone` nor comparable; they are kept whole (behind an `Arc`, so
/// that this error, and the node's, stay `Clone`) as the `source` of each variant.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    /// The noise handshake could not be set up from the key.
    #[error("noise: {0}")]
    Noise(#[source] Arc<noise::Error>),
    /// Gossipsub refused its configuration.
    #[error("gossipsub configuration: {0}")]
    GossipsubConfig(#[source] Arc<gossipsub::ConfigBuilderError>),
    /// Gossipsub refused the message authenticity mode (libp2p says why only as a `&'static str`).
    #[error("gossipsub: {0}")]
    Gossipsub(&'static str),
    /// Subscribing to a gossipsub topic failed.
    #[error("cannot subscribe to {topic}: {source}")]
    Subscribe {
        /// The topic.
        topic: &'static str,
        /// Why.
        source: Arc<gossipsub::SubscriptionError>,
    },
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        source: Arc<TransportError<std::io::Error>>,
    },
    /// A listener closed before it reported an address.
    #[error("listener on {addr} closed before reporting an address{}", colon_reason(.reason))]
    ListenerClosed {
        /// The address it was asked to listen on.
        addr: Multiaddr,
        /// The I/O error that closed it, if any.
        #[source]
        reason: Option<Arc<std::io::Error>>,
    },
    /// Listeners reported no address in time.
    #[error("no listen address reported within {timeout:?} for {addrs:?}")]
    ListenTimeout {
        /// The addresses still waiting.
        addrs: Vec<Multiaddr>,
        /// How long it waited.
        timeout: Duration,
    },
}

fn colon_reason(reason: &Option<Arc<std::io::Error>>) -> String {
    reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
}
