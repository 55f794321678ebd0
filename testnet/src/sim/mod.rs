//! One exchange among A, B and T (or two, sharing the nodes), simulated through their real
//! sans-IO cores.
//!
//! A [`World`] holds each party's persisted state (what survives a crash) and volatile state
//! (the core's in-memory copy and its armed timers), each node's own clock, and the messages in
//! flight. Every step is an explicit [`Action`]; which ones are possible in a state is
//! [`World::enabled`]. The scenario tests script actions; the model checker explores them all.
//!
//! Each step runs the node as its runtime does: the core over the node's in-memory state handles
//! the input, and on a refusal the simulator checks that the core's state is exactly what it was
//! before ([`SimError::ChangedOnRefusal`] otherwise) — the simulator does not paper over it.
//!
//! ```
//! use valex_testnet::sim::{Action, World, WorldConfig};
//! let mut world = World::new(WorldConfig::default());
//! world.apply(&Action::Start { exchange: 0 }).unwrap();
//! assert_eq!(world.network().len(), 1); // M1 in flight
//! ```

mod mutants;
mod network;
mod party;
mod script;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use valex_arbiter::{Arbiter, DecisionRecord};
use valex_node::exchange::{
    CoreConfig, Ctx, Effects, ExchangeError, Input, NodeState, Outgoing, Proposal, Session, SessionId, StaticPolicy, TimerKind, Timing,
    WriteBatch,
};
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterRequest, ArbiterResponse, ExchangeRequest, ExchangeResponse, Want};
use valex_proto::value::{Value, ValueId};
use valex_proto::{Digest, PeerId};

pub use mutants::PlantedBug;
pub use network::{Envelope, Network, Payload};
pub use party::PartyState;
pub use script::Refused;

use mutants::{Node, NodeStep};

/// A party of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The initiator.
    A,
    /// The responder.
    B,
    /// The arbiter.
    T,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
            Self::T => "T",
        })
    }
}

/// One step of the world.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// A's owner starts exchange `exchange` (0, or 1 for [`WorldConfig::second`]).
    Start {
        /// Which exchange.
        exchange: usize,
    },
    /// Deliver message `index` of [`World::network`]; with `keep` it stays in flight (a duplicate).
    Deliver {
        /// Its index in the network's canonical order.
        index: usize,
        /// Leave a copy in flight.
        keep: bool,
    },
    /// The network loses message `index`.
    Drop {
        /// Its index.
        index: usize,
    },
    /// A node's clock moves to the next moment that matters ([`World::clock_points`]) without any
    /// of its timers firing: messages may then arrive after an expiry but before its timer.
    AdvanceClock {
        /// The node.
        role: Role,
    },
    /// A node's timer fires; a deadline moves the node's clock to it.
    Fire {
        /// The node.
        role: Role,
        /// The session.
        session: SessionId,
        /// Which timer.
        kind: TimerKind,
    },
    /// A party crashes and restarts from what it persisted.
    Restart {
        /// The party.
        role: Role,
    },
    /// A party crashes in the middle of a step that writes twice (only the
    /// [`PlantedBug::ResponderSplitsDoneWrite`] mutant does), after the first write: deliver
    /// message `index` to it, commit only the first write, restart.
    CrashBetweenWrites {
        /// The message whose handling is interrupted.
        index: usize,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start { exchange: 0 } => write!(f, "A starts the exchange"),
            Self::Start { .. } => write!(f, "A starts the second exchange"),
            Self::AdvanceClock { role } => write!(f, "{role}'s clock moves on"),
            Self::Deliver { index, keep } => write!(f, "deliver #{index}{}", if *keep { " (and keep a duplicate)" } else { "" }),
            Self::Drop { index } => write!(f, "drop #{index}"),
            Self::Fire { role, session, kind } => write!(f, "{role}: {kind:?} timer of {} fires", session.short()),
            Self::Restart { role } => write!(f, "{role} crashes and restarts"),
            Self::CrashBetweenWrites { index } => write!(f, "deliver #{index}, crash between its two writes, restart"),
        }
    }
}

