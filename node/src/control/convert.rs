//! Between the node's types and the control API's text: domain values and the node's answers
//! ([`crate::runtime`] types) become display messages; identifiers a user typed are parsed back,
//! with an error fit to show them.

use valex_proto::message::{Decision, Outcome, Terms};
use valex_proto::value::Value;
use valex_proto::{Digest, PeerId};

use super::pb::{self, receipt_view};
use crate::exchange::{Acquired, Evidence, Receipt};
use crate::runtime::{ArbiterInfo, EventError, ExchangeResult, NodeEvent, PeerInfo, Role, SessionInfo, ValueInfo};

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

/// Serializes bytes as lower-case hex (named by the generated types' serde derive, for payloads).
pub(crate) fn serialize_hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

impl From<&Value> for pb::ValueView {
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

impl From<&Terms> for pb::TermsView {
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

impl From<&Decision> for pb::DecisionView {
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
fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Cancelled => "cancelled",
        Outcome::Completed => "completed",
    }
}

/// A receipt for display.
pub fn receipt(receipt: &Receipt) -> pb::ReceiptView {
    let evidence = match &receipt.evidence {
        Evidence::Secret(r2) => receipt_view::Evidence::R2(hex::encode(r2)),
        Evidence::Decision(decision) => receipt_view::Evidence::Decision(decision.into()),
    };
    pb::ReceiptView {
        terms: Some((&receipt.terms).into()),
        s2: receipt.s2.to_hex(),
        sa: receipt.sa.to_hex(),
        se: receipt.se.map(|se| se.to_hex()).unwrap_or_default(),
        evidence: Some(evidence),
    }
}

/// A vault entry for display.
pub fn value_info(info: &ValueInfo) -> pb::ValueInfo {
    let (acquired, session) = match &info.acquired {
        Acquired::Issued => ("issued", String::new()),
        Acquired::Exchange(s1) => ("exchange", s1.to_hex()),
        Acquired::Returned(s1) => ("returned", s1.to_hex()),
    };
    pb::ValueInfo {
        value: Some((&info.value).into()),
        acquired: acquired.to_owned(),
        acquired_session: session,
        locked_by: info.locked_by.map(|s| s.to_hex()).unwrap_or_default(),
        receipt: info.receipt.as_ref().map(receipt),
    }
}

/// An exchange's end for display.
pub fn exchange_result(result: &ExchangeResult) -> pb::ExchangeResult {
    pb::ExchangeResult {
        session: result.session.to_hex(),
        outcome: result.outcome.as_str().to_owned(),
        phase: result.phase.to_owned(),
        settled_by_arbiter: result.settled_by_arbiter,
        received: result.received.as_ref().map(Into::into),
        receipt: result.receipt.as_ref().map(receipt),
        aborted_reason: result.aborted_reason.unwrap_or_default().to_owned(),
    }
}

/// A session for display.
pub fn session_info(session: &SessionInfo) -> pb::SessionInfo {
    pb::SessionInfo {
        id: session.id.to_hex(),
        role: session.role.to_owned(),
        peer: session.peer.to_string(),
        arbiter: session.arbiter.to_string(),
        phase: session.phase.to_owned(),
        outcome: session.outcome.as_str().to_owned(),
        expires_at_ms: session.expires_at_ms,
        s2: session.s2.map(|s2| s2.to_hex()).unwrap_or_default(),
        settled_by_arbiter: session.settled_by_arbiter,
    }
}

/// An arbiter directory entry for display.
pub fn arbiter_info(arbiter: &ArbiterInfo) -> pb::ArbiterInfo {
    pb::ArbiterInfo {
        peer: arbiter.peer.to_string(),
        addrs: arbiter.addrs.iter().map(ToString::to_string).collect(),
        name: arbiter.name.clone().unwrap_or_default(),
        via_kademlia: arbiter.via_kademlia,
        via_gossipsub: arbiter.via_gossipsub,
        last_seen_ms: arbiter.last_seen_ms,
    }
}

/// A peer for display.
pub fn peer_info(peer: &PeerInfo) -> pb::PeerInfo {
    pb::PeerInfo { peer: peer.peer.to_string(), addrs: peer.addrs.iter().map(ToString::to_string).collect(), connected: peer.connected }
}

/// A node event as the control API streams it; a lag becomes a `lagged` event.
pub fn node_event(item: Result<NodeEvent, EventError>) -> pb::NodeEvent {
    let base = |kind: &str| pb::NodeEvent { kind: kind.to_owned(), ..pb::NodeEvent::default() };
    match item {
        Ok(NodeEvent::SessionStarted { session, role, peer }) => pb::NodeEvent {
            session: session.to_hex(),
            role: match role {
                Role::Initiator => "initiator",
                Role::Responder => "responder",
            }
            .to_owned(),
            peer: peer.to_string(),
            ..base("session_started")
        },
        Ok(NodeEvent::SessionAgreed { session }) => pb::NodeEvent { session: session.to_hex(), ..base("session_agreed") },
        Ok(NodeEvent::ValueReceived { value, session }) => {
            pb::NodeEvent { session: session.to_hex(), value: value.to_hex(), ..base("value_received") }
        }
        Ok(NodeEvent::ValueGiven { value, session }) => {
            pb::NodeEvent { session: session.to_hex(), value: value.to_hex(), ..base("value_given") }
        }
        Ok(NodeEvent::SessionEnded { session, result }) => {
            pb::NodeEvent { session: session.to_hex(), result: Some(exchange_result(&result)), ..base("session_ended") }
        }
        Ok(NodeEvent::ArbiterFound { peer }) => pb::NodeEvent { peer: peer.to_string(), ..base("arbiter_found") },
        Ok(NodeEvent::ArbiterLost { peer }) => pb::NodeEvent { peer: peer.to_string(), ..base("arbiter_lost") },
        Err(EventError::Lagged { missed }) => pb::NodeEvent { missed, ..base("lagged") },
        Err(EventError::Closed) => base("closed"),
    }
}

#[cfg(test)]
mod tests {
    use valex_proto::crypto::Keypair;

    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ids_say_what_they_are() {
        let key = Keypair::from_seed([3; 32]);
        let value = Value::issue(&key, "voucher", 5, vec![1, 2], [9; 16]).unwrap();
        let view = pb::ValueView::from(&value);
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
        let json = serde_json::to_value(pb::ValueView::from(&value)).unwrap();
        assert_eq!(json["payload"], "abcd");
        assert_eq!(json["amount"], 5);
    }
}
