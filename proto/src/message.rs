//! Validated domain types for every message of protocol.md §4–§7, with checked conversions from
//! the wire types.
//!
//! Decoding checks structure only: sizes, lengths, that PeerIds parse and that a value's id is the
//! hash of its fields. Signatures, h and policy are checked by the state machines, which know the
//! session the message belongs to.
//!
//! ```
//! use valex_proto::message::{Confirm, ExchangeRequest};
//! use valex_proto::{Digest, Signature};
//!
//! let m3 = ExchangeRequest::Confirm(Confirm { s1: Digest([1; 32]), s2: Digest([2; 32]), se: Signature([3; 64]) });
//! let bytes = m3.encode();
//! assert_eq!(ExchangeRequest::decode(&bytes).unwrap(), m3);
//! assert!(ExchangeRequest::decode(&[0xff, 0xff]).is_err());
//! ```

use libp2p_identity::PeerId;
use prost::Message as _;

use crate::canonical;
use crate::crypto::{self, VerifyError};
use crate::digest::{Digest, Signature};
use crate::limits::{
    MAX_ANNOUNCED_ADDRS, MAX_ANNOUNCED_STRING_BYTES, MAX_ERROR_MESSAGE_BYTES, MAX_FRAME_BYTES, MAX_KIND_BYTES, MAX_PEER_ID_BYTES,
};
use crate::value::{Value, ValueError, ValueId};
use crate::wire::{self, ErrorCode};

/// Why bytes or a wire message could not be turned into a domain message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is over the size limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a protobuf message of the expected type.
    #[error("undecodable protobuf: {0}")]
    Protobuf(String),
    /// A required field or oneof is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A fixed-size field has the wrong length.
    #[error("field {field} must be {expected} bytes, got {got}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// Its required length.
        expected: usize,
        /// Its actual length.
        got: usize,
    },
    /// A PeerId field does not parse, or is not an ed25519 identity.
    #[error("field {0} is not an ed25519 peer id")]
    BadPeerId(&'static str),
    /// A string field is too long.
    #[error("field {field} is {len} bytes, over the {max}-byte limit")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An enum field has an unknown or unspecified value.
    #[error("field {0} has an unknown value")]
    UnknownEnum(&'static str),
    /// A carried value is bad.
    #[error(transparent)]
    Value(#[from] ValueError),
}

impl DecodeError {
    /// The error code a receiver answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } | Self::FieldTooLong { .. } => ErrorCode::TooLarge,
            Self::Value(ValueError::KindTooLong { .. } | ValueError::PayloadTooLarge { .. }) => ErrorCode::TooLarge,
            Self::Value(_) => ErrorCode::InvalidValue,
            _ => ErrorCode::Malformed,
        }
    }
}

fn digest(field: &'static str, bytes: &[u8]) -> Result<Digest, DecodeError> {
    Digest::from_slice(bytes).ok_or(DecodeError::WrongLength { field, expected: 32, got: bytes.len() })
}

fn secret(field: &'static str, bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::WrongLength { field, expected: 32, got: bytes.len() })
}

fn signature(field: &'static str, bytes: &[u8]) -> Result<Signature, DecodeError> {
    Signature::from_slice(bytes).ok_or(DecodeError::WrongLength { field, expected: 64, got: bytes.len() })
}

/// Parses a PeerId and requires it to inline an ed25519 key, so signatures can be checked.
pub fn peer(field: &'static str, bytes: &[u8]) -> Result<PeerId, DecodeError> {
    if bytes.len() > MAX_PEER_ID_BYTES {
        return Err(DecodeError::BadPeerId(field));
    }
    let peer = PeerId::from_bytes(bytes).map_err(|_| DecodeError::BadPeerId(field))?;
    if !crypto::is_signing_identity(&peer) {
        return Err(DecodeError::BadPeerId(field));
    }
    Ok(peer)
}

fn bounded_string(field: &'static str, text: String, max: usize) -> Result<String, DecodeError> {
    if text.len() > max {
        return Err(DecodeError::FieldTooLong { field, len: text.len(), max });
    }
    Ok(text)
}

fn value(field: &'static str, wire: Option<wire::Value>) -> Result<Value, DecodeError> {
    Ok(Value::from_wire(wire.ok_or(DecodeError::Missing(field))?)?)
}

