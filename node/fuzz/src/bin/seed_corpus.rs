//! Writes seed inputs for every fuzz target's corpus from one real exchange (the
//! `exchange_handlers` fixture): the messages M1–M4, arbiter requests and both decisions, an
//! announcement and a refusal; as bare messages (`decode_messages`), as frames (`codec_frames`)
//! and as step sequences a peer could send mid-exchange (`exchange_handlers`). Seeds only start
//! the corpus: `testnet/scripts/fuzz.sh --update-corpus` then grows it and minimises it.
//!
//! ```text
//! cargo run --manifest-path node/fuzz/Cargo.toml --features seed-corpus --bin seed_corpus \
//!     --target-dir ~/.cache/valex-fuzz-target/seed
//! ```

use std::path::Path;

use futures::executor::block_on;
use futures::io::Cursor;
use valex_node::exchange::{Ctx, Input, Outgoing, SessionOutcome, TimerKind};
use valex_node::net::codec::write_frame;
use valex_node_fuzz::handlers::{self, EXPIRES_AT_MS, Fixture, Outcome as Delivered, Party, Route, encode_step, selector};
use valex_proto::message::{ArbiterAnnouncement, ArbiterRequest, ArbiterResponse, Decision, ExchangeResponse, Outcome, Refusal};
use valex_proto::wire::ErrorCode;
use valex_proto::{Digest, canonical};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    block_on(write_frame(&mut out, message)).unwrap();
    out.into_inner()
}

fn s2(f: &Fixture) -> Digest {
    let ExchangeResponse::Agree(agree) = &f.m2 else { panic!("M2 is an Agree") };
    agree.s2
}

fn decision(f: &Fixture, outcome: Outcome) -> ArbiterResponse {
    let (h, s2) = (f.terms.h(), s2(f));
    let sig = f.keys[Party::T as usize].sign(&canonical::decision_bytes(&h, &s2, outcome));
    ArbiterResponse::Decision(Decision { s2, h, outcome, decided_at_ms: EXPIRES_AT_MS + 1_000, sig })
}

/// The arbiter requests `core` sends when its deadline fires long after expiry.
fn at_deadline(f: &mut Fixture, initiator: bool) -> Vec<ArbiterRequest> {
    let core = if initiator { &mut f.a } else { &mut f.b };
    let ctx = Ctx { now_ms: 3 * EXPIRES_AT_MS, entropy: [9; 32] };
    let effects = core.handle(ctx, Input::Timer { session: f.session, kind: TimerKind::Deadline }).unwrap();
    effects
        .send
        .into_iter()
        .filter_map(|out| match out {
            Outgoing::Arbiter { request, .. } => Some(request),
            Outgoing::Exchange { .. } => None,
        })
        .collect()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let f = handlers::fixture();

    // B's answer to M3: M4.
    let m4 = f.clone().b.handle(
        Ctx { now_ms: 1_000, entropy: [1; 32] },
        Input::Request { from: f.keys[Party::A as usize].peer_id(), request: f.m3.clone() },
    );
    let m4 = m4.unwrap().reply.unwrap();
    let completed_decision = decision(&f, Outcome::Completed);
    let cancelled_decision = decision(&f, Outcome::Cancelled);
    let mut arbiter_requests = at_deadline(&mut f.clone(), true);
    arbiter_requests.extend(at_deadline(&mut f.clone(), false));
    arbiter_requests.push(ArbiterRequest::Query { s2: s2(&f) });
    let refusal =
        ExchangeResponse::Refusal(Refusal { code: ErrorCode::WantUnavailable, message: "no such voucher".into(), s1: Some(f.session) });
    let announcement = ArbiterAnnouncement::sign(
        &f.keys[Party::T as usize],
        vec!["/ip4/127.0.0.1/tcp/4001".into()],
        "seed-arbiter".into(),
        "1".into(),
        1_767_225_600_000,
    );

    let mut messages: Vec<(String, Vec<u8>)> = vec![
        ("m1".into(), f.m1.encode()),
        ("m2".into(), f.m2.encode()),
        ("m3".into(), f.m3.encode()),
        ("m4".into(), m4.encode()),
        ("refusal".into(), refusal.encode()),
        ("decision-completed".into(), completed_decision.encode()),
        ("decision-cancelled".into(), cancelled_decision.encode()),
        ("announcement".into(), announcement.encode()),
    ];
    for (n, request) in arbiter_requests.iter().enumerate() {
        messages.push((format!("arbiter-request-{n}"), request.encode()));
    }
    for (name, bytes) in &messages {
        write(&root.join("proto/fuzz/corpus/decode_messages"), name, bytes);
        write(&root.join("node/fuzz/corpus/codec_frames"), name, &frame(bytes));
    }

    // Each sequence, with the outcome A and B must reach, so a seed cannot silently stop doing
    // what its name says.
    let step = |from: Party, route: Route, seconds: u8, body: &[u8]| encode_step(selector(from, route, seconds), body);
    let (open, done, cancelled) = (SessionOutcome::Open, SessionOutcome::Done, SessionOutcome::Cancelled);
    let sequences: [(&str, Vec<Vec<u8>>, [SessionOutcome; 2]); 8] = [
        (
            "completes",
            vec![step(Party::A, Route::RequestToB, 1, &f.m3.encode()), step(Party::B, Route::ResponseToA, 1, &m4.encode())],
            [done, done],
        ),
        ("m1-again", vec![step(Party::A, Route::RequestToB, 1, &f.m1.encode())], [open, open]),
        ("m2-again", vec![step(Party::B, Route::ResponseToA, 1, &f.m2.encode())], [open, open]),
        ("m3-late", vec![step(Party::A, Route::RequestToB, 11, &f.m3.encode())], [open, open]),
        ("m3-from-a-stranger", vec![step(Party::Stranger, Route::RequestToB, 1, &f.m3.encode())], [open, open]),
        (
            "completed-at-both",
            vec![
                step(Party::T, Route::ArbiterToA, 12, &completed_decision.encode()),
                step(Party::T, Route::ArbiterToB, 12, &completed_decision.encode()),
            ],
            [done, done],
        ),
        (
            "cancelled-at-both",
            vec![
                step(Party::T, Route::ArbiterToA, 12, &cancelled_decision.encode()),
                step(Party::T, Route::ArbiterToB, 12, &cancelled_decision.encode()),
            ],
            [cancelled, cancelled],
        ),
        ("refused", vec![step(Party::B, Route::ResponseToA, 2, &refusal.encode())], [open, open]),
    ];
    for (name, steps, expected) in sequences {
        let input = steps.concat();
        let mut run = handlers::fixture();
        let mut told = Vec::new();
        for step in handlers::steps(&input) {
            told.push(match handlers::deliver(&mut run, &step) {
                Delivered::Undecodable => "undecodable".to_owned(),
                Delivered::Refused(error) => format!("refused ({error})"),
                Delivered::Accepted(_) => "accepted".to_owned(),
            });
            handlers::check(&run);
        }
        let reached = [&run.a, &run.b].map(|core| core.state().sessions[&run.session].outcome());
        println!("exchange_handlers/{name}: {} -> A {}, B {}", told.join(", "), reached[0].as_str(), reached[1].as_str());
        assert_eq!(reached, expected, "seed {name} no longer does what its name says");
        write(&root.join("node/fuzz/corpus/exchange_handlers"), name, &input);
    }
    println!("wrote {} messages, frames and step sequences ({} arbiter requests)", messages.len(), arbiter_requests.len());
}
