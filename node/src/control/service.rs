//! [`ControlService`]: the `valex.v1.Control` gRPC service over a [`Node`] handle.

use std::time::Duration;

use libp2p::Multiaddr;
use tonic::{Request, Response, Status};
use valex_proto::message::Want;

use super::convert::{self, parse_digest, parse_peer};
use super::pb::{self, control_server::Control, start_exchange_request};
use super::status::{invalid_argument, status_of};
use crate::runtime::{Node, StartExchange};

/// The control API of one node: every call is a command on its [`Node`] handle.
#[derive(Debug, Clone)]
pub struct ControlService {
    node: Node,
}

impl ControlService {
    /// The service driving `node`.
    pub fn new(node: Node) -> Self {
        Self { node }
    }
}

/// The exchange command as the node takes it; malformed fields are `InvalidArgument`.
fn exchange_request(command: pb::StartExchangeRequest) -> Result<StartExchange, Status> {
    let peer = parse_peer("peer", &command.peer).map_err(invalid_argument)?;
    let give = parse_digest("value id to give", &command.give).map_err(invalid_argument)?;
    let want = match command.want {
        Some(start_exchange_request::Want::WantValue(id)) => Want::Value(parse_digest("wanted value id", &id).map_err(invalid_argument)?),
        Some(start_exchange_request::Want::WantKind(kind)) => {
            if kind.kind.is_empty() {
                return Err(Status::invalid_argument("the wanted kind is empty"));
            }
            let issuer = match kind.issuer.as_str() {
                "" => None,
                text => Some(parse_peer("wanted issuer", text).map_err(invalid_argument)?),
            };
            Want::KindAmount { kind: kind.kind, amount: kind.amount, issuer }
        }
        None => return Err(Status::invalid_argument("say what you want in exchange: a value id or a kind and amount")),
    };
    let arbiter = match command.arbiter.as_str() {
        "" => None,
        text => Some(parse_peer("arbiter", text).map_err(invalid_argument)?),
    };
    Ok(StartExchange { peer, give, want, arbiter, ttl_ms: command.ttl_ms })
}

