//! The node's event stream over real swarms: two in-process nodes on MemoryStores and an arbiter
//! server on a memory decision log, on 127.0.0.1. Each side sees its session start, agree, swap
//! and end, in that order, and the arbiter found; `wait_session` (built on the stream) returns
//! the same result as the stream's end event, and a subscription closes when its node stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use valex_arbiter::server::{self, ArbiterConfig, MemoryDecisionLog};
use valex_node::exchange::{ArbiterPolicy, SessionId, SessionOutcome, StaticPolicy, Timing};
use valex_node::runtime::{self, EventError, Node, NodeConfig, NodeError, NodeEvent, NodeEvents, Role, StartExchange};
use valex_node::store::MemoryStore;
use valex_proto::PeerId;
use valex_proto::crypto::Keypair;
use valex_proto::message::Want;

const STEP: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
    }
}

fn with_p2p(addr: &Multiaddr, peer: &PeerId) -> Multiaddr {
    addr.clone().with(Protocol::P2p(*peer))
}

async fn start_node(seed: u8, bootstrap: Vec<Multiaddr>) -> (Node, runtime::EventLoopHandle) {
    let mut config = NodeConfig::new(Keypair::from_seed([seed; 32]));
    config.bootstrap = bootstrap;
    config.policy = Arc::new(StaticPolicy { arbiters: ArbiterPolicy::Any, ..StaticPolicy::default() });
    config.timing = Timing { grace_ms: 500, retry_ms: 300, arbiter_retry_max_ms: 1_500 };
    config.discovery.provider_query_interval = Duration::from_millis(500);
    within("node start", runtime::start(config, MemoryStore::default())).await.unwrap()
}

/// The session events of `session`, up to and including its end (other events skipped).
async fn session_events(events: &mut NodeEvents, session: SessionId) -> Vec<NodeEvent> {
    let mut seen = Vec::new();
    loop {
        let event = within("session events", events.recv()).await.unwrap();
        let concerns = match &event {
            NodeEvent::SessionStarted { session: s, .. }
            | NodeEvent::SessionAgreed { session: s }
            | NodeEvent::ValueReceived { session: s, .. }
            | NodeEvent::ValueGiven { session: s, .. }
            | NodeEvent::SessionEnded { session: s, .. } => *s == session,
            _ => false,
        };
        if concerns {
            let end = matches!(event, NodeEvent::SessionEnded { .. });
            seen.push(event);
            if end {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_is_told_as_it_happens_on_both_sides() {
    let arbiter_key = Keypair::from_seed([9; 32]);
    let mut arbiter_config = ArbiterConfig::new(arbiter_key.clone(), "events-arbiter");
    arbiter_config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    arbiter_config.announce_interval = Duration::from_millis(500);
    arbiter_config.provide_interval = Duration::from_secs(2);
    let (arbiter, arbiter_task) = within("arbiter start", server::start(arbiter_config, MemoryDecisionLog::default())).await.unwrap();
    let arbiter_addr = with_p2p(&arbiter.listen_addrs().await.unwrap()[0], &arbiter_key.peer_id());

    let (b, b_loop) = start_node(2, vec![arbiter_addr.clone()]).await;
    let b_addr = with_p2p(&b.listen_addrs().await.unwrap()[0], &b.peer_id());
    let (a, a_loop) = start_node(1, vec![arbiter_addr, b_addr]).await;
    let (mut a_events, mut b_events) = (a.events(), b.events());

    // The arbiter is announced as found (unless the directory had it before the subscription).
    if a.arbiters().await.unwrap().is_empty() {
        loop {
            match within("arbiter found", a_events.recv()).await.unwrap() {
                NodeEvent::ArbiterFound { peer } if peer == arbiter_key.peer_id() => break,
                _ => {}
            }
        }
    }

    let ticket = a.issue("ticket".into(), 1, b"seat 12A".to_vec()).await.unwrap();
    let voucher = b.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let want = Want::KindAmount { kind: "voucher".into(), amount: 5, issuer: None };
    let request = StartExchange { peer: b.peer_id(), give: ticket.id(), want, arbiter: None, ttl_ms: Some(10_000) };
    let session = within("start", a.start_exchange(request)).await.unwrap();

    let a_seen = session_events(&mut a_events, session).await;
    let b_seen = session_events(&mut b_events, session).await;
    let a_result = within("A's end", a.wait_session(session)).await.unwrap();
    let b_result = within("B's end", b.wait_session(session)).await.unwrap();
    assert_eq!((a_result.outcome, b_result.outcome), (SessionOutcome::Done, SessionOutcome::Done), "{a_result:?} {b_result:?}");
    assert_eq!(
        a_seen,
        [
            NodeEvent::SessionStarted { session, role: Role::Initiator, peer: b.peer_id() },
            NodeEvent::SessionAgreed { session },
            NodeEvent::ValueReceived { value: voucher.id(), session },
            NodeEvent::ValueGiven { value: ticket.id(), session },
            NodeEvent::SessionEnded { session, result: a_result.into() },
        ]
    );
    assert_eq!(
        b_seen,
        [
            NodeEvent::SessionStarted { session, role: Role::Responder, peer: a.peer_id() },
            NodeEvent::SessionAgreed { session },
            NodeEvent::ValueReceived { value: ticket.id(), session },
            NodeEvent::ValueGiven { value: voucher.id(), session },
            NodeEvent::SessionEnded { session, result: b_result.into() },
        ]
    );

    // Stopping a node closes its subscriptions and fails its waits.
    a.shutdown().await.unwrap();
    within("A stops", a_loop.join()).await;
    loop {
        match within("A's events close", a_events.recv()).await {
            Err(EventError::Closed) => break,
            Err(EventError::Lagged { .. }) | Ok(_) => {}
        }
    }
    assert!(matches!(a.wait_session(session).await, Err(NodeError::Stopped)));
    assert!(matches!(a.events().recv().await, Err(EventError::Closed)), "subscribing after the stop");

    b.shutdown().await.unwrap();
    within("B stops", b_loop.join()).await;
    arbiter.shutdown().await.unwrap();
    within("arbiter stops", arbiter_task).await.unwrap();
}
