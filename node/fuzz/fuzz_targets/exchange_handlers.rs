//! Hostile messages into the exchange core's handlers. A real exchange is run up to the point
//! where both A and B are VALID (M1 and M2 delivered, M3 not yet); then the fuzzer's bytes are cut
//! into messages — exchange requests to B, exchange responses and arbiter answers to A and B —
//! from A, B, T or a stranger. After each: no panic; a rejected input leaves the state untouched;
//! an accepted one changes the state exactly by its persisted batch; no value is spendable at
//! both nodes, and no value other than V1 and V2 ever appears.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use valex_node::exchange::{CoreConfig, Ctx, ExchangeCore, Input, NodeState, Proposal, StaticPolicy};
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterResponse, ExchangeRequest, ExchangeResponse, Want};
use valex_proto::value::Value;
use valex_proto::Digest;

struct Fixture {
    a: ExchangeCore,
    b: ExchangeCore,
    keys: [Keypair; 4],
    values: [Digest; 2],
    session: Digest,
}

fn fixture() -> Fixture {
    let keys = [0xA1u8, 0xB2, 0x73, 0x99].map(|seed| Keypair::from_seed([seed; 32]));
    let issuer = Keypair::from_seed([0x15; 32]);
    let v1 = Value::issue(&issuer, "ticket", 1, b"seat 12A".to_vec(), [1; 16]).unwrap();
    let v2 = Value::issue(&issuer, "voucher", 500, Vec::new(), [2; 16]).unwrap();
    let config = || CoreConfig { policy: Arc::new(StaticPolicy { min_ttl_ms: 1, max_ttl_ms: 60_000, ..StaticPolicy::default() }), ..CoreConfig::default() };
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
        expires_at_ms: 10_000,
    };
    let m1 = a.handle(ctx, Input::Start(start)).unwrap();
    let session = m1.session.unwrap();
    let request = match &m1.send[0] {
        valex_node::exchange::Outgoing::Exchange { request, .. } => request.clone(),
        _ => unreachable!(),
    };
    let m2 = b.handle(Ctx { now_ms: 0, entropy: [8; 32] }, Input::Request { from: keys[0].peer_id(), request }).unwrap();
    let response = m2.reply.unwrap();
    a.handle(ctx, Input::Response { from: keys[1].peer_id(), session, response }).unwrap();
    Fixture { a, b, keys, values: [v1.id(), v2.id()], session }
}

fn check(f: &Fixture) {
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

fuzz_target!(|data: &[u8]| {
    let mut f = fixture();
    // Each message: [selector, len_hi, len_lo, bytes…].
    let mut rest = data;
    let mut steps = 0;
    while rest.len() >= 3 && steps < 16 {
        steps += 1;
        let (selector, len) = (rest[0], usize::from(u16::from_be_bytes([rest[1], rest[2]])));
        let body = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        let from = f.keys[usize::from(selector >> 6)].peer_id();
        let now_ms = u64::from(selector & 0x0f) * 1_000;
        let ctx = Ctx { now_ms, entropy: [selector; 32] };
        let (core, input) = match (selector >> 4) & 0x3 {
            0 => match ExchangeRequest::decode(body) {
                Ok(request) => (&mut f.b, Input::Request { from, request }),
                Err(_) => continue,
            },
            1 => match ExchangeResponse::decode(body) {
                Ok(response) => (&mut f.a, Input::Response { from, session: f.session, response }),
                Err(_) => continue,
            },
            2 => match ArbiterResponse::decode(body) {
                Ok(response) => (&mut f.a, Input::Arbiter { from, session: f.session, response }),
                Err(_) => continue,
            },
            _ => match ArbiterResponse::decode(body) {
                Ok(response) => (&mut f.b, Input::Arbiter { from, session: f.session, response }),
                Err(_) => continue,
            },
        };
        let before = core.state().clone();
        match core.handle(ctx, input) {
            Err(_) => assert_eq!(core.state(), &before, "a rejected input changed the state"),
            Ok(effects) => {
                let mut expected = before;
                if let Some(batch) = &effects.persist {
                    expected.apply(batch);
                }
                assert_eq!(core.state(), &expected, "the state changed other than by the persisted batch");
            }
        }
        check(&f);
    }
});