/// Settings of a simulated exchange.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Expiry of the exchange on every node's clock (all clocks start at 0).
    pub expires_at_ms: u64,
    /// The nodes' timing.
    pub timing: Timing,
    /// A's policy.
    pub policy_a: StaticPolicy,
    /// B's policy.
    pub policy_b: StaticPolicy,
    /// A bug the simulator plants in both nodes, around their honest cores (see [`PlantedBug`]).
    pub planted_bug: Option<PlantedBug>,
    /// A second exchange A may start too, with the same B and T, sharing both nodes.
    pub second: Option<SecondExchange>,
    /// Whether retry timers are armed. Without them a node sends each request once per phase
    /// (and again on restart): enough on a network that loses nothing, and a far smaller model.
    pub retries: bool,
}

/// A second exchange between the same A and B: what A offers in it, for the same V2-like want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondExchange {
    /// What A offers.
    pub give: SecondOffer,
    /// Its expiry on every node's clock.
    pub expires_at_ms: u64,
}

/// The value A offers in the second exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondOffer {
    /// V1 again: while the first exchange holds it, A's core must refuse to offer it.
    V1,
    /// V3, a second ticket seeded in A's vault: both exchanges want B's only voucher, V2.
    V3,
}

impl Default for WorldConfig {
    fn default() -> Self {
        let policy = StaticPolicy { min_ttl_ms: 1, max_ttl_ms: 60_000, ..StaticPolicy::default() };
        Self {
            expires_at_ms: 10_000,
            timing: Timing { grace_ms: 2_000, retry_ms: 500, arbiter_retry_max_ms: 4_000 },
            policy_a: policy.clone(),
            policy_b: policy,
            planted_bug: None,
            second: None,
            retries: true,
        }
    }
}

/// The fixed cast: keys and the two values.
#[derive(Debug, Clone)]
pub struct Cast {
    /// A's key.
    pub a: Keypair,
    /// B's key.
    pub b: Keypair,
    /// T's key.
    pub t: Keypair,
    /// V1, issued to A.
    pub v1: Value,
    /// V2, issued to B.
    pub v2: Value,
    /// V3, another ticket, issued to A (seeded only when a second exchange offers it).
    pub v3: Value,
    /// What A wants.
    pub want: Want,
}

impl Cast {
    /// The fixed keys (seeds 0xA1, 0xB2, 0x73) and values.
    pub fn fixed() -> Self {
        let (a, b, t) = (Keypair::from_seed([0xA1; 32]), Keypair::from_seed([0xB2; 32]), Keypair::from_seed([0x73; 32]));
        let issuer = Keypair::from_seed([0x15; 32]);
        let v1 = Value::issue(&issuer, "ticket", 1, b"concert, seat 12A".to_vec(), [1; 16]).ok();
        let v2 = Value::issue(&issuer, "voucher", 500, Vec::new(), [2; 16]).ok();
        let v3 = Value::issue(&issuer, "ticket", 1, b"concert, seat 12B".to_vec(), [3; 16]).ok();
        // All are within the size limits, so issuing cannot fail.
        let [v1, v2, v3] = [v1, v2, v3].map(|v| v.unwrap_or_else(|| unreachable!()));
        let want = Want::KindAmount { kind: "voucher".into(), amount: 500, issuer: None };
        Self { a, b, t, v1, v2, v3, want }
    }

    /// A party's PeerId.
    pub fn peer(&self, role: Role) -> PeerId {
        match role {
            Role::A => self.a.peer_id(),
            Role::B => self.b.peer_id(),
            Role::T => self.t.peer_id(),
        }
    }

    /// The role of `peer`.
    pub fn role(&self, peer: &PeerId) -> Option<Role> {
        [Role::A, Role::B, Role::T].into_iter().find(|r| self.peer(*r) == *peer)
    }
}

