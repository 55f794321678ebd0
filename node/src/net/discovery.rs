//! Discovery (protocol.md §7): who is where, and who arbitrates.
//!
//! [`Discovery`] owns the node's [`AddressBook`] and its [`ArbiterDirectory`], and turns what the
//! swarm reports into entries of both:
//!
//! - identify, dials and bootstrap addresses, and Kademlia routing updates fill the address book
//!   (all under its one eviction rule) and, except for Kademlia's own updates, Kademlia's
//!   routing table;
//! - Kademlia provider records under `H("valex/arbiter/v1")`, asked for every
//!   `provider_query_interval` and whenever a new peer joins the routing table, put arbiters in
//!   the directory;
//! - signed gossipsub announcements on `valex/arbiters/v1` put arbiters (and their addresses) in
//!   the directory, once [`accept_announcement`] has checked them.
//!
//! Every method reports the directory's changes, so the node can tell its host which arbiters
//! came and went.

use libp2p::{Multiaddr, Swarm, gossipsub, kad};
use valex_proto::PeerId;
use valex_proto::discovery::arbiter_provider_key;
use valex_proto::message::ArbiterAnnouncement;

use super::addr::strip_p2p;
use super::address_book::AddressBook;
use super::behaviour::NodeBehaviour;
use super::directory::{ArbiterDirectory, DirectoryChange, DiscoverySource};
use crate::runtime::DiscoveryConfig;

/// The node's Kademlia behaviour.
type Kademlia = kad::Behaviour<kad::store::MemoryStore>;

/// Why an announcement was not taken in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementIgnored {
    /// It does not decode.
    #[error("undecodable announcement: {0}")]
    Undecodable(String),
    /// Its signature is not the announced arbiter's.
    #[error("announcement with a bad signature")]
    BadSignature,
    /// It was published by a peer other than the one it announces.
    #[error("announcement published by another peer")]
    WrongPublisher,
    /// It is older than the entry lifetime.
    #[error("stale announcement")]
    Stale,
    /// It announces this node.
    #[error("our own announcement")]
    OurOwn,
}

/// Checks an announcement received from gossipsub `source` at `now_ms`: it must decode, be
/// signed by the arbiter it announces, be published by that arbiter itself, be no older than
/// `entry_ttl_ms` and not be about `local`.
pub fn accept_announcement(
    data: &[u8],
    source: Option<PeerId>,
    local: PeerId,
    entry_ttl_ms: u64,
    now_ms: u64,
) -> Result<ArbiterAnnouncement, AnnouncementIgnored> {
    let announcement = ArbiterAnnouncement::decode(data).map_err(|e| AnnouncementIgnored::Undecodable(e.to_string()))?;
    announcement.verify().map_err(|_| AnnouncementIgnored::BadSignature)?;
    if source != Some(announcement.peer) {
        return Err(AnnouncementIgnored::WrongPublisher);
    }
    if announcement.issued_at_ms.saturating_add(entry_ttl_ms) < now_ms {
        return Err(AnnouncementIgnored::Stale);
    }
    if announcement.peer == local {
        return Err(AnnouncementIgnored::OurOwn);
    }
    Ok(announcement)
}

/// The address book and the arbiter directory, fed from the swarm's events.
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    local: PeerId,
    book: AddressBook,
    directory: ArbiterDirectory,
}

impl Discovery {
    /// Discovery for the node `local`.
    pub fn new(local: PeerId, config: DiscoveryConfig) -> Self {
        let directory = ArbiterDirectory::new(config.entry_ttl);
        Self { config, local, book: AddressBook::new(local), directory }
    }

    /// The address book.
    pub fn book(&self) -> &AddressBook {
        &self.book
    }

    /// The arbiter directory.
    pub fn directory(&self) -> &ArbiterDirectory {
        &self.directory
    }

