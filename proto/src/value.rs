//! Electronic values (protocol.md §3): issued under an issuer's key, immutable, identified by
//! `id = H(issue bytes)`.
//!
//! ```
//! use valex_proto::{crypto::Keypair, value::{IssuerPolicy, Value, ValueError}};
//!
//! let bank = Keypair::from_seed([3; 32]);
//! let note = Value::issue(&bank, "jpy", 1000, Vec::new(), [1; 16]).unwrap();
//! assert!(note.verify(&IssuerPolicy::only([bank.peer_id()])).is_ok());
//!
//! let stranger = Keypair::from_seed([4; 32]).peer_id();
//! assert!(matches!(
//!     note.verify(&IssuerPolicy::only([stranger])),
//!     Err(ValueError::UnknownIssuer { .. })
//! ));
//! ```

use std::collections::BTreeSet;

use libp2p_identity::PeerId;

use crate::canonical;
use crate::crypto::{self, Keypair};
use crate::digest::{Digest, Signature};
use crate::limits::{MAX_KIND_BYTES, MAX_PAYLOAD_BYTES};

/// A value's id: `H(valex/issue/v1 ‖ issuer ‖ kind ‖ amount ‖ payload ‖ serial)`.
pub type ValueId = Digest;

/// An issued electronic value. Construct it with [`Value::issue`] or decode it from the wire
/// with [`Value::from_wire`]; either way its fields are within the size limits and its `id` is
/// the one its fields hash to. [`Value::verify`] checks the issuer's signature and policy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Value {
    issuer: PeerId,
    kind: String,
    amount: u64,
    payload: Vec<u8>,
    serial: [u8; 16],
    issuer_sig: Signature,
    id: ValueId,
}

/// Every way a value can be bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The kind is longer than 64 bytes.
    #[error("value kind is {len} bytes, more than the {max}-byte limit")]
    KindTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is larger than 16 KiB.
    #[error("value payload is {len} bytes, more than the {max}-byte limit")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field has the wrong size or encoding.
    #[error("malformed value: {0}")]
    Malformed(&'static str),
    /// The id carried with the value is not the hash of its fields.
    #[error("value id {claimed} does not match its contents (they hash to {actual})")]
    IdMismatch {
        /// The id the value came with.
        claimed: ValueId,
        /// The id its fields hash to.
        actual: ValueId,
    },
    /// The issuer's signature does not verify.
    #[error("value {id}: issuer signature does not verify")]
    BadSignature {
        /// The value.
        id: ValueId,
    },
    /// The issuer is outside the verifier's policy.
    #[error("value {id}: issuer {issuer} is not accepted")]
    UnknownIssuer {
        /// The value.
        id: ValueId,
        /// Its issuer.
        issuer: PeerId,
    },
}

/// Which issuers a node accepts values from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IssuerPolicy {
    /// Any issuer whose signature checks out.
    #[default]
    Any,
    /// Only these issuers.
    Only(BTreeSet<PeerId>),
}

impl IssuerPolicy {
    /// A policy accepting exactly `issuers`.
    pub fn only(issuers: impl IntoIterator<Item = PeerId>) -> Self {
        Self::Only(issuers.into_iter().collect())
    }

    /// Whether `issuer` is accepted.
    pub fn accepts(&self, issuer: &PeerId) -> bool {
        match self {
            Self::Any => true,
            Self::Only(set) => set.contains(issuer),
        }
    }
}

impl Value {
    /// Issues a value under `issuer`'s key. `serial` should be 16 fresh random bytes.
    pub fn issue(issuer: &Keypair, kind: &str, amount: u64, payload: Vec<u8>, serial: [u8; 16]) -> Result<Self, ValueError> {
        check_sizes(kind, &payload)?;
        let peer = issuer.peer_id();
        let bytes = canonical::issue_bytes(&peer, kind, amount, &payload, &serial);
        let issuer_sig = issuer.sign(&bytes);
        Ok(Self { issuer: peer, kind: kind.to_owned(), amount, payload, serial, issuer_sig, id: Digest::of(&bytes) })
    }

