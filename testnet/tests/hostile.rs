//! Hostile peers (issue #3, item 6): a peer with its own libp2p swarm speaks the wire protocol to
//! an honest valex node (RocksDB store in a temporary directory, 127.0.0.1, tcp port 0) and
//! attacks it, one named test per attack:
//!
//! 1. malformed frames — garbage, an oversize length prefix, a frame cut short;
//! 2. well-formed but lying requests — a bad Se, an s2 of another session, replays of a finished
//!    session, a stranger's M3, M3 for a session that never was;
//! 3. decisions forged by the arbiter the terms name, or signed by someone else;
//! 4. a thousand concurrent M1s against the per-peer cap on open sessions.
//!
//! After each attack the node must still serve an honest exchange, its state must pass
//! protocol.md §6 (`valex_testnet::invariants::check_always`), and every value it held must be
//! spendable in its vault or in escrow in exactly one open session, never lost.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use valex_arbiter::server::{self, ArbiterConfig, ArbiterHandle};
use valex_arbiter::store::DecisionStore;
use valex_arbiter::{Arbiter, DecisionRecord};
use valex_node::exchange::{ArbiterPolicy, NodeState, Session, SessionOutcome, StaticPolicy};
use valex_node::net::codec::{ARBITER_PROTOCOL, ArbiterCodec, EXCHANGE_PROTOCOL, ExchangeCodec};
use valex_node::runtime::{self, EventLoopHandle, Node, NodeConfig, StartExchange};
use valex_node::store::RocksStore;
use valex_node::time::now_ms;
use valex_proto::crypto::Keypair;
use valex_proto::limits::MAX_FRAME_BYTES;
use valex_proto::message::{
    Agree, ArbiterRequest, ArbiterResponse, Confirm, Decision, ExchangeRequest, ExchangeResponse, Outcome, Refusal, Start, Terms, Want,
};
use valex_proto::value::{Value, ValueId};
use valex_proto::wire::ErrorCode;
use valex_proto::{Digest, PeerId, Signature, canonical, crypto};
use valex_testnet::invariants::{NamedState, check_always, check_at_rest_partial};

mod support;
use support::observed::{ObservedStore, OnCommit, initiator_enters};
use support::partition::Partition;
use support::{RawCodec, fast_timing, framed, wait_until, with_p2p, within};

/// The longest any single step may take.
const STEP: Duration = Duration::from_secs(30);
/// The per-peer cap on open responder sessions (the default policy's).
const CAP: usize = 64;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

// ---- honest parties ----------------------------------------------------------------------

/// A running arbiter server on a RocksDB decision store.
struct TestArbiter {
    key: Keypair,
    addr: Multiaddr,
    handle: ArbiterHandle,
    task: tokio::task::JoinHandle<()>,
}

impl TestArbiter {
    async fn start(seed: u8, dir: &Path) -> Self {
        let key = Keypair::from_seed([seed; 32]);
        let mut config = ArbiterConfig::new(key.clone(), "test-arbiter");
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        let store = DecisionStore::open(dir.join("arbiter"), key.peer_id()).unwrap();
        let (handle, task) = within("arbiter start", STEP, server::start(config, store)).await.unwrap();
        let addr = handle.listen_addrs().await.unwrap()[0].clone();
        Self { key, addr, handle, task }
    }

    fn peer(&self) -> PeerId {
        self.key.peer_id()
    }

    fn dial_addr(&self) -> Multiaddr {
        with_p2p(&self.addr, &self.peer())
    }

    async fn decisions(&self) -> BTreeMap<Digest, DecisionRecord> {
        self.handle.decisions().await.unwrap()
    }

    async fn stop(self) {
        self.handle.shutdown().await.unwrap();
        within("arbiter stop", STEP, self.task).await.unwrap();
    }
}

/// How a test node is set up.
#[derive(Clone, Default)]
struct Setup {
    arbiters: ArbiterPolicy,
    /// The node's partition (a fresh, healed one if none).
    partition: Option<Partition>,
    /// Called with every batch the node commits, before the messages that follow it are sent.
    on_commit: Option<OnCommit>,
}

/// A running honest node on a RocksDB store, over a partitionable transport.
struct TestNode {
    key: Keypair,
    addr: Multiaddr,
    node: Node,
    event_loop: EventLoopHandle,
    /// The node's partition: the test heals it (or cuts it) at will.
    partition: Partition,
}

impl TestNode {
    async fn start(name: &str, seed: u8, dir: &Path, bootstrap: Vec<Multiaddr>, setup: Setup) -> Self {
        let key = Keypair::from_seed([seed; 32]);
        let mut config = NodeConfig::new(key.clone());
        config.bootstrap = bootstrap;
        config.policy = Arc::new(StaticPolicy { arbiters: setup.arbiters, ..StaticPolicy::default() });
        config.timing = fast_timing();
        config.default_ttl_ms = 5_000;
        let partition = setup.partition.unwrap_or_default();
        let transport = partition.transport(&key);
        let on_commit = setup.on_commit.unwrap_or_else(|| Arc::new(|_| {}));
        let store = ObservedStore::new(RocksStore::open(dir.join(name)).unwrap(), on_commit);
        let (node, event_loop) = within("node start", STEP, runtime::start_with_transport(config, store, transport)).await.unwrap();
        let addr = node.listen_addrs().await.unwrap()[0].clone();
        assert!(addr.to_string().starts_with("/ip4/127.0.0.1/tcp/"), "{addr}");
        Self { key, addr, node, event_loop, partition }
    }

    fn peer(&self) -> PeerId {
        self.key.peer_id()
    }

    fn dial_addr(&self) -> Multiaddr {
        with_p2p(&self.addr, &self.peer())
    }

    /// Where a hostile peer sends its requests.
    fn target(&self) -> Target {
        Target { peer: self.peer(), addr: self.addr.clone() }
    }

