//! valex arbiter (第三者装置): decides CANCELLED or COMPLETED for an exchange that went wrong.
//!
//! The decision rule of protocol.md §5 as a pure state machine, [`Arbiter`]: it checks that it is
//! the T of the terms, recomputes h, verifies Sa and Sab (cancel) or Se (complete); then, keyed by
//! s2, the first request wins. The decision record is returned as a write for the driver to
//! commit (synced) before it sends the signed [`Decision`]; a later request for the same s2 gets
//! the same decision, and one for the same s2 under a different h is refused as equivocation.
//! The arbiter never sees values, only h.
//!
//! ```
//! use valex_arbiter::Arbiter;
//! use valex_proto::crypto::Keypair;
//! use valex_proto::Digest;
//! use valex_proto::wire::ErrorCode;
//! use valex_proto::message::ArbiterRequest;
//!
//! let mut arbiter = Arbiter::new(Keypair::from_seed([1; 32]), Default::default());
//! let anyone = Keypair::from_seed([2; 32]).peer_id();
//! let refused = arbiter.handle(anyone, ArbiterRequest::Query { s2: Digest([0; 32]) }, 0).unwrap_err();
//! assert_eq!(refused.code(), ErrorCode::NoDecision);
//! assert!(arbiter.decisions().is_empty());
//! ```

#![deny(missing_docs)]
// Errors carry PeerIds (80 bytes each) for clear messages; they are rare, so size is no concern.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use valex_proto::crypto::{self, Keypair};
use valex_proto::message::{ArbiterRequest, ArbiterResponse, Decision, Outcome, Refusal, Terms};
use valex_proto::wire::ErrorCode;
use valex_proto::{Digest, PeerId, Signature, canonical};

/// What the arbiter stores per s2: the decision, the terms it was made under, and who asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DecisionRecord {
    /// The signed decision.
    pub decision: Decision,
    /// The terms of the request that decided it.
    pub terms: Terms,
    /// The party whose request decided it.
    pub requested_by: PeerId,
}

/// Why a request was refused. Every refusal leaves the arbiter's state untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArbiterError {
    /// The terms name another arbiter.
    #[error("the terms name arbiter {named}, not this one")]
    NotTheArbiter {
        /// The arbiter the terms name.
        named: PeerId,
    },
    /// The sender is not the party who may make this request.
    #[error("{request} must come from {expected}, not {got}")]
    WrongSender {
        /// Which request.
        request: &'static str,
        /// Who may send it.
        expected: PeerId,
        /// Who sent it.
        got: PeerId,
    },
    /// A signature does not verify.
    #[error("{0} does not verify")]
    InvalidSignature(&'static str),
    /// A decision for s2 exists under a different h: someone is equivocating.
    #[error("equivocation: s2 {s2} was decided under h {decided_h}, now asked under h {asked_h}")]
    Equivocation {
        /// The session's s2.
        s2: Digest,
        /// The h of the decision.
        decided_h: Digest,
        /// The h of this request.
        asked_h: Digest,
    },
    /// Nothing has been decided for s2.
    #[error("no decision for s2 {0}")]
    NoDecision(Digest),
}

impl ArbiterError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotTheArbiter { .. } => ErrorCode::NotTheArbiter,
            Self::WrongSender { .. } => ErrorCode::WrongSender,
            Self::InvalidSignature(_) => ErrorCode::InvalidSignature,
            Self::Equivocation { .. } => ErrorCode::Equivocation,
            Self::NoDecision(_) => ErrorCode::NoDecision,
        }
    }

    /// The refusal to send back.
    pub fn refusal(&self, s1: Option<Digest>) -> Refusal {
        Refusal::new(self.code(), self.to_string(), s1)
    }
}

/// The result of one request: a record to commit (synced) first, then the response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbiterStep {
    /// A new decision to persist before answering.
    pub persist: Option<DecisionRecord>,
    /// The answer.
    pub response: ArbiterResponse,
}

