//! The responder B (第2の利用者装置): gives V2 for V1.
//!
//! ```text
//! (M1) --valid--> VALID --valid M3 before expiry--> DONE (V1 into the vault, r2 revealed)
//!                   |
//!                   | M3 with an invalid Se, or no valid M3 by expiry
//!                   v
//!                 PENDING (保留): refuses every M3; CancelRequest to the arbiter
//!                   |--CANCELLED--> CANCELLED (V2 back into the vault)
//!                   +--COMPLETED--> DONE (V1 into the vault)
//! ```

use valex_proto::message::{Agree, ArbiterRequest, CancelRequest, Confirm, Decision, ExchangeResponse, Outcome, Reveal, Start, Terms};
use valex_proto::value::Value;
use valex_proto::{Digest, PeerId, Signature, canonical, crypto};

use super::core::{Env, Step};
use super::effects::{Ctx, Outgoing};
use super::error::ExchangeError;
use super::state::{Acquired, Evidence, NodeState, Receipt, Session, SessionId, VaultEntry, WriteOp};

/// B's session record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ResponderSession {
    /// Session id (A's s1).
    pub s1: SessionId,
    /// A.
    pub initiator: PeerId,
    /// M1 as received: V1 (in escrow while the session is open), want, T, expiry.
    pub offer: Start,
    /// B's secret r2.
    pub r2: [u8; 32],
    /// `H(valex/s2 ‖ r2)`.
    pub s2: Digest,
    /// The terms.
    pub terms: Terms,
    /// Their hash.
    pub h: Digest,
    /// B's agreement signature.
    pub sa: Signature,
    /// The value B gives, in escrow while the session is open.
    pub v2: Value,
    /// Where it stands.
    pub phase: ResponderPhase,
}

/// Why B stopped waiting for M3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PendingReason {
    /// No valid M3 by expiry.
    Expired,
    /// M3 came with an invalid Se or s2.
    InvalidConfirm,
}

/// B's phases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ResponderPhase {
    /// M2 sent; V2 out of the vault, V1 and V2 in escrow.
    Valid,
    /// 保留: asking the arbiter to cancel; M3 is refused.
    Pending {
        /// `Sig_B(valex/cancel/v1 ‖ h ‖ s2)`.
        sab: Signature,
        /// Why.
        reason: PendingReason,
    },
    /// V1 in the vault.
    Done {
        /// A's Se (when settled by M3), or none (settled by the arbiter).
        se: Option<Signature>,
        /// The arbiter's decision, when it settled the session.
        decision: Option<Decision>,
    },
    /// The arbiter cancelled; V2 back in the vault.
    Cancelled {
        /// The decision.
        decision: Decision,
    },
}

impl ResponderPhase {
    /// Upper-case name, as in protocol.md.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Pending { .. } => "PENDING",
            Self::Done { .. } => "DONE",
            Self::Cancelled { .. } => "CANCELLED",
        }
    }
}

impl ResponderSession {
    /// M2, as sent (and sent again for a duplicate M1).
    pub fn agree(&self) -> Agree {
        Agree { s1: self.s1, s2: self.s2, v2: self.v2.clone(), sa: self.sa }
    }

    /// The request this phase keeps sending until it is answered.
    pub fn outgoing(&self) -> Option<Outgoing> {
        match &self.phase {
            ResponderPhase::Pending { sab, .. } => Some(Outgoing::Arbiter {
                to: self.terms.arbiter,
                session: self.s1,
                request: ArbiterRequest::Cancel(CancelRequest { terms: self.terms.clone(), s2: self.s2, sa: self.sa, sab: *sab }),
            }),
            _ => None,
        }
    }

    /// When this phase gives up waiting for M3: the expiry, while VALID.
    pub fn deadline(&self) -> Option<u64> {
        match self.phase {
            ResponderPhase::Valid => Some(self.terms.expires_at_ms),
            _ => None,
        }
    }

    fn with_phase(&self, phase: ResponderPhase) -> Session {
        Session::Responder(Self { phase, ..self.clone() })
    }

