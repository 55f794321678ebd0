//! Network partitions for tests: valex-node's default transport (tcp + noise + yamux) with a
//! [`Partition`] in front that can cut a node off from chosen peers.
//!
//! While a node is cut off from a peer, a connection to or from that peer fails right after the
//! noise handshake (when its peer id is known), and every substream of a connection that already
//! exists fails its next read or write. A request or response written after the cut is lost
//! exactly as a lost message is: the sender's request-response layer reports a failure (or the
//! request times out) and the exchange core's retry timers take over. Healing removes the cut;
//! the next dial or substream goes through.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::Transport as _;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, StreamMuxerExt as _, SubstreamBox};
use valex_node::runtime::{SwarmTransport, default_transport};
use valex_proto::PeerId;
use valex_proto::crypto::Keypair;

/// The peers one node is cut off from. Cheap to clone: every clone is the same partition, so a
/// test (or a store callback) can cut and heal while the node runs.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    cut: Arc<Mutex<HashSet<PeerId>>>,
}

impl Partition {
    /// Cuts the node off from `peers` (in addition to any already cut).
    pub fn cut(&self, peers: impl IntoIterator<Item = PeerId>) {
        let mut cut = self.lock();
        for peer in peers {
            if cut.insert(peer) {
                tracing::info!(%peer, "partition: cut");
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        self.lock().clear();
        tracing::info!("partition: healed");
    }

    /// Whether the node is cut off from `peer` now.
    pub fn is_cut(&self, peer: &PeerId) -> bool {
        self.lock().contains(peer)
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<PeerId>> {
        self.cut.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The transport for the node with `keypair`: its default transport, under this partition.
    /// Start the node with it through `valex_node::runtime::start_with_transport`.
    pub fn transport(&self, keypair: &Keypair) -> SwarmTransport {
        let partition = self.clone();
        default_transport(keypair)
            .expect("default transport")
            .and_then(move |(peer, muxer), _| async move {
                if partition.is_cut(&peer) {
                    return Err(cut_error(&peer));
                }
                Ok((peer, StreamMuxerBox::new(CutMuxer { inner: muxer, peer, partition })))
            })
            .boxed()
    }
}

fn cut_error(peer: &PeerId) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, format!("partitioned from {peer}"))
}

/// A connection's muxer whose substreams fail while the partition cuts its peer off.
struct CutMuxer {
    inner: StreamMuxerBox,
    peer: PeerId,
    partition: Partition,
}

impl CutMuxer {
    fn wrap(&self, inner: SubstreamBox) -> CutStream {
        CutStream { inner, peer: self.peer, partition: self.partition.clone() }
    }
}

impl StreamMuxer for CutMuxer {
    type Substream = CutStream;
    type Error = io::Error;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<CutStream, io::Error>> {
        let this = self.get_mut();
        this.inner.poll_inbound_unpin(cx).map_ok(|s| this.wrap(s))
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<CutStream, io::Error>> {
        let this = self.get_mut();
        this.inner.poll_outbound_unpin(cx).map_ok(|s| this.wrap(s))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.get_mut().inner.poll_close_unpin(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, io::Error>> {
        self.get_mut().inner.poll_unpin(cx)
    }
}

/// A substream that fails every read and write while its peer is cut off.
struct CutStream {
    inner: SubstreamBox,
    peer: PeerId,
    partition: Partition,
}

impl CutStream {
    fn check(&self) -> io::Result<()> {
        if self.partition.is_cut(&self.peer) { Err(cut_error(&self.peer)) } else { Ok(()) }
    }
}

impl AsyncRead for CutStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}
