//! Any bytes into every decoder of the wire format: never a panic, and whatever decodes
//! re-encodes to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valex_proto::message::{ArbiterAnnouncement, ArbiterRequest, ArbiterResponse, ExchangeRequest, ExchangeResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ExchangeRequest::decode(data) {
        assert_eq!(ExchangeRequest::decode(&m.encode()).ok(), Some(m));
    }
    if let Ok(m) = ExchangeResponse::decode(data) {
        assert_eq!(ExchangeResponse::decode(&m.encode()).ok(), Some(m));
    }
    if let Ok(m) = ArbiterRequest::decode(data) {
        assert_eq!(ArbiterRequest::decode(&m.encode()).ok(), Some(m));
    }
    if let Ok(m) = ArbiterResponse::decode(data) {
        assert_eq!(ArbiterResponse::decode(&m.encode()).ok(), Some(m));
    }
    if let Ok(m) = ArbiterAnnouncement::decode(data) {
        assert_eq!(ArbiterAnnouncement::decode(&m.encode()).ok(), Some(m));
    }
});