/// What went wrong applying an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The action is not possible in this state.
    #[error("action not enabled: {0}")]
    NotEnabled(String),
    /// A [`Action::CrashBetweenWrites`] on a step that writes once: there is nothing to crash
    /// between (the model checker offers the crash on every delivery and skips these).
    #[error("the step writes only once: nothing to crash between")]
    SingleWrite,
    /// A core refused an input but its state is not what it was before: the runtime, which keeps
    /// its core across steps, would go on from a state no write produced.
    #[error("{role}'s core refused ({error}) but changed its state: {change}")]
    ChangedOnRefusal {
        /// The node.
        role: Role,
        /// The refusal.
        error: String,
        /// What changed.
        change: String,
    },
}

/// The simulated world. Its [`Hash`]/[`Eq`] cover exactly the state that matters to the
/// protocol, so the model checker can tell states apart.
#[derive(Clone)]
pub struct World {
    cast: Arc<Cast>,
    config: Arc<WorldConfig>,
    /// A.
    pub a: PartyState,
    /// B.
    pub b: PartyState,
    /// T's decisions (persisted: T has no other state).
    pub t: BTreeMap<Digest, DecisionRecord>,
    network: Network,
    /// Which exchanges A has started.
    started: [bool; 2],
    /// Refusals and errors the cores returned, for the scenario tests.
    log: Vec<String>,
    /// Each core step's result by a fingerprint of (role, state, clock, input): the cores are
    /// deterministic, so the model checker need not verify the same signatures again.
    memo: Arc<Mutex<HashMap<u128, StepResult>>>,
    /// Whether the last step crashed between two writes (only a planted bug writes twice).
    split_write: bool,
    /// How many steps so far the planted bug changed.
    mutated_steps: usize,
    /// The same for T.
    arbiter_memo: Arc<Mutex<HashMap<u128, ArbiterStepResult>>>,
}

/// A node's step: done, or refused (with what the refusal changed in the core, which must be nothing).
type StepResult = Result<NodeStep, (ExchangeError, Option<String>)>;
type ArbiterStepResult = (BTreeMap<Digest, DecisionRecord>, ArbiterResponse);

/// A 128-bit fingerprint (XXH3-128 of the value's `Hash` stream), the same in every run.
pub fn fingerprint<T: std::hash::Hash>(value: &T) -> u128 {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        buffer.clear();
        let mut hasher = ByteCollector(&mut buffer);
        value.hash(&mut hasher);
        xxhash_rust::xxh3::xxh3_128(&buffer)
    })
}

/// A `Hasher` that only collects the bytes fed to it.
struct ByteCollector<'a>(&'a mut Vec<u8>);

impl std::hash::Hasher for ByteCollector<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn finish(&self) -> u64 {
        0 // never used: fingerprint() hashes the collected bytes itself
    }
}

impl PartialEq for World {
    fn eq(&self, other: &Self) -> bool {
        self.a == other.a && self.b == other.b && self.t == other.t && self.network == other.network && self.started == other.started
    }
}
impl Eq for World {}

impl std::hash::Hash for World {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.a.hash(state);
        self.b.hash(state);
        self.t.hash(state);
        self.network.hash(state);
        self.started.hash(state);
    }
}

impl World {
    /// The initial world: V1 in A's vault, V2 in B's, nothing in flight.
    pub fn new(config: WorldConfig) -> Self {
        Self::with_cast(Cast::fixed(), config)
    }

    /// The initial world with a given cast.
    pub fn with_cast(cast: Cast, config: WorldConfig) -> Self {
        let mut a = PartyState::default();
        a.seed_value(cast.v1.clone());
        if config.second.is_some_and(|second| second.give == SecondOffer::V3) {
            a.seed_value(cast.v3.clone());
        }
        let mut b = PartyState::default();
        b.seed_value(cast.v2.clone());
        Self {
            cast: Arc::new(cast),
            config: Arc::new(config),
            a,
            b,
            t: BTreeMap::new(),
            network: Network::default(),
            started: [false; 2],
            log: Vec::new(),
            split_write: false,
            mutated_steps: 0,
            memo: Arc::default(),
            arbiter_memo: Arc::default(),
        }
    }

    /// The cast.
    pub fn cast(&self) -> &Cast {
        &self.cast
    }

    /// The messages in flight, in canonical order.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The settings.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Whether A has started exchange 0.
    pub fn started(&self) -> bool {
        self.started[0]
    }

