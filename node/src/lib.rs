//! valex node: the fair exchange of electronic values (protocol.md), after patent JP4020007.
//!
//! The protocol logic is sans-IO: [`exchange::ExchangeCore`] is a pure state machine. It is fed
//! [`exchange::Input`]s (a local command, a message, a decision, a timer) together with the
//! current time and fresh entropy, and answers with [`exchange::Effects`]: one atomic write to
//! persist, then the messages to send and the timers to arm. The networking layer drives it; the
//! model checker and the tests drive it directly.
//!
//! ```
//! use valex_node::exchange::{CoreConfig, Ctx, ExchangeCore, Input, Proposal};
//! use valex_node::store::{MemoryStore, Store};
//! use valex_proto::{crypto::Keypair, message::Want, value::Value};
//!
//! let alice = Keypair::from_seed([1; 32]);
//! let (bob, arbiter) = (Keypair::from_seed([2; 32]).peer_id(), Keypair::from_seed([3; 32]).peer_id());
//! let ticket = Value::issue(&alice, "ticket", 1, Vec::new(), [0; 16]).unwrap();
//!
//! let mut store = MemoryStore::default();
//! let mut core = ExchangeCore::new(alice, CoreConfig::default(), store.load().unwrap().state);
//! if let Some(batch) = core.issue(ticket.clone()) { store.commit(&batch).unwrap(); }
//!
//! let now_ms = 1_000;
//! let effects = core
//!     .handle(Ctx { now_ms, entropy: [9; 32] }, Input::Start(Proposal {
//!         responder: bob,
//!         give: ticket.id(),
//!         want: Want::KindAmount { kind: "voucher".into(), amount: 5, issuer: None },
//!         arbiter,
//!         expires_at_ms: now_ms + 60_000,
//!     }))
//!     .unwrap();
//! // Write-ahead: commit the session (V1 locked) before M1 goes out.
//! store.commit(effects.persist.as_ref().unwrap()).unwrap();
//! assert_eq!(effects.send.len(), 1);
//! ```

//!
//! The crate is layered by features (all on by default):
//!
//! - always: [`exchange`], the sans-IO core, and [`store`] with its [`Store`](store::Store) trait
//!   and the in-memory store — all the simulator, the model checker and the fuzz targets need;
//! - `runtime`: [`net`] (the libp2p swarm and codecs) and [`runtime`] (the event loop and the
//!   [`Node`](runtime::Node) handle an embedder drives), on tokio;
//! - `rocksdb`: the durable [`RocksStore`](store::RocksStore);
//! - `control`: [`control`], the local gRPC control API over a running node;
//! - `cli`: the `valex` binary (daemon and command line), which is not part of this library.

// Every public item says what it is for: this crate is embedded, and its docs are its manual.
#![deny(missing_docs)]
// Errors carry PeerIds (80 bytes each) for clear messages; they are rare, so size is no concern.
#![allow(clippy::result_large_err)]

#[cfg(feature = "control")]
pub mod control;
pub mod exchange;
#[cfg(feature = "runtime")]
pub mod net;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod store;
pub mod time;
