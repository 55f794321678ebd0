//! End-to-end tests: real libp2p swarms in one process (127.0.0.1, tcp port 0), nodes and the
//! arbiter server on RocksDB stores in temporary directories, and protocol.md §6 audited over what
//! every node's database and the arbiter's database hold after each run.
//!
//! Crashes are real: each node runs on its own thread and tokio runtime (`support::crash`), and a
//! crash drops that runtime without the node ever being asked to shut down — nothing it had not
//! yet done happens, and its store is left as a killed process leaves it. The node restarts from
//! the same RocksDB directory and the same address. Every audit reads the databases after the
//! nodes have crashed (`support::audit`: reopen + load), never the running core.
//!
//! Lost messages are modelled with the write-ahead rule: every node runs over a partitionable
//! transport (`support::partition`) on a store that reports its commits (`support::observed`); a
//! commit callback that cuts the node off from its counterparty loses the message that commit
//! precedes, and every later one between them until the test heals the partition. That the rule
//! holds — each commit before the message revealing it — is checked by order, in one log of
//! commits and sends (`support::order`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libp2p::Multiaddr;
use tokio::sync::mpsc;
use valex_arbiter::DecisionRecord;
use valex_arbiter::server::{self, ArbiterConfig, ArbiterHandle};
use valex_arbiter::store::DecisionStore;
use valex_node::exchange::{ArbiterPolicy, NodeState, SessionId, SessionOutcome, StaticPolicy, Timing, WriteBatch};
use valex_node::runtime::{DiscoveryConfig, Node, NodeConfig, SendObserver, StartExchange};
use valex_node::store::{RocksStore, Store};
use valex_proto::crypto::Keypair;
use valex_proto::message::{ExchangeRequest, ExchangeResponse, Want};
use valex_proto::value::ValueId;
use valex_proto::{Digest, PeerId};

mod support;
use support::audit::{audit_at_rest, stored_decisions, stored_state};
use support::crash::IsolatedNode;
use support::observed::{ObservedStore, OnCommit, initiator_enters, responder_enters};
use support::order::{Log, Message};
use support::partition::Partition;
use support::{RawCodec, fast_timing, framed, wait_until, with_p2p, within};

const STEP: Duration = Duration::from_secs(30);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A running arbiter server on a RocksDB decision store, and what it needs to restart the same.
struct TestArbiter {
    key: Keypair,
    dir: PathBuf,
    addr: Multiaddr,
    handle: ArbiterHandle,
    task: tokio::task::JoinHandle<()>,
}

impl TestArbiter {
    async fn start(seed: u8, dir: &Path) -> Self {
        let key = Keypair::from_seed([seed; 32]);
        Self::start_at(key, dir.join("arbiter"), "/ip4/127.0.0.1/tcp/0".parse().unwrap()).await
    }

    async fn start_at(key: Keypair, dir: PathBuf, listen: Multiaddr) -> Self {
        let mut config = ArbiterConfig::new(key.clone(), "test-arbiter");
        config.listen = vec![listen];
        config.announce_interval = Duration::from_millis(500);
        config.provide_interval = Duration::from_secs(2);
        let store = DecisionStore::open(&dir, key.peer_id()).unwrap();
        let (handle, task) = within("arbiter start", STEP, server::start(config, store)).await.unwrap();
        let addr = handle.listen_addrs().await.unwrap()[0].clone();
        Self { key, dir, addr, handle, task }
    }

    fn peer(&self) -> PeerId {
        self.key.peer_id()
    }

    fn dial_addr(&self) -> Multiaddr {
        with_p2p(&self.addr, &self.peer())
    }

    async fn stop(self) -> StoppedArbiter {
        self.handle.shutdown().await.unwrap();
        within("arbiter stop", STEP, self.task).await.unwrap();
        StoppedArbiter { key: self.key, dir: self.dir, addr: self.addr }
    }

    /// The decisions the running arbiter holds in memory (for assertions during a run; audits
    /// read [`StoppedArbiter::decisions`]).
    async fn decisions(&self) -> BTreeMap<Digest, DecisionRecord> {
        self.handle.decisions().await.unwrap()
    }
}

/// A stopped arbiter: restart it from the same store and address.
struct StoppedArbiter {
    key: Keypair,
    dir: PathBuf,
    addr: Multiaddr,
}

