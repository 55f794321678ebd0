//! The driver's [`Outbox`] over the swarm: requests go out with every address known for their
//! addressee and are remembered until answered; replies go back on their request's channel.
//!
//! Outbound requests that fail (dial failure, timeout, closed connection) are simply lost
//! messages: the core's retry timers send them again.

use std::collections::HashMap;

use libp2p::Swarm;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use valex_proto::PeerId;
use valex_proto::message::{ExchangeRequest, ExchangeResponse};

use super::observe::{SendObserver, Sent};
use super::write_ahead::Outbox;
use crate::exchange::{Outgoing, SessionId};
use crate::net::{Discovery, NodeBehaviour};

/// Where the reply to an inbound exchange request goes: its channel, and the requester.
pub(crate) struct ReplyTo {
    pub(crate) channel: ResponseChannel<ExchangeResponse>,
    pub(crate) peer: PeerId,
}

/// The swarm, what the node knows of other peers, and the requests awaiting their responses.
pub(crate) struct Network {
    pub(crate) swarm: Swarm<NodeBehaviour>,
    pub(crate) discovery: Discovery,
    /// Outbound exchange requests awaiting their response, by session.
    pub(crate) pending_exchange: HashMap<OutboundRequestId, SessionId>,
    /// Outbound arbiter requests awaiting their response, by session.
    pub(crate) pending_arbiter: HashMap<OutboundRequestId, SessionId>,
    /// Told of every message before the swarm takes it ([`NodeConfig::observe_sends`](super::NodeConfig)).
    pub(crate) observe_sends: Option<SendObserver>,
}

impl Outbox for Network {
    type ReplyTo = ReplyTo;

    fn reply(&mut self, to: ReplyTo, response: ExchangeResponse) {
        let ReplyTo { channel, peer } = to;
        if let Some(observer) = &self.observe_sends {
            observer.observe(Sent::Reply { to: peer, response: &response });
        }
        if self.swarm.behaviour_mut().exchange.send_response(channel, response).is_err() {
            tracing::debug!(%peer, "response not sent: the connection closed");
        }
    }

    fn send(&mut self, outgoing: Outgoing) {
        if let Some(observer) = &self.observe_sends {
            observer.observe(Sent::Request(&outgoing));
        }
        match outgoing {
            Outgoing::Exchange { to, session, request } => {
                let addrs = self.discovery.book().addrs(&to).to_vec();
                tracing::debug!(to = %to, kind = request_name(&request), "sending");
                let id = self.swarm.behaviour_mut().exchange.send_request_with_addresses(&to, Ok(request), addrs);
                self.pending_exchange.insert(id, session);
            }
            Outgoing::Arbiter { to, session, request } => {
                let addrs = self.discovery.addrs(&to);
                if addrs.is_empty() && !self.swarm.is_connected(&to) {
                    // No known address: look the arbiter up in the DHT (the retry will use it).
                    self.swarm.behaviour_mut().kad.get_closest_peers(to);
                }
                tracing::debug!(to = %to, "sending arbiter request");
                let id = self.swarm.behaviour_mut().arbiter.send_request_with_addresses(&to, Ok(request), addrs);
                self.pending_arbiter.insert(id, session);
            }
        }
    }
}

/// The protocol's name for a request, for logs.
pub(crate) fn request_name(request: &ExchangeRequest) -> &'static str {
    match request {
        ExchangeRequest::Start(_) => "M1",
        ExchangeRequest::Confirm(_) => "M3",
    }
}