    async fn snapshot(&self) -> NodeState {
        within("snapshot", STEP, self.node.snapshot()).await.unwrap()
    }

    async fn phase(&self, s1: &Digest) -> Option<&'static str> {
        self.snapshot().await.sessions.get(s1).map(Session::phase_name)
    }

    async fn stop(self) {
        self.node.shutdown().await.unwrap();
        within("node stop", STEP, self.event_loop.join()).await;
    }
}

/// protocol.md §6's always-invariants over the honest nodes' states.
fn assert_always(states: &[(&str, &NodeState)], decisions: &BTreeMap<Digest, DecisionRecord>) {
    let named: Vec<NamedState<'_>> = states.iter().map(|(name, state)| NamedState { name, state }).collect();
    if let Err(violation) = check_always(&named, decisions, &[]) {
        panic!("{violation}");
    }
}

/// Every one of `held` is in `state` exactly once: spendable in the vault, or in escrow in
/// exactly one open session (and then not spendable). Nothing the node held was lost.
fn assert_accounted(state: &NodeState, held: &[ValueId]) {
    for id in held {
        let escrows = state.open_sessions().filter(|s| s.escrowed().contains(id)).count();
        let spendable = state.is_spendable(id);
        assert!(
            (spendable && escrows == 0) || (!state.vault.contains_key(id) && escrows == 1),
            "value {} lost or doubled: spendable {spendable}, in the vault {}, escrowed by {escrows} open sessions",
            id.short(),
            state.vault.contains_key(id)
        );
    }
}

/// An honest exchange between honest nodes: `a` gives a fresh ticket for a fresh prize of `b`'s.
/// Both must end DONE without the arbiter. Returns the two values.
async fn honest_exchange(a: &TestNode, b: &TestNode, arbiter: PeerId, tag: &str) -> [ValueId; 2] {
    let ticket = a.node.issue("ticket".into(), 1, format!("honest {tag}").into_bytes()).await.unwrap();
    let prize = b.node.issue("prize".into(), 1, format!("honest {tag}").into_bytes()).await.unwrap();
    let request =
        StartExchange { peer: b.peer(), give: ticket.id(), want: Want::Value(prize.id()), arbiter: Some(arbiter), ttl_ms: Some(20_000) };
    let ours = within("honest exchange", STEP, a.node.exchange(request)).await.unwrap();
    assert_eq!(ours.outcome, SessionOutcome::Done, "honest exchange {tag}: {ours:?}");
    assert!(!ours.settled_by_arbiter, "{ours:?}");
    assert_eq!(ours.received.as_ref().map(Value::id), Some(prize.id()));
    let theirs = within("honest exchange on B", STEP, b.node.wait_session(ours.session)).await.unwrap();
    assert_eq!(theirs.outcome, SessionOutcome::Done, "{theirs:?}");
    assert_eq!(theirs.received.as_ref().map(Value::id), Some(ticket.id()));
    [ticket.id(), prize.id()]
}

/// What every test asserts at its end: B still serves an honest exchange, both honest states pass
/// §6, and every value of `b_held` (plus the honest exchange's) is accounted for.
async fn assert_still_serves(
    a: &TestNode,
    b: &TestNode,
    arbiter: PeerId,
    decisions: &BTreeMap<Digest, DecisionRecord>,
    b_held: &[ValueId],
) {
    let [ticket, prize] = honest_exchange(a, b, arbiter, "after the attack").await;
    let (a_state, b_state) = (a.snapshot().await, b.snapshot().await);
    assert_always(&[("A", &a_state), ("B", &b_state)], decisions);
    let named = [NamedState { name: "A", state: &a_state }, NamedState { name: "B", state: &b_state }];
    check_at_rest_partial(&named, &[ticket, prize]).unwrap();
    assert!(b_state.is_spendable(&ticket) && a_state.is_spendable(&prize));
    assert_accounted(&b_state, b_held);
}

// ---- the hostile peer --------------------------------------------------------------------

/// The hostile peer's protocols: typed exchange requests, raw exchange bytes, and the arbiter
/// protocol inbound (to pose as the arbiter a victim's terms name).
#[derive(NetworkBehaviour)]
struct HostileBehaviour {
    exchange: request_response::Behaviour<ExchangeCodec>,
    raw: request_response::Behaviour<RawCodec>,
    arbiter: request_response::Behaviour<ArbiterCodec>,
}

/// The node a hostile peer attacks.
#[derive(Debug, Clone)]
struct Target {
    peer: PeerId,
    addr: Multiaddr,
}

enum HostileCommand {
    Exchange(Target, Box<ExchangeRequest>, oneshot::Sender<Result<ExchangeResponse, String>>),
    Raw(Target, Vec<u8>, oneshot::Sender<Option<Vec<u8>>>),
}

/// An arbiter request that reached the hostile peer; answer it through `reply` (or drop it).
struct ArbiterCall {
    from: PeerId,
    request: ArbiterRequest,
    reply: oneshot::Sender<ArbiterResponse>,
}