impl StoppedArbiter {
    async fn restart(self) -> TestArbiter {
        TestArbiter::start_at(self.key, self.dir, self.addr).await
    }

    /// What its database holds.
    fn decisions(&self) -> BTreeMap<Digest, DecisionRecord> {
        stored_decisions(&self.dir, self.key.peer_id())
    }
}

/// How a test node is set up.
#[derive(Clone)]
struct Setup {
    discovery: DiscoveryConfig,
    timing: Timing,
    max_open_sessions_per_peer: usize,
    arbiters: ArbiterPolicy,
    /// The node's partition (a fresh, healed one if none).
    partition: Option<Partition>,
    /// Called with every batch the node commits, before the messages that follow it are sent.
    on_commit: Option<OnCommit>,
    /// Called with every message the node sends, as the write-ahead driver hands it over.
    on_send: Option<SendObserver>,
    /// While above zero, the node's commits fail (counting down).
    commit_failures: Option<Arc<AtomicUsize>>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            discovery: DiscoveryConfig {
                kademlia: true,
                gossipsub: true,
                entry_ttl: Duration::from_secs(60),
                provider_query_interval: Duration::from_millis(500),
            },
            timing: fast_timing(),
            max_open_sessions_per_peer: 64,
            arbiters: ArbiterPolicy::Any,
            partition: None,
            on_commit: None,
            on_send: None,
            commit_failures: None,
        }
    }
}

/// A setup whose node, when it commits a session record that `enters` `phase`, is cut off from
/// that session's counterparty until the test heals its partition: the message the commit
/// precedes is lost, and so is every later one between the two.
fn cut_when(enters: fn(&WriteBatch, &str) -> Option<PeerId>, phase: &'static str) -> Setup {
    let partition = Partition::default();
    let cut = partition.clone();
    let on_commit: OnCommit = Arc::new(move |batch| {
        if let Some(peer) = enters(batch, phase) {
            cut.cut([peer]);
        }
    });
    Setup { partition: Some(partition), on_commit: Some(on_commit), ..Setup::default() }
}

/// A's M3 is lost: its commit of VALID (M3 follows) cuts it off from B.
fn losing_m3() -> Setup {
    cut_when(initiator_enters, "VALID")
}

/// B's M4 is lost: its commit of DONE (M4 follows) cuts it off from A.
fn losing_m4() -> Setup {
    cut_when(responder_enters, "DONE")
}

/// A commit callback that reports every commit of a session record that `enters` `phase`.
fn notify_when(enters: fn(&WriteBatch, &str) -> Option<PeerId>, phase: &'static str) -> (OnCommit, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let on_commit: OnCommit = Arc::new(move |batch| {
        if enters(batch, phase).is_some() {
            let _ = tx.send(());
        }
    });
    (on_commit, rx)
}

/// A running node on a RocksDB store, on its own thread and runtime, and what it needs to
/// restart the same.
struct TestNode {
    name: &'static str,
    key: Keypair,
    dir: PathBuf,
    addr: Multiaddr,
    /// The handle the test drives the node with.
    node: Node,
    /// The node's thread and runtime: crashing it is the only way the node stops.
    process: IsolatedNode,
    /// The node's partition: the test heals it (or cuts it) at will.
    partition: Partition,
}

impl TestNode {
    async fn start(name: &'static str, seed: u8, dir: &Path, bootstrap: Vec<Multiaddr>, setup: Setup) -> Self {
        let key = Keypair::from_seed([seed; 32]);
        Self::start_at(name, key, dir.join(name), "/ip4/127.0.0.1/tcp/0".parse().unwrap(), bootstrap, setup).await
    }

