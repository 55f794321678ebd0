//! Embedding valex in your own service: an arbiter and two nodes in one tokio runtime, durable
//! RocksDB stores in a temporary directory, and one exchange of a ticket for a voucher.
//!
//! ```sh
//! cargo run -p valex-node --example embed
//! ```

use std::sync::Arc;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use valex_arbiter::server::{self, ArbiterConfig};
use valex_arbiter::store::DecisionStore;
use valex_node::exchange::{ArbiterPolicy, StaticPolicy};
use valex_node::runtime::{self, NodeConfig, StartExchange};
use valex_node::store::RocksStore;
use valex_proto::crypto::Keypair;
use valex_proto::message::Want;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("valex-embed-{}", std::process::id()));

    // An arbiter (normally its own process: `valex-arbiter`).
    let arbiter_key = Keypair::generate();
    let arbiter_id = arbiter_key.peer_id();
    let mut arbiter_config = ArbiterConfig::new(arbiter_key, "embedded-arbiter");
    arbiter_config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    let (arbiter, _arbiter_task) = server::start(arbiter_config, DecisionStore::open(dir.join("arbiter"), arbiter_id)?).await?;
    let arbiter_addr = arbiter.listen_addrs().await?[0].clone().with(Protocol::P2p(arbiter_id));

    // Two nodes that accept only this arbiter, bootstrapped through it.
    let mut nodes = Vec::new();
    for name in ["alice", "bob"] {
        let mut config = NodeConfig::new(Keypair::generate());
        config.bootstrap = vec![arbiter_addr.clone()];
        config.policy = Arc::new(StaticPolicy { arbiters: ArbiterPolicy::only([arbiter_id]), ..StaticPolicy::default() });
        let (node, event_loop) = runtime::start(config, RocksStore::open(dir.join(name))?).await?;
        nodes.push((node, event_loop));
    }
    let (alice, bob) = (nodes[0].0.clone(), nodes[1].0.clone());
    let bob_addr = bob.listen_addrs().await?[0].clone().with(Protocol::P2p(bob.peer_id()));
    alice.dial(bob_addr).await?;

    let ticket = alice.issue("ticket".into(), 1, b"concert, seat 12A".to_vec()).await?;
    bob.issue("voucher".into(), 500, Vec::new()).await?;

    let result = tokio::time::timeout(
        Duration::from_secs(30),
        alice.exchange(StartExchange {
            peer: bob.peer_id(),
            give: ticket.id(),
            want: Want::KindAmount { kind: "voucher".into(), amount: 500, issuer: None },
            arbiter: Some(arbiter_id),
            ttl_ms: Some(30_000),
        }),
    )
    .await??;
    println!("session {}: {:?}, alice received {:?}", result.session.short(), result.outcome, result.received.map(|v| v.kind().to_owned()));

    for (node, event_loop) in nodes {
        node.shutdown().await?;
        event_loop.join().await;
    }
    arbiter.shutdown().await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