/// A hostile peer: its own swarm (tcp + noise + yamux on 127.0.0.1), driven by a task.
struct Hostile {
    key: Keypair,
    addr: Multiaddr,
    commands: mpsc::UnboundedSender<HostileCommand>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Starts a hostile peer with `key`; arbiter requests it receives come out of the receiver.
    async fn start(key: Keypair) -> (Self, mpsc::UnboundedReceiver<ArbiterCall>) {
        let config = request_response::Config::default().with_request_timeout(Duration::from_secs(10)).with_max_concurrent_streams(4_096);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.to_libp2p())
            .with_tokio()
            .with_tcp(libp2p::tcp::Config::default().nodelay(true), libp2p::noise::Config::new, libp2p::yamux::Config::default)
            .unwrap()
            .with_behaviour(|_| HostileBehaviour {
                exchange: request_response::Behaviour::with_codec(
                    ExchangeCodec,
                    [(EXCHANGE_PROTOCOL, ProtocolSupport::Outbound)],
                    config.clone(),
                ),
                raw: request_response::Behaviour::with_codec(RawCodec, [(EXCHANGE_PROTOCOL, ProtocolSupport::Outbound)], config.clone()),
                arbiter: request_response::Behaviour::with_codec(ArbiterCodec, [(ARBITER_PROTOCOL, ProtocolSupport::Inbound)], config),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        let addr = within("hostile listener", STEP, async {
            loop {
                if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                    break address;
                }
            }
        })
        .await;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(swarm, commands_rx, calls_tx));
        (Self { key, addr, commands, task }, calls)
    }

    fn peer(&self) -> PeerId {
        self.key.peer_id()
    }

    fn dial_addr(&self) -> Multiaddr {
        with_p2p(&self.addr, &self.peer())
    }

    /// Sends a typed exchange request; the node's response, or why none came.
    async fn send(&self, to: &Target, request: ExchangeRequest) -> Result<ExchangeResponse, String> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(HostileCommand::Exchange(to.clone(), Box::new(request), tx)).unwrap();
        within("exchange response", STEP, rx).await.unwrap()
    }

    /// Sends raw bytes; the raw answer (`None` if the stream failed).
    async fn raw(&self, to: &Target, bytes: Vec<u8>) -> Option<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(HostileCommand::Raw(to.clone(), bytes, tx)).unwrap();
        within("raw response", STEP, rx).await.unwrap()
    }

    fn stop(self) {
        self.task.abort();
    }
}

type PendingReply = BoxFuture<'static, (ResponseChannel<ArbiterResponse>, Result<ArbiterResponse, oneshot::error::RecvError>)>;