fn decode_frame<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_FRAME_BYTES });
    }
    M::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

/// The terms both parties sign (protocol.md §4); `h` is their hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Terms {
    /// Session id chosen by A: `H(valex/s1 ‖ r1)`.
    pub s1: Digest,
    /// A.
    pub initiator: PeerId,
    /// B.
    pub responder: PeerId,
    /// T.
    pub arbiter: PeerId,
    /// The value A gives.
    pub v1_id: ValueId,
    /// The value B gives.
    pub v2_id: ValueId,
    /// When the exchange expires, in ms since the Unix epoch.
    pub expires_at_ms: u64,
}

impl Terms {
    /// `h = H(valex/terms/v1 ‖ s1 ‖ A ‖ B ‖ T ‖ V1.id ‖ V2.id ‖ expires_at_ms)`.
    pub fn h(&self) -> Digest {
        Digest::of(&canonical::terms_bytes(self))
    }

    /// Decodes the wire form.
    pub fn from_wire(wire: wire::Terms) -> Result<Self, DecodeError> {
        Ok(Self {
            s1: digest("terms.s1", &wire.s1)?,
            initiator: peer("terms.initiator", &wire.initiator)?,
            responder: peer("terms.responder", &wire.responder)?,
            arbiter: peer("terms.arbiter", &wire.arbiter)?,
            v1_id: digest("terms.v1_id", &wire.v1_id)?,
            v2_id: digest("terms.v2_id", &wire.v2_id)?,
            expires_at_ms: wire.expires_at_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::Terms {
        wire::Terms {
            s1: self.s1.0.to_vec(),
            initiator: self.initiator.to_bytes(),
            responder: self.responder.to_bytes(),
            arbiter: self.arbiter.to_bytes(),
            v1_id: self.v1_id.0.to_vec(),
            v2_id: self.v2_id.0.to_vec(),
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// What A wants in return for V1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Want {
    /// Exactly this value.
    Value(ValueId),
    /// Any value of this kind and amount, from this issuer if one is named.
    KindAmount {
        /// The kind.
        kind: String,
        /// The amount, exactly.
        amount: u64,
        /// The issuer, if A cares.
        issuer: Option<PeerId>,
    },
}

impl Want {
    /// Whether `value` is what was wanted.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Self::Value(id) => value.id() == *id,
            Self::KindAmount { kind, amount, issuer } => {
                value.kind() == kind && value.amount() == *amount && issuer.is_none_or(|issuer| value.issuer() == issuer)
            }
        }
    }

    fn from_wire(wire: Option<wire::Want>) -> Result<Self, DecodeError> {
        match wire.and_then(|w| w.want).ok_or(DecodeError::Missing("want"))? {
            wire::want::Want::ValueId(id) => Ok(Self::Value(digest("want.value_id", &id)?)),
            wire::want::Want::KindAmount(ka) => Ok(Self::KindAmount {
                kind: bounded_string("want.kind", ka.kind, MAX_KIND_BYTES)?,
                amount: ka.amount,
                issuer: if ka.issuer.is_empty() { None } else { Some(peer("want.issuer", &ka.issuer)?) },
            }),
        }
    }

    fn to_wire(&self) -> wire::Want {
        let want = match self {
            Self::Value(id) => wire::want::Want::ValueId(id.0.to_vec()),
            Self::KindAmount { kind, amount, issuer } => wire::want::Want::KindAmount(wire::KindAmount {
                kind: kind.clone(),
                amount: *amount,
                issuer: issuer.map(|p| p.to_bytes()).unwrap_or_default(),
            }),
        };
        wire::Want { want: Some(want) }
    }
}

impl std::fmt::Display for Want {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(id) => write!(f, "{id}"),
            Self::KindAmount { kind, amount, .. } => write!(f, "{kind}:{amount}"),
        }
    }
}

/// M1, A → B: the offer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Start {
    /// Session id.
    pub s1: Digest,
    /// The value A gives, whole.
    pub v1: Value,
    /// What A wants for it.
    pub want: Want,
    /// The arbiter A proposes.
    pub arbiter: PeerId,
    /// Expiry, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// M2, B → A: the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Agree {
    /// Session id.
    pub s1: Digest,
    /// `H(valex/s2 ‖ r2)`.
    pub s2: Digest,
    /// The value B gives, whole.
    pub v2: Value,
    /// `Sig_B(valex/agree/v1 ‖ h ‖ s2)`.
    pub sa: Signature,
}

