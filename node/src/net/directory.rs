//! The arbiter directory (protocol.md §7): arbiters found through Kademlia provider records under
//! `H("valex/arbiter/v1")` and through signed gossipsub announcements, each entry expiring when
//! not seen again within the entry lifetime.
//!
//! ```
//! use std::time::Duration;
//! use valex_node::exchange::{Policy, StaticPolicy};
//! use valex_node::net::{ArbiterDirectory, DiscoverySource};
//! use valex_proto::crypto::Keypair;
//!
//! let mut directory = ArbiterDirectory::new(Duration::from_secs(60));
//! let t = Keypair::from_seed([1; 32]).peer_id();
//! directory.saw(t, Vec::new(), None, DiscoverySource::Kademlia, 1_000);
//! assert_eq!(directory.pick(&StaticPolicy::default(), &[], 2_000), Some(t));
//! assert_eq!(directory.pick(&StaticPolicy::default(), &[], 70_000), None); // expired
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use libp2p::Multiaddr;
use valex_proto::PeerId;

use crate::exchange::Policy;

/// How an arbiter was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoverySource {
    /// A Kademlia provider record.
    Kademlia,
    /// A signed gossipsub announcement.
    Gossipsub,
}

/// A change in the set of known arbiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectoryChange {
    /// The arbiter entered the directory.
    Found(PeerId),
    /// The arbiter left it (expired, or dropped to make room).
    Lost(PeerId),
}

/// One known arbiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbiterEntry {
    /// The arbiter.
    pub peer: PeerId,
    /// Its addresses, as last seen.
    pub addrs: Vec<Multiaddr>,
    /// Its announced name, if it announced one.
    pub name: Option<String>,
    /// When Kademlia last returned it (ms since the Unix epoch).
    pub kademlia_seen_ms: Option<u64>,
    /// When gossipsub last announced it (ms since the Unix epoch).
    pub gossipsub_seen_ms: Option<u64>,
}

impl ArbiterEntry {
    /// When it was last seen by any source.
    pub fn last_seen_ms(&self) -> u64 {
        self.kademlia_seen_ms.unwrap_or(0).max(self.gossipsub_seen_ms.unwrap_or(0))
    }
}

/// The arbiters this node knows, with expiry.
#[derive(Debug, Clone)]
pub struct ArbiterDirectory {
    entries: BTreeMap<PeerId, ArbiterEntry>,
    lifetime_ms: u64,
}

/// Most addresses kept per arbiter.
const MAX_ADDRS: usize = 16;
/// Most arbiters kept (the oldest is dropped beyond it).
const MAX_ENTRIES: usize = 1024;

impl ArbiterDirectory {
    /// An empty directory whose entries expire `lifetime` after they were last seen.
    pub fn new(lifetime: Duration) -> Self {
        Self { entries: BTreeMap::new(), lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX) }
    }

    /// Records that `source` reported `peer` at `now_ms`. Returns what changed in the set of
    /// arbiters: `peer` found if it is new, and the entry dropped to make room for it, if any.
    pub fn saw(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        name: Option<String>,
        source: DiscoverySource,
        now_ms: u64,
    ) -> Vec<DirectoryChange> {
        let mut changes = Vec::new();
        if !self.entries.contains_key(&peer) {
            if self.entries.len() >= MAX_ENTRIES
                && let Some(oldest) = self.entries.values().min_by_key(|e| e.last_seen_ms()).map(|e| e.peer)
            {
                self.entries.remove(&oldest);
                changes.push(DirectoryChange::Lost(oldest));
            }
            changes.push(DirectoryChange::Found(peer));
        }
        let entry = self.entries.entry(peer).or_insert_with(|| ArbiterEntry {
            peer,
            addrs: Vec::new(),
            name: None,
            kademlia_seen_ms: None,
            gossipsub_seen_ms: None,
        });
        for addr in addrs {
            if !entry.addrs.contains(&addr) && entry.addrs.len() < MAX_ADDRS {
                entry.addrs.push(addr);
            }
        }
        if name.is_some() {
            entry.name = name;
        }
        match source {
            DiscoverySource::Kademlia => entry.kademlia_seen_ms = Some(now_ms),
            DiscoverySource::Gossipsub => entry.gossipsub_seen_ms = Some(now_ms),
        }
        changes
    }

    /// Adds addresses learnt elsewhere (e.g. Kademlia routing) to a known arbiter; does not count
    /// as seeing it.
    pub fn add_addrs(&mut self, peer: &PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        if let Some(entry) = self.entries.get_mut(peer) {
            for addr in addrs {
                if !entry.addrs.contains(&addr) && entry.addrs.len() < MAX_ADDRS {
                    entry.addrs.push(addr);
                }
            }
        }
    }

    /// Drops entries not seen within the lifetime; returns them as lost.
    pub fn expire(&mut self, now_ms: u64) -> Vec<DirectoryChange> {
        let lifetime = self.lifetime_ms;
        let mut lost = Vec::new();
        self.entries.retain(|peer, e| {
            let live = e.last_seen_ms().saturating_add(lifetime) > now_ms;
            if !live {
                lost.push(DirectoryChange::Lost(*peer));
            }
            live
        });
        lost
    }

    /// The live entries at `now_ms`.
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = &ArbiterEntry> {
        let lifetime = self.lifetime_ms;
        self.entries.values().filter(move |e| e.last_seen_ms().saturating_add(lifetime) > now_ms)
    }

    /// A live entry, if `peer` is one.
    pub fn get(&self, peer: &PeerId) -> Option<&ArbiterEntry> {
        self.entries.get(peer)
    }

    /// Picks an arbiter for an exchange: a live entry the local policy accepts that is neither
    /// party (`exclude`), the most recently seen first. Without knowledge of the responder's
    /// policy this is a guess; a responder that does not accept it refuses M1 with
    /// `ARBITER_NOT_ACCEPTED`, and the exchange result says so.
    pub fn pick(&self, policy: &dyn Policy, exclude: &[PeerId], now_ms: u64) -> Option<PeerId> {
        self.entries(now_ms)
            .filter(|e| policy.accepts_arbiter(&e.peer) && !exclude.contains(&e.peer))
            .max_by_key(|e| (e.last_seen_ms(), e.peer))
            .map(|e| e.peer)
    }
}

