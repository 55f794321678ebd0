//! The `exchange_handlers` target's fixture and input format.
//!
//! The fixture is a real exchange run up to the point where A and B are both VALID (M1 and M2
//! delivered, M3 not yet). An input is a sequence of at most [`MAX_STEPS`] steps, each
//! `[selector, len_hi, len_lo, body…]` (a short last body is taken as it is). The selector says
//! who claims to send the body (bits 7–6: A, B, T or a stranger), where it goes (bits 5–4, see
//! [`Route`]) and the node's clock (bits 3–0: that many seconds after the start; the session
//! expires at 10 s).

use std::sync::{Arc, OnceLock};

use valex_node::exchange::{CoreConfig, Ctx, Effects, ExchangeCore, ExchangeError, Input, NodeState, Outgoing, Proposal, StaticPolicy};
use valex_proto::Digest;
use valex_proto::canonical;
use valex_proto::crypto::{self, Keypair};
use valex_proto::message::{ArbiterResponse, ExchangeRequest, ExchangeResponse, Terms, Want};
use valex_proto::value::Value;

/// At most this many steps of an input are run.
pub const MAX_STEPS: usize = 16;

/// The session's expiry, in ms after the start.
pub const EXPIRES_AT_MS: u64 = 10_000;

/// The parties a step's sender can claim to be, in selector order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The initiator.
    A = 0,
    /// The responder.
    B = 1,
    /// The arbiter.
    T = 2,
    /// A peer with no part in the exchange.
    Stranger = 3,
}

/// Where a step's body goes, and as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An exchange request (M1, M3) to B.
    RequestToB = 0,
    /// An exchange response (M2, M4, a refusal) to A, for the session.
    ResponseToA = 1,
    /// An arbiter response to A, for the session.
    ArbiterToA = 2,
    /// An arbiter response to B, for the session.
    ArbiterToB = 3,
}

/// One step of an input.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Index of the claimed sender in [`Fixture::keys`] (a [`Party`]).
    pub from: usize,
    /// Where the body goes.
    pub route: Route,
    /// The receiving node's clock.
    pub now_ms: u64,
    /// The entropy the receiving node is given.
    pub entropy: [u8; 32],
    /// The message's bytes, to be decoded as the route says.
    pub body: &'a [u8],
}

/// The selector byte of a step.
pub fn selector(from: Party, route: Route, seconds: u8) -> u8 {
    (from as u8) << 6 | (route as u8) << 4 | (seconds & 0x0f)
}

/// One step's bytes: selector, big-endian length, body.
pub fn encode_step(selector: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut out = vec![selector];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body[..usize::from(len)]);
    out
}

/// The steps of an input.
pub fn steps(data: &[u8]) -> impl Iterator<Item = Step<'_>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < 3 {
            return None;
        }
        let (selector, len) = (rest[0], usize::from(u16::from_be_bytes([rest[1], rest[2]])));
        let end = (3 + len).min(rest.len());
        let body = &rest[3..end];
        rest = &rest[end..];
        let route = match (selector >> 4) & 0x3 {
            0 => Route::RequestToB,
            1 => Route::ResponseToA,
            2 => Route::ArbiterToA,
            _ => Route::ArbiterToB,
        };
        Some(Step { from: usize::from(selector >> 6), route, now_ms: u64::from(selector & 0x0f) * 1_000, entropy: [selector; 32], body })
    })
    .take(MAX_STEPS)
}

/// Two exchange cores mid-exchange, and what the seeds need to speak for the parties.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The initiator's core, VALID.
    pub a: ExchangeCore,
    /// The responder's core, VALID.
    pub b: ExchangeCore,
    /// A, B, T and a stranger.
    pub keys: [Keypair; 4],
    /// V1 (A's) and V2 (B's): the only values there are.
    pub values: [Digest; 2],
    /// The session.
    pub session: Digest,
    /// The M1 B received.
    pub m1: ExchangeRequest,
    /// The M2 A received.
    pub m2: ExchangeResponse,
    /// The M3 A sent on M2 (not yet delivered to B).
    pub m3: ExchangeRequest,
    /// The session's terms.
    pub terms: Terms,
}

/// A fresh copy of the fixture (built once per process: its signatures are the costly part).
pub fn fixture() -> Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build).clone()
}

fn exchange_request(send: &[Outgoing]) -> ExchangeRequest {
    match send {
        [Outgoing::Exchange { request, .. }] => request.clone(),
        other => panic!("expected one exchange request, got {other:?}"),
    }
}

