//! Helpers for scripted scenarios: asking a party what it would do with a message, without
//! changing the world.
//!
//! The world logs a refused input as text; these probes return the typed error instead, so a
//! scenario test can check the exact [`ExchangeError`] (and the wire error code it maps to).
//!
//! ```
//! use valex_testnet::sim::{Action, Role, World, WorldConfig};
//! let mut world = World::new(WorldConfig::default());
//! world.apply(&Action::Start).unwrap();
//! let m1 = world.network().get(0).unwrap().clone();
//! let before = world.clone();
//! assert!(world.probe_delivery(&m1).unwrap().is_ok()); // B would accept M1 …
//! assert_eq!(world, before); // … and nothing changed
//! ```

use valex_arbiter::{Arbiter, ArbiterError, ArbiterStep};
use valex_node::exchange::{Ctx, Effects, ExchangeError, Input};
use valex_proto::message::ArbiterRequest;

use super::{Envelope, Payload, Role, World, entropy};

impl World {
    /// What `envelope.to`'s core (with the planted bug, if any) would return if `envelope` were
    /// delivered now, computed on a copy of its state: the world is unchanged. For a message to T use [`World::probe_arbiter`];
    /// given one here, it returns `None`.
    pub fn probe_delivery(&self, envelope: &Envelope) -> Option<Result<Effects, ExchangeError>> {
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
        Some(self.node(envelope.to).handle(&self.party(envelope.to).volatile, ctx, &input).map(|step| step.effects))
    }

    /// What T would answer `request` from `from` with, over a copy of its decisions: the world is
    /// unchanged.
    #[allow(clippy::result_large_err)] // the arbiter's own error type, as its `handle` returns it
    pub fn probe_arbiter(&self, from: Role, request: ArbiterRequest) -> Result<ArbiterStep, ArbiterError> {
        Arbiter::new(self.cast.t.clone(), self.t.clone()).handle(self.cast.peer(from), request, 0)
    }
}