#[cfg(test)]
mod tests {
    use valex_proto::crypto::Keypair;

    use super::*;
    use crate::exchange::{ArbiterPolicy, StaticPolicy};

    fn peer(seed: u8) -> PeerId {
        Keypair::from_seed([seed; 32]).peer_id()
    }

    #[test]
    fn pick_respects_policy_exclusion_and_expiry() {
        let mut directory = ArbiterDirectory::new(Duration::from_secs(10));
        assert_eq!(
            directory.saw(peer(1), Vec::new(), Some("one".into()), DiscoverySource::Gossipsub, 1_000),
            [DirectoryChange::Found(peer(1))]
        );
        directory.saw(peer(2), Vec::new(), None, DiscoverySource::Kademlia, 2_000);
        assert!(directory.saw(peer(2), Vec::new(), None, DiscoverySource::Gossipsub, 2_000).is_empty(), "known already");
        let any = StaticPolicy::default();
        assert_eq!(directory.pick(&any, &[], 3_000), Some(peer(2)), "most recently seen first");
        assert_eq!(directory.pick(&any, &[peer(2)], 3_000), Some(peer(1)), "a party is never its own arbiter");
        let only_one = StaticPolicy { arbiters: ArbiterPolicy::only([peer(1)]), ..StaticPolicy::default() };
        assert_eq!(directory.pick(&only_one, &[], 3_000), Some(peer(1)));
        assert_eq!(directory.pick(&any, &[], 11_500), Some(peer(2)), "peer 1 expired at 11 000");
        assert_eq!(directory.expire(11_500), [DirectoryChange::Lost(peer(1))]);
        assert!(directory.get(&peer(1)).is_none());
        assert_eq!(directory.pick(&only_one, &[], 11_500), None);
    }

    #[test]
    fn both_sources_and_addresses_are_merged() {
        let mut directory = ArbiterDirectory::new(Duration::from_secs(10));
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        directory.saw(peer(1), vec![addr.clone()], None, DiscoverySource::Kademlia, 1_000);
        directory.saw(peer(1), vec![addr.clone()], Some("t".into()), DiscoverySource::Gossipsub, 2_000);
        directory.add_addrs(&peer(1), ["/ip4/127.0.0.1/tcp/2".parse().unwrap()]);
        let entry = directory.get(&peer(1)).unwrap();
        assert_eq!((entry.kademlia_seen_ms, entry.gossipsub_seen_ms), (Some(1_000), Some(2_000)));
        assert_eq!(entry.addrs.len(), 2);
        assert_eq!(entry.name.as_deref(), Some("t"));
        directory.add_addrs(&peer(3), [addr]);
        assert!(directory.get(&peer(3)).is_none(), "addresses alone do not make an arbiter");
    }

    #[test]
    fn a_full_directory_drops_the_least_recently_seen_and_says_so() {
        let mut directory = ArbiterDirectory::new(Duration::from_secs(3600));
        let peers: Vec<PeerId> = (0..=MAX_ENTRIES).map(|_| Keypair::generate().peer_id()).collect();
        for (i, p) in peers.iter().take(MAX_ENTRIES).enumerate() {
            directory.saw(*p, Vec::new(), None, DiscoverySource::Kademlia, 1_000 + i as u64);
        }
        let changes = directory.saw(peers[MAX_ENTRIES], Vec::new(), None, DiscoverySource::Kademlia, 10_000);
        assert_eq!(changes, [DirectoryChange::Lost(peers[0]), DirectoryChange::Found(peers[MAX_ENTRIES])]);
        assert!(directory.get(&peers[0]).is_none());
    }
}
