//! Real crashes for in-process nodes: each node runs on its own thread, on its own
//! single-threaded tokio runtime, and a crash drops that runtime without ever asking the node to
//! shut down.
//!
//! [`IsolatedNode::crash`] makes the thread's `block_on` return and drops the runtime there: the
//! event loop task is never polled again, so nothing it had not done yet happens — no shutdown
//! command, no pending event handled, no queued message written to a connection; the task and
//! every connection task are dropped, their sockets closed as the kernel closes a killed
//! process's. The crash lands between two polls of the event loop, that is anywhere between (or
//! inside the write-ahead window of) two steps: a step's commit and its sends run inside one poll.
//!
//! What the crash leaves on disk: dropping the task drops the node's store, which closes its
//! RocksDB — RocksDB must be closed before this process can open the directory again (it holds a
//! lock on it). Closing flushes nothing a SIGKILL would lose: every write the node makes is a
//! synced write-ahead-log write (`RocksDb::write_synced`), so there is no unsynced write to flush,
//! and RocksDB only flushes memtables at close for writes made without the WAL. The database
//! reopened after the crash therefore holds exactly what a killed process would have left.

use std::thread;

use tokio::sync::oneshot;
use valex_node::runtime::{Node, NodeConfig, NodeError, SwarmTransport, start_with_transport};
use valex_node::store::Store;

/// A node on its own thread and runtime. Dropping it crashes the node too (without waiting).
pub struct IsolatedNode {
    node: Node,
    crash: Option<oneshot::Sender<()>>,
    down: Option<oneshot::Receiver<()>>,
}

impl IsolatedNode {
    /// Starts a node (as `valex_node::runtime::start_with_transport` does) on a new thread with a
    /// runtime of its own; returns once it listens.
    pub async fn start<S: Store + Send + 'static>(config: NodeConfig, store: S, transport: SwarmTransport) -> Result<Self, NodeError> {
        let (started_tx, started_rx) = oneshot::channel();
        let (crash_tx, crash_rx) = oneshot::channel::<()>();
        let (down_tx, down_rx) = oneshot::channel();
        let name = format!("node-{}", config.keypair.peer_id());
        thread::Builder::new()
            .name(name)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("node runtime");
                runtime.block_on(async move {
                    match start_with_transport(config, store, transport).await {
                        Ok((node, _event_loop)) => {
                            let _ = started_tx.send(Ok(node));
                            // Runs the node (the runtime polls its tasks) until the crash, or
                            // until the test drops its IsolatedNode.
                            let _ = crash_rx.await;
                        }
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                        }
                    }
                });
                // The crash: every task is dropped unpolled, the store (and its RocksDB) with it.
                drop(runtime);
                let _ = down_tx.send(());
            })
            .expect("node thread");
        let node = started_rx.await.map_err(|_| NodeError::Stopped)??;
        Ok(Self { node, crash: Some(crash_tx), down: Some(down_rx) })
    }

    /// The handle to drive the node with (it fails with `Stopped` once the node has crashed).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Crashes the node and waits until its runtime, tasks and store are gone.
    pub async fn crash(mut self) {
        if let Some(crash) = self.crash.take() {
            let _ = crash.send(());
        }
        if let Some(down) = self.down.take() {
            let _ = down.await;
        }
    }
}

impl Drop for IsolatedNode {
    fn drop(&mut self) {
        if let Some(crash) = self.crash.take() {
            let _ = crash.send(());
        }
    }
}
