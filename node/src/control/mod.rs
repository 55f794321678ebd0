//! The local control API: the `valex.v1.Control` gRPC service (proto/valex/v1/control.proto) over
//! a running [`Node`](crate::runtime::Node), served on 127.0.0.1 only. The `valex` CLI talks to
//! its daemon through it; any gRPC client can.
//!
//! - [`serve`] binds the port and spawns the server, returning a [`ControlHandle`];
//! - [`ControlService`] is the service itself, for hosts that mount it in their own tonic server;
//! - [`status_of`] is how node errors become gRPC statuses.

pub mod convert;
pub mod server;
pub mod service;
pub mod status;

pub use server::{ControlError, ControlHandle, serve};
pub use service::ControlService;
pub use status::status_of;