    async fn start_at(name: &'static str, key: Keypair, dir: PathBuf, listen: Multiaddr, bootstrap: Vec<Multiaddr>, setup: Setup) -> Self {
        let mut config = NodeConfig::new(key.clone());
        config.listen = vec![listen];
        config.bootstrap = bootstrap;
        config.policy = Arc::new(StaticPolicy {
            max_open_sessions_per_peer: setup.max_open_sessions_per_peer,
            arbiters: setup.arbiters,
            ..StaticPolicy::default()
        });
        config.timing = setup.timing;
        config.default_ttl_ms = 5_000;
        config.discovery = setup.discovery;
        config.observe_sends = setup.on_send;
        let partition = setup.partition.unwrap_or_default();
        let transport = partition.transport(&key);
        let on_commit = setup.on_commit.unwrap_or_else(|| Arc::new(|_| {}));
        let failures = setup.commit_failures.unwrap_or_default();
        let store = ObservedStore::new(FlakyStore { inner: RocksStore::open(&dir).unwrap(), failures }, on_commit);
        let process = within("node start", STEP, IsolatedNode::start(config, store, transport)).await.unwrap();
        let node = process.node().clone();
        let addr = node.listen_addrs().await.unwrap()[0].clone();
        Self { name, key, dir, addr, node, process, partition }
    }

    fn peer(&self) -> PeerId {
        self.key.peer_id()
    }

    fn dial_addr(&self) -> Multiaddr {
        with_p2p(&self.addr, &self.peer())
    }

    /// Crashes the node wherever it is (no shutdown), leaving its database as a crash leaves it.
    async fn crash(self) -> StoppedNode {
        within("node crash", STEP, self.process.crash()).await;
        StoppedNode { name: self.name, key: self.key, dir: self.dir, addr: self.addr }
    }

    async fn wait_terminal(&self, session: SessionId) -> valex_node::runtime::ExchangeResult {
        within("session end", Duration::from_secs(60), self.node.wait_session(session)).await.unwrap()
    }
}

/// A crashed node: read its database, or restart it from there on the same address.
struct StoppedNode {
    name: &'static str,
    key: Keypair,
    dir: PathBuf,
    addr: Multiaddr,
}

impl StoppedNode {
    async fn restart(self, bootstrap: Vec<Multiaddr>, setup: Setup) -> TestNode {
        TestNode::start_at(self.name, self.key, self.dir, self.addr, bootstrap, setup).await
    }

    /// What its database holds, reopened and loaded as a restart would.
    fn state(&self) -> NodeState {
        stored_state(&self.dir)
    }
}

/// Ends a run: crashes every node, stops the arbiter, and audits protocol.md §6 over what their
/// databases hold, at rest, for the values `issued` in the test.
async fn crash_and_audit(nodes: Vec<TestNode>, arbiter: TestArbiter, issued: &[ValueId]) {
    let mut stopped = Vec::new();
    for node in nodes {
        stopped.push(node.crash().await);
    }
    let arbiter = arbiter.stop().await;
    let states: Vec<(&str, NodeState)> = stopped.iter().map(|node| (node.name, node.state())).collect();
    audit_at_rest(&states, &arbiter.decisions(), issued);
}

async fn wait_for_arbiter(node: &TestNode, arbiter: PeerId, via_kademlia: bool) {
    wait_until("arbiter in the directory", STEP, || async {
        node.node.arbiters().await.unwrap().iter().any(|a| a.peer == arbiter && if via_kademlia { a.via_kademlia } else { a.via_gossipsub })
    })
    .await;
}

fn swap(give: ValueId, peer: PeerId, arbiter: Option<PeerId>, ttl_ms: u64) -> StartExchange {
    StartExchange { peer, give, want: Want::KindAmount { kind: "voucher".into(), amount: 5, issuer: None }, arbiter, ttl_ms: Some(ttl_ms) }
}

