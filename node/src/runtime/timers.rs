//! [`TimerQueue`]: the timers the core asked for, in firing order.
//!
//! The core arms at most one timer of each [`TimerKind`] per session: arming one again replaces
//! the earlier deadline (a retry timer re-armed after a retry, a deadline pushed back), so a stale
//! timer never fires. The queue only orders deadlines; what a timer does is the core's business.

use std::collections::{BTreeSet, HashMap};

use crate::exchange::{SessionId, Timer, TimerKind};

/// Armed timers, ordered by deadline, at most one per (session, kind).
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerQueue {
    /// Every armed timer, earliest first.
    order: BTreeSet<(u64, SessionId, TimerKind)>,
    /// Each armed (session, kind)'s deadline, to find the entry a new arm replaces.
    armed: HashMap<(SessionId, TimerKind), u64>,
}

impl TimerQueue {
    /// Arms `timer`, replacing the session's earlier timer of the same kind.
    pub(crate) fn arm(&mut self, timer: Timer) {
        if let Some(old) = self.armed.insert((timer.session, timer.kind), timer.at_ms) {
            self.order.remove(&(old, timer.session, timer.kind));
        }
        self.order.insert((timer.at_ms, timer.session, timer.kind));
    }

    /// The earliest deadline, ms since the Unix epoch.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.order.first().map(|(at, _, _)| *at)
    }

    /// Takes the earliest timer due at `now_ms` out of the queue.
    pub(crate) fn pop_due(&mut self, now_ms: u64) -> Option<(SessionId, TimerKind)> {
        let &(at, session, kind) = self.order.first()?;
        if at > now_ms {
            return None;
        }
        self.order.remove(&(at, session, kind));
        self.armed.remove(&(session, kind));
        Some((session, kind))
    }

    /// Disarms everything (the core is being rebuilt and will arm its timers again).
    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.armed.clear();
    }

    /// How many timers are armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use valex_proto::Digest;

    use super::*;

    fn timer(session: u8, kind: TimerKind, at_ms: u64) -> Timer {
        Timer { session: Digest([session; 32]), kind, at_ms }
    }

    #[test]
    fn pops_due_timers_earliest_first() {
        let mut queue = TimerQueue::default();
        assert_eq!(queue.next_deadline(), None);
        assert_eq!(queue.pop_due(u64::MAX), None);
        queue.arm(timer(1, TimerKind::Deadline, 300));
        queue.arm(timer(2, TimerKind::Retry, 100));
        queue.arm(timer(1, TimerKind::Retry, 200));
        assert_eq!(queue.next_deadline(), Some(100));
        assert_eq!(queue.pop_due(99), None, "nothing is due before its deadline");
        assert_eq!(queue.pop_due(250), Some((Digest([2; 32]), TimerKind::Retry)));
        assert_eq!(queue.pop_due(250), Some((Digest([1; 32]), TimerKind::Retry)));
        assert_eq!(queue.pop_due(250), None);
        assert_eq!(queue.next_deadline(), Some(300));
        assert_eq!(queue.pop_due(300), Some((Digest([1; 32]), TimerKind::Deadline)), "due at its deadline exactly");
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn arming_again_replaces_the_same_kind_only() {
        let mut queue = TimerQueue::default();
        queue.arm(timer(1, TimerKind::Retry, 100));
        queue.arm(timer(1, TimerKind::Deadline, 150));
        queue.arm(timer(1, TimerKind::Retry, 500));
        assert_eq!(queue.len(), 2, "one timer per (session, kind)");
        assert_eq!(queue.next_deadline(), Some(150));
        assert_eq!(queue.pop_due(400), Some((Digest([1; 32]), TimerKind::Deadline)));
        assert_eq!(queue.pop_due(400), None, "the replaced retry at 100 never fires");
        // Arming earlier than before also replaces.
        queue.arm(timer(1, TimerKind::Retry, 50));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop_due(60), Some((Digest([1; 32]), TimerKind::Retry)));
    }

    #[test]
    fn clear_disarms_everything() {
        let mut queue = TimerQueue::default();
        queue.arm(timer(1, TimerKind::Retry, 100));
        queue.arm(timer(2, TimerKind::Deadline, 100));
        queue.clear();
        assert_eq!((queue.len(), queue.next_deadline(), queue.pop_due(u64::MAX)), (0, None, None));
        // A timer armed after the clear is not shadowed by the old bookkeeping.
        queue.arm(timer(1, TimerKind::Retry, 200));
        assert_eq!(queue.pop_due(200), Some((Digest([1; 32]), TimerKind::Retry)));
    }
}
