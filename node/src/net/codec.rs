//! libp2p request-response codecs for the exchange (`/valex/exchange/1.0.0`) and arbiter
//! (`/valex/arbiter/1.0.0`) protocols.
//!
//! A frame is `u32 big-endian length ‖ protobuf bytes`. A frame longer than
//! [`MAX_FRAME_BYTES`] is refused from its length alone, before anything is allocated (its body is
//! never read); bytes that do not decode are refused with the typed [`DecodeError`].
//!
//! How a refusal surfaces depends on who can answer it:
//!
//! - an inbound exchange request ([`ExchangeCodec::read_request`]) is delivered as an
//!   [`ExchangeRequestFrame`]: `Err(DecodeError)` for a length prefix over the limit or a
//!   well-framed payload that does not decode, so the receiver can answer it with a refusal
//!   carrying [`DecodeError::code`] (`TOO_LARGE`, `MALFORMED`, `INVALID_VALUE`);
//! - everywhere else (responses, and the arbiter protocol), the typed error is carried in an
//!   [`io::Error`] of kind [`io::ErrorKind::InvalidData`] (recover it with [`decode_error`]) and
//!   the stream fails;
//! - a truncated frame (end of stream inside the length prefix or the body) is an
//!   [`io::ErrorKind::UnexpectedEof`] error in both cases: there is no request to answer.
//!
//! The names the swarm gives these protocols (and Kademlia and identify) are here too: they are
//! libp2p's [`StreamProtocol`]s. The names the protocol itself fixes for discovery (the arbiter
//! topic and provider key) are [`valex_proto::discovery`]'s.
//!
//! ```
//! use futures::executor::block_on;
//! use valex_node::net::codec::{read_frame, write_frame};
//!
//! let mut wire = Vec::new();
//! block_on(write_frame(&mut wire, b"hello")).unwrap();
//! assert_eq!(&wire[..4], &[0, 0, 0, 5]);
//! let back = block_on(read_frame(&mut &wire[..])).unwrap();
//! assert_eq!(back, b"hello");
//! ```

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

use valex_proto::limits::MAX_FRAME_BYTES;
use valex_proto::message::{ArbiterRequest, ArbiterResponse, DecodeError, ExchangeRequest, ExchangeResponse};

/// The exchange protocol's name (M1–M4).
pub const EXCHANGE_PROTOCOL: StreamProtocol = StreamProtocol::new("/valex/exchange/1.0.0");
/// The arbiter protocol's name (cancel, complete, query).
pub const ARBITER_PROTOCOL: StreamProtocol = StreamProtocol::new("/valex/arbiter/1.0.0");

/// Kademlia's protocol name on a valex network (keeps valex's DHT apart from others).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/valex/kad/1.0.0");
/// The identify protocol version string of valex nodes and arbiters.
pub const IDENTIFY_PROTOCOL: &str = "/valex/id/1.0.0";

fn invalid(error: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// The typed decode error inside an I/O error returned by these codecs, if that is what it is.
pub fn decode_error(error: &io::Error) -> Option<&DecodeError> {
    error.get_ref().and_then(|inner| inner.downcast_ref::<DecodeError>())
}

/// Reads one length-prefixed frame, refusing lengths over [`MAX_FRAME_BYTES`] before allocating.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    read_bounded_frame(io).await?.map_err(invalid)
}

/// Reads one length-prefixed frame. The outer error is the stream's (including a frame cut short:
/// [`io::ErrorKind::UnexpectedEof`]); the inner one is a length prefix over [`MAX_FRAME_BYTES`],
/// returned as soon as the prefix is read, without reading or allocating the body.
async fn read_bounded_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Result<Vec<u8>, DecodeError>> {
    let mut len_bytes = [0u8; 4];
    io.read_exact(&mut len_bytes).await?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).unwrap_or(usize::MAX);
    if len > MAX_FRAME_BYTES {
        return Ok(Err(DecodeError::TooLarge { len, max: MAX_FRAME_BYTES }));
    }
    let mut frame = vec![0u8; len];
    io.read_exact(&mut frame).await?;
    Ok(Ok(frame))
}