fn build() -> Fixture {
    let keys = [0xA1u8, 0xB2, 0x73, 0x99].map(|seed| Keypair::from_seed([seed; 32]));
    let issuer = Keypair::from_seed([0x15; 32]);
    let v1 = Value::issue(&issuer, "ticket", 1, b"seat 12A".to_vec(), [1; 16]).unwrap();
    let v2 = Value::issue(&issuer, "voucher", 500, Vec::new(), [2; 16]).unwrap();
    let config = || CoreConfig {
        policy: Arc::new(StaticPolicy { min_ttl_ms: 1, max_ttl_ms: 60_000, ..StaticPolicy::default() }),
        ..CoreConfig::default()
    };
    let mut a = ExchangeCore::new(keys[0].clone(), config(), NodeState::default());
    let mut b = ExchangeCore::new(keys[1].clone(), config(), NodeState::default());
    a.issue(v1.clone());
    b.issue(v2.clone());
    let ctx = Ctx { now_ms: 0, entropy: [7; 32] };
    let start = Proposal {
        responder: keys[1].peer_id(),
        give: v1.id(),
        want: Want::KindAmount { kind: "voucher".into(), amount: 500, issuer: None },
        arbiter: keys[2].peer_id(),
        expires_at_ms: EXPIRES_AT_MS,
    };
    let started = a.handle(ctx, Input::Start(start)).unwrap();
    let session = started.session.unwrap();
    let m1 = exchange_request(&started.send);
    let agreed = b.handle(Ctx { now_ms: 0, entropy: [8; 32] }, Input::Request { from: keys[0].peer_id(), request: m1.clone() }).unwrap();
    let m2 = agreed.reply.unwrap();
    let confirmed = a.handle(ctx, Input::Response { from: keys[1].peer_id(), session, response: m2.clone() }).unwrap();
    let m3 = exchange_request(&confirmed.send);
    let (ExchangeRequest::Start(start), ExchangeResponse::Agree(agree)) = (&m1, &m2) else { panic!("M1 then M2") };
    let terms = Terms {
        s1: start.s1,
        initiator: keys[0].peer_id(),
        responder: keys[1].peer_id(),
        arbiter: keys[2].peer_id(),
        v1_id: v1.id(),
        v2_id: agree.v2.id(),
        expires_at_ms: EXPIRES_AT_MS,
    };
    let agreed = canonical::agree_bytes(&terms.h(), &agree.s2);
    assert!(crypto::verify(&keys[1].peer_id(), &agreed, &agree.sa).is_ok(), "the terms are the session's");
    Fixture { a, b, keys, values: [v1.id(), v2.id()], session, m1, m2, m3, terms }
}

/// What one step did to the core it went to.
#[derive(Debug)]
pub enum Outcome {
    /// The body did not decode as its route's message: nothing was delivered.
    Undecodable,
    /// The core refused the message.
    Refused(ExchangeError),
    /// The core accepted the message.
    Accepted(Effects),
}

/// Delivers one step to its core and checks the step's effect on that core's state: a refused
/// message leaves it untouched; an accepted one changes it exactly by its persisted batch.
pub fn deliver(f: &mut Fixture, step: &Step<'_>) -> Outcome {
    let from = f.keys[step.from].peer_id();
    let ctx = Ctx { now_ms: step.now_ms, entropy: step.entropy };
    let session = f.session;
    let (core, input) = match step.route {
        Route::RequestToB => match ExchangeRequest::decode(step.body) {
            Ok(request) => (&mut f.b, Input::Request { from, request }),
            Err(_) => return Outcome::Undecodable,
        },
        Route::ResponseToA => match ExchangeResponse::decode(step.body) {
            Ok(response) => (&mut f.a, Input::Response { from, session, response }),
            Err(_) => return Outcome::Undecodable,
        },
        Route::ArbiterToA => match ArbiterResponse::decode(step.body) {
            Ok(response) => (&mut f.a, Input::Arbiter { from, session, response }),
            Err(_) => return Outcome::Undecodable,
        },
        Route::ArbiterToB => match ArbiterResponse::decode(step.body) {
            Ok(response) => (&mut f.b, Input::Arbiter { from, session, response }),
            Err(_) => return Outcome::Undecodable,
        },
    };
    let before = core.state().clone();
    match core.handle(ctx, input) {
        Err(error) => {
            assert_eq!(core.state(), &before, "a rejected input changed the state");
            Outcome::Refused(error)
        }
        Ok(effects) => {
            let mut expected = before;
            if let Some(batch) = &effects.persist {
                expected.apply(batch);
            }
            assert_eq!(core.state(), &expected, "the state changed other than by the persisted batch");
            Outcome::Accepted(effects)
        }
    }
}

/// The fixture's invariants: no value is spendable at both nodes, and no value other than V1
/// and V2 ever appears.
pub fn check(f: &Fixture) {
    let (a, b) = (f.a.state(), f.b.state());
    for v in a.spendable() {
        assert!(!b.is_spendable(&v.id()), "value spendable at both nodes");
    }
    for state in [a, b] {
        for id in state.vault.keys() {
            assert!(f.values.contains(id), "a value appeared from nowhere");
        }
    }
}
