//! What a session gives, receives and agreed, from either side.

use valex_node::exchange::initiator::InitiatorPhase;
use valex_node::exchange::{NodeState, Session, SessionId, SessionOutcome};
use valex_proto::value::ValueId;
use valex_proto::{Digest, PeerId};

/// What both parties signed, as one side of a session holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Agreed {
    /// The terms' hash.
    pub(super) h: Digest,
    /// B's s2.
    pub(super) s2: Digest,
    /// The arbiter the terms name.
    pub(super) arbiter: PeerId,
}

/// The value this side gives away if the exchange completes: V1 for A, V2 for B.
pub(super) fn given(session: &Session) -> ValueId {
    match session {
        Session::Initiator(s) => s.v1.id(),
        Session::Responder(s) => s.v2.id(),
    }
}

/// The value this side receives if the exchange completes (A knows V2 only from M2 on).
pub(super) fn received(session: &Session) -> Option<ValueId> {
    match session {
        Session::Initiator(s) => s.agreement().map(|a| a.v2.id()),
        Session::Responder(s) => Some(s.offer.v1.id()),
    }
}

/// The agreement, once this side has one (A: from a valid M2 on; B: always).
pub(super) fn agreed(session: &Session) -> Option<Agreed> {
    match session {
        Session::Initiator(s) => s.agreement().map(|a| Agreed { h: a.h, s2: a.s2, arbiter: s.arbiter }),
        Session::Responder(s) => Some(Agreed { h: s.h, s2: s.s2, arbiter: s.terms.arbiter }),
    }
}

/// "initiator" or "responder".
pub(super) fn role(session: &Session) -> &'static str {
    match session {
        Session::Initiator(_) => "initiator",
        Session::Responder(_) => "responder",
    }
}

/// Whether `a` and `b` are the two sides of one exchange's roles (one initiator, one responder).
pub(super) fn opposite(a: &Session, b: &Session) -> bool {
    matches!((a, b), (Session::Initiator(_), Session::Responder(_)) | (Session::Responder(_), Session::Initiator(_)))
}

/// Whether the session, ended, leaves `value` with this side: DONE keeps what it received,
/// CANCELLED and ABORTED keep what it offered.
pub(super) fn ends_with(session: &Session, value: &ValueId) -> bool {
    match session.outcome() {
        SessionOutcome::Done => received(session).as_ref() == Some(value),
        SessionOutcome::Cancelled | SessionOutcome::Aborted => given(session) == *value,
        SessionOutcome::Open => false,
    }
}

/// Whether `state` gave `value` away in an ended DONE session other than `except`.
pub(super) fn passed_on(state: &NodeState, value: &ValueId, except: SessionId) -> bool {
    state.sessions.values().any(|s| s.id() != except && s.outcome() == SessionOutcome::Done && given(s) == *value)
}

/// Whether the phase is the initiator's STARTED.
pub(super) fn is_started(session: &Session) -> bool {
    matches!(session, Session::Initiator(s) if matches!(s.phase, InitiatorPhase::Started))
}
