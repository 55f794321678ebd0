//! The names arbiters are found under (protocol.md §7). They are part of the protocol, not of one
//! implementation: a node and an arbiter from different code bases find each other only if both
//! use exactly these bytes.
//!
//! ```
//! use valex_proto::Digest;
//! use valex_proto::discovery::{ARBITER_TOPIC, arbiter_provider_key};
//!
//! assert_eq!(ARBITER_TOPIC, "valex/arbiters/v1");
//! assert_eq!(arbiter_provider_key(), Digest::of(b"valex/arbiter/v1"));
//! ```

use crate::Digest;

/// The gossipsub topic arbiters publish their signed announcements
/// ([`ArbiterAnnouncement`](crate::message::ArbiterAnnouncement)) on.
pub const ARBITER_TOPIC: &str = "valex/arbiters/v1";

/// The Kademlia provider key every arbiter provides, `H("valex/arbiter/v1")`: a node looks up
/// its providers to find arbiters without knowing any in advance.
pub fn arbiter_provider_key() -> Digest {
    Digest::of(b"valex/arbiter/v1")
}
