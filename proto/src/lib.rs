//! valex wire format: the protobuf messages of the exchange and arbiter protocols, the canonical
//! bytes every signature and hash is computed over, and electronic values.
//!
//! The protocol is specified in the project's `protocol.md`. This crate is its vocabulary:
//!
//! - [`wire`]: the prost-generated protobuf types, exactly what travels on the network;
//! - [`message`]: validated domain types ([`message::Start`] = M1 … [`message::Decision`]) with
//!   checked conversions from and to the wire types;
//! - [`canonical`]: `tag ‖ field ‖ field …` byte strings, one function per domain tag;
//! - [`crypto`]: signing with a node's ed25519 key and strict verification against a [`PeerId`];
//! - [`value`]: issuing and verifying values.
//!
//! ```
//! use valex_proto::{crypto::Keypair, value::{Value, IssuerPolicy}};
//!
//! let issuer = Keypair::generate();
//! let ticket = Value::issue(&issuer, "ticket", 1, b"seat 12A".to_vec(), [7; 16]).unwrap();
//! assert!(ticket.verify(&IssuerPolicy::Any).is_ok());
//! assert_eq!(ticket.id(), ticket.compute_id());
//! ```

pub mod canonical;
pub mod codec;
pub mod control;
pub mod crypto;
pub mod digest;
pub mod limits;
pub mod message;
pub mod quarantine;
pub mod value;

/// The prost-generated protobuf types (package `valex.v1`).
#[allow(missing_docs, clippy::all)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/valex.v1.rs"));
}

pub use digest::{Digest, Signature};
pub use libp2p_identity::PeerId;
pub use wire::ErrorCode;
