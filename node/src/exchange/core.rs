//! [`ExchangeCore`]: a node's exchanges as one pure state machine.
//!
//! It owns the in-memory copy of the node's [`NodeState`] and nothing else: no sockets, no clock,
//! no randomness. Each [`ExchangeCore::handle`] call either refuses the input (state untouched)
//! or returns [`Effects`] whose write batch has already been applied to the in-memory state; the
//! driver commits that batch before sending anything. After a crash the driver rebuilds the core
//! from the store with [`ExchangeCore::new`] and calls [`ExchangeCore::resume`].

use std::collections::BTreeMap;
use std::sync::Arc;

use valex_proto::PeerId;
use valex_proto::crypto::Keypair;
use valex_proto::message::{ArbiterResponse, ExchangeRequest, ExchangeResponse};
use valex_proto::value::Value;

use super::effects::{Ctx, Effects, Input, Outgoing, Timer, TimerKind};
use super::error::ExchangeError;
use super::policy::{Policy, StaticPolicy};
use super::state::{Acquired, NodeState, Session, SessionId, VaultEntry, WriteBatch, WriteOp};
use super::{initiator, responder};

/// Timeouts and retry intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long A keeps retrying M3 after the expiry before asking the arbiter.
    pub grace_ms: u64,
    /// Interval between retries of M1 and M3, and the first arbiter retry.
    pub retry_ms: u64,
    /// The longest interval between arbiter retries (they back off exponentially).
    pub arbiter_retry_max_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self { grace_ms: 2_000, retry_ms: 1_000, arbiter_retry_max_ms: 30_000 }
    }
}

/// How a core behaves.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// What the node accepts.
    pub policy: Arc<dyn Policy>,
    /// Timeouts and retries.
    pub timing: Timing,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self { policy: Arc::new(StaticPolicy::default()), timing: Timing::default() }
    }
}

/// What the session machines may use: the node's key and its settings.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub(crate) key: Keypair,
    pub(crate) policy: Arc<dyn Policy>,
    pub(crate) timing: Timing,
}

impl Env {
    pub(crate) fn me(&self) -> PeerId {
        self.key.peer_id()
    }
}

/// One session's transition, as the session machines return it.
#[derive(Debug)]
pub(crate) struct Step {
    /// The session's new record, or `None` when nothing changes.
    session: Option<Session>,
    /// Vault changes that go with it, in the same write.
    ops: Vec<WriteOp>,
    /// The response to the request being handled.
    reply: Option<ExchangeResponse>,
}

impl Step {
    pub(crate) fn new(session: Session) -> Self {
        Self { session: Some(session), ops: Vec::new(), reply: None }
    }

    pub(crate) fn unchanged() -> Self {
        Self { session: None, ops: Vec::new(), reply: None }
    }

    pub(crate) fn op(mut self, op: WriteOp) -> Self {
        self.ops.push(op);
        self
    }

    pub(crate) fn ops(mut self, ops: Vec<WriteOp>) -> Self {
        self.ops.extend(ops);
        self
    }

    pub(crate) fn reply(mut self, reply: ExchangeResponse) -> Self {
        self.reply = Some(reply);
        self
    }
}

/// A node's exchanges, as a pure state machine. See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct ExchangeCore {
    env: Env,
    state: NodeState,
    /// Arbiter retries so far, per session, for backoff. Volatile: lost on restart.
    arbiter_attempts: BTreeMap<SessionId, u32>,
}

impl ExchangeCore {
    /// A core over `state`, as loaded from the store.
    pub fn new(key: Keypair, config: CoreConfig, state: NodeState) -> Self {
        let env = Env { key, policy: config.policy, timing: config.timing };
        Self { env, state, arbiter_attempts: BTreeMap::new() }
    }

    /// This node's PeerId.
    pub fn me(&self) -> PeerId {
        self.env.me()
    }