/// The arbiter's decision rule over its decisions so far.
#[derive(Debug, Clone)]
pub struct Arbiter {
    key: Keypair,
    decisions: BTreeMap<Digest, DecisionRecord>,
}

impl Arbiter {
    /// An arbiter with `key`, over the decisions loaded from its store.
    pub fn new(key: Keypair, decisions: BTreeMap<Digest, DecisionRecord>) -> Self {
        Self { key, decisions }
    }

    /// This arbiter's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.key.peer_id()
    }

    /// Every decision, by s2.
    pub fn decisions(&self) -> &BTreeMap<Digest, DecisionRecord> {
        &self.decisions
    }

    /// Handles a request from `from` at `now_ms`. A refusal changes nothing; the driver answers it
    /// with [`ArbiterError::refusal`].
    pub fn handle(&mut self, from: PeerId, request: ArbiterRequest, now_ms: u64) -> Result<ArbiterStep, ArbiterError> {
        let (terms, s2, outcome) = match request {
            ArbiterRequest::Query { s2 } => {
                let record = self.decisions.get(&s2).ok_or(ArbiterError::NoDecision(s2))?;
                return Ok(ArbiterStep { persist: None, response: ArbiterResponse::Decision(record.decision.clone()) });
            }
            ArbiterRequest::Cancel(req) => {
                self.check_common(&req.terms, &req.s2, &req.sa)?;
                expect_sender("CancelRequest", req.terms.responder, from)?;
                let h = req.terms.h();
                crypto::verify(&req.terms.responder, &canonical::cancel_bytes(&h, &req.s2), &req.sab)
                    .map_err(|_| ArbiterError::InvalidSignature("Sab"))?;
                (req.terms, req.s2, Outcome::Cancelled)
            }
            ArbiterRequest::Complete(req) => {
                self.check_common(&req.terms, &req.s2, &req.sa)?;
                expect_sender("CompleteRequest", req.terms.initiator, from)?;
                let h = req.terms.h();
                crypto::verify(&req.terms.initiator, &canonical::confirm_bytes(&h, &req.s2), &req.se)
                    .map_err(|_| ArbiterError::InvalidSignature("Se"))?;
                (req.terms, req.s2, Outcome::Completed)
            }
        };
        let h = terms.h();
        if let Some(existing) = self.decisions.get(&s2) {
            if existing.decision.h != h {
                tracing::warn!(s2 = %s2, decided_h = %existing.decision.h, asked_h = %h, by = %from, "equivocation: same s2 under another h");
                return Err(ArbiterError::Equivocation { s2, decided_h: existing.decision.h, asked_h: h });
            }
            return Ok(ArbiterStep { persist: None, response: ArbiterResponse::Decision(existing.decision.clone()) });
        }
        let sig = self.key.sign(&canonical::decision_bytes(&h, &s2, outcome));
        let decision = Decision { s2, h, outcome, decided_at_ms: now_ms, sig };
        let record = DecisionRecord { decision: decision.clone(), terms, requested_by: from };
        tracing::info!(s2 = %s2.short(), outcome = outcome.name(), by = %from, "decided");
        self.decisions.insert(s2, record.clone());
        Ok(ArbiterStep { persist: Some(record), response: ArbiterResponse::Decision(decision) })
    }

    /// The checks common to both requests: this arbiter is the terms' T, and Sa is B's.
    fn check_common(&self, terms: &Terms, s2: &Digest, sa: &Signature) -> Result<(), ArbiterError> {
        if terms.arbiter != self.peer_id() {
            return Err(ArbiterError::NotTheArbiter { named: terms.arbiter });
        }
        crypto::verify(&terms.responder, &canonical::agree_bytes(&terms.h(), s2), sa).map_err(|_| ArbiterError::InvalidSignature("Sa"))
    }
}

fn expect_sender(request: &'static str, expected: PeerId, got: PeerId) -> Result<(), ArbiterError> {
    if expected != got {
        return Err(ArbiterError::WrongSender { request, expected, got });
    }
    Ok(())
}

pub mod server;
pub mod store;

#[cfg(test)]
mod tests;
