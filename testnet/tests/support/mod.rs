//! What the end-to-end and hostile-peer tests share: bounded waits, fast timing, a peer that
//! speaks raw bytes, network partitions ([`partition`]) and stores that report their commits
//! ([`observed`]), with which the tests lose chosen messages; nodes that really crash
//! ([`crash`]), audits of what their databases hold ([`audit`]), and one ordered log of commits
//! and sends ([`order`]).

#[allow(dead_code, reason = "not every test binary that shares this module audits databases")]
pub mod audit;
#[allow(dead_code, reason = "not every test binary that shares this module crashes nodes")]
pub mod crash;
pub mod observed;
#[allow(dead_code, reason = "not every test binary that shares this module checks the order of commits and sends")]
pub mod order;
pub mod partition;

use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use valex_node::exchange::Timing;
use valex_proto::PeerId;

/// Awaits `future`, failing the test if it takes longer than `limit`.
pub async fn within<T>(what: &str, limit: Duration, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Waits until `check` holds, re-checking every 20 ms, for at most `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, limit, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Short retry and grace periods, so tests reach the arbiter paths quickly.
pub fn fast_timing() -> Timing {
    Timing { grace_ms: 500, retry_ms: 300, arbiter_retry_max_ms: 1_500 }
}

/// `addr` with `/p2p/<peer>`.
pub fn with_p2p(addr: &Multiaddr, peer: &PeerId) -> Multiaddr {
    addr.clone().with(Protocol::P2p(*peer))
}

/// Raw bytes on `/valex/exchange/1.0.0`: the request is written as given (then the stream is
/// closed), the response is whatever comes back, up to 1 MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl libp2p::request_response::Codec for RawCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_all(io).await
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_all(io).await
    }

    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, request: Vec<u8>) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        futures::AsyncWriteExt::write_all(io, &request).await
    }

    async fn write_response<T>(&mut self, _: &Self::Protocol, io: &mut T, response: Vec<u8>) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        futures::AsyncWriteExt::write_all(io, &response).await
    }
}

async fn read_all<T: futures::AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    futures::AsyncReadExt::read_to_end(&mut futures::AsyncReadExt::take(io, 1 << 20), &mut bytes).await?;
    Ok(bytes)
}

/// `u32 big-endian length ‖ bytes`.
pub fn framed(bytes: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    frame
}