/// Writes one length-prefixed frame, refusing frames over [`MAX_FRAME_BYTES`], and flushes.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(invalid(DecodeError::TooLarge { len: frame.len(), max: MAX_FRAME_BYTES }));
    }
    let len = u32::try_from(frame.len()).map_err(|_| invalid(DecodeError::TooLarge { len: frame.len(), max: MAX_FRAME_BYTES }))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(frame).await?;
    io.flush().await
}

/// A request of `/valex/exchange/1.0.0` as [`ExchangeCodec`] carries it.
///
/// Outbound it is always `Ok` (writing an `Err` fails with [`io::ErrorKind::InvalidInput`]).
/// Inbound it is `Err` when the peer sent a length prefix over [`MAX_FRAME_BYTES`] (the body is
/// not read) or a complete frame that does not decode: the receiver answers it with a refusal
/// carrying [`DecodeError::code`] instead of dropping the stream.
pub type ExchangeRequestFrame = Result<ExchangeRequest, DecodeError>;

/// The codec of `/valex/exchange/1.0.0`: [`ExchangeRequest`] (M1, M3), as an
/// [`ExchangeRequestFrame`], and [`ExchangeResponse`] (M2, M4, refusal).
///
/// ```
/// use futures::executor::block_on;
/// use libp2p::request_response::Codec;
/// use valex_node::net::codec::{EXCHANGE_PROTOCOL, ExchangeCodec, write_frame};
/// use valex_proto::wire::ErrorCode;
///
/// // A well-framed payload that is not a request is delivered, typed, to be answered.
/// let mut wire = Vec::new();
/// block_on(write_frame(&mut wire, &[0xff; 8])).unwrap();
/// let frame = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap();
/// assert_eq!(frame.unwrap_err().code(), ErrorCode::Malformed);
/// // So is a length prefix over the limit, without its body.
/// let frame = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &u32::MAX.to_be_bytes()[..])).unwrap();
/// assert_eq!(frame.unwrap_err().code(), ErrorCode::TooLarge);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeCodec;

impl Codec for ExchangeCodec {
    type Protocol = StreamProtocol;
    type Request = ExchangeRequestFrame;
    type Response = ExchangeResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ExchangeRequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(read_bounded_frame(io).await?.and_then(|frame| ExchangeRequest::decode(&frame)))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ExchangeResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        ExchangeResponse::decode(&read_frame(io).await?).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, request: ExchangeRequestFrame) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Ok(request) => write_frame(io, &request.encode()).await,
            Err(error) => Err(io::Error::new(io::ErrorKind::InvalidInput, error)),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, response: ExchangeResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response.encode()).await
    }
}

/// An inbound arbiter request as read: the request, or why its frame did not decode (to be
/// answered with a typed refusal), like [`ExchangeRequestFrame`].
pub type ArbiterRequestFrame = Result<ArbiterRequest, DecodeError>;

/// The codec of `/valex/arbiter/1.0.0`: [`ArbiterRequestFrame`] and [`ArbiterResponse`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ArbiterCodec;

