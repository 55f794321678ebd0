//! Serving the control API on a loopback TCP port.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::pb::control_server::ControlServer;
use super::service::ControlService;
use crate::runtime::Node;

/// Why the control server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The control API is local: only loopback addresses are allowed.
    #[error("the control address {0} is not a loopback address (use 127.0.0.1:PORT)")]
    NotLoopback(SocketAddr),
    /// Binding the port failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running control server; [`ControlHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct ControlHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ControlHandle {
    /// The address it listens on (with the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting calls, lets calls in progress finish, and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "control server ended with an error"),
            Err(error) => tracing::warn!(%error, "control server task failed"),
        }
    }
}

/// Serves the control API of `node` on `addr` (a loopback address; port 0 picks a free one), on
/// the current tokio runtime.
///
/// ```no_run
/// # async fn run(node: valex_node::runtime::Node) -> Result<(), valex_node::control::ControlError> {
/// let control = valex_node::control::serve(node, "127.0.0.1:0".parse().unwrap()).await?;
/// println!("control API on {}", control.local_addr());
/// control.shutdown().await;
/// # Ok(()) }
/// ```
pub async fn serve(node: Node, addr: SocketAddr) -> Result<ControlHandle, ControlError> {
    if !addr.ip().is_loopback() {
        return Err(ControlError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr).await.map_err(|source| ControlError::Bind { addr, source })?;
    let local_addr = listener.local_addr().map_err(|source| ControlError::Bind { addr, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = ControlServer::new(ControlService::new(node));
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%local_addr, "control API listening");
    Ok(ControlHandle { local_addr, stop: Some(stop), task })
}
