//! Helpers for scripted scenarios: asking a party what it would do with a message, without
//! changing the world.
//!
//! The world logs a refused input as text; these probes return the typed error instead, so a
//! scenario test can check the exact [`ExchangeError`] (and the wire error code it maps to), and
//! the state the receiver's core is left in after refusing it (a real step of the core, the same
//! one [`World::apply`] runs).
//!
//! ```
//! use valex_testnet::sim::{Action, Role, World, WorldConfig};
//! let mut world = World::new(WorldConfig::default());
//! world.apply(&Action::Start { exchange: 0 }).unwrap();
//! let m1 = world.network().get(0).unwrap().clone();
//! assert!(world.probe_delivery(&m1).unwrap().is_ok()); // B would accept M1
//! ```

use valex_arbiter::{Arbiter, ArbiterError, ArbiterStep};
use valex_node::exchange::{Ctx, Effects, ExchangeError, Input, NodeState};
use valex_proto::message::ArbiterRequest;

use super::{Envelope, Payload, Role, World, entropy};

/// A refused input: the core's error, and the core's state right after refusing it.
#[derive(Debug, Clone)]
pub struct Refused {
    /// What the core returned.
    pub error: ExchangeError,
    /// The core's state after the refusal (protocol: the state before it).
    pub core_state: NodeState,
}

impl World {
    /// What `envelope.to`'s core (with the planted bug, if any) would return if `envelope` were
    /// delivered now, computed on a copy of its state: the world is unchanged. For a message to T
    /// use [`World::probe_arbiter`]; given one here, it returns `None`.
    pub fn probe_delivery(&self, envelope: &Envelope) -> Option<Result<Effects, Refused>> {
        let from = self.cast.peer(envelope.from);
        let input = match &envelope.payload {
            Payload::Request(request) => Input::Request { from, request: request.clone() },
            Payload::Response(response) => Input::Response { from, session: envelope.session, response: response.clone() },
            Payload::ArbiterResponse(response) => Input::Arbiter { from, session: envelope.session, response: response.clone() },
            Payload::ArbiterRequest(_) => return None,
        };
        if envelope.to == Role::T {
            return None;
        }
        let ctx = Ctx { now_ms: self.party(envelope.to).now_ms, entropy: entropy(envelope.to, &input) };
        let before = &self.party(envelope.to).volatile;
        let node = self.node(envelope.to);
        let mut core = node.core(before.clone());
        let verdict = node.handle(before, &mut core, ctx, &input);
        Some(verdict.map(|step| step.effects).map_err(|error| Refused { error, core_state: core.state().clone() }))
    }

    /// What T would answer `request` from `from` with, over a copy of its decisions: the world is
    /// unchanged.
    #[allow(clippy::result_large_err)] // the arbiter's own error type, as its `handle` returns it
    pub fn probe_arbiter(&self, from: Role, request: ArbiterRequest) -> Result<ArbiterStep, ArbiterError> {
        Arbiter::new(self.cast.t.clone(), self.t.clone()).handle(self.cast.peer(from), request, 0)
    }
}
