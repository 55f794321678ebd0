//! The node's networking: the libp2p swarm ([`behaviour`]) and the arbiter directory
//! ([`directory`]) fed by Kademlia provider records and gossipsub announcements.
//! [`discovery`] feeds the directory and the [`address_book`] from the swarm's events.

pub mod address_book;
pub mod behaviour;
pub mod directory;
pub mod discovery;

pub use address_book::AddressBook;
pub use behaviour::{NodeBehaviour, build_swarm};
pub use directory::{ArbiterDirectory, ArbiterEntry, DirectoryChange, DiscoverySource};
pub use discovery::Discovery;

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
