//! The local control API (`valex.v1.Control`, proto/valex/v1/control.proto): the tonic client and
//! server the `valex` CLI and its daemon speak, and conversions from the domain types to its
//! display messages.
//!
//! Identifiers travel as text: value ids, session ids, digests and signatures as lower-case hex,
//! peers as base58 PeerIds. [`parse_digest`] and [`parse_peer`] turn them back, with an error
//! message fit to show a user.
//!
//! ```
//! use valex_proto::control::{ValueView, parse_digest};
//! use valex_proto::{crypto::Keypair, value::Value};
//!
//! let ticket = Value::issue(&Keypair::from_seed([1; 32]), "ticket", 1, b"12A".to_vec(), [0; 16]).unwrap();
//! let view = ValueView::from(&ticket);
//! assert_eq!(parse_digest("value id", &view.id).unwrap(), ticket.id());
//! assert!(parse_digest("value id", "zz").is_err());
//! ```

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/control/valex.v1.rs"));
}

pub use generated::*;

use libp2p_identity::PeerId;

use crate::Digest;
use crate::message::{Decision, Outcome, Terms};
use crate::value::Value;

/// A user-supplied identifier that does not parse; its `Display` is one clear line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// Not 64 hex characters.
    #[error("invalid {what} {text:?}: expected 64 hex characters")]
    Digest {
        /// What was being parsed, e.g. "value id".
        what: &'static str,
        /// The text given.
        text: String,
    },
    /// Not a PeerId.
    #[error("invalid {what} {text:?}: expected a base58 peer id (12D3KooW…)")]
    Peer {
        /// What was being parsed, e.g. "peer".
        what: &'static str,
        /// The text given.
        text: String,
    },
}

/// Parses a 64-hex-character digest (a value id, a session id); `what` names it in the error.
pub fn parse_digest(what: &'static str, text: &str) -> Result<Digest, ParseIdError> {
    Digest::from_hex(text.trim()).ok_or_else(|| ParseIdError::Digest { what, text: text.to_owned() })
}

/// Parses a base58 PeerId; `what` names it in the error.
pub fn parse_peer(what: &'static str, text: &str) -> Result<PeerId, ParseIdError> {
    text.trim().parse().map_err(|_| ParseIdError::Peer { what, text: text.to_owned() })
}

/// Serializes bytes as lower-case hex (used by the generated types' serde derive for payloads).
pub fn serialize_hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

impl From<&Value> for ValueView {
    fn from(value: &Value) -> Self {
        Self {
            id: value.id().to_hex(),
            issuer: value.issuer().to_string(),
            kind: value.kind().to_owned(),
            amount: value.amount(),
            payload: value.payload().to_vec(),
            serial: hex::encode(value.serial()),
            issuer_sig: value.issuer_sig().to_hex(),
        }
    }
}

impl From<&Terms> for TermsView {
    fn from(terms: &Terms) -> Self {
        Self {
            s1: terms.s1.to_hex(),
            initiator: terms.initiator.to_string(),
            responder: terms.responder.to_string(),
            arbiter: terms.arbiter.to_string(),
            v1_id: terms.v1_id.to_hex(),
            v2_id: terms.v2_id.to_hex(),
            expires_at_ms: terms.expires_at_ms,
            h: terms.h().to_hex(),
        }
    }
}

impl From<&Decision> for DecisionView {
    fn from(decision: &Decision) -> Self {
        Self {
            s2: decision.s2.to_hex(),
            h: decision.h.to_hex(),
            outcome: outcome_name(decision.outcome).to_owned(),
            decided_at_ms: decision.decided_at_ms,
            sig: decision.sig.to_hex(),
        }
    }
}

/// An arbiter outcome in lower case, as the control API writes it.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Cancelled => "cancelled",
        Outcome::Completed => "completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    #[test]
    fn ids_round_trip_and_bad_ids_say_what_they_are() {
        let key = Keypair::from_seed([3; 32]);
        let value = Value::issue(&key, "voucher", 5, vec![1, 2], [9; 16]).unwrap();
        let view = ValueView::from(&value);
        assert_eq!(parse_digest("value id", &view.id).unwrap(), value.id());
        assert_eq!(parse_peer("issuer", &view.issuer).unwrap(), key.peer_id());
        let err = parse_digest("value id", "abc").unwrap_err().to_string();
        assert!(err.contains("value id") && err.contains("64 hex"), "{err}");
        assert!(parse_peer("peer", "nope").unwrap_err().to_string().contains("peer"));
    }

    #[test]
    fn views_serialize_payload_as_hex() {
        let key = Keypair::from_seed([3; 32]);
        let value = Value::issue(&key, "voucher", 5, vec![0xab, 0xcd], [9; 16]).unwrap();
        let json = serde_json::to_value(ValueView::from(&value)).unwrap();
        assert_eq!(json["payload"], "abcd");
        assert_eq!(json["amount"], 5);
    }
}