/// One normal exchange with the arbiter found through the given discovery source only.
async fn normal_exchange(kademlia: bool) {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let setup = Setup { discovery: DiscoveryConfig { kademlia, gossipsub: !kademlia, ..Setup::default().discovery }, ..Setup::default() };
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], setup.clone()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], setup).await;
    wait_for_arbiter(&a, arbiter.peer(), kademlia).await;
    let listed = a.node.arbiters().await.unwrap();
    assert!(listed.iter().all(|e| if kademlia { !e.via_gossipsub } else { !e.via_kademlia }), "other source used: {listed:?}");

    let ticket = a.node.issue("ticket".into(), 1, b"seat 12A".to_vec()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let result = within("exchange", STEP, a.node.exchange(swap(ticket.id(), b.peer(), None, 10_000))).await.unwrap();
    assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    assert!(!result.settled_by_arbiter);
    assert_eq!(result.received.as_ref().map(|v| v.id()), Some(voucher.id()));
    assert!(result.receipt.is_some());
    let theirs = b.wait_terminal(result.session).await;
    assert_eq!(theirs.outcome, SessionOutcome::Done);
    assert_eq!(theirs.received.as_ref().map(|v| v.id()), Some(ticket.id()));
    let sessions = a.node.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].arbiter, arbiter.peer());

    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_exchange_with_the_arbiter_found_through_kademlia() {
    normal_exchange(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_exchange_with_the_arbiter_found_through_gossipsub() {
    normal_exchange(false).await;
}

/// (b) B crashes right after sending M2 and restarts from the same store: the exchange completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_responder_crashes_after_m2_and_restarts() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], Setup::default()).await;
    // A holds its M3 back until B is down and up again, so the crash falls between M2 and M3:
    // A's commit of VALID (M2 has arrived, M3 follows) cuts A off from B and tells the test.
    let a_setup = losing_m3();
    let (m2_arrived, mut m2_received) = notify_when(initiator_enters, "VALID");
    let cut = a_setup.on_commit.clone().unwrap();
    let a_setup = Setup {
        on_commit: Some(Arc::new(move |batch| {
            cut(batch);
            m2_arrived(batch);
        })),
        ..a_setup
    };
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], a_setup).await;
    wait_for_arbiter(&a, arbiter.peer(), true).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let session = a.node.start_exchange(swap(ticket.id(), b.peer(), Some(arbiter.peer()), 15_000)).await.unwrap();
    within("M2 sent and received", STEP, m2_received.recv()).await.unwrap();
    let stopped = b.crash().await;
    let b_state = stopped.state();
    assert_eq!(b_state.sessions.get(&session).map(|s| s.phase_name()), Some("VALID"), "B persisted VALID before M2");
    let b = stopped.restart(vec![arbiter.dial_addr()], Setup::default()).await;
    a.partition.heal();

    let result = a.wait_terminal(session).await;
    assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    assert!(!result.settled_by_arbiter);
    assert_eq!(b.wait_terminal(session).await.outcome, SessionOutcome::Done);
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

/// (c) A crashes after sending M3 and every r2 from B is lost: A restarts, retries M3 until the
/// expiry and grace, then settles through the arbiter (COMPLETED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_initiator_crashes_after_m3_with_r2_lost_and_settles_via_the_arbiter() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    // B's commit of DONE (r2 follows, in M4) cuts B off from A for good.
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], losing_m4()).await;
    // A's commit of VALID precedes M3: it tells the test M3 is going out.
    let (m3_going, mut m3_sent) = notify_when(initiator_enters, "VALID");
    let a_setup = Setup { on_commit: Some(m3_going), ..Setup::default() };
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], a_setup).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let session = a.node.start_exchange(swap(ticket.id(), b.peer(), Some(arbiter.peer()), 4_000)).await.unwrap();
    within("M3 sent", STEP, m3_sent.recv()).await.unwrap();
    // B takes M3 (DONE, r2 revealed but lost); A crashes without ever seeing r2.
    assert_eq!(b.wait_terminal(session).await.outcome, SessionOutcome::Done);
    let stopped = a.crash().await;
    assert_eq!(stopped.state().sessions.get(&session).map(|s| s.phase_name()), Some("VALID"));
    let a = stopped.restart(vec![arbiter.dial_addr(), b.dial_addr()], Setup::default()).await;

    let result = a.wait_terminal(session).await;
    assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    assert!(result.settled_by_arbiter, "A should have settled through the arbiter: {result:?}");
    let decisions = arbiter.decisions().await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions.values().next().map(|d| d.decision.outcome.name()), Some("COMPLETED"));
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