/// M3, A → B: the confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Confirm {
    /// Session id.
    pub s1: Digest,
    /// B's s2, echoed.
    pub s2: Digest,
    /// `Sig_A(valex/confirm/v1 ‖ h ‖ s2)`.
    pub se: Signature,
}

/// M4, B → A: the reveal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reveal {
    /// Session id.
    pub s1: Digest,
    /// The preimage of s2.
    pub r2: [u8; 32],
}

/// A typed refusal, sent instead of a response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// What went wrong.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// The session it concerns, when known.
    pub s1: Option<Digest>,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>, s1: Option<Digest>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut cut = MAX_ERROR_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Self { code, message, s1 }
    }

    fn from_wire(wire: wire::ErrorReply) -> Result<Self, DecodeError> {
        let code = ErrorCode::try_from(wire.code).map_err(|_| DecodeError::UnknownEnum("error.code"))?;
        let s1 = if wire.s1.is_empty() { None } else { Some(digest("error.s1", &wire.s1)?) };
        Ok(Self { code, message: bounded_string("error.message", wire.message, MAX_ERROR_MESSAGE_BYTES)?, s1 })
    }

    fn to_wire(&self) -> wire::ErrorReply {
        wire::ErrorReply { code: self.code as i32, message: self.message.clone(), s1: self.s1.map(|s| s.0.to_vec()).unwrap_or_default() }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str_name(), self.message)
    }
}

/// A request of the exchange protocol.
#[allow(clippy::large_enum_variant)] // M1 carries a whole value; messages are short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExchangeRequest {
    /// M1.
    Start(Start),
    /// M3.
    Confirm(Confirm),
}

/// A response of the exchange protocol.
#[allow(clippy::large_enum_variant)] // M2 carries a whole value; messages are short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExchangeResponse {
    /// M2.
    Agree(Agree),
    /// M4.
    Reveal(Reveal),
    /// A refusal.
    Refusal(Refusal),
}

impl ExchangeRequest {
    /// The session it belongs to.
    pub fn s1(&self) -> Digest {
        match self {
            Self::Start(m) => m.s1,
            Self::Confirm(m) => m.s1,
        }
    }

    /// Decodes a frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(decode_frame(bytes)?)
    }

    /// Encodes a frame.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Converts from the wire form.
    pub fn from_wire(wire: wire::ExchangeRequest) -> Result<Self, DecodeError> {
        match wire.kind.ok_or(DecodeError::Missing("exchange request"))? {
            wire::exchange_request::Kind::Start(m) => Ok(Self::Start(Start {
                s1: digest("start.s1", &m.s1)?,
                v1: value("start.v1", m.v1)?,
                want: Want::from_wire(m.want)?,
                arbiter: peer("start.arbiter", &m.arbiter)?,
                expires_at_ms: m.expires_at_ms,
            })),
            wire::exchange_request::Kind::Confirm(m) => Ok(Self::Confirm(Confirm {
                s1: digest("confirm.s1", &m.s1)?,
                s2: digest("confirm.s2", &m.s2)?,
                se: signature("confirm.se", &m.se)?,
            })),
        }
    }

    /// Converts to the wire form.
    pub fn to_wire(&self) -> wire::ExchangeRequest {
        let kind = match self {
            Self::Start(m) => wire::exchange_request::Kind::Start(wire::Start {
                s1: m.s1.0.to_vec(),
                v1: Some(m.v1.to_wire()),
                want: Some(m.want.to_wire()),
                arbiter: m.arbiter.to_bytes(),
                expires_at_ms: m.expires_at_ms,
            }),
            Self::Confirm(m) => {
                wire::exchange_request::Kind::Confirm(wire::Confirm { s1: m.s1.0.to_vec(), s2: m.s2.0.to_vec(), se: m.se.0.to_vec() })
            }
        };
        wire::ExchangeRequest { kind: Some(kind) }
    }
}

