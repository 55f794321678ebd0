//! The initiator A (第1の利用者装置): offers V1, wants V2.
//!
//! ```text
//! STARTED --valid M2--> VALID --valid M4--> DONE (V2 into the vault)
//!    |                    |
//!    | M2 invalid,        | no M4 by expiry + grace,
//!    | refused, expired   | or B refuses M3
//!    v                    v
//! ABORTED (V1 unlocked)  RESOLVING --COMPLETED or late valid r2--> DONE
//!                          |
//!                          +--CANCELLED--> CANCELLED (V1 back into the vault)
//! ```

use valex_proto::message::{Agree, ArbiterRequest, CompleteRequest, Confirm, Decision, ExchangeRequest, Outcome, Start, Terms, Want};
use valex_proto::value::Value;
use valex_proto::wire::ErrorCode;
use valex_proto::{Digest, PeerId, Signature, canonical, crypto};

use super::core::{Env, Step};
use super::effects::{Ctx, Outgoing, Proposal};
use super::error::ExchangeError;
use super::state::{Acquired, Evidence, NodeState, Receipt, Session, SessionId, VaultEntry, WriteOp};

/// A's session record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InitiatorSession {
    /// Session id, `H(valex/s1 ‖ r1)`.
    pub s1: SessionId,
    /// A's secret r1.
    pub r1: [u8; 32],
    /// The value offered.
    pub v1: Value,
    /// B.
    pub responder: PeerId,
    /// T.
    pub arbiter: PeerId,
    /// What A wants.
    pub want: Want,
    /// Expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// Where it stands.
    pub phase: InitiatorPhase,
}

/// What both parties agreed, as A holds it from M2 on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Agreement {
    /// The terms.
    pub terms: Terms,
    /// Their hash.
    pub h: Digest,
    /// B's s2.
    pub s2: Digest,
    /// B's agreement signature.
    pub sa: Signature,
    /// A's confirmation signature.
    pub se: Signature,
    /// The value B gives, in escrow until the session ends.
    pub v2: Value,
}

/// A's phases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum InitiatorPhase {
    /// M1 sent; V1 locked in the vault.
    Started,
    /// M3 sent; V1 and V2 in escrow.
    Valid(Agreement),
    /// Asking the arbiter to complete.
    Resolving(Agreement),
    /// V2 in the vault.
    Done {
        /// The agreement.
        agreement: Agreement,
        /// r2 or the arbiter's decision.
        evidence: Evidence,
    },
    /// The arbiter cancelled; V1 back in the vault.
    Cancelled {
        /// The agreement.
        agreement: Agreement,
        /// The decision.
        decision: Decision,
    },
    /// Ended before A committed; V1 unlocked.
    Aborted {
        /// Why.
        #[serde(with = "crate::store::record::error_code")]
        reason: ErrorCode,
    },
}

impl InitiatorPhase {
    /// Upper-case name, as in protocol.md.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Valid(_) => "VALID",
            Self::Resolving(_) => "RESOLVING",
            Self::Done { .. } => "DONE",
            Self::Cancelled { .. } => "CANCELLED",
            Self::Aborted { .. } => "ABORTED",
        }
    }
}

impl InitiatorSession {
    /// The agreement, once M2 was accepted.
    pub fn agreement(&self) -> Option<&Agreement> {
        match &self.phase {
            InitiatorPhase::Valid(a) | InitiatorPhase::Resolving(a) => Some(a),
            InitiatorPhase::Done { agreement, .. } | InitiatorPhase::Cancelled { agreement, .. } => Some(agreement),
            InitiatorPhase::Started | InitiatorPhase::Aborted { .. } => None,
        }
    }

    /// The request this phase keeps sending until it is answered.
    pub fn outgoing(&self) -> Option<Outgoing> {
        match &self.phase {
            InitiatorPhase::Started => Some(Outgoing::Exchange {
                to: self.responder,
                session: self.s1,
                request: ExchangeRequest::Start(Start {
                    s1: self.s1,
                    v1: self.v1.clone(),
                    want: self.want.clone(),
                    arbiter: self.arbiter,
                    expires_at_ms: self.expires_at_ms,
                }),
            }),
            InitiatorPhase::Valid(a) => Some(Outgoing::Exchange {
                to: self.responder,
                session: self.s1,
                request: ExchangeRequest::Confirm(Confirm { s1: self.s1, s2: a.s2, se: a.se }),
            }),
            InitiatorPhase::Resolving(a) => Some(Outgoing::Arbiter {
                to: self.arbiter,
                session: self.s1,
                request: ArbiterRequest::Complete(CompleteRequest { terms: a.terms.clone(), s2: a.s2, sa: a.sa, se: a.se }),
            }),
            _ => None,
        }
    }