    /// The state as of the last step (equal to the store's once its write is committed).
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<dyn Policy> {
        &self.env.policy
    }

    /// Puts a value issued by (or imported into) this node into its vault. Returns the write to
    /// commit, or `None` if the value is already there.
    pub fn issue(&mut self, value: Value) -> Option<WriteBatch> {
        if self.state.vault.contains_key(&value.id()) || self.state.sessions.values().any(|s| s.escrowed().contains(&value.id())) {
            return None;
        }
        let batch = WriteBatch::new(vec![WriteOp::PutValue(VaultEntry { value, acquired: Acquired::Issued })]);
        self.state.apply(&batch);
        Some(batch)
    }

    /// After a restart: what every open session sends again, and its timers.
    pub fn resume(&mut self, now_ms: u64) -> Effects {
        self.arbiter_attempts.clear();
        let mut effects = Effects::default();
        let open: Vec<Session> = self.state.open_sessions().cloned().collect();
        for session in &open {
            self.announce(session, now_ms, &mut effects);
        }
        effects
    }

    /// Handles one input at `ctx.now_ms`.
    pub fn handle(&mut self, ctx: Ctx, input: Input) -> Result<Effects, ExchangeError> {
        match input {
            Input::Start(cmd) => {
                let step = initiator::start(&self.env, &self.state, ctx, cmd)?;
                Ok(self.commit(ctx, step))
            }
            Input::Request { from, request: ExchangeRequest::Start(m1) } => {
                let step = responder::on_start(&self.env, &self.state, ctx, from, m1)?;
                Ok(self.commit(ctx, step))
            }
            Input::Request { from, request: ExchangeRequest::Confirm(m3) } => {
                let s = self.responder(&m3.s1)?;
                let step = responder::on_confirm(&self.env, s, ctx, from, m3)?;
                Ok(self.commit(ctx, step))
            }
            Input::Response { from, session, response } => {
                let s = self.initiator(&session)?;
                let step = match response {
                    ExchangeResponse::Agree(m2) => initiator::on_agree(&self.env, &self.state, s, ctx, from, m2)?,
                    ExchangeResponse::Reveal(m4) => initiator::on_reveal(s, from, m4.s1, m4.r2)?,
                    ExchangeResponse::Refusal(refusal) => initiator::on_refusal(s, from, refusal.code)?,
                };
                Ok(self.commit(ctx, step))
            }
            Input::Arbiter { from, session, response } => {
                let record = self.state.sessions.get(&session).ok_or(ExchangeError::UnknownSession(session))?;
                let arbiter = match record {
                    Session::Initiator(s) => s.arbiter,
                    Session::Responder(s) => s.terms.arbiter,
                };
                if from != arbiter {
                    return Err(ExchangeError::WrongSender { session, expected: arbiter, got: from });
                }
                let decision = match response {
                    ArbiterResponse::Decision(decision) => decision,
                    ArbiterResponse::Refusal(refusal) => return Err(ExchangeError::ArbiterRefused { session, refusal }),
                };
                let step = match record {
                    Session::Initiator(s) => initiator::on_decision(s, decision)?,
                    Session::Responder(s) => responder::on_decision(s, decision)?,
                };
                Ok(self.commit(ctx, step))
            }
            Input::Timer { session, kind } => {
                let record = self.state.sessions.get(&session).ok_or(ExchangeError::UnknownSession(session))?.clone();
                Ok(self.on_timer(ctx, record, kind))
            }
        }
    }