/// The hostile peer's swarm task.
async fn drive(
    mut swarm: Swarm<HostileBehaviour>,
    mut commands: mpsc::UnboundedReceiver<HostileCommand>,
    calls: mpsc::UnboundedSender<ArbiterCall>,
) {
    let mut typed: HashMap<OutboundRequestId, oneshot::Sender<Result<ExchangeResponse, String>>> = HashMap::new();
    let mut raw: HashMap<OutboundRequestId, oneshot::Sender<Option<Vec<u8>>>> = HashMap::new();
    let mut replies: FuturesUnordered<PendingReply> = FuturesUnordered::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(HostileCommand::Exchange(to, request, reply)) => {
                    let peer = to.peer;
                    let id = swarm.behaviour_mut().exchange.send_request_with_addresses(&peer, Ok(*request), vec![to.addr]);
                    typed.insert(id, reply);
                }
                Some(HostileCommand::Raw(to, bytes, reply)) => {
                    let peer = to.peer;
                    let id = swarm.behaviour_mut().raw.send_request_with_addresses(&peer, bytes, vec![to.addr]);
                    raw.insert(id, reply);
                }
            },
            Some((channel, answer)) = replies.next(), if !replies.is_empty() => {
                if let Ok(response) = answer {
                    let _ = swarm.behaviour_mut().arbiter.send_response(channel, response);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(HostileBehaviourEvent::Exchange(event)) => match event {
                    request_response::Event::Message { message: request_response::Message::Response { request_id, response }, .. } => {
                        if let Some(reply) = typed.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                    request_response::Event::OutboundFailure { request_id, error, .. } => {
                        if let Some(reply) = typed.remove(&request_id) {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(HostileBehaviourEvent::Raw(event)) => match event {
                    request_response::Event::Message { message: request_response::Message::Response { request_id, response }, .. } => {
                        if let Some(reply) = raw.remove(&request_id) {
                            let _ = reply.send(Some(response));
                        }
                    }
                    request_response::Event::OutboundFailure { request_id, .. } => {
                        if let Some(reply) = raw.remove(&request_id) {
                            let _ = reply.send(None);
                        }
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(HostileBehaviourEvent::Arbiter(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let (reply, answer) = oneshot::channel();
                    let from = peer;
                    // The honest node only ever sends decodable arbiter requests.
                    let request = request.expect("an honest node's arbiter request decodes");
                    if calls.send(ArbiterCall { from, request, reply }).is_ok() {
                        replies.push(Box::pin(async move { (channel, answer.await) }));
                    }
                }
                _ => {}
            },
        }
    }
}

// ---- what the hostile peer says ----------------------------------------------------------

/// A session id the hostile peer makes up.
fn s1(label: &str) -> Digest {
    Digest::of(format!("hostile/s1/{label}").as_bytes())
}

/// A value of the hostile peer's own issue.
fn ticket(key: &Keypair, n: usize) -> Value {
    let mut serial = [0u8; 16];
    serial[..8].copy_from_slice(&u64::try_from(n).unwrap().to_be_bytes());
    Value::issue(key, "ticket", 1, format!("hostile ticket {n}").into_bytes(), serial).unwrap()
}

fn vouchers_of(issuer: PeerId) -> Want {
    Want::KindAmount { kind: "voucher".into(), amount: 5, issuer: Some(issuer) }
}

fn offer(label: &str, v1: &Value, want: Want, arbiter: PeerId, ttl_ms: u64) -> Start {
    Start { s1: s1(label), v1: v1.clone(), want, arbiter, expires_at_ms: now_ms() + ttl_ms }
}

/// The terms of an M1 the hostile peer sent and the M2 it got back, as B computed them.
fn terms_of(m1: &Start, initiator: PeerId, responder: PeerId, m2: &Agree) -> Terms {
    let terms = Terms {
        s1: m1.s1,
        initiator,
        responder,
        arbiter: m1.arbiter,
        v1_id: m1.v1.id(),
        v2_id: m2.v2.id(),
        expires_at_ms: m1.expires_at_ms,
    };
    crypto::verify(&responder, &canonical::agree_bytes(&terms.h(), &m2.s2), &m2.sa).expect("Sa binds the terms the attacker rebuilt");
    terms
}

/// M3 with `se` signed by `key` over (h, s2).
fn confirm(key: &Keypair, terms: &Terms, s2: Digest) -> ExchangeRequest {
    ExchangeRequest::Confirm(Confirm { s1: terms.s1, s2, se: key.sign(&canonical::confirm_bytes(&terms.h(), &s2)) })
}

fn agreed(response: Result<ExchangeResponse, String>) -> Agree {
    match response {
        Ok(ExchangeResponse::Agree(m2)) => m2,
        other => panic!("expected M2, got {other:?}"),
    }
}

#[track_caller]
fn assert_refused(response: &Result<ExchangeResponse, String>, code: ErrorCode) -> Refusal {
    match response {
        Ok(ExchangeResponse::Refusal(refusal)) if refusal.code == code => refusal.clone(),
        other => panic!("expected a {} refusal, got {other:?}", code.as_str_name()),
    }
}

// ---- 1. malformed frames -----------------------------------------------------------------

/// Garbage, an empty frame, fields of the wrong size, a tampered value, oversize length prefixes
/// (alone and followed by a body) each get a typed refusal; frames cut short get no answer. The
/// node's state does not change and it keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_typed_refusals_and_change_nothing() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let b = TestNode::start("B", 2, dir.path(), Vec::new(), Setup::default()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![b.dial_addr()], Setup::default()).await;
    let vouchers = [
        b.node.issue("voucher".into(), 5, b"1".to_vec()).await.unwrap().id(),
        b.node.issue("voucher".into(), 5, b"2".to_vec()).await.unwrap().id(),
    ];
    let before = b.snapshot().await;
    let (hostile, _calls) = Hostile::start(Keypair::from_seed([66; 32])).await;
    let arbiter = Keypair::from_seed([9; 32]).peer_id();

    let m1 = ExchangeRequest::Start(offer("frames", &ticket(&hostile.key, 0), vouchers_of(b.peer()), arbiter, 10_000));
    let mut short_s1 = m1.to_wire();
    let mut tampered = m1.to_wire();
    let mut long_kind = m1.to_wire();
    if let (
        Some(valex_proto::wire::exchange_request::Kind::Start(s)),
        Some(valex_proto::wire::exchange_request::Kind::Start(t)),
        Some(valex_proto::wire::exchange_request::Kind::Start(k)),
    ) = (short_s1.kind.as_mut(), tampered.kind.as_mut(), long_kind.kind.as_mut())
    {
        s.s1.truncate(31);
        t.v1.as_mut().unwrap().amount = 1_000_000; // the id no longer hashes the fields
        k.v1.as_mut().unwrap().kind = "k".repeat(65);
    }
    let mut oversize_with_body = u32::try_from(MAX_FRAME_BYTES + 1).unwrap().to_be_bytes().to_vec();
    oversize_with_body.extend_from_slice(&[0xab; 4096]);
    let mut truncated_body = framed(&m1.encode());
    truncated_body.truncate(truncated_body.len() / 2);
    let unknown_m3 = ExchangeRequest::Confirm(Confirm { s1: s1("never started"), s2: Digest([2; 32]), se: Signature([3; 64]) });

    let attacks: Vec<(&str, Vec<u8>, Option<ErrorCode>)> = vec![
        ("garbage", framed(&[0xff; 40]), Some(ErrorCode::Malformed)),
        ("an empty frame", framed(&[]), Some(ErrorCode::Malformed)),
        ("an s1 of 31 bytes", framed(&short_s1.encode_to_vec()), Some(ErrorCode::Malformed)),
        ("a value whose id does not hash its fields", framed(&tampered.encode_to_vec()), Some(ErrorCode::InvalidValue)),
        ("a value kind over its limit", framed(&long_kind.encode_to_vec()), Some(ErrorCode::TooLarge)),
        ("a length prefix of u32::MAX alone", u32::MAX.to_be_bytes().to_vec(), Some(ErrorCode::TooLarge)),
        ("an oversize length prefix with a body", oversize_with_body, Some(ErrorCode::TooLarge)),
        ("half a length prefix", vec![0, 0], None),
        ("a frame cut in half", truncated_body, None),
        ("a well-formed M3 for a session that never was", framed(&unknown_m3.encode()), Some(ErrorCode::UnknownSession)),
    ];
    for (what, bytes, expected) in attacks {
        let answer = hostile.raw(&b.target(), bytes).await;
        match expected {
            Some(code) => {
                let bytes = answer.unwrap_or_else(|| panic!("{what}: no answer, expected {code:?}"));
                assert!(bytes.len() >= 4, "{what}: answer too short for a frame: {bytes:?}");
                assert_eq!(u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len() - 4, "{what}: one whole frame");
                match ExchangeResponse::decode(&bytes[4..]) {
                    Ok(ExchangeResponse::Refusal(refusal)) => assert_eq!(refusal.code, code, "{what}: {refusal}"),
                    other => panic!("{what}: expected a refusal, got {other:?}"),
                }
            }
            // A frame cut short cannot be answered: the stream just ends.
            None => assert!(answer.as_ref().is_none_or(Vec::is_empty), "{what}: answered {answer:?}"),
        }
        assert_eq!(b.snapshot().await, before, "{what} changed the node's state");
    }

    assert_still_serves(&a, &b, arbiter, &BTreeMap::new(), &vouchers).await;
    hostile.stop();
    a.stop().await;
    b.stop().await;
}

// ---- 2. well-formed lies -----------------------------------------------------------------

/// Valid protobuf, lying content, from a peer that runs real sessions with B:
/// - M3 with a bad Se: refused INVALID_SIGNATURE and B goes PENDING (protocol.md §5); then even a
///   valid M3 and the repeated M1 are refused PENDING;
/// - M3 carrying the s2 of another of its sessions: HASH_MISMATCH, PENDING;
/// - M3 from a stranger for its session: WRONG_SENDER, nothing changes;
/// - a V1 with a forged issuer signature: INVALID_VALUE;
/// - replays of a finished session: M1 SESSION_CLOSED, M3 the same r2 again (idempotent), M3 with
///   another Se INVALID_SIGNATURE, another M1 under its s1 SESSION_CONFLICT, its V1 offered again
///   VALUE_BUSY — nothing changes;
/// - M3 for a session that never was: UNKNOWN_SESSION.
///
/// The PENDING sessions end CANCELLED once B reaches the arbiter; B's vouchers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_requests_are_refused_and_bad_confirmations_make_b_pending() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    // B does not know the arbiter's address yet: its PENDING sessions stay PENDING until told.
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let b = TestNode::start("B", 2, dir.path(), Vec::new(), Setup::default()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![b.dial_addr()], Setup::default()).await;
    let mut vouchers = Vec::new();
    for i in 0..4 {
        vouchers.push(b.node.issue("voucher".into(), 5, format!("voucher {i}").into_bytes()).await.unwrap().id());
    }
    let (hostile, _calls) = Hostile::start(Keypair::from_seed([66; 32])).await;
    let (stranger, _stranger_calls) = Hostile::start(Keypair::from_seed([67; 32])).await;
    let (h, t, to) = (hostile.peer(), arbiter.peer(), b.target());
    let tickets: Vec<Value> = (0..5).map(|n| ticket(&hostile.key, n)).collect();

    // -- a bad Se on a real session: PENDING, and from then on every M3 is refused.
    let m1a = offer("bad se", &tickets[0], vouchers_of(b.peer()), t, 30_000);
    let m2a = agreed(hostile.send(&to, ExchangeRequest::Start(m1a.clone())).await);
    let terms_a = terms_of(&m1a, h, b.peer(), &m2a);
    assert_eq!(b.phase(&m1a.s1).await, Some("VALID"));
    let bad_se = ExchangeRequest::Confirm(Confirm { s1: m1a.s1, s2: m2a.s2, se: hostile.key.sign(b"not the confirm bytes") });
    assert_refused(&hostile.send(&to, bad_se).await, ErrorCode::InvalidSignature);
    let pending = b.snapshot().await;
    assert_eq!(pending.sessions.get(&m1a.s1).map(Session::phase_name), Some("PENDING"));
    assert!(!pending.vault.contains_key(&m2a.v2.id()), "V2 stays in escrow while PENDING");
    assert_refused(&hostile.send(&to, confirm(&hostile.key, &terms_a, m2a.s2)).await, ErrorCode::Pending);
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(m1a.clone())).await, ErrorCode::Pending);
    assert_eq!(b.snapshot().await, pending, "refusals while PENDING change nothing");

    // -- an M3 carrying the s2 of another session (signed over it): HASH_MISMATCH, PENDING.
    let m1b = offer("s2 of another", &tickets[1], vouchers_of(b.peer()), t, 30_000);
    let m2b = agreed(hostile.send(&to, ExchangeRequest::Start(m1b.clone())).await);
    let terms_b = terms_of(&m1b, h, b.peer(), &m2b);
    let m1c = offer("finished", &tickets[2], vouchers_of(b.peer()), t, 30_000);
    let m2c = agreed(hostile.send(&to, ExchangeRequest::Start(m1c.clone())).await);
    let terms_c = terms_of(&m1c, h, b.peer(), &m2c);
    assert_refused(&hostile.send(&to, confirm(&hostile.key, &terms_b, m2c.s2)).await, ErrorCode::HashMismatch);
    assert_eq!(b.phase(&m1b.s1).await, Some("PENDING"));
    assert_eq!(b.phase(&m1c.s1).await, Some("VALID"), "the other session is untouched");

    // -- a stranger's M3 for the hostile peer's session, and a forged value: nothing changes.
    let state = b.snapshot().await;
    assert_refused(&stranger.send(&to, confirm(&stranger.key, &terms_c, m2c.s2)).await, ErrorCode::WrongSender);
    let mut forged = tickets[3].to_wire();
    forged.issuer_sig = stranger.key.sign(&tickets[3].issue_bytes()).0.to_vec();
    let forged = Value::from_wire(forged).unwrap();
    let m1_forged = offer("forged value", &forged, vouchers_of(b.peer()), t, 30_000);
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(m1_forged)).await, ErrorCode::InvalidValue);
    assert_eq!(b.snapshot().await, state);

    // -- the third session completes honestly: the hostile peer gets a voucher, B its ticket.
    let r2 = match hostile.send(&to, confirm(&hostile.key, &terms_c, m2c.s2)).await {
        Ok(ExchangeResponse::Reveal(m4)) => m4.r2,
        other => panic!("expected M4, got {other:?}"),
    };
    assert_eq!(Digest::of(&canonical::s2_preimage(&r2)), m2c.s2);
    let finished = b.snapshot().await;
    assert_eq!(finished.sessions.get(&m1c.s1).map(Session::phase_name), Some("DONE"));
    assert!(finished.is_spendable(&tickets[2].id()) && finished.receipts.contains_key(&tickets[2].id()));

    // -- replays of the finished session, and an M3 for no session: typed refusals, no change.
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(m1c.clone())).await, ErrorCode::SessionClosed);
    match hostile.send(&to, confirm(&hostile.key, &terms_c, m2c.s2)).await {
        Ok(ExchangeResponse::Reveal(m4)) => assert_eq!(m4.r2, r2, "a retried M3 gets the same r2"),
        other => panic!("expected the same M4 again, got {other:?}"),
    }
    let other_se = ExchangeRequest::Confirm(Confirm { s1: m1c.s1, s2: m2c.s2, se: hostile.key.sign(b"another Se") });
    assert_refused(&hostile.send(&to, other_se).await, ErrorCode::InvalidSignature);
    let reused_s1 = Start { v1: tickets[4].clone(), ..m1c.clone() };
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(reused_s1)).await, ErrorCode::SessionConflict);
    let v1_again = offer("finished, again", &tickets[2], vouchers_of(b.peer()), t, 30_000);
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(v1_again)).await, ErrorCode::ValueBusy);
    let escrowed_again = offer("escrowed, again", &tickets[0], vouchers_of(b.peer()), t, 30_000);
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(escrowed_again)).await, ErrorCode::ValueBusy);
    let unknown = ExchangeRequest::Confirm(Confirm { s1: s1("never started"), s2: m2c.s2, se: Signature([7; 64]) });
    assert_refused(&hostile.send(&to, unknown).await, ErrorCode::UnknownSession);
    assert_eq!(b.snapshot().await, finished, "replays changed the node's state");
    assert_always(&[("B", &finished)], &BTreeMap::new());
    assert_accounted(&finished, &vouchers.iter().copied().filter(|v| *v != m2c.v2.id()).collect::<Vec<_>>());

    // -- B learns where the arbiter is: both PENDING sessions end CANCELLED, V2s back home.
    b.node.dial(arbiter.dial_addr()).await.unwrap();
    for s in [m1a.s1, m1b.s1] {
        let ended = within("PENDING session settled", STEP, b.node.wait_session(s)).await.unwrap();
        assert_eq!(ended.outcome, SessionOutcome::Cancelled, "{ended:?}");
        assert!(ended.settled_by_arbiter);
    }
    assert_refused(&hostile.send(&to, ExchangeRequest::Start(m1a.clone())).await, ErrorCode::SessionClosed);
    assert_refused(&hostile.send(&to, confirm(&hostile.key, &terms_a, m2a.s2)).await, ErrorCode::SessionClosed);
    let decisions = arbiter.decisions().await;
    assert_eq!(decisions.len(), 2);
    assert!(decisions.values().all(|d| d.decision.outcome == Outcome::Cancelled && d.requested_by == b.peer()));
    let settled = b.snapshot().await;
    assert!(settled.open_sessions().next().is_none());
    let kept: Vec<ValueId> = vouchers.iter().copied().filter(|v| *v != m2c.v2.id()).chain([tickets[2].id()]).collect();
    check_at_rest_partial(&[NamedState { name: "B", state: &settled }], &kept).unwrap();
    assert!(!settled.vault.contains_key(&m2c.v2.id()), "the traded voucher is the hostile peer's now");

    assert_still_serves(&a, &b, t, &decisions, &kept).await;
    hostile.stop();
    stranger.stop();
    a.stop().await;
    b.stop().await;
    arbiter.stop().await;
}

