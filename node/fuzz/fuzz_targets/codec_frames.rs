//! Any byte stream into the request-response codecs of `/valex/exchange/1.0.0` and
//! `/valex/arbiter/1.0.0`, as a hostile peer would send it: oversize and truncated length
//! prefixes, garbage frames. Never a panic; a length prefix over the frame limit is refused on the
//! prefix alone (the stream here is shorter than such a frame, so a codec that read or allocated
//! the body first would fail with end-of-stream instead); a frame that decodes round-trips
//! through the writer.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec;
use valex_node::net::codec::{ARBITER_PROTOCOL, ArbiterCodec, EXCHANGE_PROTOCOL, ExchangeCodec};
use valex_proto::limits::MAX_FRAME_BYTES;
use valex_proto::message::DecodeError;

fuzz_target!(|data: &[u8]| {
    let oversize = data.get(..4).is_some_and(|prefix| {
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        usize::try_from(len).map_or(true, |len| len > MAX_FRAME_BYTES)
    });
    block_on(async {
        let mut exchange = ExchangeCodec;
        // A framed but undecodable request reads as Ok(Err(typed error)), to be answered with a refusal.
        let read = exchange.read_request(&EXCHANGE_PROTOCOL, &mut Cursor::new(data)).await;
        if oversize {
            assert!(matches!(read, Ok(Err(DecodeError::TooLarge { .. }))), "an oversize prefix read as {read:?}");
        }
        if let Ok(Ok(request)) = read {
            let mut written = Cursor::new(Vec::new());
            exchange.write_request(&EXCHANGE_PROTOCOL, &mut written, Ok(request.clone())).await.unwrap();
            let reread = exchange.read_request(&EXCHANGE_PROTOCOL, &mut Cursor::new(written.into_inner())).await.unwrap();
            assert_eq!(reread, Ok(request));
        }
        let _ = exchange.read_response(&EXCHANGE_PROTOCOL, &mut Cursor::new(data)).await;
        let mut arbiter = ArbiterCodec;
        let _ = arbiter.read_request(&ARBITER_PROTOCOL, &mut Cursor::new(data)).await;
        let _ = arbiter.read_response(&ARBITER_PROTOCOL, &mut Cursor::new(data)).await;
    });
});
