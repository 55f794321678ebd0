//! One shared, ordered log of what several nodes commit and send, to check the write-ahead rule
//! by order: a node commits the state a message reveals before the message leaves it.
//!
//! Commits are recorded by an [`ObservedStore`](super::observed::ObservedStore) callback
//! ([`Log::on_commit`]), run inside the commit; sends by the runtime's
//! [`SendObserver`](valex_node::runtime::SendObserver) ([`Log::on_send`]), run as the write-ahead
//! driver hands each message to the network. Both run on the node's event loop, in the order the
//! driver does them, and append under one lock, so the log's order between one node's commits and
//! sends is the order the node did them in.

use std::sync::{Arc, Mutex, PoisonError};

use valex_node::exchange::{Outgoing, SessionId};
use valex_node::runtime::{SendObserver, Sent};
use valex_proto::message::{ExchangeRequest, ExchangeResponse};

use super::observed::{OnCommit, sessions};

/// A message of the exchange protocol, by its protocol.md name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A's offer.
    M1,
    /// B's agreement (reveals B's signature Sa over the terms).
    M2,
    /// A's confirmation (reveals Se).
    M3,
    /// B's reveal (reveals r2).
    M4,
    /// A refusal.
    Refusal,
    /// A request to an arbiter.
    ToArbiter,
}

/// One thing a node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `node` committed a batch putting `session`'s record into `phase`.
    Commit {
        /// Which node.
        node: &'static str,
        /// The session record written.
        session: SessionId,
        /// Its phase, e.g. `VALID`.
        phase: &'static str,
    },
    /// `node` handed `message` for `session` to the network.
    Send {
        /// Which node.
        node: &'static str,
        /// The session the message belongs to, when it names one.
        session: Option<SessionId>,
        /// The message.
        message: Message,
    },
}

/// The shared log. Cheap to clone: every clone appends to the same log.
#[derive(Debug, Clone, Default)]
pub struct Log {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Log {
    fn push(&self, entry: Entry) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).push(entry);
    }

    /// Everything logged so far, in order.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A commit callback logging `node`'s commits of session records.
    pub fn on_commit(&self, node: &'static str) -> OnCommit {
        let log = self.clone();
        Arc::new(move |batch| {
            for session in sessions(batch) {
                log.push(Entry::Commit { node, session: session.id(), phase: session.phase_name() });
            }
        })
    }

    /// A send observer logging `node`'s messages.
    pub fn on_send(&self, node: &'static str) -> SendObserver {
        let log = self.clone();
        SendObserver::new(move |sent| {
            let (session, message) = match sent {
                Sent::Request(Outgoing::Exchange { session, request, .. }) => (
                    Some(*session),
                    match request {
                        ExchangeRequest::Start(_) => Message::M1,
                        ExchangeRequest::Confirm(_) => Message::M3,
                    },
                ),
                Sent::Request(Outgoing::Arbiter { session, .. }) => (Some(*session), Message::ToArbiter),
                Sent::Reply { response: ExchangeResponse::Agree(m2), .. } => (Some(m2.s1), Message::M2),
                Sent::Reply { response: ExchangeResponse::Reveal(m4), .. } => (Some(m4.s1), Message::M4),
                Sent::Reply { response: ExchangeResponse::Refusal(refusal), .. } => (refusal.s1, Message::Refusal),
            };
            log.push(Entry::Send { node, session, message });
        })
    }

    /// Checks that `node` sent `message` for `session` at least once, and that every time it did,
    /// it had already committed `session` in `phase`; says what went wrong otherwise.
    pub fn committed_before_sent(&self, node: &'static str, session: SessionId, phase: &str, message: Message) -> Result<usize, String> {
        let entries = self.entries();
        let mut committed = false;
        let mut sent = 0;
        for (at, entry) in entries.iter().enumerate() {
            match entry {
                Entry::Commit { node: n, session: s, phase: p } if *n == node && *s == session && *p == phase => committed = true,
                Entry::Send { node: n, session: Some(s), message: m } if *n == node && *s == session && *m == message => {
                    if !committed {
                        return Err(format!("{node} sent {message:?} (log entry {at}) before committing {phase}: {entries:#?}"));
                    }
                    sent += 1;
                }
                _ => {}
            }
        }
        if sent == 0 {
            return Err(format!("{node} never sent {message:?} for the session: {entries:#?}"));
        }
        Ok(sent)
    }
}