    /// How many exchanges A may start: 1, or 2 with [`WorldConfig::second`].
    pub fn exchanges(&self) -> usize {
        if self.config.second.is_some() { 2 } else { 1 }
    }

    /// Every value issued in this world, with the party it was issued to.
    pub fn issued(&self) -> Vec<(ValueId, Role)> {
        let mut issued = vec![(self.cast.v1.id(), Role::A), (self.cast.v2.id(), Role::B)];
        if self.config.second.is_some_and(|second| second.give == SecondOffer::V3) {
            issued.push((self.cast.v3.id(), Role::A));
        }
        issued
    }

    /// What A's owner proposes for exchange `exchange`.
    pub fn proposal(&self, exchange: usize) -> Option<Proposal> {
        let (give, expires_at_ms) = match (exchange, self.config.second) {
            (0, _) => (self.cast.v1.id(), self.config.expires_at_ms),
            (1, Some(SecondExchange { give: SecondOffer::V1, expires_at_ms })) => (self.cast.v1.id(), expires_at_ms),
            (1, Some(SecondExchange { give: SecondOffer::V3, expires_at_ms })) => (self.cast.v3.id(), expires_at_ms),
            _ => return None,
        };
        Some(Proposal {
            responder: self.cast.b.peer_id(),
            give,
            want: self.cast.want.clone(),
            arbiter: self.cast.t.peer_id(),
            expires_at_ms,
        })
    }

    /// The moments that matter to `role`'s clock: every exchange's expiry, and the node's armed
    /// deadlines (A's expiry + grace while VALID). A finite set, so moving the clock keeps the
    /// model finite.
    pub fn clock_points(&self, role: Role) -> BTreeSet<u64> {
        let mut points: BTreeSet<u64> =
            (0..self.exchanges()).filter_map(|exchange| self.proposal(exchange)).map(|p| p.expires_at_ms).collect();
        points.extend(self.party(role).timers.iter().filter(|((_, kind), _)| *kind == TimerKind::Deadline).map(|(_, at)| *at));
        points
    }

    /// Whether `role`'s clock can make a difference before the node next acts: it has an open
    /// session, a message to it is in flight, or (for A) an exchange is still to start. Otherwise the
    /// node is idle until a message reaches it, and moving its clock then, just before that
    /// delivery, reaches the same states: the explorer leaves idle clocks alone.
    fn clock_matters(&self, role: Role) -> bool {
        self.party(role).volatile.open_sessions().next().is_some()
            || self.network.iter().any(|e| e.to == role)
            || (role == Role::A && self.started.iter().take(self.exchanges()).any(|started| !started))
    }

    /// The next moment after `role`'s clock that matters, if any.
    fn next_clock_point(&self, role: Role) -> Option<u64> {
        let now = self.party(role).now_ms;
        self.clock_points(role).into_iter().find(|at| *at > now)
    }

    /// How many steps so far the planted bug (if any) changed: zero means the nodes behaved
    /// honestly all along.
    pub fn mutated_steps(&self) -> usize {
        self.mutated_steps
    }

    /// Errors and refusals seen so far, in order.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// A node's state.
    pub fn party(&self, role: Role) -> &PartyState {
        match role {
            Role::A => &self.a,
            Role::B => &self.b,
            Role::T => &self.a, // T has no PartyState; callers use `t`.
        }
    }

    fn party_mut(&mut self, role: Role) -> &mut PartyState {
        match role {
            Role::B => &mut self.b,
            _ => &mut self.a,
        }
    }

    /// The exchange's session, as a node holds it (the first by id, when there are two).
    pub fn session(&self, role: Role) -> Option<&Session> {
        self.party(role).volatile.sessions.values().next()
    }

    /// Whether A or B holds an open session (in memory).
    pub fn has_open_sessions(&self) -> bool {
        [Role::A, Role::B].into_iter().any(|role| self.party(role).volatile.open_sessions().next().is_some())
    }

    /// Places a message in flight, as if a party had sent it (for hostile-input scenarios).
    pub fn inject(&mut self, envelope: Envelope) {
        self.network.insert(envelope);
    }

