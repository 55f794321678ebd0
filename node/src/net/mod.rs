//! The node's networking: the libp2p swarm ([`behaviour`]), the request-response codecs of the
//! exchange and arbiter protocols ([`codec`]) and the arbiter directory ([`directory`]) fed by
//! Kademlia provider records and gossipsub announcements.

// The `NetworkBehaviour` derive generates `NodeBehaviourEvent`, one variant per field, and cannot
// document it (an attribute on the struct does not reach the generated enum).
#[allow(missing_docs)]
pub mod behaviour;
pub mod codec;
pub mod directory;

pub use behaviour::{NodeBehaviour, build_swarm};
pub use directory::{ArbiterDirectory, ArbiterEntry, DiscoverySource};

/// Why the swarm could not be built or configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// A libp2p component refused its configuration.
    #[error("network configuration: {0}")]
    Config(String),
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}
