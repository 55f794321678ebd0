//! Planted bugs: known protocol bugs that the simulator builds around an honest node, so the
//! model checker can be shown to catch them.
//!
//! Nothing here reaches into valex-node: every mutant runs the real, honest [`ExchangeCore`] and
//! changes only what goes in (the state or the clock it is shown) or what comes out (the write it
//! commits, and how). Production code carries no trace of them.
//!
//! - [`PlantedBug::ResponderAcceptsConfirmWhilePending`] shows the honest core B's PENDING session
//!   as VALID, before expiry, when an M3 arrives: a valid M3 then takes B to DONE.
//! - [`PlantedBug::ResponderSplitsDoneWrite`] commits the batch of a step that takes B to DONE
//!   without its session record, then the record as a second write; a crash may fall between the
//!   two ([`Action::CrashBetweenWrites`](super::Action::CrashBetweenWrites)).
//! - [`PlantedBug::InitiatorRestoresV1WithoutDecision`] replaces A's honest step at its VALID
//!   deadline (RESOLVING, ask the arbiter) by ABORTED with V1 back in the vault.
//! - [`PlantedBug::ResponderIgnoresDecision`] drops the honest step of a PENDING B handed the
//!   arbiter's decision: B stays PENDING and keeps asking T, forever.
//! - [`PlantedBug::ResponderKeepsRefusedOffer`] lets the core B refuses an M1 with put that M1's
//!   V1 into its vault anyway (through [`ExchangeCore::issue`]): a refusal that changes the core.

use std::fmt;
use std::str::FromStr;

use valex_node::exchange::initiator::{InitiatorPhase, InitiatorSession};
use valex_node::exchange::responder::{ResponderPhase, ResponderSession};
use valex_node::exchange::{
    Acquired, CoreConfig, Ctx, Effects, ExchangeCore, ExchangeError, Input, NodeState, Session, TimerKind, VaultEntry, WriteBatch, WriteOp,
};
use valex_proto::crypto::Keypair;
use valex_proto::message::ExchangeRequest;
use valex_proto::wire::ErrorCode;

/// A known protocol bug, planted in the simulated nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// B accepts a valid M3 while PENDING (protocol.md §5 says it MUST refuse).
    ResponderAcceptsConfirmWhilePending,
    /// B stores V1 in one write and ends its session in a second one.
    ResponderSplitsDoneWrite,
    /// A, at its VALID deadline, restores V1 to its vault instead of asking the arbiter.
    InitiatorRestoresV1WithoutDecision,
    /// B, PENDING, ignores the arbiter's decision and keeps asking (a retry loop without end).
    ResponderIgnoresDecision,
    /// B's core, refusing an M1, keeps the V1 it offered in its vault (its state changes on a refusal).
    ResponderKeepsRefusedOffer,
}

impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [Self; 5] = [
        Self::ResponderAcceptsConfirmWhilePending,
        Self::ResponderSplitsDoneWrite,
        Self::InitiatorRestoresV1WithoutDecision,
        Self::ResponderIgnoresDecision,
        Self::ResponderKeepsRefusedOffer,
    ];

    /// Its kebab-case name, as the `model-check --plant` option takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ResponderAcceptsConfirmWhilePending => "responder-accepts-confirm-while-pending",
            Self::ResponderSplitsDoneWrite => "responder-splits-done-write",
            Self::InitiatorRestoresV1WithoutDecision => "initiator-restores-v1-without-decision",
            Self::ResponderIgnoresDecision => "responder-ignores-decision",
            Self::ResponderKeepsRefusedOffer => "responder-keeps-refused-offer",
        }
    }

    /// Whether the mutant commits some steps in two writes (so a crash can fall between them).
    pub fn writes_twice(self) -> bool {
        self == Self::ResponderSplitsDoneWrite
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PlantedBug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|bug| bug.name() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|bug| bug.name()).collect();
            format!("unknown planted bug {s:?}; one of: {}", names.join(", "))
        })
    }
}

