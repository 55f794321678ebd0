//! [`AddressBook`]: the addresses this node knows for other peers, bounded, with one eviction
//! rule for every source.
//!
//! Addresses come from identify, from dials, from Kademlia routing updates, from bootstrap
//! addresses and from arbiter announcements. Each of these is someone's claim, and some can be
//! made by any peer, so the book is bounded: at most [`MAX_ADDRS_PER_PEER`] addresses per peer and
//! [`MAX_PEERS`] peers. Whatever the source, the rule is the same: **least recently seen goes
//! first**. Seeing an address again (or any address of a peer) makes it the most recent; a new
//! address beyond the bound evicts the peer's least recently seen address, and a new peer beyond
//! the bound evicts the least recently seen peer. Addresses that keep being confirmed stay; stale
//! ones age out.
//!
//! ```
//! use valex_node::net::AddressBook;
//! use valex_proto::crypto::Keypair;
//!
//! let (me, peer) = (Keypair::from_seed([1; 32]).peer_id(), Keypair::from_seed([2; 32]).peer_id());
//! let mut book = AddressBook::new(me);
//! assert!(book.insert(peer, "/ip4/127.0.0.1/tcp/4001".parse().unwrap()));
//! assert!(!book.insert(me, "/ip4/127.0.0.1/tcp/4002".parse().unwrap()), "never our own addresses");
//! assert_eq!(book.addrs(&peer).len(), 1);
//! ```

use std::collections::HashMap;

use libp2p::Multiaddr;
use valex_proto::PeerId;

/// Most addresses kept per peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Most peers kept.
pub const MAX_PEERS: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    /// Least recently seen first.
    addrs: Vec<Multiaddr>,
    /// When any of its addresses was last seen, on the book's own clock.
    seen: u64,
}

/// Known addresses of other peers; see the [module docs](self) for the bounds and the rule.
#[derive(Debug, Clone)]
pub struct AddressBook {
    local: PeerId,
    peers: HashMap<PeerId, Entry>,
    /// Counts insertions: orders "last seen" without reading a clock.
    tick: u64,
    max_peers: usize,
    max_addrs: usize,
}

impl AddressBook {
    /// An empty book for the node `local` (whose own addresses it never holds), with the
    /// default bounds.
    pub fn new(local: PeerId) -> Self {
        Self::with_bounds(local, MAX_PEERS, MAX_ADDRS_PER_PEER)
    }

    /// An empty book holding at most `max_peers` peers of at most `max_addrs` addresses each
    /// (each at least 1).
    pub fn with_bounds(local: PeerId, max_peers: usize, max_addrs: usize) -> Self {
        Self { local, peers: HashMap::new(), tick: 0, max_peers: max_peers.max(1), max_addrs: max_addrs.max(1) }
    }

    /// Records that `peer` was seen at `addr`, evicting the least recently seen address or peer
    /// when a bound is reached. Returns `false` (and records nothing) for the local peer.
    pub fn insert(&mut self, peer: PeerId, addr: Multiaddr) -> bool {
        if peer == self.local {
            return false;
        }
        self.tick += 1;
        if !self.peers.contains_key(&peer)
            && self.peers.len() >= self.max_peers
            && let Some(stalest) = self.peers.iter().min_by_key(|(_, e)| e.seen).map(|(p, _)| *p)
        {
            self.peers.remove(&stalest);
        }
        let entry = self.peers.entry(peer).or_insert_with(|| Entry { addrs: Vec::new(), seen: 0 });
        entry.seen = self.tick;
        if let Some(i) = entry.addrs.iter().position(|a| *a == addr) {
            entry.addrs.remove(i);
        } else if entry.addrs.len() >= self.max_addrs {
            entry.addrs.remove(0);
        }
        entry.addrs.push(addr);
        true
    }

    /// `peer`'s addresses, least recently seen first (empty if unknown).
    pub fn addrs(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers.get(peer).map(|e| e.addrs.as_slice()).unwrap_or_default()
    }

    /// Whether any address of `peer` is known.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Every known peer with its addresses, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &[Multiaddr])> {
        self.peers.iter().map(|(p, e)| (p, e.addrs.as_slice()))
    }

    /// How many peers are known.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use valex_proto::crypto::Keypair;

    use super::*;

    fn peer(seed: u8) -> PeerId {
        Keypair::from_seed([seed; 32]).peer_id()
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn a_new_address_beyond_the_bound_evicts_the_least_recently_seen() {
        let mut book = AddressBook::with_bounds(peer(0), 16, 3);
        for port in 1..=3 {
            assert!(book.insert(peer(1), addr(port)));
        }
        assert!(book.insert(peer(1), addr(1)), "seen again: now the most recent");
        assert_eq!(book.addrs(&peer(1)), [addr(2), addr(3), addr(1)]);
        book.insert(peer(1), addr(4));
        assert_eq!(book.addrs(&peer(1)), [addr(3), addr(1), addr(4)], "2 was the least recently seen");
        book.insert(peer(1), addr(4));
        assert_eq!(book.addrs(&peer(1)).len(), 3, "no duplicates");
    }

    #[test]
    fn a_new_peer_beyond_the_bound_evicts_the_least_recently_seen_peer() {
        let mut book = AddressBook::with_bounds(peer(0), 2, 8);
        book.insert(peer(1), addr(1));
        book.insert(peer(2), addr(2));
        book.insert(peer(1), addr(11)); // peer 1 seen again
        book.insert(peer(3), addr(3));
        assert!(book.contains(&peer(1)) && book.contains(&peer(3)));
        assert!(!book.contains(&peer(2)), "peer 2 was the least recently seen");
        assert_eq!(book.len(), 2);
        assert!(book.addrs(&peer(2)).is_empty());
    }

    #[test]
    fn the_local_peer_is_never_recorded() {
        let mut book = AddressBook::new(peer(0));
        assert!(!book.insert(peer(0), addr(1)));
        assert!(book.is_empty());
        assert_eq!(book.iter().count(), 0);
    }
}
