//! What a node accepts: which issuers' values, which arbiters, which expiries, how many open
//! sessions per peer. A host service embedding the node implements [`Policy`] to decide.

use std::collections::BTreeSet;

use valex_proto::PeerId;
use valex_proto::value::{IssuerPolicy, Value, ValueError};

/// The decisions a host makes about what its node accepts.
///
/// ```
/// use valex_node::exchange::{ArbiterPolicy, Policy, StaticPolicy};
/// use valex_proto::crypto::Keypair;
///
/// let arbiter = Keypair::from_seed([1; 32]).peer_id();
/// let policy = StaticPolicy { arbiters: ArbiterPolicy::only([arbiter]), ..StaticPolicy::default() };
/// assert!(policy.accepts_arbiter(&arbiter));
/// assert!(!policy.accepts_arbiter(&Keypair::from_seed([2; 32]).peer_id()));
/// ```
pub trait Policy: Send + Sync + std::fmt::Debug {
    /// Checks a value offered to or by this node: its signature, id and issuer.
    fn check_value(&self, value: &Value) -> Result<(), ValueError>;
    /// Whether this node accepts `arbiter` to settle its exchanges.
    fn accepts_arbiter(&self, arbiter: &PeerId) -> bool;
    /// Whether an exchange expiring at `expires_at_ms` is acceptable at `now_ms`.
    fn accepts_expiry(&self, now_ms: u64, expires_at_ms: u64) -> bool;
    /// The most open sessions one peer may have with this node as responder.
    fn max_open_sessions_per_peer(&self) -> usize;
}

/// Which arbiters a node accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArbiterPolicy {
    /// Any arbiter.
    #[default]
    Any,
    /// Only these.
    Only(BTreeSet<PeerId>),
}

impl ArbiterPolicy {
    /// A policy accepting exactly `arbiters`.
    pub fn only(arbiters: impl IntoIterator<Item = PeerId>) -> Self {
        Self::Only(arbiters.into_iter().collect())
    }
}

/// A policy from fixed settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticPolicy {
    /// Accepted issuers.
    pub issuers: IssuerPolicy,
    /// Accepted arbiters.
    pub arbiters: ArbiterPolicy,
    /// The shortest time to expiry accepted for a new exchange, in ms.
    pub min_ttl_ms: u64,
    /// The longest time to expiry accepted, in ms.
    pub max_ttl_ms: u64,
    /// The most open responder sessions per peer.
    pub max_open_sessions_per_peer: usize,
}

impl Default for StaticPolicy {
    fn default() -> Self {
        Self {
            issuers: IssuerPolicy::Any,
            arbiters: ArbiterPolicy::Any,
            min_ttl_ms: 1_000,
            max_ttl_ms: 10 * 60 * 1_000,
            max_open_sessions_per_peer: 64,
        }
    }
}

impl Policy for StaticPolicy {
    fn check_value(&self, value: &Value) -> Result<(), ValueError> {
        value.verify(&self.issuers)
    }

    fn accepts_arbiter(&self, arbiter: &PeerId) -> bool {
        match &self.arbiters {
            ArbiterPolicy::Any => true,
            ArbiterPolicy::Only(set) => set.contains(arbiter),
        }
    }

    fn accepts_expiry(&self, now_ms: u64, expires_at_ms: u64) -> bool {
        expires_at_ms >= now_ms.saturating_add(self.min_ttl_ms) && expires_at_ms <= now_ms.saturating_add(self.max_ttl_ms)
    }

    fn max_open_sessions_per_peer(&self) -> usize {
        self.max_open_sessions_per_peer
    }
}