    /// Every action possible now. With `faults`, also drops, duplicates and crashes.
    pub fn enabled(&self, faults: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        for exchange in 0..self.exchanges() {
            if !self.started[exchange] {
                actions.push(Action::Start { exchange });
            }
        }
        for index in 0..self.network.len() {
            actions.push(Action::Deliver { index, keep: false });
            if faults {
                actions.push(Action::Deliver { index, keep: true });
                actions.push(Action::Drop { index });
                if self.config.planted_bug.is_some_and(PlantedBug::writes_twice) && self.network.get(index).is_some_and(|e| e.to != Role::T)
                {
                    actions.push(Action::CrashBetweenWrites { index });
                }
            }
        }
        for role in [Role::A, Role::B] {
            for (session, kind) in self.party(role).timers.keys() {
                actions.push(Action::Fire { role, session: *session, kind: *kind });
            }
            if self.clock_matters(role) && self.next_clock_point(role).is_some() {
                actions.push(Action::AdvanceClock { role });
            }
        }
        if faults {
            actions.extend([Role::A, Role::B, Role::T].map(|role| Action::Restart { role }));
        }
        actions
    }

    /// Applies one action.
    pub fn apply(&mut self, action: &Action) -> Result<(), SimError> {
        match action {
            Action::Start { exchange } => {
                let proposal = self.proposal(*exchange).ok_or_else(|| SimError::NotEnabled(format!("no exchange {exchange}")))?;
                if self.started[*exchange] {
                    return Err(SimError::NotEnabled(format!("exchange {exchange} already started")));
                }
                self.started[*exchange] = true;
                self.step(Role::A, Input::Start(proposal), None, false)?;
            }
            Action::Deliver { index, keep } => {
                let envelope = self.take(*index, *keep)?;
                self.deliver(envelope, false)?;
            }
            Action::AdvanceClock { role } => {
                let at = self.next_clock_point(*role).ok_or_else(|| SimError::NotEnabled(format!("{role}'s clock is past every point")))?;
                self.party_mut(*role).now_ms = at;
            }
            Action::Drop { index } => {
                self.take(*index, false)?;
            }
            Action::Fire { role, session, kind } => {
                let at = self
                    .party_mut(*role)
                    .timers
                    .remove(&(*session, *kind))
                    .ok_or_else(|| SimError::NotEnabled(format!("{role} has no {kind:?} timer for {}", session.short())))?;
                if *kind == TimerKind::Deadline {
                    let party = self.party_mut(*role);
                    party.now_ms = party.now_ms.max(at);
                }
                self.step(*role, Input::Timer { session: *session, kind: *kind }, None, false)?;
            }
            Action::Restart { role } => self.restart(*role),
            Action::CrashBetweenWrites { index } => {
                let envelope = self.take(*index, true)?;
                let to = envelope.to;
                self.split_write = false;
                self.deliver(envelope, true)?;
                if !self.split_write {
                    return Err(SimError::SingleWrite);
                }
                self.restart(to);
            }
        }
        Ok(())
    }

    fn take(&mut self, index: usize, keep: bool) -> Result<Envelope, SimError> {
        let envelope = self.network.get(index).cloned().ok_or_else(|| SimError::NotEnabled(format!("no message #{index}")))?;
        if !keep {
            self.network.remove(index);
        }
        Ok(envelope)
    }

    fn deliver(&mut self, envelope: Envelope, crash_between_writes: bool) -> Result<(), SimError> {
        let from = self.cast.peer(envelope.from);
        match envelope.payload {
            Payload::Request(request) => {
                let input = Input::Request { from, request };
                self.step(envelope.to, input, Some(envelope.from), crash_between_writes)
            }
            Payload::Response(response) => {
                let input = Input::Response { from, session: envelope.session, response };
                self.step(envelope.to, input, None, crash_between_writes)
            }
            Payload::ArbiterRequest(request) => {
                self.arbitrate(envelope.from, envelope.session, request);
                Ok(())
            }
            Payload::ArbiterResponse(response) => {
                let input = Input::Arbiter { from, session: envelope.session, response };
                self.step(envelope.to, input, None, crash_between_writes)
            }
        }
    }