impl ExchangeResponse {
    /// Decodes a frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(decode_frame(bytes)?)
    }

    /// Encodes a frame.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Converts from the wire form.
    pub fn from_wire(wire: wire::ExchangeResponse) -> Result<Self, DecodeError> {
        match wire.kind.ok_or(DecodeError::Missing("exchange response"))? {
            wire::exchange_response::Kind::Agree(m) => Ok(Self::Agree(Agree {
                s1: digest("agree.s1", &m.s1)?,
                s2: digest("agree.s2", &m.s2)?,
                v2: value("agree.v2", m.v2)?,
                sa: signature("agree.sa", &m.sa)?,
            })),
            wire::exchange_response::Kind::Reveal(m) => {
                Ok(Self::Reveal(Reveal { s1: digest("reveal.s1", &m.s1)?, r2: secret("reveal.r2", &m.r2)? }))
            }
            wire::exchange_response::Kind::Error(e) => Ok(Self::Refusal(Refusal::from_wire(e)?)),
        }
    }

    /// Converts to the wire form.
    pub fn to_wire(&self) -> wire::ExchangeResponse {
        let kind = match self {
            Self::Agree(m) => wire::exchange_response::Kind::Agree(wire::Agree {
                s1: m.s1.0.to_vec(),
                s2: m.s2.0.to_vec(),
                v2: Some(m.v2.to_wire()),
                sa: m.sa.0.to_vec(),
            }),
            Self::Reveal(m) => wire::exchange_response::Kind::Reveal(wire::Reveal { s1: m.s1.0.to_vec(), r2: m.r2.to_vec() }),
            Self::Refusal(r) => wire::exchange_response::Kind::Error(r.to_wire()),
        };
        wire::ExchangeResponse { kind: Some(kind) }
    }
}

/// B's request that the arbiter cancel (the patent's 取消依頼).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CancelRequest {
    /// The terms.
    pub terms: Terms,
    /// s2.
    pub s2: Digest,
    /// B's agreement signature.
    pub sa: Signature,
    /// `Sig_B(valex/cancel/v1 ‖ h ‖ s2)`.
    pub sab: Signature,
}

/// A's request that the arbiter complete, when r2 never came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompleteRequest {
    /// The terms.
    pub terms: Terms,
    /// s2.
    pub s2: Digest,
    /// B's agreement signature.
    pub sa: Signature,
    /// A's confirmation signature.
    pub se: Signature,
}

/// What the arbiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// Both keep what they had.
    Cancelled,
    /// Both get what they wanted.
    Completed,
}

impl Outcome {
    /// The ASCII name signed in decisions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cancelled => "CANCELLED",
            Self::Completed => "COMPLETED",
        }
    }

    fn from_wire(value: i32) -> Result<Self, DecodeError> {
        match wire::Outcome::try_from(value) {
            Ok(wire::Outcome::Cancelled) => Ok(Self::Cancelled),
            Ok(wire::Outcome::Completed) => Ok(Self::Completed),
            _ => Err(DecodeError::UnknownEnum("decision.outcome")),
        }
    }

    fn to_wire(self) -> wire::Outcome {
        match self {
            Self::Cancelled => wire::Outcome::Cancelled,
            Self::Completed => wire::Outcome::Completed,
        }
    }
}

/// Why a decision is not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// It is for another s2 or another h.
    #[error("decision is bound to another session (s2 or h differ)")]
    WrongBinding,
    /// Its signature is not the terms' arbiter's.
    #[error("decision signature is not from the terms' arbiter: {0}")]
    BadSignature(VerifyError),
}

/// The arbiter's signed decision, bound to (s2, h).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// The session's s2.
    pub s2: Digest,
    /// The session's h.
    pub h: Digest,
    /// What was decided.
    pub outcome: Outcome,
    /// When, in ms since the Unix epoch (not signed).
    pub decided_at_ms: u64,
    /// `Sig_T(valex/decision/v1 ‖ h ‖ s2 ‖ outcome)`.
    pub sig: Signature,
}

impl Decision {
    /// Checks that the decision binds `s2` and `h` and is signed by `arbiter`.
    pub fn verify(&self, arbiter: &PeerId, s2: &Digest, h: &Digest) -> Result<(), DecisionError> {
        if self.s2 != *s2 || self.h != *h {
            return Err(DecisionError::WrongBinding);
        }
        crypto::verify(arbiter, &canonical::decision_bytes(h, s2, self.outcome), &self.sig).map_err(DecisionError::BadSignature)
    }

