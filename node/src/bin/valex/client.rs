//! Finding and calling the daemon's control API.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use tonic::transport::{Channel, Endpoint};
use valex_node::control::pb::control_client::ControlClient;

use crate::identity;

/// How long to wait for the TCP connection to the daemon (it is local: this only bounds a hang).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected control client.
pub type Client = ControlClient<Channel>;

/// Connects to the daemon: at `--control ADDR` if given, else at the address in
/// `<data-dir>/control.addr`.
pub async fn connect(data_dir: &Path, flag: Option<SocketAddr>) -> Result<Client> {
    let addr = match flag {
        Some(addr) => addr,
        None => match identity::read_control_addr(data_dir)? {
            Some(addr) => addr,
            None => bail!("no daemon running for {} (no {}): start one with `valex run`", data_dir.display(), identity::CONTROL_ADDR_FILE),
        },
    };
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| anyhow!("invalid control address {addr}"))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|_| anyhow!("cannot reach the daemon at {addr}: is `valex run` running for {}?", data_dir.display()))?;
    Ok(ControlClient::new(channel))
}

/// One clear line for a failed call.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    // A status the daemon sent carries only a message; one the client made up from a broken
    // connection carries the transport error as its source.
    let from_transport = std::error::Error::source(&status).is_some();
    let message = status.message();
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal if from_transport => {
            anyhow!("lost the connection to the daemon during the call (did it stop?)")
        }
        _ if message.is_empty() => anyhow!("the daemon refused: {}", status.code().description()),
        _ => anyhow!("{message}"),
    }
}