impl Codec for ArbiterCodec {
    type Protocol = StreamProtocol;
    type Request = ArbiterRequestFrame;
    type Response = ArbiterResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ArbiterRequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(read_bounded_frame(io).await?.and_then(|frame| ArbiterRequest::decode(&frame)))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<ArbiterResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        ArbiterResponse::decode(&read_frame(io).await?).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, request: ArbiterRequestFrame) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Ok(request) => write_frame(io, &request.encode()).await,
            Err(error) => Err(io::Error::new(io::ErrorKind::InvalidInput, error)),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, response: ArbiterResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use valex_proto::message::{Confirm, Reveal};
    use valex_proto::wire::ErrorCode;
    use valex_proto::{Digest, Signature};

    use super::*;

    fn m3() -> ExchangeRequest {
        ExchangeRequest::Confirm(Confirm { s1: Digest([1; 32]), s2: Digest([2; 32]), se: Signature([3; 64]) })
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let mut codec = ExchangeCodec;
        let mut wire = Vec::new();
        block_on(codec.write_request(&EXCHANGE_PROTOCOL, &mut wire, Ok(m3()))).unwrap();
        assert_eq!(u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize, wire.len() - 4);
        assert_eq!(block_on(codec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap(), Ok(m3()));

        let m4 = ExchangeResponse::Reveal(Reveal { s1: Digest([1; 32]), r2: [7; 32] });
        let mut wire = Vec::new();
        block_on(codec.write_response(&EXCHANGE_PROTOCOL, &mut wire, m4.clone())).unwrap();
        assert_eq!(block_on(codec.read_response(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap(), m4);

        let mut arbiter = ArbiterCodec;
        let query = ArbiterRequest::Query { s2: Digest([5; 32]) };
        let mut wire = Vec::new();
        block_on(arbiter.write_request(&ARBITER_PROTOCOL, &mut wire, Ok(query.clone()))).unwrap();
        assert_eq!(block_on(arbiter.read_request(&ARBITER_PROTOCOL, &mut &wire[..])).unwrap(), Ok(query));
    }

    #[test]
    fn undecodable_requests_cannot_be_written() {
        let mut wire = Vec::new();
        let error = block_on(ExchangeCodec.write_request(&EXCHANGE_PROTOCOL, &mut wire, Err(DecodeError::Missing("x")))).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(wire.is_empty());
    }

    #[test]
    fn oversize_frames_are_refused_from_their_length() {
        // Only the length prefix: the codec must refuse without waiting for (or allocating) the body;
        // an inbound exchange request is delivered as the typed refusal, to be answered.
        let wire = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        let frame = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap();
        assert!(matches!(frame, Err(DecodeError::TooLarge { len, .. }) if len == MAX_FRAME_BYTES + 1));
        let error = block_on(ExchangeCodec.read_response(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(decode_error(&error), Some(DecodeError::TooLarge { .. })));
        let error = block_on(read_frame(&mut &wire[..])).unwrap_err();
        assert!(matches!(decode_error(&error), Some(DecodeError::TooLarge { .. })));
        let wire = u32::MAX.to_be_bytes();
        let frame = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap();
        assert_eq!(frame.unwrap_err().code(), ErrorCode::TooLarge);
        let error = block_on(ArbiterCodec.read_response(&ARBITER_PROTOCOL, &mut &wire[..])).unwrap_err();
        assert!(matches!(decode_error(&error), Some(DecodeError::TooLarge { .. })));
        let mut sink = Vec::new();
        let error = block_on(write_frame(&mut sink, &vec![0; MAX_FRAME_BYTES + 1])).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(sink.is_empty());
    }

    #[test]
    fn truncated_frames_are_io_errors() {
        let mut wire = Vec::new();
        block_on(write_frame(&mut wire, &m3().encode())).unwrap();
        for cut in [0, 2, 4, wire.len() - 1] {
            let error = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..cut])).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_a_typed_decode_error() {
        let mut wire = Vec::new();
        block_on(write_frame(&mut wire, &[0xff; 12])).unwrap();
        let frame = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap();
        assert!(matches!(&frame, Err(DecodeError::Protobuf(_))));
        assert_eq!(frame.unwrap_err().code(), ErrorCode::Malformed);
        let error = block_on(ExchangeCodec.read_response(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(decode_error(&error), Some(DecodeError::Protobuf(_))));
        let mut wire = Vec::new();
        block_on(write_frame(&mut wire, &[])).unwrap();
        let frame = block_on(ExchangeCodec.read_request(&EXCHANGE_PROTOCOL, &mut &wire[..])).unwrap();
        assert!(matches!(frame, Err(DecodeError::Missing(_))));
        let mut wire = Vec::new();
        block_on(write_frame(&mut wire, &[])).unwrap();
        // The arbiter protocol, too, reads an undecodable frame as a typed error to answer.
        let frame = block_on(ArbiterCodec.read_request(&ARBITER_PROTOCOL, &mut &wire[..])).unwrap();
        assert!(matches!(frame, Err(DecodeError::Missing(_))));
        let frame = block_on(ArbiterCodec.read_request(&ARBITER_PROTOCOL, &mut &u32::MAX.to_be_bytes()[..])).unwrap();
        assert!(matches!(frame, Err(DecodeError::TooLarge { .. })));
    }
}
