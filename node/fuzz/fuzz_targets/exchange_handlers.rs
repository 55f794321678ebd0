//! Hostile messages into the exchange core's handlers. A real exchange is run up to the point
//! where both A and B are VALID (M1 and M2 delivered, M3 not yet); then the fuzzer's bytes are cut
//! into messages — exchange requests to B, exchange responses and arbiter answers to A and B —
//! from A, B, T or a stranger (the format: `valex_node_fuzz::handlers`). After each: no panic; a
//! rejected input leaves the state untouched; an accepted one changes the state exactly by its
//! persisted batch; no value is spendable at both nodes, and no value other than V1 and V2 ever
//! appears.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valex_node_fuzz::handlers;

fuzz_target!(|data: &[u8]| {
    let mut f = handlers::fixture();
    for step in handlers::steps(data) {
        handlers::deliver(&mut f, &step);
        handlers::check(&f);
    }
});
