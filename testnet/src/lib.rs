//! valex testnet: tools that run many valex parties at once and check that no value is lost.
//!
//! - [`sim`]: one exchange among initiator A, responder B and arbiter T, driven step by step
//!   through their sans-IO cores over a network that may drop, duplicate and reorder messages,
//!   with crash-restart of any party from what it persisted;
//! - [`invariants`]: protocol.md §6 checked over a [`sim::World`];
//! - [`model`]: an exhaustive explorer of every reachable state of a [`sim::World`].

#![deny(missing_docs)]

pub mod invariants;
pub mod local;
pub mod model;
pub mod sim;