/// (d) M3 never arrives, so both sides need the arbiter, which is down; it comes back later on the
/// same address with the same decisions, and both settle alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_arbiter_down_during_resolution_and_back_later() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let arbiter_peer = arbiter.peer();
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], Setup::default()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], losing_m3()).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let stopped_arbiter = arbiter.stop().await;
    let session = a.node.start_exchange(swap(ticket.id(), b.peer(), Some(arbiter_peer), 2_000)).await.unwrap();
    // Both reach the arbiter phase while it is down: B PENDING (no M3 by expiry), A RESOLVING.
    wait_until("A resolving and B pending", STEP, || async {
        let a_phase = a.node.sessions().await.unwrap().first().map(|s| s.phase);
        let b_phase = b.node.sessions().await.unwrap().first().map(|s| s.phase);
        a_phase == Some("RESOLVING") && b_phase == Some("PENDING")
    })
    .await;
    assert!(stopped_arbiter.decisions().is_empty());
    let arbiter = stopped_arbiter.restart().await;

    let ours = a.wait_terminal(session).await;
    let theirs = b.wait_terminal(session).await;
    assert!(ours.settled_by_arbiter && theirs.settled_by_arbiter);
    assert_eq!(ours.outcome, theirs.outcome, "A {ours:?} / B {theirs:?}");
    let decisions = arbiter.decisions().await;
    assert_eq!(decisions.len(), 1);
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

/// (e) Both parties crash mid-exchange (A VALID with M3 held back, B VALID) and restart from
/// their stores (A on a healed network): the exchange completes without the arbiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_both_parties_restart_mid_exchange() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], Setup::default()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], losing_m3()).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let session = a.node.start_exchange(swap(ticket.id(), b.peer(), Some(arbiter.peer()), 20_000)).await.unwrap();
    wait_until("A VALID", STEP, || async { a.node.sessions().await.unwrap().first().map(|s| s.phase) == Some("VALID") }).await;
    let b_stopped = b.crash().await;
    let a_stopped = a.crash().await;
    let b = b_stopped.restart(vec![arbiter.dial_addr()], Setup::default()).await;
    let a = a_stopped.restart(vec![arbiter.dial_addr(), b.dial_addr()], Setup::default()).await;

    let ours = a.wait_terminal(session).await;
    assert_eq!(ours.outcome, SessionOutcome::Done, "{ours:?}");
    assert!(!ours.settled_by_arbiter);
    assert_eq!(b.wait_terminal(session).await.outcome, SessionOutcome::Done);
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

/// (f) 100 exchanges at once between the same two nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_one_hundred_concurrent_exchanges() {
    init_tracing();
    const N: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let setup = Setup { max_open_sessions_per_peer: 2 * N, ..Setup::default() };
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], setup.clone()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], setup).await;
    wait_for_arbiter(&a, arbiter.peer(), true).await;
    let mut issued = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..N {
        let ticket = a.node.issue("ticket".into(), 1, format!("seat {i}").into_bytes()).await.unwrap();
        let voucher = b.node.issue("voucher".into(), 5, format!("voucher {i}").into_bytes()).await.unwrap();
        issued.extend([ticket.id(), voucher.id()]);
        tickets.push(ticket.id());
    }
    let exchanges = tickets.iter().map(|ticket| a.node.exchange(swap(*ticket, b.peer(), None, 30_000)));
    let results = within("100 exchanges", Duration::from_secs(90), futures::future::join_all(exchanges)).await;
    for result in &results {
        let result = result.as_ref().unwrap();
        assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    }
    for result in &results {
        b.wait_terminal(result.as_ref().unwrap().session).await;
    }
    crash_and_audit(vec![a, b], arbiter, &issued).await;
}

/// B accepts only an arbiter A does not know; A picks the one its directory has, and B refuses
/// M1 with ARBITER_NOT_ACCEPTED: the exchange aborts and says why (nothing moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_an_arbiter_the_responder_refuses_aborts_the_exchange_and_says_so() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let other = Keypair::from_seed([10; 32]).peer_id();
    let b_setup = Setup { arbiters: ArbiterPolicy::only([other]), ..Setup::default() };
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], b_setup).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], Setup::default()).await;
    wait_for_arbiter(&a, arbiter.peer(), true).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let result = within("exchange", STEP, a.node.exchange(swap(ticket.id(), b.peer(), None, 10_000))).await.unwrap();
    assert_eq!(result.outcome, SessionOutcome::Aborted, "{result:?}");
    assert_eq!(result.aborted_reason, Some("ARBITER_NOT_ACCEPTED"));
    assert!(b.node.sessions().await.unwrap().is_empty());
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

