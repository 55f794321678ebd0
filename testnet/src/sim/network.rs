//! Messages in flight, as a set: delivering with `keep` models duplication, any index may be
//! delivered next (reordering), and any may be dropped (loss). A set keeps the model finite: a
//! retry that re-sends a message already in flight changes nothing.

use std::hash::{Hash, Hasher};

use valex_node::exchange::SessionId;
use valex_proto::message::{ArbiterRequest, ArbiterResponse, ExchangeRequest, ExchangeResponse};

use super::Role;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// M1 or M3.
    Request(ExchangeRequest),
    /// M2, M4 or a refusal.
    Response(ExchangeResponse),
    /// To the arbiter.
    ArbiterRequest(ArbiterRequest),
    /// From the arbiter.
    ArbiterResponse(ArbiterResponse),
}

/// A message in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// Sender (authenticated, as libp2p's noise does).
    pub from: Role,
    /// Receiver.
    pub to: Role,
    /// The session the sender's request or response concerns.
    pub session: SessionId,
    /// The message.
    pub payload: Payload,
}

/// The set of messages in flight, in a canonical order (by a stable fingerprint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Network {
    messages: Vec<(u64, Envelope)>,
}

fn fingerprint(envelope: &Envelope) -> u64 {
    // DefaultHasher::new() uses fixed keys, so fingerprints are the same in every run.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    envelope.hash(&mut hasher);
    hasher.finish()
}

impl Network {
    /// Adds a message unless an equal one is already in flight.
    pub fn insert(&mut self, envelope: Envelope) {
        let key = fingerprint(&envelope);
        let at = self.messages.partition_point(|(k, _)| *k < key);
        if self.messages[at..].iter().take_while(|(k, _)| *k == key).any(|(_, e)| *e == envelope) {
            return;
        }
        self.messages.insert(at, (key, envelope));
    }

    /// Message `index`.
    pub fn get(&self, index: usize) -> Option<&Envelope> {
        self.messages.get(index).map(|(_, e)| e)
    }

    /// Removes message `index`.
    pub fn remove(&mut self, index: usize) -> Option<Envelope> {
        (index < self.messages.len()).then(|| self.messages.remove(index).1)
    }

    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The messages, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &Envelope> {
        self.messages.iter().map(|(_, e)| e)
    }

    /// The index of the first message matching `pred`.
    pub fn position(&self, pred: impl Fn(&Envelope) -> bool) -> Option<usize> {
        self.messages.iter().position(|(_, e)| pred(e))
    }
}