    fn from_wire(wire: wire::Decision) -> Result<Self, DecodeError> {
        Ok(Self {
            s2: digest("decision.s2", &wire.s2)?,
            h: digest("decision.h", &wire.h)?,
            outcome: Outcome::from_wire(wire.outcome)?,
            decided_at_ms: wire.decided_at_ms,
            sig: signature("decision.sig", &wire.sig)?,
        })
    }

    fn to_wire(&self) -> wire::Decision {
        wire::Decision {
            s2: self.s2.0.to_vec(),
            h: self.h.0.to_vec(),
            outcome: self.outcome.to_wire() as i32,
            decided_at_ms: self.decided_at_ms,
            sig: self.sig.0.to_vec(),
        }
    }
}

/// A request of the arbiter protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArbiterRequest {
    /// From B.
    Cancel(CancelRequest),
    /// From A.
    Complete(CompleteRequest),
    /// From anyone: the decision for s2, if any.
    Query {
        /// The session's s2.
        s2: Digest,
    },
}

/// A response of the arbiter protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArbiterResponse {
    /// The (possibly earlier) decision.
    Decision(Decision),
    /// A refusal.
    Refusal(Refusal),
}

impl ArbiterRequest {
    /// Decodes a frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(decode_frame(bytes)?)
    }

    /// Encodes a frame.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Converts from the wire form.
    pub fn from_wire(wire: wire::ArbiterRequest) -> Result<Self, DecodeError> {
        match wire.kind.ok_or(DecodeError::Missing("arbiter request"))? {
            wire::arbiter_request::Kind::Cancel(m) => Ok(Self::Cancel(CancelRequest {
                terms: Terms::from_wire(m.terms.ok_or(DecodeError::Missing("cancel.terms"))?)?,
                s2: digest("cancel.s2", &m.s2)?,
                sa: signature("cancel.sa", &m.sa)?,
                sab: signature("cancel.sab", &m.sab)?,
            })),
            wire::arbiter_request::Kind::Complete(m) => Ok(Self::Complete(CompleteRequest {
                terms: Terms::from_wire(m.terms.ok_or(DecodeError::Missing("complete.terms"))?)?,
                s2: digest("complete.s2", &m.s2)?,
                sa: signature("complete.sa", &m.sa)?,
                se: signature("complete.se", &m.se)?,
            })),
            wire::arbiter_request::Kind::Query(m) => Ok(Self::Query { s2: digest("query.s2", &m.s2)? }),
        }
    }

    /// Converts to the wire form.
    pub fn to_wire(&self) -> wire::ArbiterRequest {
        let kind = match self {
            Self::Cancel(m) => wire::arbiter_request::Kind::Cancel(wire::CancelRequest {
                terms: Some(m.terms.to_wire()),
                s2: m.s2.0.to_vec(),
                sa: m.sa.0.to_vec(),
                sab: m.sab.0.to_vec(),
            }),
            Self::Complete(m) => wire::arbiter_request::Kind::Complete(wire::CompleteRequest {
                terms: Some(m.terms.to_wire()),
                s2: m.s2.0.to_vec(),
                sa: m.sa.0.to_vec(),
                se: m.se.0.to_vec(),
            }),
            Self::Query { s2 } => wire::arbiter_request::Kind::Query(wire::QueryDecision { s2: s2.0.to_vec() }),
        };
        wire::ArbiterRequest { kind: Some(kind) }
    }
}

impl ArbiterResponse {
    /// Decodes a frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(decode_frame(bytes)?)
    }

    /// Encodes a frame.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Converts from the wire form.
    pub fn from_wire(wire: wire::ArbiterResponse) -> Result<Self, DecodeError> {
        match wire.kind.ok_or(DecodeError::Missing("arbiter response"))? {
            wire::arbiter_response::Kind::Decision(d) => Ok(Self::Decision(Decision::from_wire(d)?)),
            wire::arbiter_response::Kind::Error(e) => Ok(Self::Refusal(Refusal::from_wire(e)?)),
        }
    }

    /// Converts to the wire form.
    pub fn to_wire(&self) -> wire::ArbiterResponse {
        let kind = match self {
            Self::Decision(d) => wire::arbiter_response::Kind::Decision(d.to_wire()),
            Self::Refusal(r) => wire::arbiter_response::Kind::Error(r.to_wire()),
        };
        wire::ArbiterResponse { kind: Some(kind) }
    }
}

