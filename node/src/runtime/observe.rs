//! [`SendObserver`]: an optional look at every message a node hands to the network, in the order
//! the write-ahead driver sends them.
//!
//! It exists so that tests can check the write-ahead rule by order rather than after the fact:
//! paired with a store that records its commits in the same log, a test sees that B's commit of
//! VALID comes before M2 leaves B, and so on. A transport wrapper cannot show this: the swarm
//! only writes a message to its connection once the event loop next polls it, after the whole
//! step (commit included) has run, whatever order the driver used. The observer is called at the
//! moment the driver hands the message over, which is the order the rule is about.
//!
//! Unset (the default) it costs one branch per message.

use std::fmt;
use std::sync::Arc;

use valex_proto::PeerId;
use valex_proto::message::ExchangeResponse;

use crate::exchange::Outgoing;

/// A message the node hands to the network.
#[derive(Debug, Clone, Copy)]
pub enum Sent<'a> {
    /// A request: M1 or M3 to a peer, or a request to an arbiter.
    Request(&'a Outgoing),
    /// A response to a peer's exchange request: M2, M4 or a refusal.
    Reply {
        /// The peer whose request it answers.
        to: PeerId,
        /// The response.
        response: &'a ExchangeResponse,
    },
}

/// Called with every message the node hands to the network, synchronously, on the event loop,
/// right before the swarm takes it. Set it in [`NodeConfig::observe_sends`](super::NodeConfig).
/// Keep it short: the event loop waits for it.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use valex_node::runtime::{NodeConfig, SendObserver, Sent};
/// use valex_proto::crypto::Keypair;
///
/// let requests = Arc::new(AtomicUsize::new(0));
/// let counted = Arc::clone(&requests);
/// let mut config = NodeConfig::new(Keypair::generate());
/// config.observe_sends = Some(SendObserver::new(move |sent| {
///     if let Sent::Request(_) = sent {
///         counted.fetch_add(1, Ordering::Relaxed);
///     }
/// }));
/// // start(config, store) … then `requests` counts every M1, M3 and arbiter request sent.
/// ```
#[derive(Clone)]
pub struct SendObserver(Arc<dyn Fn(Sent<'_>) + Send + Sync>);

impl SendObserver {
    /// An observer calling `observe`.
    pub fn new(observe: impl Fn(Sent<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(observe))
    }

    /// Calls the observer with `sent`.
    pub(crate) fn observe(&self, sent: Sent<'_>) {
        (self.0)(sent);
    }
}

impl fmt::Debug for SendObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendObserver")
    }
}