/// One step of a simulated node, honest or mutant.
#[derive(Debug, Clone)]
pub(crate) struct NodeStep {
    /// The node's in-memory state after the step.
    pub(crate) state: NodeState,
    /// What the step asks for; its `persist` is the first (or only) write.
    pub(crate) effects: Effects,
    /// A second write, committed after `effects.persist` (only a split write has one).
    pub(crate) second_write: Option<WriteBatch>,
    /// Whether the planted bug changed this step.
    pub(crate) mutated: bool,
}

/// A simulated node: an honest core over the state it is given, and the bug planted in it.
pub(crate) struct Node {
    pub(crate) key: Keypair,
    pub(crate) config: CoreConfig,
    pub(crate) bug: Option<PlantedBug>,
}

impl Node {
    /// The honest core over `state`.
    pub(crate) fn core(&self, state: NodeState) -> ExchangeCore {
        ExchangeCore::new(self.key.clone(), self.config.clone(), state)
    }

    /// Handles one input, as the node (with its bug) does: `core` is the node's core, over
    /// `state`, and the runtime would keep it for the next step; a refusal leaves it as it is.
    #[allow(clippy::result_large_err)] // the core's own error type, as its `handle` returns it
    pub(crate) fn handle(&self, state: &NodeState, core: &mut ExchangeCore, ctx: Ctx, input: &Input) -> Result<NodeStep, ExchangeError> {
        if self.bug == Some(PlantedBug::ResponderAcceptsConfirmWhilePending)
            && let Some(step) = self.accept_confirm_while_pending(state, ctx, input)
        {
            *core = self.core(step.state.clone());
            return Ok(step);
        }
        let effects = match core.handle(ctx, input.clone()) {
            Ok(effects) => effects,
            Err(error) => {
                if self.bug == Some(PlantedBug::ResponderKeepsRefusedOffer)
                    && let Input::Request { request: ExchangeRequest::Start(m1), .. } = input
                {
                    let _ = core.issue(m1.v1.clone());
                }
                return Err(error);
            }
        };
        let after = core.state().clone();
        let step = match self.bug {
            Some(PlantedBug::ResponderSplitsDoneWrite) => split_done_write(state, after, effects),
            Some(PlantedBug::InitiatorRestoresV1WithoutDecision) => restore_v1_without_decision(state, input, after, effects),
            Some(PlantedBug::ResponderIgnoresDecision) => ignore_decision(state, input, after, effects),
            _ => NodeStep { state: after, effects, second_write: None, mutated: false },
        };
        Ok(step)
    }

    #[allow(clippy::result_large_err)] // the core's own error type, as its `handle` returns it
    fn honest(&self, state: &NodeState, ctx: Ctx, input: &Input) -> Result<(NodeState, Effects), ExchangeError> {
        let mut core = self.core(state.clone());
        let effects = core.handle(ctx, input.clone())?;
        Ok((core.state().clone(), effects))
    }

    /// An M3 for a PENDING responder session: the honest core is shown the session VALID, at a
    /// time before expiry. A valid M3 takes that view to DONE, and that is the buggy B's step;
    /// for any other M3 (wrong sender, bad Se or s2) the buggy B behaves as the honest one.
    fn accept_confirm_while_pending(&self, state: &NodeState, ctx: Ctx, input: &Input) -> Option<NodeStep> {
        let Input::Request { request: ExchangeRequest::Confirm(m3), .. } = input else { return None };
        let Some(Session::Responder(s)) = state.sessions.get(&m3.s1) else { return None };
        if !matches!(s.phase, ResponderPhase::Pending { .. }) {
            return None;
        }
        let mut view = state.clone();
        view.sessions.insert(s.s1, Session::Responder(ResponderSession { phase: ResponderPhase::Valid, ..s.clone() }));
        let before_expiry = Ctx { now_ms: ctx.now_ms.min(s.terms.expires_at_ms.saturating_sub(1)), ..ctx };
        let (after, effects) = self.honest(&view, before_expiry, input).ok()?;
        let done = matches!(after.sessions.get(&s.s1), Some(Session::Responder(r)) if matches!(r.phase, ResponderPhase::Done { .. }));
        done.then_some(NodeStep { state: after, effects, second_write: None, mutated: true })
    }
}