    /// Where to reach `peer`: its addresses in the book, and for an arbiter also those it was
    /// found with.
    pub fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        let mut addrs = self.book.addrs(peer).to_vec();
        if let Some(entry) = self.directory.get(peer) {
            addrs.extend(entry.addrs.iter().cloned());
        }
        addrs
    }

    /// Records an address of `peer` learnt outside Kademlia (identify, a dial, a bootstrap
    /// address, an announcement) in the book and in Kademlia's routing table.
    pub fn remember(&mut self, kad: &mut Kademlia, peer: PeerId, addr: Multiaddr) {
        if self.book.insert(peer, addr.clone()) {
            kad.add_address(&peer, addr);
        }
    }

    /// Asks Kademlia for the arbiter providers, if Kademlia discovery is on and there is a peer
    /// to ask.
    pub fn query_providers(&self, swarm: &mut Swarm<NodeBehaviour>) {
        if self.config.kademlia && swarm.connected_peers().next().is_some() {
            swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&arbiter_provider_key()));
        }
    }

    /// Kademlia's events: routing updates fill the book (and a new peer triggers a provider
    /// query); providers found enter the directory.
    pub fn on_kad_event(&mut self, swarm: &mut Swarm<NodeBehaviour>, event: kad::Event, now_ms: u64) -> Vec<DirectoryChange> {
        match event {
            kad::Event::RoutingUpdated { peer, is_new_peer, addresses, .. } => {
                for addr in addresses.iter() {
                    self.book.insert(peer, addr.clone());
                }
                self.directory.add_addrs(&peer, addresses.iter().cloned());
                if is_new_peer {
                    self.query_providers(swarm);
                }
                Vec::new()
            }
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })),
                ..
            } if self.config.kademlia => {
                let mut changes = Vec::new();
                for peer in providers {
                    if peer == self.local {
                        continue;
                    }
                    let addrs = self.book.addrs(&peer).to_vec();
                    let found = self.directory.saw(peer, addrs, None, DiscoverySource::Kademlia, now_ms);
                    if found.contains(&DirectoryChange::Found(peer)) {
                        tracing::info!(arbiter = %peer, "arbiter found through Kademlia");
                    }
                    changes.extend(found);
                }
                changes
            }
            _ => Vec::new(),
        }
    }

    /// A gossipsub message: an arbiter announcement, taken in once [`accept_announcement`]
    /// passes it.
    pub fn on_announcement(&mut self, kad: &mut Kademlia, message: &gossipsub::Message, now_ms: u64) -> Vec<DirectoryChange> {
        if !self.config.gossipsub {
            return Vec::new();
        }
        let ttl = u64::try_from(self.config.entry_ttl.as_millis()).unwrap_or(u64::MAX);
        let announcement = match accept_announcement(&message.data, message.source, self.local, ttl, now_ms) {
            Ok(announcement) => announcement,
            Err(reason @ AnnouncementIgnored::BadSignature) => {
                tracing::warn!(source = ?message.source, %reason, "announcement ignored");
                return Vec::new();
            }
            Err(reason) => {
                tracing::debug!(source = ?message.source, %reason, "announcement ignored");
                return Vec::new();
            }
        };
        let peer = announcement.peer;
        let addrs: Vec<Multiaddr> = announcement.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        for addr in &addrs {
            self.remember(kad, peer, strip_p2p(addr));
        }
        let changes = self.directory.saw(peer, addrs, Some(announcement.name.clone()), DiscoverySource::Gossipsub, now_ms);
        if changes.contains(&DirectoryChange::Found(peer)) {
            tracing::info!(arbiter = %peer, name = %announcement.name, "arbiter found through gossipsub");
        }
        changes
    }

    /// Drops the arbiters not seen within the entry lifetime.
    pub fn expire(&mut self, now_ms: u64) -> Vec<DirectoryChange> {
        self.directory.expire(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use valex_proto::crypto::Keypair;

    use super::*;

    const TTL: u64 = 60_000;

    fn announcement(key: &Keypair, issued_at_ms: u64) -> ArbiterAnnouncement {
        ArbiterAnnouncement::sign(key, vec!["/ip4/127.0.0.1/tcp/4100".into()], "t".into(), "1".into(), issued_at_ms)
    }

    #[test]
    fn a_fresh_announcement_signed_and_published_by_its_arbiter_is_accepted() {
        let (arbiter, me) = (Keypair::from_seed([9; 32]), Keypair::from_seed([1; 32]).peer_id());
        let bytes = announcement(&arbiter, 1_000).encode();
        let accepted = accept_announcement(&bytes, Some(arbiter.peer_id()), me, TTL, 2_000).unwrap();
        assert_eq!((accepted.peer, accepted.name.as_str()), (arbiter.peer_id(), "t"));
    }

    #[test]
    fn forged_relayed_stale_own_and_garbage_announcements_are_ignored() {
        let (arbiter, me) = (Keypair::from_seed([9; 32]), Keypair::from_seed([1; 32]));
        let t = arbiter.peer_id();
        let good = announcement(&arbiter, 1_000);
        let check = |a: &ArbiterAnnouncement, source, now| accept_announcement(&a.encode(), source, me.peer_id(), TTL, now);

        let mut forged = good.clone();
        forged.name = "not what was signed".into();
        assert_eq!(check(&forged, Some(t), 2_000), Err(AnnouncementIgnored::BadSignature));
        assert_eq!(check(&good, Some(me.peer_id()), 2_000), Err(AnnouncementIgnored::WrongPublisher));
        assert_eq!(check(&good, None, 2_000), Err(AnnouncementIgnored::WrongPublisher));
        assert_eq!(check(&good, Some(t), 1_000 + TTL + 1), Err(AnnouncementIgnored::Stale));
        assert!(check(&good, Some(t), 1_000 + TTL).is_ok(), "still fresh at the end of its lifetime");
        assert_eq!(check(&announcement(&me, 1_000), Some(me.peer_id()), 2_000), Err(AnnouncementIgnored::OurOwn));
        assert!(matches!(
            accept_announcement(b"\xff\xff garbage", Some(t), me.peer_id(), TTL, 2_000),
            Err(AnnouncementIgnored::Undecodable(_))
        ));
    }
}