    /// When this phase gives up waiting: expiry in STARTED, expiry + grace in VALID.
    pub fn deadline(&self, grace_ms: u64) -> Option<u64> {
        match self.phase {
            InitiatorPhase::Started => Some(self.expires_at_ms),
            InitiatorPhase::Valid(_) => Some(self.expires_at_ms.saturating_add(grace_ms)),
            _ => None,
        }
    }

    fn with_phase(&self, phase: InitiatorPhase) -> Session {
        Session::Initiator(Self { phase, ..self.clone() })
    }

    fn aborted(&self, reason: ErrorCode) -> Step {
        Step::new(self.with_phase(InitiatorPhase::Aborted { reason })).op(WriteOp::Unlock(self.v1.id()))
    }

    fn done(&self, agreement: &Agreement, evidence: Evidence) -> Step {
        let receipt = Receipt {
            terms: agreement.terms.clone(),
            s2: agreement.s2,
            sa: agreement.sa,
            se: Some(agreement.se),
            evidence: evidence.clone(),
        };
        Step::new(self.with_phase(InitiatorPhase::Done { agreement: agreement.clone(), evidence }))
            .op(WriteOp::PutValue(VaultEntry { value: agreement.v2.clone(), acquired: Acquired::Exchange(self.s1) }))
            .op(WriteOp::PutReceipt { value: agreement.v2.id(), receipt: Box::new(receipt) })
    }

    fn resolving(&self, agreement: &Agreement) -> Step {
        Step::new(self.with_phase(InitiatorPhase::Resolving(agreement.clone())))
    }
}

/// A local command starts a session: lock V1, persist STARTED, send M1.
pub(crate) fn start(env: &Env, state: &NodeState, ctx: Ctx, cmd: Proposal) -> Result<Step, ExchangeError> {
    if cmd.responder == env.me() {
        return Err(ExchangeError::SelfExchange);
    }
    if !state.is_spendable(&cmd.give) {
        return Err(ExchangeError::ValueBusy(cmd.give));
    }
    if !env.policy.accepts_arbiter(&cmd.arbiter) {
        return Err(ExchangeError::ArbiterNotAccepted(cmd.arbiter));
    }
    if !env.policy.accepts_expiry(ctx.now_ms, cmd.expires_at_ms) {
        return Err(ExchangeError::ExpiryOutOfPolicy { expires_at_ms: cmd.expires_at_ms, now_ms: ctx.now_ms });
    }
    let r1 = ctx.entropy;
    let s1 = Digest::of(&canonical::s1_preimage(&r1));
    if state.sessions.contains_key(&s1) {
        return Err(ExchangeError::SessionConflict(s1));
    }
    let v1 = state.vault.get(&cmd.give).map(|e| e.value.clone()).ok_or(ExchangeError::ValueBusy(cmd.give))?;
    let session = InitiatorSession {
        s1,
        r1,
        v1,
        responder: cmd.responder,
        arbiter: cmd.arbiter,
        want: cmd.want,
        expires_at_ms: cmd.expires_at_ms,
        phase: InitiatorPhase::Started,
    };
    Ok(Step::new(Session::Initiator(session)).op(WriteOp::Lock { value: cmd.give, session: s1 }))
}

