//! Multiaddr helpers shared by the node, the arbiter and the tests: a dialable address carries
//! its peer as a trailing `/p2p/<peer id>`; address books and Kademlia want it without.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use valex_proto::PeerId;

/// The `/p2p/<peer>` of an address, if it has one.
///
/// ```
/// use valex_node::net::addr::{peer_of, strip_p2p};
/// let peer = valex_proto::crypto::Keypair::from_seed([1; 32]).peer_id();
/// let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}").parse().unwrap();
/// assert_eq!(peer_of(&addr), Some(peer));
/// assert_eq!(strip_p2p(&addr).to_string(), "/ip4/127.0.0.1/tcp/4001");
/// assert_eq!(peer_of(&strip_p2p(&addr)), None);
/// ```
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The address without its `/p2p/<peer>` part.
pub fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}
