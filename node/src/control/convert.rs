//! From the node's answers ([`crate::runtime`] types) to the control API's display messages.

use valex_proto::control as pb;
use valex_proto::control::receipt_view;

use crate::exchange::{Acquired, Evidence, Receipt};
use crate::runtime::{ArbiterInfo, EventError, ExchangeResult, NodeEvent, PeerInfo, Role, SessionInfo, ValueInfo};

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