/// The stream [`ControlService::events`] answers with.
type EventStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::NodeEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Control for ControlService {
    type EventsStream = EventStream;

    async fn events(&self, _request: Request<pb::EventsRequest>) -> Result<Response<EventStream>, Status> {
        use futures::StreamExt;
        // Subscribed before answering, so the caller misses nothing published after its call.
        let events = self.node.events().into_stream().map(|item| Ok(convert::node_event(item)));
        Ok(Response::new(Box::pin(events)))
    }

    async fn node_info(&self, _request: Request<pb::NodeInfoRequest>) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let addrs = self.node.listen_addrs().await.map_err(status_of)?;
        Ok(Response::new(pb::NodeInfoResponse {
            peer_id: self.node.peer_id().to_string(),
            listen_addrs: addrs.iter().map(ToString::to_string).collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn issue_value(&self, request: Request<pb::IssueValueRequest>) -> Result<Response<pb::ValueInfo>, Status> {
        let pb::IssueValueRequest { kind, amount, payload } = request.into_inner();
        if kind.is_empty() {
            return Err(Status::invalid_argument("the value kind is empty"));
        }
        let value = self.node.issue(kind, amount, payload).await.map_err(status_of)?;
        let info = self.node.value(value.id()).await.map_err(status_of)?;
        // Just issued, so it is in the vault; answer from the value itself should it have moved since.
        let info = info.map(|info| convert::value_info(&info)).unwrap_or_else(|| pb::ValueInfo {
            value: Some((&value).into()),
            acquired: "issued".to_owned(),
            ..pb::ValueInfo::default()
        });
        Ok(Response::new(info))
    }

    async fn list_values(&self, _request: Request<pb::ListValuesRequest>) -> Result<Response<pb::ListValuesResponse>, Status> {
        let values = self.node.values().await.map_err(status_of)?;
        Ok(Response::new(pb::ListValuesResponse { values: values.iter().map(convert::value_info).collect() }))
    }

    async fn show_value(&self, request: Request<pb::ShowValueRequest>) -> Result<Response<pb::ValueInfo>, Status> {
        let text = request.into_inner().id;
        let id = parse_digest("value id", &text).map_err(invalid_argument)?;
        match self.node.value(id).await.map_err(status_of)? {
            Some(info) => Ok(Response::new(convert::value_info(&info))),
            None => Err(Status::not_found(format!("no value {id} in the vault"))),
        }
    }

    async fn exchange(&self, request: Request<pb::StartExchangeRequest>) -> Result<Response<pb::ExchangeResult>, Status> {
        let command = exchange_request(request.into_inner())?;
        let result = self.node.exchange(command).await.map_err(status_of)?;
        Ok(Response::new(convert::exchange_result(&result)))
    }

    async fn start_exchange(&self, request: Request<pb::StartExchangeRequest>) -> Result<Response<pb::StartExchangeResponse>, Status> {
        let command = exchange_request(request.into_inner())?;
        let session = self.node.start_exchange(command).await.map_err(status_of)?;
        Ok(Response::new(pb::StartExchangeResponse { session: session.to_hex() }))
    }

    async fn wait_session(&self, request: Request<pb::WaitSessionRequest>) -> Result<Response<pb::ExchangeResult>, Status> {
        let request = request.into_inner();
        let session = pb_parse_session(&request.session)?;
        let timeout = Duration::from_millis(if request.timeout_ms == 0 { 60_000 } else { request.timeout_ms.min(600_000) });
        match tokio::time::timeout(timeout, self.node.wait_session(session)).await {
            Ok(result) => Ok(Response::new(convert::exchange_result(&result.map_err(status_of)?))),
            Err(_) => {
                // Not ended yet: report where it stands.
                let sessions = self.node.sessions().await.map_err(status_of)?;
                let info = sessions
                    .iter()
                    .find(|s| s.id == session)
                    .ok_or_else(|| Status::not_found(format!("unknown session {}", session.to_hex())))?;
                Ok(Response::new(pb::ExchangeResult {
                    session: session.to_hex(),
                    outcome: "open".into(),
                    phase: info.phase.to_string(),
                    ..pb::ExchangeResult::default()
                }))
            }
        }
    }

    async fn sessions(&self, _request: Request<pb::SessionsRequest>) -> Result<Response<pb::SessionsResponse>, Status> {
        let sessions = self.node.sessions().await.map_err(status_of)?;
        Ok(Response::new(pb::SessionsResponse { sessions: sessions.iter().map(convert::session_info).collect() }))
    }

    async fn arbiters(&self, _request: Request<pb::ArbitersRequest>) -> Result<Response<pb::ArbitersResponse>, Status> {
        let arbiters = self.node.arbiters().await.map_err(status_of)?;
        Ok(Response::new(pb::ArbitersResponse { arbiters: arbiters.iter().map(convert::arbiter_info).collect() }))
    }

    async fn peers(&self, _request: Request<pb::PeersRequest>) -> Result<Response<pb::PeersResponse>, Status> {
        let peers = self.node.peers().await.map_err(status_of)?;
        Ok(Response::new(pb::PeersResponse { peers: peers.iter().map(convert::peer_info).collect() }))
    }

    async fn dial(&self, request: Request<pb::DialRequest>) -> Result<Response<pb::DialResponse>, Status> {
        let text = request.into_inner().addr;
        let addr: Multiaddr = text.trim().parse().map_err(|_| Status::invalid_argument(format!("invalid multiaddr {text:?}")))?;
        self.node.dial(addr).await.map_err(status_of)?;
        Ok(Response::new(pb::DialResponse {}))
    }
}

fn pb_parse_session(text: &str) -> Result<valex_proto::Digest, Status> {
    parse_digest("session id", text).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(want: start_exchange_request::Want) -> pb::StartExchangeRequest {
        pb::StartExchangeRequest {
            peer: valex_proto::crypto::Keypair::from_seed([2; 32]).peer_id().to_string(),
            give: "11".repeat(32),
            want: Some(want),
            arbiter: String::new(),
            ttl_ms: None,
        }
    }

    #[test]
    fn exchange_commands_are_checked() {
        let ok = exchange_request(command(start_exchange_request::Want::WantKind(pb::WantKind {
            kind: "voucher".into(),
            amount: 5,
            issuer: String::new(),
        })))
        .unwrap();
        assert!(matches!(ok.want, Want::KindAmount { amount: 5, issuer: None, .. }));
        assert!(ok.arbiter.is_none());

        let bad_want = exchange_request(command(start_exchange_request::Want::WantValue("xyz".into()))).unwrap_err();
        assert_eq!(bad_want.code(), tonic::Code::InvalidArgument);
        assert!(bad_want.message().contains("wanted value id"), "{}", bad_want.message());

        let mut bad_peer = command(start_exchange_request::Want::WantValue("22".repeat(32)));
        bad_peer.peer = "not-a-peer".into();
        assert_eq!(exchange_request(bad_peer).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