    /// Decodes a value from the wire, checking sizes and that its id is the hash of its fields.
    /// The signature is checked by [`Value::verify`].
    pub fn from_wire(wire: crate::wire::Value) -> Result<Self, ValueError> {
        check_sizes(&wire.kind, &wire.payload)?;
        let issuer = PeerId::from_bytes(&wire.issuer).map_err(|_| ValueError::Malformed("issuer is not a peer id"))?;
        let serial: [u8; 16] = wire.serial.as_slice().try_into().map_err(|_| ValueError::Malformed("serial must be 16 bytes"))?;
        let issuer_sig = Signature::from_slice(&wire.issuer_sig).ok_or(ValueError::Malformed("issuer_sig must be 64 bytes"))?;
        let claimed = Digest::from_slice(&wire.id).ok_or(ValueError::Malformed("id must be 32 bytes"))?;
        let actual = Digest::of(&canonical::issue_bytes(&issuer, &wire.kind, wire.amount, &wire.payload, &serial));
        if claimed != actual {
            return Err(ValueError::IdMismatch { claimed, actual });
        }
        Ok(Self { issuer, kind: wire.kind, amount: wire.amount, payload: wire.payload, serial, issuer_sig, id: actual })
    }

    /// The wire form.
    pub fn to_wire(&self) -> crate::wire::Value {
        crate::wire::Value {
            issuer: self.issuer.to_bytes(),
            kind: self.kind.clone(),
            amount: self.amount,
            payload: self.payload.clone(),
            serial: self.serial.to_vec(),
            issuer_sig: self.issuer_sig.0.to_vec(),
            id: self.id.0.to_vec(),
        }
    }

    /// Checks the issuer's signature and that `policy` accepts the issuer.
    pub fn verify(&self, policy: &IssuerPolicy) -> Result<(), ValueError> {
        crypto::verify(&self.issuer, &self.issue_bytes(), &self.issuer_sig).map_err(|_| ValueError::BadSignature { id: self.id })?;
        if !policy.accepts(&self.issuer) {
            return Err(ValueError::UnknownIssuer { id: self.id, issuer: self.issuer });
        }
        Ok(())
    }

    /// The bytes the issuer signed.
    pub fn issue_bytes(&self) -> Vec<u8> {
        canonical::issue_bytes(&self.issuer, &self.kind, self.amount, &self.payload, &self.serial)
    }

    /// Recomputes the id from the fields.
    pub fn compute_id(&self) -> ValueId {
        Digest::of(&self.issue_bytes())
    }

    /// The value's id.
    pub fn id(&self) -> ValueId {
        self.id
    }
    /// Who issued it.
    pub fn issuer(&self) -> PeerId {
        self.issuer
    }
    /// Its kind, e.g. `ticket`.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// Its amount.
    pub fn amount(&self) -> u64 {
        self.amount
    }
    /// Its payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// Its serial.
    pub fn serial(&self) -> [u8; 16] {
        self.serial
    }
    /// The issuer's signature.
    pub fn issuer_sig(&self) -> Signature {
        self.issuer_sig
    }
}

/// A value is serialized as its protobuf wire form ([`Value::to_wire`]): raw bytes in binary
/// formats, lower-case hex in human-readable ones (JSON). Deserializing goes back through
/// [`Value::from_wire`] (sizes, id = hash of the fields) and then checks the issuer's signature
/// (not any issuer policy), so stored bytes that were tampered with do not load.
///
/// ```
/// use valex_proto::{crypto::Keypair, value::Value};
///
/// let note = Value::issue(&Keypair::from_seed([3; 32]), "jpy", 1000, Vec::new(), [1; 16]).unwrap();
/// let json = serde_json::to_string(&note).unwrap();
/// assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), note);
/// ```
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use prost::Message as _;
        let bytes = self.to_wire().encode_to_vec();
        if serializer.is_human_readable() { serializer.serialize_str(&hex::encode(bytes)) } else { serializer.serialize_bytes(&bytes) }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(ValueVisitor)
        } else {
            deserializer.deserialize_bytes(ValueVisitor)
        }
    }
}

/// Decodes a value from its wire bytes and checks it whole (see `impl Deserialize for Value`).
struct ValueVisitor;

impl ValueVisitor {
    fn decode<E: serde::de::Error>(bytes: &[u8]) -> Result<Value, E> {
        use prost::Message as _;
        if bytes.len() > crate::limits::MAX_FRAME_BYTES {
            return Err(E::custom(format_args!(
                "value of {} bytes is over the {}-byte limit",
                bytes.len(),
                crate::limits::MAX_FRAME_BYTES
            )));
        }
        let wire = crate::wire::Value::decode(bytes).map_err(|e| E::custom(format_args!("undecodable value: {e}")))?;
        let value = Value::from_wire(wire).map_err(E::custom)?;
        value.verify(&IssuerPolicy::Any).map_err(E::custom)?;
        Ok(value)
    }
}

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value's protobuf wire bytes, or their hex")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Value, E> {
        if text.len() > 2 * crate::limits::MAX_FRAME_BYTES {
            return Err(E::custom(format_args!("value hex of {} characters is over the limit", text.len())));
        }
        let bytes = hex::decode(text).map_err(|e| E::custom(format_args!("value is not hex: {e}")))?;
        Self::decode(&bytes)
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Value, E> {
        Self::decode(bytes)
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({} {}:{})", self.id.short(), self.kind, self.amount)
    }
}

