//! One exchange among A, B and T, simulated through their real sans-IO cores.
//!
//! A [`World`] holds each party's persisted state (what survives a crash) and volatile state
//! (the core's in-memory copy and its armed timers), each node's own clock, and the messages in
//! flight. Every step is an explicit [`Action`]; which ones are possible in a state is
//! [`World::enabled`]. The scenario tests script actions; the model checker explores them all.
//!
//! ```
//! use valex_testnet::sim::{Action, World, WorldConfig};
//! let mut world = World::new(WorldConfig::default());
//! world.apply(&Action::Start).unwrap();
//! assert_eq!(world.network().len(), 1); // M1 in flight
//! ```

mod mutants;
mod network;
mod party;
mod script;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use valex_arbiter::{Arbiter, DecisionRecord};
use valex_node::exchange::{
    CoreConfig, Ctx, Effects, ExchangeError, Input, Outgoing, Proposal, Session, SessionId, StaticPolicy, TimerKind, Timing, WriteBatch,
};
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterRequest, ArbiterResponse, ExchangeRequest, ExchangeResponse, Want};
use valex_proto::value::Value;
use valex_proto::{Digest, PeerId};

pub use mutants::PlantedBug;
pub use network::{Envelope, Network, Payload};
pub use party::PartyState;

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
    /// A's owner starts the exchange.
    Start,
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
            Self::Start => write!(f, "A starts the exchange"),
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
        // Both are within the size limits, so issuing cannot fail.
        let (v1, v2) = (v1.unwrap_or_else(|| unreachable!()), v2.unwrap_or_else(|| unreachable!()));
        let want = Want::KindAmount { kind: "voucher".into(), amount: 500, issuer: None };
        Self { a, b, t, v1, v2, want }
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
    started: bool,
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

type StepResult = Result<NodeStep, ExchangeError>;
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
        let mut b = PartyState::default();
        b.seed_value(cast.v2.clone());
        Self {
            cast: Arc::new(cast),
            config: Arc::new(config),
            a,
            b,
            t: BTreeMap::new(),
            network: Network::default(),
            started: false,
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

    /// Whether A has started.
    pub fn started(&self) -> bool {
        self.started
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

    /// The exchange's session, as a node holds it.
    pub fn session(&self, role: Role) -> Option<&Session> {
        self.party(role).volatile.sessions.values().next()
    }

    /// Places a message in flight, as if a party had sent it (for hostile-input scenarios).
    pub fn inject(&mut self, envelope: Envelope) {
        self.network.insert(envelope);
    }

    /// Every action possible now. With `faults`, also drops, duplicates and crashes.
    pub fn enabled(&self, faults: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.started {
            actions.push(Action::Start);
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
        }
        if faults {
            actions.extend([Role::A, Role::B, Role::T].map(|role| Action::Restart { role }));
        }
        actions
    }

    /// Applies one action.
    pub fn apply(&mut self, action: &Action) -> Result<(), SimError> {
        match action {
            Action::Start => {
                if self.started {
                    return Err(SimError::NotEnabled("already started".into()));
                }
                self.started = true;
                let cmd = Proposal {
                    responder: self.cast.b.peer_id(),
                    give: self.cast.v1.id(),
                    want: self.cast.want.clone(),
                    arbiter: self.cast.t.peer_id(),
                    expires_at_ms: self.config.expires_at_ms,
                };
                self.step(Role::A, Input::Start(cmd), None, false);
            }
            Action::Deliver { index, keep } => {
                let envelope = self.take(*index, *keep)?;
                self.deliver(envelope, false);
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
                self.step(*role, Input::Timer { session: *session, kind: *kind }, None, false);
            }
            Action::Restart { role } => self.restart(*role),
            Action::CrashBetweenWrites { index } => {
                let envelope = self.take(*index, true)?;
                let to = envelope.to;
                self.split_write = false;
                self.deliver(envelope, true);
                if !self.split_write {
                    return Err(SimError::NotEnabled("the step writes only once: nothing to crash between".into()));
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

    fn deliver(&mut self, envelope: Envelope, crash_between_writes: bool) {
        let from = self.cast.peer(envelope.from);
        match envelope.payload {
            Payload::Request(request) => {
                let input = Input::Request { from, request };
                self.step(envelope.to, input, Some(envelope.from), crash_between_writes);
            }
            Payload::Response(response) => {
                let input = Input::Response { from, session: envelope.session, response };
                self.step(envelope.to, input, None, crash_between_writes);
            }
            Payload::ArbiterRequest(request) => self.arbitrate(envelope.from, envelope.session, request),
            Payload::ArbiterResponse(response) => {
                let input = Input::Arbiter { from, session: envelope.session, response };
                self.step(envelope.to, input, None, crash_between_writes);
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

    /// Runs one input through `role`'s core and carries out its effects, write-ahead.
    fn step(&mut self, role: Role, input: Input, reply_to: Option<Role>, crash_between_writes: bool) {
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
                let result = self.node(role).handle(&self.party(role).volatile, ctx, &input);
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
                    return;
                }
                self.party_mut(role).volatile = state;
                self.carry_out(role, effects, second_write.as_ref(), reply_to, request_session);
            }
            Err(error) => {
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
        let party = self.party_mut(role);
        for batch in effects.persist.iter().chain(second_write) {
            party.persisted.apply(batch);
        }
        for timer in &effects.timers {
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

    /// Runs the world with faults stopped: every message in flight is delivered, and when none
    /// is, a retry timer fires — or, once retries no longer change anything, the earliest
    /// deadline, moving that node's clock. Stops when every session has ended and nothing is in
    /// flight, or fails after `max_steps`. Returns how many steps it took.
    pub fn heal(&mut self, max_steps: usize) -> Result<usize, String> {
        self.heal_with(max_steps, &mut |_| false, &mut Vec::new())
    }

    /// [`heal`](Self::heal), calling `known` on every state it passes through; when `known`
    /// returns true (e.g. the state is already known to heal) it stops there with success. The
    /// actions taken are appended to `taken`.
    pub fn heal_with(&mut self, max_steps: usize, known: &mut dyn FnMut(&World) -> bool, taken: &mut Vec<Action>) -> Result<usize, String> {
        // Quiet states (nothing in flight) seen so far, and how many of their retries were tried.
        let mut quiet: HashMap<u128, usize> = HashMap::new();
        for step in 0..max_steps {
            if known(self) {
                return Ok(step);
            }
            if !self.network.is_empty() {
                let deliver = Action::Deliver { index: 0, keep: false };
                self.apply(&deliver).map_err(|e| e.to_string())?;
                taken.push(deliver);
                continue;
            }
            let open = |p: &PartyState| p.volatile.open_sessions().next().is_some();
            if !open(&self.a) && !open(&self.b) {
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
            let fire = Action::Fire { role, session, kind };
            self.apply(&fire).map_err(|e| e.to_string())?;
            taken.push(fire);
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

/// Deterministic "fresh" secrets: r1 for A, r2 for B (one exchange per world).
fn entropy(role: Role, _input: &Input) -> [u8; 32] {
    Digest::of(format!("valex/sim/entropy/{role}").as_bytes()).0
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
            let phase = |s: &valex_node::exchange::NodeState| s.sessions.values().next().map(Session::phase_name).unwrap_or("-");
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
