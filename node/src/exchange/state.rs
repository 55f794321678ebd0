//! What a node persists, and the atomic write that changes it.
//!
//! [`NodeState`] is the whole durable state of a node's exchanges: the vault of spendable values,
//! the locks on values offered in open sessions, the receipts that justify values acquired by
//! exchange, and every session (terminal ones are kept, to answer retries and refuse replays).
//! It changes only through [`NodeState::apply`] of a [`WriteBatch`], the same batch a store
//! commits in one synced write.

use std::collections::BTreeMap;

use valex_proto::message::{Decision, Terms};
use valex_proto::value::{Value, ValueId};
use valex_proto::{Digest, Signature};

use super::initiator::{InitiatorPhase, InitiatorSession};
use super::responder::{ResponderPhase, ResponderSession};

/// A session's id: its s1, chosen by the initiator.
pub type SessionId = Digest;

/// How a value came into the vault.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Acquired {
    /// Issued by this node, or imported by its owner.
    Issued,
    /// Received in exchange session `s1` (its receipt is in the receipts).
    Exchange(SessionId),
    /// Returned from escrow when session `s1` was cancelled or aborted.
    Returned(SessionId),
}

/// A value in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VaultEntry {
    /// The value.
    pub value: Value,
    /// How it got here.
    pub acquired: Acquired,
}

/// What settled an exchange in the holder's favour.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Evidence {
    /// B revealed r2 with `H(valex/s2 ‖ r2) = s2`.
    Secret([u8; 32]),
    /// The arbiter decided COMPLETED.
    Decision(Decision),
}

/// The evidence that justifies holding a value acquired by exchange (protocol.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The terms both signed.
    pub terms: Terms,
    /// s2.
    pub s2: Digest,
    /// B's agreement signature.
    pub sa: Signature,
    /// A's confirmation signature (absent when B settled through the arbiter).
    pub se: Option<Signature>,
    /// r2 or the arbiter's decision.
    pub evidence: Evidence,
}

/// A session, from either side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Session {
    /// This node offered V1.
    Initiator(InitiatorSession),
    /// This node answered with V2.
    Responder(ResponderSession),
}

/// How a session stands, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionOutcome {
    /// Not finished.
    Open,
    /// Swapped: this node holds the other's value.
    Done,
    /// Cancelled by the arbiter: both keep what they had.
    Cancelled,
    /// Aborted before A committed: both keep what they had.
    Aborted,
}

impl SessionOutcome {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Aborted => "aborted",
        }
    }
}

impl Session {
    /// The session id (s1).
    pub fn id(&self) -> SessionId {
        match self {
            Self::Initiator(s) => s.s1,
            Self::Responder(s) => s.s1,
        }
    }

    /// Its outcome so far.
    pub fn outcome(&self) -> SessionOutcome {
        match self {
            Self::Initiator(s) => match s.phase {
                InitiatorPhase::Started | InitiatorPhase::Valid(_) | InitiatorPhase::Resolving(_) => SessionOutcome::Open,
                InitiatorPhase::Done { .. } => SessionOutcome::Done,
                InitiatorPhase::Cancelled { .. } => SessionOutcome::Cancelled,
                InitiatorPhase::Aborted { .. } => SessionOutcome::Aborted,
            },
            Self::Responder(s) => match s.phase {
                ResponderPhase::Valid | ResponderPhase::Pending { .. } => SessionOutcome::Open,
                ResponderPhase::Done { .. } => SessionOutcome::Done,
                ResponderPhase::Cancelled { .. } => SessionOutcome::Cancelled,
            },
        }
    }

    /// Whether the session has ended.
    pub fn is_terminal(&self) -> bool {
        self.outcome() != SessionOutcome::Open
    }

    /// The name of its current phase, e.g. `PENDING`.
    pub fn phase_name(&self) -> &'static str {
        match self {
            Self::Initiator(s) => s.phase.name(),
            Self::Responder(s) => s.phase.name(),
        }
    }

    /// The values this session holds in escrow right now (not in any vault).
    pub fn escrowed(&self) -> Vec<ValueId> {
        match self {
            Self::Initiator(s) => match &s.phase {
                InitiatorPhase::Valid(a) | InitiatorPhase::Resolving(a) => vec![s.v1.id(), a.v2.id()],
                _ => Vec::new(),
            },
            Self::Responder(s) => match s.phase {
                ResponderPhase::Valid | ResponderPhase::Pending { .. } => vec![s.offer.v1.id(), s.v2.id()],
                _ => Vec::new(),
            },
        }
    }
}

/// One change to the durable state.
#[allow(clippy::large_enum_variant)] // values are inline; batches are short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WriteOp {
    /// Put a value into the vault.
    PutValue(VaultEntry),
    /// Take a value out of the vault (into escrow, or given away).
    RemoveValue(ValueId),
    /// Lock a vault value for an open session: it stays in the vault but cannot be spent.
    Lock {
        /// The value.
        value: ValueId,
        /// The session it is offered in.
        session: SessionId,
    },
    /// Release a lock.
    Unlock(ValueId),
    /// Record the receipt for a value acquired by exchange.
    PutReceipt {
        /// The value.
        value: ValueId,
        /// Its receipt.
        receipt: Box<Receipt>,
    },
    /// Create or replace a session record.
    PutSession(Box<Session>),
}

/// Changes committed together, atomically and synced, before any message that reveals them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct WriteBatch {
    /// The changes, applied in order.
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// A batch of `ops`.
    pub fn new(ops: Vec<WriteOp>) -> Self {
        Self { ops }
    }
}

/// The durable state of a node's vault and sessions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeState {
    /// Values in the vault, by id.
    pub vault: BTreeMap<ValueId, VaultEntry>,
    /// Vault values offered in open sessions.
    pub locks: BTreeMap<ValueId, SessionId>,
    /// Receipts for values acquired by exchange.
    pub receipts: BTreeMap<ValueId, Receipt>,
    /// Every session, open or ended.
    pub sessions: BTreeMap<SessionId, Session>,
}

impl NodeState {
    /// Applies a batch, in order.
    pub fn apply(&mut self, batch: &WriteBatch) {
        for op in &batch.ops {
            match op {
                WriteOp::PutValue(entry) => {
                    self.vault.insert(entry.value.id(), entry.clone());
                }
                WriteOp::RemoveValue(id) => {
                    self.vault.remove(id);
                }
                WriteOp::Lock { value, session } => {
                    self.locks.insert(*value, *session);
                }
                WriteOp::Unlock(id) => {
                    self.locks.remove(id);
                }
                WriteOp::PutReceipt { value, receipt } => {
                    self.receipts.insert(*value, (**receipt).clone());
                }
                WriteOp::PutSession(session) => {
                    self.sessions.insert(session.id(), (**session).clone());
                }
            }
        }
    }

    /// Whether `id` is in the vault and not locked: it can be spent or offered.
    pub fn is_spendable(&self, id: &ValueId) -> bool {
        self.vault.contains_key(id) && !self.locks.contains_key(id)
    }

    /// The spendable values, in id order.
    pub fn spendable(&self) -> impl Iterator<Item = &Value> {
        self.vault.values().map(|e| &e.value).filter(|v| !self.locks.contains_key(&v.id()))
    }

    /// The open (non-terminal) sessions.
    pub fn open_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values().filter(|s| !s.is_terminal())
    }
}
