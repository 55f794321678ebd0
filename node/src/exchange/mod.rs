//! The exchange protocol as pure state machines (protocol.md §4–§5).
//!
//! - [`state`]: what a node persists (vault, locks, receipts, sessions) and the one atomic
//!   [`WriteBatch`] that changes it;
//! - [`initiator`] and [`responder`]: the two parties' session machines;
//! - `core`: [`ExchangeCore`], which routes inputs to sessions and assembles effects;
//! - `policy`: what a node accepts.

mod core;
mod effects;
mod error;
pub mod initiator;
mod policy;
pub mod responder;
pub mod state;

pub use self::core::{CoreConfig, ExchangeCore, Timing};
pub use effects::{Ctx, Effects, Input, Outgoing, Proposal, Timer, TimerKind};
pub use error::ExchangeError;
pub use policy::{ArbiterPolicy, Policy, StaticPolicy};
pub use state::{Acquired, Evidence, NodeState, Receipt, Session, SessionId, SessionOutcome, VaultEntry, WriteBatch, WriteOp};