    fn pending(&self, env: &Env, reason: PendingReason) -> Step {
        let sab = env.key.sign(&canonical::cancel_bytes(&self.h, &self.s2));
        Step::new(self.with_phase(ResponderPhase::Pending { sab, reason }))
    }

    fn reveal(&self) -> ExchangeResponse {
        ExchangeResponse::Reveal(Reveal { s1: self.s1, r2: self.r2 })
    }

    fn take_v1(&self, se: Option<Signature>, evidence: Evidence) -> Vec<WriteOp> {
        let receipt = Receipt { terms: self.terms.clone(), s2: self.s2, sa: self.sa, se, evidence };
        vec![
            WriteOp::PutValue(VaultEntry { value: self.offer.v1.clone(), acquired: Acquired::Exchange(self.s1) }),
            WriteOp::PutReceipt { value: self.offer.v1.id(), receipt: Box::new(receipt) },
        ]
    }
}

/// M1 arrived. Checks it against policy and the vault, picks V2, and commits B: VALID with V2
/// out of the vault, then M2.
pub(crate) fn on_start(env: &Env, state: &NodeState, ctx: Ctx, from: PeerId, m1: Start) -> Result<Step, ExchangeError> {
    if let Some(existing) = state.sessions.get(&m1.s1) {
        return on_repeated_start(existing, from, &m1);
    }
    if from == env.me() {
        return Err(ExchangeError::SelfExchange);
    }
    let cap = env.policy.max_open_sessions_per_peer();
    let open_with_peer = state.open_sessions().filter(|s| matches!(s, Session::Responder(r) if r.initiator == from)).count();
    if open_with_peer >= cap {
        return Err(ExchangeError::TooManySessions { peer: from, cap });
    }
    if !env.policy.accepts_expiry(ctx.now_ms, m1.expires_at_ms) {
        return Err(ExchangeError::ExpiryOutOfPolicy { expires_at_ms: m1.expires_at_ms, now_ms: ctx.now_ms });
    }
    if !env.policy.accepts_arbiter(&m1.arbiter) || m1.arbiter == from || m1.arbiter == env.me() {
        return Err(ExchangeError::ArbiterNotAccepted(m1.arbiter));
    }
    env.policy.check_value(&m1.v1)?;
    let v1_id = m1.v1.id();
    // V1 must not be ours already, nor escrowed in another open session (protocol.md §6.5).
    if state.vault.contains_key(&v1_id) || state.open_sessions().any(|s| s.escrowed().contains(&v1_id)) {
        return Err(ExchangeError::ValueBusy(v1_id));
    }
    let v2 = state
        .spendable()
        .find(|v| m1.want.matches(v) && v.id() != v1_id)
        .cloned()
        .ok_or_else(|| ExchangeError::WantUnavailable(m1.want.to_string()))?;
    let r2 = ctx.entropy;
    let s2 = Digest::of(&canonical::s2_preimage(&r2));
    let terms = Terms {
        s1: m1.s1,
        initiator: from,
        responder: env.me(),
        arbiter: m1.arbiter,
        v1_id,
        v2_id: v2.id(),
        expires_at_ms: m1.expires_at_ms,
    };
    let h = terms.h();
    let sa = env.key.sign(&canonical::agree_bytes(&h, &s2));
    let session = ResponderSession { s1: m1.s1, initiator: from, offer: m1, r2, s2, terms, h, sa, v2, phase: ResponderPhase::Valid };
    let reply = ExchangeResponse::Agree(session.agree());
    Ok(Step::new(Session::Responder(session.clone())).op(WriteOp::RemoveValue(session.v2.id())).reply(reply))
}