/// An arbiter's signed announcement of itself (protocol.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArbiterAnnouncement {
    /// The arbiter.
    pub peer: PeerId,
    /// Its listen addresses, as multiaddr strings.
    pub addrs: Vec<String>,
    /// A human-readable name.
    pub name: String,
    /// Its software version.
    pub version: String,
    /// When it was made, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// `Sig_T(valex/announce/v1 ‖ …)`.
    pub sig: Signature,
}

impl ArbiterAnnouncement {
    /// Makes and signs an announcement.
    pub fn sign(key: &crypto::Keypair, addrs: Vec<String>, name: String, version: String, issued_at_ms: u64) -> Self {
        let peer = key.peer_id();
        let sig = key.sign(&canonical::announce_bytes(&peer, &addrs, &name, &version, issued_at_ms));
        Self { peer, addrs, name, version, issued_at_ms, sig }
    }

    /// Checks that `peer` signed it.
    pub fn verify(&self) -> Result<(), VerifyError> {
        let bytes = canonical::announce_bytes(&self.peer, &self.addrs, &self.name, &self.version, self.issued_at_ms);
        crypto::verify(&self.peer, &bytes, &self.sig)
    }

    /// Decodes a frame (signature not yet checked).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: wire::ArbiterAnnouncement = decode_frame(bytes)?;
        if wire.addrs.len() > MAX_ANNOUNCED_ADDRS {
            return Err(DecodeError::FieldTooLong { field: "announcement.addrs", len: wire.addrs.len(), max: MAX_ANNOUNCED_ADDRS });
        }
        let addrs = wire
            .addrs
            .into_iter()
            .map(|a| bounded_string("announcement.addr", a, MAX_ANNOUNCED_STRING_BYTES))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            peer: peer("announcement.peer", &wire.peer)?,
            addrs,
            name: bounded_string("announcement.name", wire.name, MAX_ANNOUNCED_STRING_BYTES)?,
            version: bounded_string("announcement.version", wire.version, MAX_ANNOUNCED_STRING_BYTES)?,
            issued_at_ms: wire.issued_at_ms,
            sig: signature("announcement.sig", &wire.sig)?,
        })
    }

    /// Encodes a frame.
    pub fn encode(&self) -> Vec<u8> {
        wire::ArbiterAnnouncement {
            peer: self.peer.to_bytes(),
            addrs: self.addrs.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            issued_at_ms: self.issued_at_ms,
            sig: self.sig.0.to_vec(),
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    fn start() -> ExchangeRequest {
        let issuer = Keypair::from_seed([1; 32]);
        ExchangeRequest::Start(Start {
            s1: Digest([7; 32]),
            v1: Value::issue(&issuer, "ticket", 1, b"x".to_vec(), [2; 16]).unwrap(),
            want: Want::KindAmount { kind: "voucher".into(), amount: 5, issuer: Some(issuer.peer_id()) },
            arbiter: Keypair::from_seed([2; 32]).peer_id(),
            expires_at_ms: 99,
        })
    }

    #[test]
    fn every_message_round_trips() {
        let m1 = start();
        assert_eq!(ExchangeRequest::decode(&m1.encode()).unwrap(), m1);
        let key = Keypair::from_seed([3; 32]);
        let value = Value::issue(&key, "voucher", 5, Vec::new(), [4; 16]).unwrap();
        let responses = [
            ExchangeResponse::Agree(Agree { s1: Digest([1; 32]), s2: Digest([2; 32]), v2: value, sa: Signature([3; 64]) }),
            ExchangeResponse::Reveal(Reveal { s1: Digest([1; 32]), r2: [9; 32] }),
            ExchangeResponse::Refusal(Refusal::new(ErrorCode::Pending, "pending", Some(Digest([1; 32])))),
        ];
        for r in responses {
            assert_eq!(ExchangeResponse::decode(&r.encode()).unwrap(), r);
        }
        let terms = Terms {
            s1: Digest([1; 32]),
            initiator: key.peer_id(),
            responder: key.peer_id(),
            arbiter: key.peer_id(),
            v1_id: Digest([2; 32]),
            v2_id: Digest([3; 32]),
            expires_at_ms: 5,
        };
        let requests = [
            ArbiterRequest::Cancel(CancelRequest {
                terms: terms.clone(),
                s2: Digest([4; 32]),
                sa: Signature([5; 64]),
                sab: Signature([6; 64]),
            }),
            ArbiterRequest::Complete(CompleteRequest { terms, s2: Digest([4; 32]), sa: Signature([5; 64]), se: Signature([6; 64]) }),
            ArbiterRequest::Query { s2: Digest([4; 32]) },
        ];
        for r in requests {
            assert_eq!(ArbiterRequest::decode(&r.encode()).unwrap(), r);
        }
        let decision = ArbiterResponse::Decision(Decision {
            s2: Digest([1; 32]),
            h: Digest([2; 32]),
            outcome: Outcome::Completed,
            decided_at_ms: 3,
            sig: Signature([4; 64]),
        });
        assert_eq!(ArbiterResponse::decode(&decision.encode()).unwrap(), decision);
        let ann = ArbiterAnnouncement::sign(&key, vec!["/ip4/127.0.0.1/tcp/1".into()], "t".into(), "0.1".into(), 7);
        let back = ArbiterAnnouncement::decode(&ann.encode()).unwrap();
        assert_eq!(back, ann);
        assert!(back.verify().is_ok());
    }

    #[test]
    fn garbage_and_oversize_frames_are_typed_errors() {
        assert!(matches!(ExchangeRequest::decode(&[0xff; 10]), Err(DecodeError::Protobuf(_))));
        assert!(matches!(ExchangeRequest::decode(&[]), Err(DecodeError::Missing(_))));
        let huge = vec![0u8; MAX_FRAME_BYTES + 1];
        assert!(matches!(ExchangeRequest::decode(&huge), Err(DecodeError::TooLarge { .. })));
        let mut wire = start().to_wire();
        if let Some(wire::exchange_request::Kind::Start(m)) = wire.kind.as_mut() {
            m.s1 = vec![1; 31];
        }
        assert!(matches!(ExchangeRequest::from_wire(wire), Err(DecodeError::WrongLength { field: "start.s1", expected: 32, got: 31 })));
    }

    #[test]
    fn hashed_peer_ids_are_refused_as_parties() {
        // The hashed id of the very key start() names as the arbiter: the same party, but a
        // verifier could not check its signatures.
        let hashed = crate::crypto::tests::hashed_peer_id(&Keypair::from_seed([2; 32])).to_bytes();
        let mut wire = start().to_wire();
        if let Some(wire::exchange_request::Kind::Start(m)) = wire.kind.as_mut() {
            m.arbiter = hashed.clone();
        }
        assert_eq!(ExchangeRequest::from_wire(wire), Err(DecodeError::BadPeerId("start.arbiter")));
        let mut wire = start().to_wire();
        if let Some(wire::exchange_request::Kind::Start(m)) = wire.kind.as_mut()
            && let Some(wire::want::Want::KindAmount(ka)) = m.want.as_mut().and_then(|w| w.want.as_mut())
        {
            ka.issuer = hashed;
        }
        assert_eq!(ExchangeRequest::from_wire(wire), Err(DecodeError::BadPeerId("want.issuer")));
    }

    #[test]
    fn decisions_bind_s2_h_and_the_arbiter() {
        let t = Keypair::from_seed([8; 32]);
        let (s2, h) = (Digest([1; 32]), Digest([2; 32]));
        let sig = t.sign(&canonical::decision_bytes(&h, &s2, Outcome::Cancelled));
        let d = Decision { s2, h, outcome: Outcome::Cancelled, decided_at_ms: 0, sig };
        assert!(d.verify(&t.peer_id(), &s2, &h).is_ok());
        assert_eq!(d.verify(&t.peer_id(), &Digest([9; 32]), &h), Err(DecisionError::WrongBinding));
        let other = Keypair::from_seed([9; 32]).peer_id();
        assert!(matches!(d.verify(&other, &s2, &h), Err(DecisionError::BadSignature(_))));
        let flipped = Decision { outcome: Outcome::Completed, ..d };
        assert!(matches!(flipped.verify(&t.peer_id(), &s2, &h), Err(DecisionError::BadSignature(_))));
    }
}