    fn arbitrate(&mut self, from: Role, session: SessionId, request: ArbiterRequest) {
        let key = fingerprint(&(Role::T, &self.t, from, &request));
        let cached = self.arbiter_memo.lock().ok().and_then(|memo| memo.get(&key).cloned());
        let (decisions, response) = match cached {
            Some(result) => result,
            None => {
                let mut arbiter = Arbiter::new(self.cast.t.clone(), self.t.clone());
                let response = match arbiter.handle(self.cast.peer(from), request, 0) {
                    Ok(step) => step.response,
                    Err(e) => ArbiterResponse::Refusal(e.refusal(Some(session))),
                };
                let result = (arbiter.decisions().clone(), response);
                if let Ok(mut memo) = self.arbiter_memo.lock() {
                    memo.insert(key, result.clone());
                }
                result
            }
        };
        self.t = decisions;
        self.network.insert(Envelope { from: Role::T, to: from, session, payload: Payload::ArbiterResponse(response) });
    }

    /// `role`'s node: its honest core's key and settings, and the planted bug.
    fn node(&self, role: Role) -> Node {
        let (key, policy) = match role {
            Role::B => (self.cast.b.clone(), self.config.policy_b.clone()),
            _ => (self.cast.a.clone(), self.config.policy_a.clone()),
        };
        let config = CoreConfig { policy: Arc::new(policy), timing: self.config.timing };
        Node { key, config, bug: self.config.planted_bug }
    }

    /// Runs `input` through `role`'s core as the node's runtime does: the core over the node's
    /// in-memory state handles it, and on a refusal the core's state must be what it was.
    #[allow(clippy::result_large_err)] // the core's own error type, as its `handle` returns it
    fn run_core(&self, role: Role, ctx: Ctx, input: &Input) -> StepResult {
        let before = &self.party(role).volatile;
        let node = self.node(role);
        let mut core = node.core(before.clone());
        node.handle(before, &mut core, ctx, input).map_err(|error| {
            let change = (core.state() != before).then(|| state_change(before, core.state()));
            (error, change)
        })
    }

    /// Runs one input through `role`'s core and carries out its effects, write-ahead.
    fn step(&mut self, role: Role, input: Input, reply_to: Option<Role>, crash_between_writes: bool) -> Result<(), SimError> {
        let now_ms = self.party(role).now_ms;
        // A response travels on the stream of the request it answers: it belongs to that request's session.
        let request_session = match &input {
            Input::Request { request, .. } => Some(request.s1()),
            _ => None,
        };
        let key = fingerprint(&(role, &self.party(role).volatile, now_ms, &input));
        let cached = self.memo.lock().ok().and_then(|memo| memo.get(&key).cloned());
        let result = match cached {
            Some(result) => result,
            None => {
                let ctx = Ctx { now_ms, entropy: entropy(role, &input) };
                let result = self.run_core(role, ctx, &input);
                if let Ok(mut memo) = self.memo.lock() {
                    memo.insert(key, result.clone());
                }
                result
            }
        };
        match result {
            Ok(NodeStep { state, effects, second_write, mutated }) => {
                self.mutated_steps += usize::from(mutated);
                if crash_between_writes {
                    self.split_write = second_write.is_some();
                    // Only the first write reaches the disk; the process dies before anything else.
                    if let Some(batch) = &effects.persist {
                        self.party_mut(role).persisted.apply(batch);
                    }
                    return Ok(());
                }
                self.party_mut(role).volatile = state;
                self.carry_out(role, effects, second_write.as_ref(), reply_to, request_session);
            }
            Err((error, Some(change))) => {
                return Err(SimError::ChangedOnRefusal { role, error: error.to_string(), change });
            }
            Err((error, None)) => {
                self.log.push(format!("{role}: {error}"));
                if let Some(to) = reply_to {
                    let session = request_session.or_else(|| error_session(&error));
                    let refusal = ExchangeResponse::Refusal(error.refusal(session));
                    self.network.insert(Envelope {
                        from: role,
                        to,
                        session: session.unwrap_or_default(),
                        payload: Payload::Response(refusal),
                    });
                }
            }
        }
        Ok(())
    }