/// A duplicate M1 gets the same M2 while the session is VALID; anything else is refused.
fn on_repeated_start(existing: &Session, from: PeerId, m1: &Start) -> Result<Step, ExchangeError> {
    match existing {
        Session::Responder(r) if r.initiator == from && r.offer == *m1 => match r.phase {
            ResponderPhase::Valid => Ok(Step::unchanged().reply(ExchangeResponse::Agree(r.agree()))),
            ResponderPhase::Pending { .. } => Err(ExchangeError::Pending(r.s1)),
            _ => Err(ExchangeError::SessionClosed(r.s1)),
        },
        _ => Err(ExchangeError::SessionConflict(m1.s1)),
    }
}

/// M3 arrived.
pub(crate) fn on_confirm(env: &Env, s: &ResponderSession, ctx: Ctx, from: PeerId, m3: Confirm) -> Result<Step, ExchangeError> {
    if from != s.initiator {
        return Err(ExchangeError::WrongSender { session: s.s1, expected: s.initiator, got: from });
    }
    let valid = m3.s2 == s.s2 && crypto::verify(&s.initiator, &canonical::confirm_bytes(&s.h, &s.s2), &m3.se).is_ok();
    let invalid_error = || {
        if m3.s2 != s.s2 {
            ExchangeError::HashMismatch { session: s.s1, what: "s2 of M3" }
        } else {
            ExchangeError::InvalidSignature { session: s.s1, what: "Se" }
        }
    };
    match &s.phase {
        ResponderPhase::Valid => {}
        // 保留: only the arbiter decides now, even for a valid M3.
        ResponderPhase::Pending { .. } => return Err(ExchangeError::Pending(s.s1)),
        // A retried M3: answer the same r2 again.
        ResponderPhase::Done { .. } if valid => return Ok(Step::unchanged().reply(s.reveal())),
        ResponderPhase::Done { .. } => return Err(invalid_error()),
        ResponderPhase::Cancelled { .. } => return Err(ExchangeError::SessionClosed(s.s1)),
    }
    if ctx.now_ms >= s.terms.expires_at_ms {
        let refusal = ExchangeError::Pending(s.s1).refusal(Some(s.s1));
        return Ok(s.pending(env, PendingReason::Expired).reply(ExchangeResponse::Refusal(refusal)));
    }
    if !valid {
        let refusal = invalid_error().refusal(Some(s.s1));
        return Ok(s.pending(env, PendingReason::InvalidConfirm).reply(ExchangeResponse::Refusal(refusal)));
    }
    Ok(confirmed(s, m3.se))
}

/// A valid M3 while VALID: DONE, V1 into the vault with its receipt, r2 out — one write.
fn confirmed(s: &ResponderSession, se: Signature) -> Step {
    let done = s.with_phase(ResponderPhase::Done { se: Some(se), decision: None });
    let take = s.take_v1(Some(se), Evidence::Secret(s.r2));
    Step::new(done).ops(take).reply(s.reveal())
}

/// The arbiter's decision arrived.
pub(crate) fn on_decision(s: &ResponderSession, decision: Decision) -> Result<Step, ExchangeError> {
    decision.verify(&s.terms.arbiter, &s.s2, &s.h).map_err(|source| ExchangeError::Decision { session: s.s1, source })?;
    Ok(match (&s.phase, decision.outcome) {
        (ResponderPhase::Valid | ResponderPhase::Pending { .. }, Outcome::Cancelled) => {
            Step::new(s.with_phase(ResponderPhase::Cancelled { decision }))
                .op(WriteOp::PutValue(VaultEntry { value: s.v2.clone(), acquired: Acquired::Returned(s.s1) }))
        }
        (ResponderPhase::Valid | ResponderPhase::Pending { .. }, Outcome::Completed) => {
            let take = s.take_v1(None, Evidence::Decision(decision.clone()));
            Step::new(s.with_phase(ResponderPhase::Done { se: None, decision: Some(decision) })).ops(take)
        }
        _ => Step::unchanged(),
    })
}

/// No valid M3 by expiry: PENDING, ask the arbiter to cancel.
pub(crate) fn on_deadline(env: &Env, s: &ResponderSession) -> Step {
    match s.phase {
        ResponderPhase::Valid => s.pending(env, PendingReason::Expired),
        _ => Step::unchanged(),
    }
}
