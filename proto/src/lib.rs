//! valex wire format: the protobuf messages of the exchange and arbiter protocols, the canonical
//! bytes every signature and hash is computed over, and electronic values.
//!
//! The protocol is specified in `PROTOCOL.md`. This crate is its vocabulary, and nothing else: it
//! does no I/O, so any transport, store or test harness can use it (the libp2p codecs and the
//! control API live in valex-node, where they are used).
//!
//! - [`wire`]: the prost-generated protobuf types, exactly what travels on the network;
//! - [`message`]: validated domain types ([`message::Start`] = M1 … [`message::Decision`]) with
//!   checked conversions from and to the wire types;
//! - [`canonical`]: `tag ‖ field ‖ field …` byte strings, one function per domain tag;
//! - [`crypto`]: signing with a node's ed25519 key and strict verification against a [`PeerId`];
//! - [`value`]: issuing and verifying values;
//! - [`limits`]: the size limits every decoder enforces;
//! - [`discovery`]: the topic and Kademlia key arbiters are found under;
//! - [`Digest`] and [`Signature`]: the fixed-size byte strings everything above is made of.
//!
//! ```
//! use valex_proto::{crypto::Keypair, value::{Value, IssuerPolicy}};
//!
//! let issuer = Keypair::generate();
//! let ticket = Value::issue(&issuer, "ticket", 1, b"seat 12A".to_vec(), [7; 16]).unwrap();
//! assert!(ticket.verify(&IssuerPolicy::Any).is_ok());
//! assert_eq!(ticket.id(), ticket.compute_id());
//! ```

#![deny(missing_docs)]

pub mod canonical;
pub mod crypto;
mod digest;
pub mod discovery;
pub mod limits;
pub mod message;
pub mod value;

/// The prost-generated protobuf types (package `valex.v1`): what the exchange and arbiter
/// protocols put on the wire, before any validation. Decode through [`message`], which checks every
/// size and identifier. Outside this crate, [`wire::ErrorCode`] (a refusal's code, shared by both
/// layers) is the one type in common use; the rest serves to build messages no honest node would
/// send, in hostile-peer tests.
#[allow(missing_docs, clippy::all)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/valex.v1.rs"));
}

pub use digest::{Digest, Signature};
/// Re-exported so that users of this crate name peers without depending on libp2p-identity
/// themselves (and so with the same version).
pub use libp2p_identity::PeerId;