// ---- 3. forged decisions -----------------------------------------------------------------

/// How many forged answers B gets before the real decision.
const FORGERIES: usize = 5;

/// The `n`-th forged answer for (h, s2): each claims `outcome` but is not a decision of `t` for
/// this (s2, h).
fn forged_answer(n: usize, t: &Keypair, other: &Keypair, h: Digest, s2: Digest, outcome: Outcome) -> (&'static str, ArbiterResponse) {
    let flipped = if outcome == Outcome::Completed { Outcome::Cancelled } else { Outcome::Completed };
    let (other_s2, other_h) = (Digest::of(b"another s2"), Digest::of(b"another h"));
    let decision = |s2: Digest, h: Digest, signed: Outcome, key: &Keypair| Decision {
        s2,
        h,
        outcome,
        decided_at_ms: now_ms(),
        sig: key.sign(&canonical::decision_bytes(&h, &s2, signed)),
    };
    match n % FORGERIES {
        0 => ("signed by another key", ArbiterResponse::Decision(decision(s2, h, outcome, other))),
        1 => ("bound to another s2", ArbiterResponse::Decision(decision(other_s2, h, outcome, t))),
        2 => ("bound to another h", ArbiterResponse::Decision(decision(s2, other_h, outcome, t))),
        3 => ("outcome changed after signing", ArbiterResponse::Decision(decision(s2, h, flipped, t))),
        _ => ("a refusal", ArbiterResponse::Refusal(Refusal::new(ErrorCode::Internal, "come back later", None))),
    }
}