/// The responder's per-peer cap on open sessions (policy) refuses the M1 beyond it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_the_per_peer_cap_on_open_sessions_refuses_extra_offers() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    // B cannot reach the arbiter until the test heals it, so its first session, once PENDING,
    // stays open.
    let b_partition = Partition::default();
    b_partition.cut([arbiter.peer()]);
    let b_setup = Setup { max_open_sessions_per_peer: 1, partition: Some(b_partition), ..Setup::default() };
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], b_setup).await;
    // A's M3 is lost (A is cut off from B from its commit of VALID on), so the first session
    // stays open on B: VALID until the expiry, then PENDING.
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], losing_m3()).await;
    let tickets =
        [a.node.issue("ticket".into(), 1, b"1".to_vec()).await.unwrap(), a.node.issue("ticket".into(), 1, b"2".to_vec()).await.unwrap()];
    let vouchers =
        [b.node.issue("voucher".into(), 5, b"1".to_vec()).await.unwrap(), b.node.issue("voucher".into(), 5, b"2".to_vec()).await.unwrap()];
    let first = a.node.start_exchange(swap(tickets[0].id(), b.peer(), Some(arbiter.peer()), 2_000)).await.unwrap();
    wait_until("first session VALID on B", STEP, || async { b.node.sessions().await.unwrap().len() == 1 }).await;
    // Once A has given up on M3 (it asks the arbiter instead) and B refuses late M3s (PENDING),
    // A and B may talk again: the second offer reaches B while the first is still open there.
    wait_until("A past VALID and B PENDING", STEP, || async {
        let a_phase = a.node.sessions().await.unwrap().first().map(|s| s.phase);
        let b_phase = b.node.sessions().await.unwrap().first().map(|s| s.phase);
        a_phase.is_some_and(|p| p != "STARTED" && p != "VALID") && b_phase == Some("PENDING")
    })
    .await;
    a.partition.heal();
    let second =
        within("second exchange", STEP, a.node.exchange(swap(tickets[1].id(), b.peer(), Some(arbiter.peer()), 2_000))).await.unwrap();
    assert_eq!(second.outcome, SessionOutcome::Aborted, "{second:?}");
    assert_eq!(second.aborted_reason, Some("TOO_MANY_SESSIONS"));
    // The first one ends through the arbiter (M3 never arrives) once B can reach it.
    b.partition.heal();
    let ours = a.wait_terminal(first).await;
    let theirs = b.wait_terminal(first).await;
    assert_eq!(ours.outcome, theirs.outcome);
    let issued: Vec<ValueId> = tickets.iter().chain(&vouchers).map(|v| v.id()).collect();
    crash_and_audit(vec![a, b], arbiter, &issued).await;
}

