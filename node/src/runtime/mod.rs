//! The embeddable node: [`start`] spawns an event loop that owns the swarm, the exchange core
//! and the store; [`Node`] is the handle a host service (or the CLI) drives it with, and
//! [`Node::events`] the stream of what happens on it.
//!
//! Inside, the event loop (`event_loop.rs`) only dispatches: every step of the exchange core goes
//! through the write-ahead driver (`write_ahead.rs`: commit, then send, then arm timers, then
//! announce), timers wait in a `TimerQueue` (`timers.rs`), read-only commands are answered apart
//! (`queries.rs`), and discovery lives in [`crate::net::discovery`]. [`start_with_transport`]
//! runs the same node over a transport of the caller's choosing.
//!
//! ```no_run
//! # async fn run() -> Result<(), valex_node::runtime::NodeError> {
//! use valex_node::runtime::{NodeConfig, start};
//! use valex_node::store::MemoryStore;
//! use valex_proto::crypto::Keypair;
//!
//! let (node, event_loop) = start(NodeConfig::new(Keypair::generate()), MemoryStore::default()).await?;
//! let ticket = node.issue("ticket".into(), 1, b"seat 12A".to_vec()).await?;
//! println!("{} listening on {:?}, issued {}", node.peer_id(), node.listen_addrs().await?, ticket.id());
//! node.shutdown().await?;
//! event_loop.join().await;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod event_loop;
pub mod events;
mod handle;
mod network;
mod observe;
mod queries;
mod timers;
mod types;
mod write_ahead;

pub use crate::net::swarm::{SwarmTransport, default_transport};
pub use config::{DiscoveryConfig, NodeConfig};
pub use error::NodeError;
pub use event_loop::{EventLoopHandle, start, start_with_transport};
pub use events::{EventError, NodeEvent, NodeEvents, Role};
pub use handle::Node;
pub use observe::{SendObserver, Sent};
pub use types::{ArbiterInfo, ExchangeResult, PeerInfo, SessionInfo, StartExchange, ValueInfo};