    /// Commits the step's write (and a split step's second write), then sends and arms timers.
    fn carry_out(
        &mut self,
        role: Role,
        effects: Effects,
        second_write: Option<&WriteBatch>,
        reply_to: Option<Role>,
        reply_session: Option<SessionId>,
    ) {
        let retries = self.config.retries;
        let party = self.party_mut(role);
        for batch in effects.persist.iter().chain(second_write) {
            party.persisted.apply(batch);
        }
        for timer in effects.timers.iter().filter(|timer| retries || timer.kind != TimerKind::Retry) {
            // Retries are abstracted to "may fire at any later moment": their time is not kept,
            // so the model stays finite. Deadlines keep their time: firing one moves the clock.
            let at = if timer.kind == TimerKind::Retry { 0 } else { timer.at_ms };
            party.timers.insert((timer.session, timer.kind), at);
        }
        // Timers of ended sessions would fire into nothing: drop them.
        let volatile = &party.volatile;
        party.timers.retain(|(session, _), _| volatile.sessions.get(session).is_some_and(|s| !s.is_terminal()));
        let session = reply_session.or(effects.session).unwrap_or_default();
        if let (Some(reply), Some(to)) = (effects.reply, reply_to) {
            self.network.insert(Envelope { from: role, to, session, payload: Payload::Response(reply) });
        }
        for outgoing in effects.send {
            let envelope = match outgoing {
                Outgoing::Exchange { to, session, request } => {
                    let Some(to) = self.cast.role(&to) else { continue };
                    Envelope { from: role, to, session, payload: Payload::Request(request) }
                }
                Outgoing::Arbiter { to, session, request } => {
                    let Some(to) = self.cast.role(&to) else { continue };
                    Envelope { from: role, to, session, payload: Payload::ArbiterRequest(request) }
                }
            };
            self.network.insert(envelope);
        }
    }

    /// Runs the world with faults stopped along one fixed schedule: every message in flight is
    /// delivered, and when none is, a retry timer fires — or, once retries no longer change
    /// anything, the earliest deadline, moving that node's clock. Stops when every session has
    /// ended and nothing is in flight, or fails after `max_steps`. Returns how many steps it took.
    /// (The model checker checks termination under every fair schedule instead; scenarios use
    /// this one to finish an exchange.)
    pub fn heal(&mut self, max_steps: usize) -> Result<usize, String> {
        // Quiet states (nothing in flight) seen so far, and how many of their retries were tried.
        let mut quiet: HashMap<u128, usize> = HashMap::new();
        for step in 0..max_steps {
            if !self.network.is_empty() {
                self.apply(&Action::Deliver { index: 0, keep: false }).map_err(|e| e.to_string())?;
                continue;
            }
            if !self.has_open_sessions() {
                return Ok(step);
            }
            let timers: Vec<(Role, SessionId, TimerKind, u64)> = [Role::A, Role::B]
                .into_iter()
                .flat_map(|role| self.party(role).timers.iter().map(move |((s, k), at)| (role, *s, *k, *at)))
                .collect();
            let retries: Vec<_> = timers.iter().filter(|t| t.2 == TimerKind::Retry).collect();
            let tried = quiet.entry(fingerprint(self)).or_insert(0);
            let next = if *tried < retries.len() {
                *tried += 1;
                retries[*tried - 1]
            } else {
                match timers.iter().filter(|t| t.2 == TimerKind::Deadline).min_by_key(|t| t.3) {
                    Some(deadline) => deadline,
                    None => return Err(format!("stuck after {step} steps with sessions open and no deadline armed: {self}")),
                }
            };
            let (role, session, kind, _) = *next;
            self.apply(&Action::Fire { role, session, kind }).map_err(|e| e.to_string())?;
        }
        Err(format!("sessions still open after {max_steps} fault-free steps: {self}"))
    }