/// Garbage, an oversize length prefix and a well-formed M3 for an unknown session, from a raw
/// peer: the node answers each with a typed refusal (TOO_LARGE, MALFORMED, UNKNOWN_SESSION),
/// changes nothing, and keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_garbage_and_oversize_frames_from_a_malicious_peer_change_nothing() {
    use futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;

    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let b = TestNode::start("B", 2, dir.path(), Vec::new(), Setup::default()).await;
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    // What B's database holds before the attack (B crashes and restarts to read it).
    let stopped = b.crash().await;
    let before = stopped.state();
    let b = stopped.restart(Vec::new(), Setup::default()).await;

    let key = Keypair::from_seed([66; 32]).to_libp2p();
    let mut attacker = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(libp2p::tcp::Config::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::<RawCodec>::new(
                [(valex_node::net::codec::EXCHANGE_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let b_peer = b.peer();
    attacker.dial(b.dial_addr()).unwrap();

    let unknown_m3 = ExchangeRequest::Confirm(valex_proto::message::Confirm {
        s1: Digest([1; 32]),
        s2: Digest([2; 32]),
        se: valex_proto::Signature([3; 64]),
    });
    let payloads = [u32::MAX.to_be_bytes().to_vec(), framed(&[0xff; 40]), framed(&[]), framed(&unknown_m3.encode())];
    let mut answers = Vec::new();
    for payload in payloads {
        attacker.behaviour_mut().send_request_with_addresses(&b_peer, payload, vec![b.addr.clone()]);
        let answer = within("answer to the raw request", STEP, async {
            loop {
                match attacker.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => break Some(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => break None,
                    _ => {}
                }
            }
        })
        .await;
        answers.push(answer);
    }
    // Each gets a typed refusal: the oversize prefix TOO_LARGE (its body never read), the
    // undecodable frames MALFORMED, the M3 for a session B never had UNKNOWN_SESSION.
    let expected = [
        valex_proto::wire::ErrorCode::TooLarge,
        valex_proto::wire::ErrorCode::Malformed,
        valex_proto::wire::ErrorCode::Malformed,
        valex_proto::wire::ErrorCode::UnknownSession,
    ];
    for (answer, code) in answers.iter().zip(expected) {
        let bytes = answer.as_ref().unwrap_or_else(|| panic!("no answer where {code:?} was expected"));
        assert!(bytes.len() >= 4, "answer too short for a frame: {bytes:?}");
        match ExchangeResponse::decode(&bytes[4..]).unwrap() {
            ExchangeResponse::Refusal(refusal) => assert_eq!(refusal.code, code, "{refusal}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(b.node.value(voucher.id()).await.unwrap().is_some());
    assert_eq!(b.crash().await.state(), before, "the attack changed what B's database holds");
}

/// An injected failure of a store or decision log.
#[derive(Debug, thiserror::Error)]
#[error("injected failure: {0}")]
struct Injected(String);

/// Fails while its counter is above zero (counting down), then passes through.
fn take_failure(failures: &AtomicUsize) -> bool {
    failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

/// A node store whose commits fail on demand.
struct FlakyStore {
    inner: RocksStore,
    failures: Arc<AtomicUsize>,
}

impl Store for FlakyStore {
    type Error = Injected;

    fn commit(&mut self, batch: &valex_node::exchange::WriteBatch) -> Result<(), Injected> {
        if take_failure(&self.failures) {
            return Err(Injected("commit".into()));
        }
        self.inner.commit(batch).map_err(|e| Injected(e.to_string()))
    }

    fn load(&mut self) -> Result<valex_node::store::Loaded, Injected> {
        self.inner.load().map_err(|e| Injected(e.to_string()))
    }
}

/// An arbiter decision log whose writes fail on demand.
struct FlakyLog {
    inner: DecisionStore,
    failures: Arc<AtomicUsize>,
}

impl server::DecisionLog for FlakyLog {
    type Error = Injected;

    fn load_decisions(&mut self) -> Result<BTreeMap<Digest, DecisionRecord>, Injected> {
        self.inner.load_decisions().map_err(|e| Injected(e.to_string()))
    }

    fn persist_decision(&mut self, record: &DecisionRecord) -> Result<(), Injected> {
        if take_failure(&self.failures) {
            return Err(Injected("persist".into()));
        }
        self.inner.persist_decision(record).map_err(|e| Injected(e.to_string()))
    }
}

/// Write-ahead on both sides: B's commits of M1 fail twice (no M2 leaves, the core is rebuilt
/// from the store, A's retries get through later), and the arbiter's first two decision writes
/// fail (no answer leaves; A's retries get the decision once it is durable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j_failed_writes_send_nothing_and_retries_recover() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter_key = Keypair::from_seed([9; 32]);
    let log_failures = Arc::new(AtomicUsize::new(0));
    let log =
        FlakyLog { inner: DecisionStore::open(dir.path().join("arbiter"), arbiter_key.peer_id()).unwrap(), failures: log_failures.clone() };
    let mut arbiter_config = ArbiterConfig::new(arbiter_key.clone(), "flaky");
    arbiter_config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (arbiter, arbiter_task) = server::start(arbiter_config, log).await.unwrap();
    let arbiter_addr = with_p2p(&arbiter.listen_addrs().await.unwrap()[0], &arbiter_key.peer_id());

    let store_failures = Arc::new(AtomicUsize::new(0));
    // B loses every r2 (its commit of DONE cuts it off from A), so A must settle through the
    // (flaky) arbiter.
    let b_setup = Setup { commit_failures: Some(store_failures.clone()), ..losing_m4() };
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter_addr.clone()], b_setup).await;
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    // A failed commit fails the command and leaves nothing behind.
    store_failures.store(1, Ordering::SeqCst);
    assert!(matches!(b.node.issue("voucher".into(), 7, Vec::new()).await, Err(valex_node::runtime::NodeError::Store(_))));
    assert_eq!(b.node.values().await.unwrap().len(), 1);

    let a = TestNode::start("A", 1, dir.path(), vec![arbiter_addr, b.dial_addr()], Setup::default()).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    store_failures.store(2, Ordering::SeqCst);
    log_failures.store(2, Ordering::SeqCst);
    let result = within("exchange", STEP, a.node.exchange(swap(ticket.id(), b.peer(), Some(arbiter_key.peer_id()), 3_000))).await.unwrap();
    assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    assert!(result.settled_by_arbiter);
    assert_eq!(store_failures.load(Ordering::SeqCst), 0, "B's M1 commits failed as planned");
    assert_eq!(log_failures.load(Ordering::SeqCst), 0, "the arbiter's writes failed as planned");
    assert_eq!(b.wait_terminal(result.session).await.outcome, SessionOutcome::Done);
    let decisions = arbiter.decisions().await.unwrap();
    assert_eq!(decisions.len(), 1);
    let (a, b) = (a.crash().await, b.crash().await);
    arbiter.shutdown().await.unwrap();
    arbiter_task.await.unwrap();
    let stored = stored_decisions(&dir.path().join("arbiter"), arbiter_key.peer_id());
    audit_at_rest(&[("A", a.state()), ("B", b.state())], &stored, &[ticket.id(), voucher.id()]);
    // What the arbiter answered with is what it stored.
    assert_eq!(stored, decisions);
}

/// Kademlia across a hop: A knows only B, B knows the arbiter. A finds the arbiter's provider
/// record through B, and when r2 is lost it reaches the arbiter it has never been told the
/// address of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_kademlia_finds_and_reaches_an_arbiter_two_hops_away() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let kad_only = DiscoveryConfig { kademlia: true, gossipsub: false, ..Setup::default().discovery };
    // B loses r2: its commit of DONE cuts it off from A, until A has given up on M3 and asks the
    // arbiter (its commit of RESOLVING heals B), which it finds through B. A sends M3 once only
    // (no retry before its deadline), so no M3 can be on its way when B is healed.
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], Setup { discovery: kad_only.clone(), ..losing_m4() }).await;
    let b_partition = b.partition.clone();
    let a_setup = Setup {
        discovery: kad_only,
        timing: Timing { retry_ms: 60_000, ..fast_timing() },
        on_commit: Some(Arc::new(move |batch| {
            if initiator_enters(batch, "RESOLVING").is_some() {
                b_partition.heal();
            }
        })),
        ..Setup::default()
    };
    let a = TestNode::start("A", 1, dir.path(), vec![b.dial_addr()], a_setup).await;
    wait_for_arbiter(&a, arbiter.peer(), true).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let result = within("exchange", STEP, a.node.exchange(swap(ticket.id(), b.peer(), None, 2_000))).await.unwrap();
    assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    assert!(result.settled_by_arbiter, "{result:?}");
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}

/// The write-ahead rule, by order: in one log of both nodes' commits and sends, every message of
/// an exchange leaves its node only after the commit of the state it reveals — A's STARTED before
/// M1, B's VALID before M2 (Sa), A's VALID before M3 (Se), B's DONE before M4 (r2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l_every_message_leaves_after_the_commit_of_what_it_reveals() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let log = Log::default();
    let logged = |node| Setup { on_commit: Some(log.on_commit(node)), on_send: Some(log.on_send(node)), ..Setup::default() };
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], logged("B")).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], logged("A")).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let result = within("exchange", STEP, a.node.exchange(swap(ticket.id(), b.peer(), Some(arbiter.peer()), 10_000))).await.unwrap();
    assert_eq!(result.outcome, SessionOutcome::Done, "{result:?}");
    assert_eq!(b.wait_terminal(result.session).await.outcome, SessionOutcome::Done);
    for (node, phase, message) in
        [("A", "STARTED", Message::M1), ("B", "VALID", Message::M2), ("A", "VALID", Message::M3), ("B", "DONE", Message::M4)]
    {
        if let Err(error) = log.committed_before_sent(node, result.session, phase, message) {
            panic!("{error}");
        }
    }
    crash_and_audit(vec![a, b], arbiter, &[ticket.id(), voucher.id()]).await;
}
