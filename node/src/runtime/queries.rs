//! Read-only commands: answered from the committed state, the discovery tables and the swarm,
//! without touching the core, the store or the network. Nothing here can change what the node
//! has promised, so nothing here goes through the write-ahead driver.

use libp2p::{Multiaddr, Swarm};
use tokio::sync::oneshot;
use valex_proto::value::ValueId;

use super::types::{ArbiterInfo, ExchangeResult, PeerInfo, SessionInfo, ValueInfo};
use crate::exchange::{NodeState, SessionId};
use crate::net::{Discovery, NodeBehaviour};

/// A read-only command, with its reply channel.
#[derive(Debug)]
pub(crate) enum Query {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Values(oneshot::Sender<Vec<ValueInfo>>),
    Value(ValueId, oneshot::Sender<Option<ValueInfo>>),
    Sessions(oneshot::Sender<Vec<SessionInfo>>),
    /// One session's result so far (outcome `Open` while it runs); `None` if unknown.
    Session(SessionId, oneshot::Sender<Option<ExchangeResult>>),
    Arbiters(oneshot::Sender<Vec<ArbiterInfo>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Snapshot(oneshot::Sender<NodeState>),
}

/// What queries are answered from.
pub(crate) struct View<'a> {
    pub(crate) state: &'a NodeState,
    pub(crate) discovery: &'a Discovery,
    pub(crate) swarm: &'a Swarm<NodeBehaviour>,
    pub(crate) now_ms: u64,
}

/// Answers `query` from `view`. A caller that went away is no error.
pub(crate) fn answer(query: Query, view: &View<'_>) {
    let state = view.state;
    match query {
        Query::ListenAddrs(reply) => {
            let _ = reply.send(view.swarm.listeners().cloned().collect());
        }
        Query::Values(reply) => {
            let _ = reply.send(state.vault.keys().filter_map(|id| ValueInfo::of(state, id)).collect());
        }
        Query::Value(id, reply) => {
            let _ = reply.send(ValueInfo::of(state, &id));
        }
        Query::Sessions(reply) => {
            let _ = reply.send(state.sessions.values().map(|s| SessionInfo::of(state, s)).collect());
        }
        Query::Session(id, reply) => {
            let _ = reply.send(state.sessions.get(&id).map(|s| ExchangeResult::of(state, s)));
        }
        Query::Arbiters(reply) => {
            let list = view
                .discovery
                .directory()
                .entries(view.now_ms)
                .map(|e| ArbiterInfo {
                    peer: e.peer,
                    addrs: e.addrs.clone(),
                    name: e.name.clone(),
                    via_kademlia: e.kademlia_seen_ms.is_some(),
                    via_gossipsub: e.gossipsub_seen_ms.is_some(),
                    last_seen_ms: e.last_seen_ms(),
                })
                .collect();
            let _ = reply.send(list);
        }
        Query::Peers(reply) => {
            let book = view.discovery.book();
            let mut peers: Vec<PeerInfo> = book
                .iter()
                .map(|(peer, addrs)| PeerInfo { peer: *peer, addrs: addrs.to_vec(), connected: view.swarm.is_connected(peer) })
                .collect();
            for peer in view.swarm.connected_peers() {
                if !book.contains(peer) {
                    peers.push(PeerInfo { peer: *peer, addrs: Vec::new(), connected: true });
                }
            }
            let _ = reply.send(peers);
        }
        Query::Snapshot(reply) => {
            let _ = reply.send(state.clone());
        }
    }
}