/// M2 arrived. A valid one commits A (VALID, V1 into escrow, M3 out); an invalid or late one
/// aborts (A has not committed, so unlocking V1 is safe).
pub(crate) fn on_agree(
    env: &Env,
    state: &NodeState,
    s: &InitiatorSession,
    ctx: Ctx,
    from: PeerId,
    m2: Agree,
) -> Result<Step, ExchangeError> {
    check_sender(s, from)?;
    if m2.s1 != s.s1 {
        return Err(ExchangeError::HashMismatch { session: s.s1, what: "s1 of M2" });
    }
    match &s.phase {
        InitiatorPhase::Started => {}
        // A duplicate M2 after we moved on: nothing to do.
        _ => return Ok(Step::unchanged()),
    }
    if ctx.now_ms >= s.expires_at_ms {
        return Ok(s.aborted(ErrorCode::Expired));
    }
    if let Err(e) = env.policy.check_value(&m2.v2) {
        return Ok(s.aborted(ExchangeError::from(e).code()));
    }
    if !s.want.matches(&m2.v2) || m2.v2.id() == s.v1.id() {
        return Ok(s.aborted(ErrorCode::WantMismatch));
    }
    // V2 must not be ours already, nor escrowed in another open session (protocol.md §6.5): a
    // B that cancelled one exchange may offer the same V2 in the next while A still waits on the first.
    let v2_id = m2.v2.id();
    if state.vault.contains_key(&v2_id) || state.open_sessions().any(|other| other.id() != s.s1 && other.escrowed().contains(&v2_id)) {
        return Ok(s.aborted(ErrorCode::ValueBusy));
    }
    let terms = Terms {
        s1: s.s1,
        initiator: env.me(),
        responder: s.responder,
        arbiter: s.arbiter,
        v1_id: s.v1.id(),
        v2_id: m2.v2.id(),
        expires_at_ms: s.expires_at_ms,
    };
    let h = terms.h();
    if crypto::verify(&s.responder, &canonical::agree_bytes(&h, &m2.s2), &m2.sa).is_err() {
        return Ok(s.aborted(ErrorCode::InvalidSignature));
    }
    let se = env.key.sign(&canonical::confirm_bytes(&h, &m2.s2));
    let agreement = Agreement { terms, h, s2: m2.s2, sa: m2.sa, se, v2: m2.v2 };
    Ok(Step::new(s.with_phase(InitiatorPhase::Valid(agreement))).op(WriteOp::Unlock(s.v1.id())).op(WriteOp::RemoveValue(s.v1.id())))
}

/// B refused M1 or M3.
pub(crate) fn on_refusal(s: &InitiatorSession, from: PeerId, code: ErrorCode) -> Result<Step, ExchangeError> {
    check_sender(s, from)?;
    Ok(match &s.phase {
        InitiatorPhase::Started => s.aborted(code),
        // B will not reveal r2 (it is PENDING, or refused Se): only the arbiter can settle now.
        InitiatorPhase::Valid(a) => s.resolving(a),
        _ => Step::unchanged(),
    })
}

/// M4 arrived: check `H(valex/s2 ‖ r2) = s2`, then take V2.
pub(crate) fn on_reveal(s: &InitiatorSession, from: PeerId, s1: Digest, r2: [u8; 32]) -> Result<Step, ExchangeError> {
    check_sender(s, from)?;
    if s1 != s.s1 {
        return Err(ExchangeError::HashMismatch { session: s.s1, what: "s1 of M4" });
    }
    match &s.phase {
        InitiatorPhase::Valid(a) | InitiatorPhase::Resolving(a) => {
            if Digest::of(&canonical::s2_preimage(&r2)) != a.s2 {
                return Err(ExchangeError::HashMismatch { session: s.s1, what: "H(r2) and s2" });
            }
            Ok(s.done(a, Evidence::Secret(r2)))
        }
        InitiatorPhase::Done { .. } | InitiatorPhase::Cancelled { .. } | InitiatorPhase::Aborted { .. } => Ok(Step::unchanged()),
        InitiatorPhase::Started => Err(ExchangeError::Unexpected { session: s.s1, what: "M4", phase: s.phase.name() }),
    }
}

/// The arbiter's decision arrived.
pub(crate) fn on_decision(s: &InitiatorSession, decision: Decision) -> Result<Step, ExchangeError> {
    let Some(a) = s.agreement() else {
        return Err(ExchangeError::Unexpected { session: s.s1, what: "decision", phase: s.phase.name() });
    };
    decision.verify(&s.arbiter, &a.s2, &a.h).map_err(|source| ExchangeError::Decision { session: s.s1, source })?;
    Ok(match (&s.phase, decision.outcome) {
        (InitiatorPhase::Valid(a) | InitiatorPhase::Resolving(a), Outcome::Completed) => s.done(a, Evidence::Decision(decision)),
        (InitiatorPhase::Valid(a) | InitiatorPhase::Resolving(a), Outcome::Cancelled) => {
            Step::new(s.with_phase(InitiatorPhase::Cancelled { agreement: a.clone(), decision }))
                .op(WriteOp::PutValue(VaultEntry { value: s.v1.clone(), acquired: Acquired::Returned(s.s1) }))
        }
        _ => Step::unchanged(),
    })
}

/// The phase's deadline passed.
pub(crate) fn on_deadline(s: &InitiatorSession) -> Step {
    match &s.phase {
        InitiatorPhase::Started => s.aborted(ErrorCode::Expired),
        InitiatorPhase::Valid(a) => s.resolving(a),
        _ => Step::unchanged(),
    }
}

fn check_sender(s: &InitiatorSession, from: PeerId) -> Result<(), ExchangeError> {
    if from != s.responder {
        return Err(ExchangeError::WrongSender { session: s.s1, expected: s.responder, got: from });
    }
    Ok(())
}