/// The hostile peer is the arbiter T the terms name (B's policy accepts only it). M3 is lost, so
/// B goes PENDING and A RESOLVING; T answers their requests with forged decisions claiming
/// COMPLETED (signed by another key, bound to another s2 or h, outcome changed) and a refusal.
/// Both ignore them, stay open with the values in escrow and keep retrying; then T runs the real
/// decision rule (valex_arbiter::Arbiter): CANCELLED, which both apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_not_signed_by_the_terms_arbiter_are_ignored() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let t_key = Keypair::from_seed([77; 32]);
    let (fake_t, mut calls) = Hostile::start(t_key.clone()).await;
    let t = fake_t.peer();
    let b_setup = Setup { arbiters: ArbiterPolicy::only([t]), ..Setup::default() };
    let b = TestNode::start("B", 2, dir.path(), vec![fake_t.dial_addr()], b_setup).await;
    // M3 is lost: A's first commit of VALID (M3 follows) cuts A off from B, until the test heals.
    let a_partition = Partition::default();
    let on_commit: OnCommit = {
        let (first, partition) = (AtomicBool::new(true), a_partition.clone());
        Arc::new(move |batch| {
            if let Some(b) = initiator_enters(batch, "VALID")
                && first.swap(false, Ordering::SeqCst)
            {
                partition.cut([b]);
            }
        })
    };
    let a_setup = Setup { partition: Some(a_partition), on_commit: Some(on_commit), ..Setup::default() };
    let a = TestNode::start("A", 1, dir.path(), vec![fake_t.dial_addr(), b.dial_addr()], a_setup).await;
    let ticket = a.node.issue("ticket".into(), 1, Vec::new()).await.unwrap();
    let voucher = b.node.issue("voucher".into(), 5, Vec::new()).await.unwrap();
    let request = StartExchange { peer: b.peer(), give: ticket.id(), want: vouchers_of(b.peer()), arbiter: Some(t), ttl_ms: Some(2_000) };
    let session = a.node.start_exchange(request).await.unwrap();

    // T's side: forgeries first, then (once the test has checked B) the real decision rule.
    let real = Arc::new(Mutex::new(Arbiter::new(t_key.clone(), BTreeMap::new())));
    let (checkpoint_tx, checkpoint) = oneshot::channel::<oneshot::Sender<()>>();
    let forged_to_a = Arc::new(AtomicUsize::new(0));
    let server = {
        let (real, forged_to_a, a_peer, b_peer) = (real.clone(), forged_to_a.clone(), a.peer(), b.peer());
        let other = Keypair::from_seed([78; 32]);
        tokio::spawn(async move {
            let mut checkpoint_tx = Some(checkpoint_tx);
            let mut forged_to_b = 0;
            while let Some(call) = calls.recv().await {
                let (h, s2) = match &call.request {
                    ArbiterRequest::Cancel(r) => (r.terms.h(), r.s2),
                    ArbiterRequest::Complete(r) => (r.terms.h(), r.s2),
                    ArbiterRequest::Query { s2 } => (Digest([0; 32]), *s2),
                };
                if let Some(tx) = checkpoint_tx.take() {
                    if call.from == b_peer && forged_to_b < FORGERIES {
                        assert!(matches!(call.request, ArbiterRequest::Cancel(_)), "B asks to cancel");
                        let (what, answer) = forged_answer(forged_to_b, &t_key, &other, h, s2, Outcome::Completed);
                        tracing::info!(what, "forged answer to B");
                        forged_to_b += 1;
                        checkpoint_tx = Some(tx);
                        let _ = call.reply.send(answer);
                        continue;
                    }
                    if call.from == a_peer {
                        let n = forged_to_a.fetch_add(1, Ordering::SeqCst);
                        let (what, answer) = forged_answer(n, &t_key, &other, h, s2, Outcome::Completed);
                        tracing::info!(what, "forged answer to A");
                        checkpoint_tx = Some(tx);
                        let _ = call.reply.send(answer);
                        continue;
                    }
                    // B came back after every forgery: let the test look at B before answering.
                    let (go_tx, go) = oneshot::channel();
                    let _ = tx.send(go_tx);
                    let _ = go.await;
                }
                let answer = match real.lock().unwrap().handle(call.from, call.request, now_ms()) {
                    Ok(step) => step.response,
                    Err(error) => ArbiterResponse::Refusal(error.refusal(None)),
                };
                let _ = call.reply.send(answer);
            }
        })
    };

    // B has had every forgery and asked again: still PENDING, V2 in escrow; A still RESOLVING.
    let go = within("B's retry after the forgeries", Duration::from_secs(60), checkpoint).await.unwrap();
    let (a_state, b_state) = (a.snapshot().await, b.snapshot().await);
    assert_eq!(b_state.sessions.get(&session).map(Session::phase_name), Some("PENDING"));
    assert_eq!(a_state.sessions.get(&session).map(Session::phase_name), Some("RESOLVING"));
    assert!(forged_to_a.load(Ordering::SeqCst) > 0, "A was sent forgeries too");
    assert!(!b_state.vault.contains_key(&voucher.id()) && !a_state.vault.contains_key(&ticket.id()));
    assert_accounted(&b_state, &[voucher.id(), ticket.id()]);
    assert_accounted(&a_state, &[voucher.id(), ticket.id()]);
    assert!(b_state.receipts.is_empty() && a_state.receipts.is_empty(), "no forged decision became a receipt");
    assert_always(&[("A", &a_state), ("B", &b_state)], &BTreeMap::new());
    go.send(()).unwrap();

    // The real decision: CANCELLED (B asked first), applied by both.
    let theirs = within("B settles", STEP, b.node.wait_session(session)).await.unwrap();
    let ours = within("A settles", STEP, a.node.wait_session(session)).await.unwrap();
    assert_eq!(theirs.outcome, SessionOutcome::Cancelled, "{theirs:?}");
    assert_eq!(ours.outcome, SessionOutcome::Cancelled, "{ours:?}");
    assert!(theirs.settled_by_arbiter && ours.settled_by_arbiter);
    let decisions = real.lock().unwrap().decisions().clone();
    assert_eq!(decisions.len(), 1);
    let (a_state, b_state) = (a.snapshot().await, b.snapshot().await);
    let named = [NamedState { name: "A", state: &a_state }, NamedState { name: "B", state: &b_state }];
    check_always(&named, &decisions, &[]).unwrap();
    check_at_rest_partial(&named, &[ticket.id(), voucher.id()]).unwrap();
    assert!(b_state.is_spendable(&voucher.id()) && a_state.is_spendable(&ticket.id()));

    a.partition.heal();
    assert_still_serves(&a, &b, t, &decisions, &[voucher.id()]).await;
    server.abort();
    fake_t.stop();
    a.stop().await;
    b.stop().await;
}