/// A PENDING responder handed a decision it would act on: nothing happens (its retry timer stays
/// armed, so it asks T again, and again).
fn ignore_decision(before: &NodeState, input: &Input, after: NodeState, effects: Effects) -> NodeStep {
    let honest = |after, effects| NodeStep { state: after, effects, second_write: None, mutated: false };
    let Input::Arbiter { session, .. } = input else { return honest(after, effects) };
    let Some(Session::Responder(s)) = before.sessions.get(session) else { return honest(after, effects) };
    if !matches!(s.phase, ResponderPhase::Pending { .. }) || after.sessions.get(session) == before.sessions.get(session) {
        return honest(after, effects);
    }
    NodeStep {
        state: before.clone(),
        effects: Effects { session: Some(*session), ..Effects::default() },
        second_write: None,
        mutated: true,
    }
}

/// A step that takes a responder session to DONE: its batch without the session record first,
/// then the record alone.
fn split_done_write(before: &NodeState, after: NodeState, mut effects: Effects) -> NodeStep {
    let ends_done = |op: &WriteOp| match op {
        WriteOp::PutSession(session) => match &**session {
            Session::Responder(s) => {
                let was_done =
                    matches!(before.sessions.get(&s.s1), Some(Session::Responder(old)) if matches!(old.phase, ResponderPhase::Done { .. }));
                matches!(s.phase, ResponderPhase::Done { .. }) && !was_done
            }
            Session::Initiator(_) => false,
        },
        _ => false,
    };
    let Some(batch) = effects.persist.take_if(|batch| batch.ops.iter().any(ends_done)) else {
        return NodeStep { state: after, effects, second_write: None, mutated: false };
    };
    let (record, rest): (Vec<WriteOp>, Vec<WriteOp>) = batch.ops.into_iter().partition(|op| matches!(op, WriteOp::PutSession(_)));
    effects.persist = Some(WriteBatch::new(rest));
    NodeStep { state: after, effects, second_write: Some(WriteBatch::new(record)), mutated: true }
}

/// A's deadline while VALID, where the honest core goes RESOLVING: ABORTED (EXPIRED) with V1
/// back in the vault, and nothing sent.
fn restore_v1_without_decision(before: &NodeState, input: &Input, after: NodeState, effects: Effects) -> NodeStep {
    let honest = |after, effects| NodeStep { state: after, effects, second_write: None, mutated: false };
    let Input::Timer { session, kind: TimerKind::Deadline } = input else { return honest(after, effects) };
    let Some(Session::Initiator(s)) = before.sessions.get(session) else { return honest(after, effects) };
    let resolving = matches!(after.sessions.get(session), Some(Session::Initiator(r)) if matches!(r.phase, InitiatorPhase::Resolving(_)));
    if !matches!(s.phase, InitiatorPhase::Valid(_)) || !resolving {
        return honest(after, effects);
    }
    let aborted = InitiatorSession { phase: InitiatorPhase::Aborted { reason: ErrorCode::Expired }, ..s.clone() };
    let batch = WriteBatch::new(vec![
        WriteOp::PutValue(VaultEntry { value: s.v1.clone(), acquired: Acquired::Returned(s.s1) }),
        WriteOp::PutSession(Box::new(Session::Initiator(aborted))),
    ]);
    let mut state = before.clone();
    state.apply(&batch);
    let effects = Effects { session: Some(s.s1), persist: Some(batch), ..Effects::default() };
    NodeStep { state, effects, second_write: None, mutated: true }
}