    /// Crash and restart: the volatile state and timers are lost; the core is rebuilt from what
    /// was persisted and resumes its open sessions. T keeps only its persisted decisions.
    fn restart(&mut self, role: Role) {
        if role == Role::T {
            return; // T persists every decision before answering; it has nothing volatile.
        }
        let party = self.party_mut(role);
        party.volatile = party.persisted.clone();
        party.timers.clear();
        let (state, now) = (party.volatile.clone(), party.now_ms);
        let mut core = self.node(role).core(state);
        let effects = core.resume(now);
        self.carry_out(role, effects, None, None, None);
    }
}

/// Deterministic "fresh" secrets, different per session: A's r1 from the proposal it starts,
/// B's r2 from the s1 of the M1 it answers. (Other inputs start no session and use none.)
pub(crate) fn entropy(role: Role, input: &Input) -> [u8; 32] {
    let seed = match input {
        Input::Start(proposal) => format!("{:032x}", fingerprint(proposal)),
        Input::Request { request, .. } => hex::encode(request.s1().0),
        _ => String::new(),
    };
    Digest::of(format!("valex/sim/entropy/{role}/{seed}").as_bytes()).0
}

/// Which parts of a node's state differ, for a report.
fn state_change(before: &NodeState, after: &NodeState) -> String {
    let parts = [
        ("vault", before.vault != after.vault),
        ("locks", before.locks != after.locks),
        ("receipts", before.receipts != after.receipts),
        ("sessions", before.sessions != after.sessions),
    ];
    let changed: Vec<&str> = parts.iter().filter(|(_, differs)| *differs).map(|(name, _)| *name).collect();
    format!("its {} changed", changed.join(", "))
}

fn error_session(error: &valex_node::exchange::ExchangeError) -> Option<SessionId> {
    use valex_node::exchange::ExchangeError as E;
    match error {
        E::WrongSender { session, .. }
        | E::InvalidSignature { session, .. }
        | E::HashMismatch { session, .. }
        | E::Decision { session, .. }
        | E::Unexpected { session, .. }
        | E::ArbiterRefused { session, .. } => Some(*session),
        E::UnknownSession(s) | E::SessionConflict(s) | E::SessionClosed(s) | E::Pending(s) => Some(*s),
        _ => None,
    }
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for role in [Role::A, Role::B] {
            let p = self.party(role);
            let phase = |s: &NodeState| {
                let phases: Vec<&str> = s.sessions.values().map(Session::phase_name).collect();
                if phases.is_empty() { "-".to_string() } else { phases.join("+") }
            };
            write!(f, "{role}: {} (disk {}) t={} vault=[", phase(&p.volatile), phase(&p.persisted), p.now_ms)?;
            for v in p.volatile.spendable() {
                write!(f, "{} ", v.kind())?;
            }
            write!(f, "] timers={:?}; ", p.timers.keys().map(|(_, k)| k).collect::<Vec<_>>())?;
        }
        let decisions: Vec<_> = self.t.values().map(|r| r.decision.outcome.name()).collect();
        write!(f, "T: {decisions:?}; in flight: [")?;
        for e in self.network.iter() {
            write!(f, "{e}, ")?;
        }
        write!(f, "]")
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.payload {
            Payload::Request(ExchangeRequest::Start(_)) => "M1".to_string(),
            Payload::Request(ExchangeRequest::Confirm(_)) => "M3".to_string(),
            Payload::Response(ExchangeResponse::Agree(_)) => "M2".to_string(),
            Payload::Response(ExchangeResponse::Reveal(_)) => "M4".to_string(),
            Payload::Response(ExchangeResponse::Refusal(r)) => format!("refusal {}", r.code.as_str_name()),
            Payload::ArbiterRequest(ArbiterRequest::Cancel(_)) => "CancelRequest".to_string(),
            Payload::ArbiterRequest(ArbiterRequest::Complete(_)) => "CompleteRequest".to_string(),
            Payload::ArbiterRequest(ArbiterRequest::Query { .. }) => "QueryDecision".to_string(),
            Payload::ArbiterResponse(ArbiterResponse::Decision(d)) => format!("Decision {}", d.outcome.name()),
            Payload::ArbiterResponse(ArbiterResponse::Refusal(r)) => format!("arbiter refusal {}", r.code.as_str_name()),
        };
        write!(f, "{}->{} {what}", self.from, self.to)
    }
}