// ---- 4. a flood of offers ----------------------------------------------------------------

/// How many M1s the hostile peer fires at once.
const FLOOD: usize = 1_000;
/// Their expiry: long enough for the flood to be over first.
const FLOOD_TTL_MS: u64 = 8_000;

/// A thousand concurrent M1s, each with a distinct s1 and a valid V1 of the hostile peer's own
/// issue, all wanting B's vouchers (B holds CAP + 16). B accepts exactly CAP (one voucher in escrow
/// each), refuses every other with TOO_MANY_SESSIONS, never holds more than CAP open sessions with
/// the peer, and meanwhile completes an honest exchange. The hostile sessions expire without M3,
/// go PENDING and are cancelled by the arbiter: every voucher comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_offers_hit_the_per_peer_cap() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let arbiter = TestArbiter::start(9, dir.path()).await;
    let b = TestNode::start("B", 2, dir.path(), vec![arbiter.dial_addr()], Setup::default()).await;
    let a = TestNode::start("A", 1, dir.path(), vec![arbiter.dial_addr(), b.dial_addr()], Setup::default()).await;
    let mut vouchers = Vec::new();
    for i in 0..CAP + 16 {
        vouchers.push(b.node.issue("voucher".into(), 5, format!("voucher {i}").into_bytes()).await.unwrap().id());
    }
    let (hostile, _calls) = Hostile::start(Keypair::from_seed([66; 32])).await;
    let (h, to) = (hostile.peer(), b.target());
    let offers: Vec<Start> = (0..FLOOD)
        .map(|n| offer(&format!("flood {n}"), &ticket(&hostile.key, n), vouchers_of(b.peer()), arbiter.peer(), FLOOD_TTL_MS))
        .collect();
    let earliest_expiry = offers.iter().map(|m| m.expires_at_ms).min().unwrap();

    // Watch B's open sessions with the hostile peer while the flood lasts.
    let flooding = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (node, flooding) = (b.node.clone(), flooding.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while flooding.load(Ordering::SeqCst) {
                let state = node.snapshot().await.unwrap();
                let open = state.open_sessions().filter(|s| matches!(s, Session::Responder(r) if r.initiator == h)).count();
                most = most.max(open);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            most
        })
    };

    // All at once; M1s lost in transport (the node sheds streams over its limits) are sent again
    // until each has B's answer.
    let flood = async {
        let started = Instant::now();
        let mut answers: BTreeMap<usize, ExchangeResponse> = BTreeMap::new();
        let mut lost_in_transport = 0;
        let mut rounds = 0;
        while answers.len() < FLOOD {
            rounds += 1;
            assert!(rounds <= 50, "the flood never got through");
            let missing: Vec<usize> = (0..FLOOD).filter(|n| !answers.contains_key(n)).collect();
            let sent = missing.iter().map(|&n| {
                let hostile = &hostile;
                let (to, m1) = (to.clone(), offers[n].clone());
                async move { (n, hostile.send(&to, ExchangeRequest::Start(m1)).await) }
            });
            for (n, answer) in futures::future::join_all(sent).await {
                match answer {
                    Ok(response) => {
                        answers.insert(n, response);
                    }
                    Err(_) => lost_in_transport += 1,
                }
            }
        }
        tracing::warn!(elapsed = ?started.elapsed(), rounds, lost_in_transport, "flood answered");
        answers
    };
    let honest = honest_exchange(&a, &b, arbiter.peer(), "during the flood");
    let (answers, honest_values) =
        within("the flood and the honest exchange", Duration::from_secs(60), async { tokio::join!(flood, honest) }).await;
    flooding.store(false, Ordering::SeqCst);
    let most_open = within("watcher", STEP, watcher).await.unwrap();
    assert!(now_ms() < earliest_expiry, "the flood outlasted the offers' expiry; the counts below would not be exact");

    // Exactly CAP accepted (each with its own voucher), every other refused TOO_MANY_SESSIONS.
    let mut accepted = BTreeMap::new();
    for (n, answer) in &answers {
        match answer {
            ExchangeResponse::Agree(m2) => {
                assert_eq!(m2.s1, offers[*n].s1);
                assert!(accepted.insert(m2.v2.id(), *n).is_none(), "voucher {} given twice", m2.v2.id().short());
            }
            ExchangeResponse::Refusal(refusal) => assert_eq!(refusal.code, ErrorCode::TooManySessions, "offer {n}: {refusal}"),
            other => panic!("offer {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(accepted.len(), CAP, "accepted offers");
    assert!(most_open <= CAP, "B held {most_open} open sessions with one peer (cap {CAP})");
    let (a_state, b_state) = (a.snapshot().await, b.snapshot().await);
    let open: Vec<&Session> = b_state.open_sessions().collect();
    assert_eq!(open.len(), CAP);
    assert!(open.iter().all(|s| matches!(s, Session::Responder(r) if r.initiator == h)));
    assert_eq!(b_state.sessions.len(), CAP + 1, "only the accepted offers and the honest exchange left records");
    assert_always(&[("A", &a_state), ("B", &b_state)], &arbiter.decisions().await);
    assert_accounted(&b_state, &vouchers);
    assert_eq!(vouchers.iter().filter(|v| b_state.is_spendable(v)).count(), 16);
    assert!(b_state.is_spendable(&honest_values[0]) && a_state.is_spendable(&honest_values[1]));

    // No M3 ever comes: each hostile session expires, goes PENDING and is cancelled.
    wait_until("the hostile sessions cancelled", Duration::from_secs(60), || async {
        b.node.snapshot().await.unwrap().open_sessions().next().is_none()
    })
    .await;
    let decisions = arbiter.decisions().await;
    assert_eq!(decisions.len(), CAP);
    assert!(decisions.values().all(|d| d.decision.outcome == Outcome::Cancelled));
    let b_state = b.snapshot().await;
    assert!(
        b_state
            .sessions
            .values()
            .filter(|s| s.id() != honest_session(&b_state, &honest_values))
            .all(|s| s.outcome() == SessionOutcome::Cancelled)
    );
    let named = [NamedState { name: "A", state: &a_state }, NamedState { name: "B", state: &b_state }];
    check_always(&named, &decisions, &[]).unwrap();
    check_at_rest_partial(&[NamedState { name: "B", state: &b_state }], &vouchers).unwrap();

    assert_still_serves(&a, &b, arbiter.peer(), &decisions, &vouchers).await;
    hostile.stop();
    a.stop().await;
    b.stop().await;
    arbiter.stop().await;
}

/// The s1 of B's session in which it received the honest ticket.
fn honest_session(state: &NodeState, honest: &[ValueId; 2]) -> Digest {
    state
        .sessions
        .values()
        .find_map(|s| match s {
            Session::Responder(r) if r.offer.v1.id() == honest[0] => Some(r.s1),
            _ => None,
        })
        .unwrap()
}