    fn on_timer(&mut self, ctx: Ctx, session: Session, kind: TimerKind) -> Effects {
        let id = session.id();
        match kind {
            TimerKind::Retry => {
                let mut effects = Effects::for_session(id);
                if let Some(outgoing) = self.outgoing(&session) {
                    if matches!(outgoing, Outgoing::Arbiter { .. }) {
                        *self.arbiter_attempts.entry(id).or_insert(0) += 1;
                    }
                    effects.send.push(outgoing);
                    effects.timers.push(Timer { session: id, kind: TimerKind::Retry, at_ms: ctx.now_ms + self.retry_delay(&session) });
                }
                effects
            }
            TimerKind::Deadline => match self.deadline(&session) {
                Some(deadline) if ctx.now_ms >= deadline => {
                    let step = match &session {
                        Session::Initiator(s) => initiator::on_deadline(s),
                        Session::Responder(s) => responder::on_deadline(&self.env, s),
                    };
                    self.commit(ctx, step)
                }
                Some(deadline) => {
                    let mut effects = Effects::for_session(id);
                    effects.timers.push(Timer { session: id, kind: TimerKind::Deadline, at_ms: deadline });
                    effects
                }
                None => Effects::for_session(id),
            },
        }
    }

    /// Turns a step into effects: one write (applied to the in-memory state now), then the
    /// reply, and for a new phase its first request and timers.
    fn commit(&mut self, ctx: Ctx, step: Step) -> Effects {
        let Some(session) = step.session else {
            return Effects { reply: step.reply, ..Effects::default() };
        };
        let id = session.id();
        let old_phase = self.state.sessions.get(&id).map(Session::phase_name);
        let new_phase = session.phase_name();
        let mut effects = Effects::for_session(id);
        let mut ops = step.ops;
        ops.push(WriteOp::PutSession(Box::new(session.clone())));
        let batch = WriteBatch::new(ops);
        self.state.apply(&batch);
        effects.persist = Some(batch);
        effects.reply = step.reply;
        if old_phase != Some(new_phase) {
            tracing::debug!(session = %id.short(), from = old_phase.unwrap_or("-"), to = new_phase, "session phase");
            self.arbiter_attempts.remove(&id);
            self.announce(&session, ctx.now_ms, &mut effects);
        }
        effects
    }

    /// The requests and timers a session's current phase starts with.
    fn announce(&self, session: &Session, now_ms: u64, effects: &mut Effects) {
        let id = session.id();
        if let Some(outgoing) = self.outgoing(session) {
            effects.send.push(outgoing);
            effects.timers.push(Timer { session: id, kind: TimerKind::Retry, at_ms: now_ms + self.retry_delay(session) });
        }
        if let Some(deadline) = self.deadline(session) {
            effects.timers.push(Timer { session: id, kind: TimerKind::Deadline, at_ms: deadline });
        }
    }

    fn outgoing(&self, session: &Session) -> Option<Outgoing> {
        match session {
            Session::Initiator(s) => s.outgoing(),
            Session::Responder(s) => s.outgoing(),
        }
    }

    fn deadline(&self, session: &Session) -> Option<u64> {
        match session {
            Session::Initiator(s) => s.deadline(self.env.timing.grace_ms),
            Session::Responder(s) => s.deadline(),
        }
    }

    fn retry_delay(&self, session: &Session) -> u64 {
        let timing = self.env.timing;
        match self.outgoing(session) {
            Some(Outgoing::Arbiter { .. }) => {
                let attempts = self.arbiter_attempts.get(&session.id()).copied().unwrap_or(0).min(16);
                timing.retry_ms.saturating_mul(1 << attempts).min(timing.arbiter_retry_max_ms)
            }
            _ => timing.retry_ms,
        }
    }

    fn initiator(&self, id: &SessionId) -> Result<&initiator::InitiatorSession, ExchangeError> {
        match self.state.sessions.get(id) {
            Some(Session::Initiator(s)) => Ok(s),
            _ => Err(ExchangeError::UnknownSession(*id)),
        }
    }

    fn responder(&self, id: &SessionId) -> Result<&responder::ResponderSession, ExchangeError> {
        match self.state.sessions.get(id) {
            Some(Session::Responder(s)) => Ok(s),
            _ => Err(ExchangeError::UnknownSession(*id)),
        }
    }
}
