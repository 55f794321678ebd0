//! The local control API: the `valex.v1.Control` gRPC service (proto/valex/v1/control.proto) over
//! a running [`Node`](crate::runtime::Node), served on 127.0.0.1 only. The `valex` CLI talks to
//! its daemon through it; any gRPC client can.
//!
//! - [`serve`] binds the port and spawns the server, returning a [`ControlHandle`];
//! - [`ControlService`] is the service itself, for hosts that mount it in their own tonic server;
//! - [`pb`] holds the messages and the generated client, for programs that drive a node;
//! - [`status_of`] is how node errors become gRPC statuses;
//! - [`parse_digest`] and [`parse_peer`] read identifiers given as text, as the API carries them.

mod convert;
pub mod pb;
mod server;
mod service;
mod status;

pub use convert::{ParseIdError, parse_digest, parse_peer};
pub use server::{ControlError, ControlHandle, serve};
pub use service::ControlService;
pub use status::status_of;
