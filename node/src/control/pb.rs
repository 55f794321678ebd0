//! The control API's messages and its tonic client and server, generated from
//! `proto/valex/v1/control.proto` (package `valex.v1`, service `Control`).
//!
//! Identifiers travel as text so the API reads well from grpcurl and JSON: value ids, session ids,
//! digests and signatures as lower-case hex, peers as base58 PeerIds. A client connects with
//! [`control_client::ControlClient`]; [`super::ControlService`] implements
//! [`control_server::Control`].
//!
//! ```
//! use valex_node::control::pb::ValueView;
//! use valex_node::control::parse_digest;
//! use valex_proto::{crypto::Keypair, value::Value};
//!
//! let ticket = Value::issue(&Keypair::from_seed([1; 32]), "ticket", 1, b"12A".to_vec(), [0; 16]).unwrap();
//! let view = ValueView::from(&ticket);
//! assert_eq!(parse_digest("value id", &view.id).unwrap(), ticket.id());
//! assert!(parse_digest("value id", "zz").is_err());
//! ```

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/valex.v1.rs"));