fn check_sizes(kind: &str, payload: &[u8]) -> Result<(), ValueError> {
    if kind.len() > MAX_KIND_BYTES {
        return Err(ValueError::KindTooLong { len: kind.len(), max: MAX_KIND_BYTES });
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ValueError::PayloadTooLarge { len: payload.len(), max: MAX_PAYLOAD_BYTES });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Keypair {
        Keypair::from_seed([5; 32])
    }

    #[test]
    fn issued_value_round_trips_through_the_wire() {
        let value = Value::issue(&issuer(), "ticket", 2, b"row 3".to_vec(), [1; 16]).unwrap();
        let back = Value::from_wire(value.to_wire()).unwrap();
        assert_eq!(back, value);
        assert!(back.verify(&IssuerPolicy::Any).is_ok());
    }

    #[test]
    fn tampered_amount_is_an_id_mismatch() {
        let value = Value::issue(&issuer(), "jpy", 100, Vec::new(), [1; 16]).unwrap();
        let mut wire = value.to_wire();
        wire.amount = 1_000_000;
        assert!(matches!(Value::from_wire(wire), Err(ValueError::IdMismatch { .. })));
    }

    #[test]
    fn tampered_amount_with_recomputed_id_is_a_bad_signature() {
        let value = Value::issue(&issuer(), "jpy", 100, Vec::new(), [1; 16]).unwrap();
        let mut wire = value.to_wire();
        wire.amount = 1_000_000;
        let forged_id = Digest::of(&canonical::issue_bytes(&value.issuer(), "jpy", 1_000_000, &[], &[1; 16]));
        wire.id = forged_id.0.to_vec();
        let forged = Value::from_wire(wire).unwrap();
        assert!(matches!(forged.verify(&IssuerPolicy::Any), Err(ValueError::BadSignature { .. })));
    }

    #[test]
    fn oversized_kind_and_payload_are_refused() {
        let long_kind = "k".repeat(MAX_KIND_BYTES + 1);
        assert!(matches!(Value::issue(&issuer(), &long_kind, 1, Vec::new(), [0; 16]), Err(ValueError::KindTooLong { len: 65, max: 64 })));
        assert!(matches!(
            Value::issue(&issuer(), "k", 1, vec![0; MAX_PAYLOAD_BYTES + 1], [0; 16]),
            Err(ValueError::PayloadTooLarge { .. })
        ));
        let mut wire = Value::issue(&issuer(), "k", 1, Vec::new(), [0; 16]).unwrap().to_wire();
        wire.payload = vec![0; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(Value::from_wire(wire), Err(ValueError::PayloadTooLarge { .. })));
    }

    #[test]
    fn unknown_issuer_is_refused_under_a_policy() {
        let value = Value::issue(&issuer(), "k", 1, Vec::new(), [0; 16]).unwrap();
        let other = Keypair::from_seed([6; 32]).peer_id();
        assert!(matches!(value.verify(&IssuerPolicy::only([other])), Err(ValueError::UnknownIssuer { .. })));
        assert!(value.verify(&IssuerPolicy::only([issuer().peer_id()])).is_ok());
    }

    #[test]
    fn malformed_fields_are_refused() {
        let good = Value::issue(&issuer(), "k", 1, Vec::new(), [0; 16]).unwrap().to_wire();
        let mut short_serial = good.clone();
        short_serial.serial = vec![0; 15];
        assert!(matches!(Value::from_wire(short_serial), Err(ValueError::Malformed(_))));
        let mut bad_issuer = good.clone();
        bad_issuer.issuer = vec![1, 2, 3];
        assert!(matches!(Value::from_wire(bad_issuer), Err(ValueError::Malformed(_))));
        let mut bad_sig = good;
        bad_sig.issuer_sig = vec![0; 10];
        assert!(matches!(Value::from_wire(bad_sig), Err(ValueError::Malformed(_))));
    }
}
