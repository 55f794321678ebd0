//! The write-ahead driver: the one place that carries out the [`Effects`] of an [`ExchangeCore`]
//! step, and the one place that commits to the [`Store`].
//!
//! # The rule
//!
//! Every step's effects are carried out in this order:
//!
//! 1. commit the step's [`WriteBatch`](crate::exchange::WriteBatch) as **one synced write**;
//! 2. only then send the reply and the requests;
//! 3. then arm the timers;
//! 4. then publish the [`NodeEvent`](super::NodeEvent)s the step's phase change announces.
//!
//! If the commit fails, nothing is sent, no timer is armed and nothing is announced. The core has
//! already applied the write in memory, so it is now ahead of the store: it is thrown away, rebuilt
//! from the store and its open sessions resumed, exactly as after a crash.
//!
//! # Why
//!
//! Every message reveals a state change: M2 carries B's signature over the terms, M3 A's
//! confirmation Se, M4 B's secret r2. Were a message sent before its state was durable, a crash in
//! between would leave the peer holding a commitment this node has forgotten. B sending r2 and
//! then crashing before DONE is durable restarts in VALID, times out into PENDING and asks the
//! arbiter to cancel, while A already took V2 with r2: a value duplicated. A sending M3 and
//! crashing before VALID is durable restarts in STARTED, aborts and spends V1 again, while B can
//! claim it with Se. Committing first makes a crash at any point look like a lost message, which
//! the retry timers already handle. Events come last for the same reason: a host is never told
//! of something a crash could undo.
//!
//! Issued and imported values are written through [`WriteAhead::put_value`] under the same rule.

use valex_proto::crypto::Keypair;
use valex_proto::message::ExchangeResponse;
use valex_proto::value::Value;

use super::error::NodeError;
use super::events::{EventSink, Progress, session_events};
use super::timers::TimerQueue;
use crate::exchange::{CoreConfig, Ctx, Effects, ExchangeCore, Input, NodeState, Outgoing, SessionId};
use crate::store::Store;

/// Where the driver's messages go: the swarm in a node, a recorder in tests.
pub(crate) trait Outbox {
    /// Whatever answers the request a step is handling.
    type ReplyTo;
    /// Sends `response` to the request behind `to`.
    fn reply(&mut self, to: Self::ReplyTo, response: ExchangeResponse);
    /// Sends a request.
    fn send(&mut self, outgoing: Outgoing);
}

/// The time and fresh entropy for one step.
pub(crate) type Clock = fn() -> Ctx;

/// Owns the core, the store and the timer queue, and applies the write-ahead rule to every step.
pub(crate) struct WriteAhead<S> {
    key: Keypair,
    config: CoreConfig,
    core: ExchangeCore,
    store: S,
    timers: TimerQueue,
    events: EventSink,
    clock: Clock,
}

impl<S: Store> WriteAhead<S> {
    /// Loads the committed state from `store` and builds the core over it. Nothing is resumed
    /// yet: call [`WriteAhead::resume`] once the outbox can send.
    pub(crate) fn open(key: Keypair, config: CoreConfig, mut store: S, events: EventSink, clock: Clock) -> Result<Self, NodeError> {
        let state = load_state(&mut store)?;
        let core = ExchangeCore::new(key.clone(), config.clone(), state);
        Ok(Self { key, config, core, store, timers: TimerQueue::default(), events, clock })
    }

    /// The core, for reading (its state and policy).
    pub(crate) fn core(&self) -> &ExchangeCore {
        &self.core
    }

    /// The state as last committed.
    pub(crate) fn state(&self) -> &NodeState {
        self.core.state()
    }

    /// When the next timer is due, ms since the Unix epoch.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    /// Sends every open session's pending request again and re-arms its timers, as after a
    /// restart. Nothing is written and nothing announced.
    pub(crate) fn resume<O: Outbox>(&mut self, outbox: &mut O) {
        self.timers.clear();
        let effects = self.core.resume((self.clock)().now_ms);
        if let Err(error) = self.apply(effects, None, None, outbox) {
            tracing::error!(%error, "resuming sessions failed");
        }
    }

    /// Feeds `input` to the core and carries out the step's effects under the rule. Returns the
    /// session the step concerned. When the core refuses the input nothing changes, and a refused
    /// request is answered with the refusal.
    pub(crate) fn step<O: Outbox>(
        &mut self,
        input: Input,
        reply_to: Option<O::ReplyTo>,
        outbox: &mut O,
    ) -> Result<Option<SessionId>, NodeError> {
        let (concerns, request) = match &input {
            Input::Start(_) => (None, None),
            Input::Request { request, .. } => (Some(request.s1()), Some(request.s1())),
            Input::Response { session, .. } | Input::Arbiter { session, .. } | Input::Timer { session, .. } => (Some(*session), None),
        };
        let before = concerns.and_then(|id| self.core.state().sessions.get(&id)).map(Progress::of);
        match self.core.handle((self.clock)(), input) {
            Ok(effects) => {
                let session = effects.session;
                self.apply(effects, before, reply_to, outbox)?;
                Ok(session)
            }
            Err(error) => {
                if let (Some(to), Some(s1)) = (reply_to, request) {
                    outbox.reply(to, ExchangeResponse::Refusal(error.refusal(Some(s1))));
                }
                Err(error.into())
            }
        }
    }

    /// Fires every timer that is due.
    pub(crate) fn fire_due<O: Outbox>(&mut self, outbox: &mut O) {
        let now = (self.clock)().now_ms;
        while let Some((session, kind)) = self.timers.pop_due(now) {
            match self.step(Input::Timer { session, kind }, None, outbox) {
                Ok(_) => {}
                Err(NodeError::Exchange(error)) => tracing::debug!(session = %session.short(), %error, "timer refused"),
                Err(error) => tracing::warn!(session = %session.short(), %error, "timer step failed"),
            }
        }
    }

    /// Puts an issued or imported value into the vault (one synced write); a value already there
    /// is left as it is.
    pub(crate) fn put_value<O: Outbox>(&mut self, value: Value, outbox: &mut O) -> Result<(), NodeError> {
        let Some(batch) = self.core.issue(value) else { return Ok(()) };
        // No session, no reply, nothing to send: only the commit (and recovery if it fails).
        self.apply(Effects { persist: Some(batch), ..Effects::default() }, None, None, outbox)
    }

    /// Carries out one step's effects: commit, then reply and send, then arm timers, then announce.
    fn apply<O: Outbox>(
        &mut self,
        effects: Effects,
        before: Option<Progress>,
        reply_to: Option<O::ReplyTo>,
        outbox: &mut O,
    ) -> Result<(), NodeError> {
        let span = tracing::debug_span!("session", id = %effects.session.map(|s| s.short()).unwrap_or_default());
        let _guard = span.enter();
        let Effects { session, persist, reply, send, timers, .. } = effects;
        if let Some(batch) = &persist
            && let Err(error) = self.store.commit(batch)
        {
            tracing::error!(%error, "commit failed: nothing sent; rebuilding the core from the store");
            drop(reply_to);
            self.recover(outbox);
            return Err(NodeError::store(error));
        }
        if let (Some(to), Some(reply)) = (reply_to, reply) {
            outbox.reply(to, reply);
        }
        for outgoing in send {
            outbox.send(outgoing);
        }
        for timer in timers {
            self.timers.arm(timer);
        }
        if persist.is_some()
            && let Some(record) = session.and_then(|id| self.core.state().sessions.get(&id))
        {
            for event in session_events(before, record, self.core.state()) {
                self.events.emit(event);
            }
        }
        Ok(())
    }

    /// After a failed commit the in-memory core is ahead of the store: rebuild it from the store
    /// and resume, as after a crash.
    fn recover<O: Outbox>(&mut self, outbox: &mut O) {
        match load_state(&mut self.store) {
            Ok(state) => {
                self.core = ExchangeCore::new(self.key.clone(), self.config.clone(), state);
                self.resume(outbox);
            }
            Err(error) => tracing::error!(%error, "cannot reload the store after a failed commit"),
        }
    }
}

/// Loads the committed state from `store`, logging the records it had to set aside.
fn load_state<S: Store>(store: &mut S) -> Result<NodeState, NodeError> {
    let loaded = store.load().map_err(NodeError::store)?;
    for record in &loaded.set_aside {
        tracing::error!(column = %record.column, key = %record.key_hex, reason = %record.reason, "store record set aside");
    }
    Ok(loaded.state)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;
    use valex_proto::PeerId;
    use valex_proto::message::{ExchangeRequest, Want};

    use super::*;
    use crate::exchange::{Proposal, SessionOutcome, WriteBatch};
    use crate::runtime::event_loop::fresh_ctx;
    use crate::runtime::events::{EventError, NodeEvent, NodeEvents, Role, subscribe};
    use crate::store::{Loaded, MemoryStore};
    use crate::time::now_ms;

    /// Records what the driver sends, in order.
    #[derive(Debug, Default)]
    struct Recorder {
        replies: Vec<ExchangeResponse>,
        sent: Vec<Outgoing>,
    }

    impl Outbox for Recorder {
        type ReplyTo = ();
        fn reply(&mut self, (): (), response: ExchangeResponse) {
            self.replies.push(response);
        }
        fn send(&mut self, outgoing: Outgoing) {
            self.sent.push(outgoing);
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("planned write failure")]
    struct Planned;

    /// A memory store whose next `fail` commits fail.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryStore,
        fail: usize,
        commits: usize,
    }

    impl Store for Flaky {
        type Error = Planned;
        fn commit(&mut self, batch: &WriteBatch) -> Result<(), Planned> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(Planned);
            }
            self.commits += 1;
            let Ok(()) = self.inner.commit(batch);
            Ok(())
        }
        fn load(&mut self) -> Result<Loaded, Planned> {
            let Ok(loaded) = self.inner.load();
            Ok(loaded)
        }
    }

    struct Party {
        key: Keypair,
        driver: WriteAhead<Flaky>,
        out: Recorder,
        events: NodeEvents,
    }

    impl Party {
        fn new(seed: u8) -> Self {
            let key = Keypair::from_seed([seed; 32]);
            let sink = EventSink::new();
            let events = subscribe(&sink.downgrade());
            let driver = WriteAhead::open(key.clone(), CoreConfig::default(), Flaky::default(), sink, fresh_ctx).unwrap();
            Self { key, driver, out: Recorder::default(), events }
        }

        fn peer(&self) -> PeerId {
            self.key.peer_id()
        }

        fn issue(&mut self, kind: &str, amount: u64) -> Value {
            let value = Value::issue(&self.key, kind, amount, Vec::new(), [amount as u8; 16]).unwrap();
            self.driver.put_value(value.clone(), &mut self.out).unwrap();
            value
        }

        /// The events published so far.
        fn events(&mut self) -> Vec<NodeEvent> {
            let mut seen = Vec::new();
            while let Some(event) = self.events.recv().now_or_never() {
                seen.push(event.unwrap());
            }
            seen
        }

        fn take_request(&mut self) -> ExchangeRequest {
            match self.out.sent.pop() {
                Some(Outgoing::Exchange { request, .. }) => request,
                other => panic!("expected an exchange request, got {other:?}"),
            }
        }

        fn take_reply(&mut self) -> ExchangeResponse {
            self.out.replies.pop().expect("a reply")
        }
    }

    fn start(a: &mut Party, b: &Party, give: &Value) -> SessionId {
        let start = Proposal {
            responder: b.peer(),
            give: give.id(),
            want: Want::KindAmount { kind: "voucher".into(), amount: 5, issuer: None },
            arbiter: Keypair::from_seed([9; 32]).peer_id(),
            expires_at_ms: now_ms() + 60_000,
        };
        a.driver.step(Input::Start(start), None, &mut a.out).unwrap().unwrap()
    }

    #[test]
    fn a_swap_between_two_drivers_announces_its_events_in_order() {
        let (mut a, mut b) = (Party::new(1), Party::new(2));
        let ticket = a.issue("ticket", 1);
        let voucher = b.issue("voucher", 5);
        let session = start(&mut a, &b, &ticket);
        let m1 = a.take_request();
        b.driver.step(Input::Request { from: a.peer(), request: m1 }, Some(()), &mut b.out).unwrap();
        let m2 = b.take_reply();
        a.driver.step(Input::Response { from: b.peer(), session, response: m2 }, None, &mut a.out).unwrap();
        let m3 = a.take_request();
        b.driver.step(Input::Request { from: a.peer(), request: m3 }, Some(()), &mut b.out).unwrap();
        let m4 = b.take_reply();
        a.driver.step(Input::Response { from: b.peer(), session, response: m4 }, None, &mut a.out).unwrap();

        let (a_events, b_events) = (a.events(), b.events());
        let ended = |events: &[NodeEvent]| match events.last() {
            Some(NodeEvent::SessionEnded { session: s, result }) if *s == session => (**result).clone(),
            other => panic!("expected SessionEnded last, got {other:?}"),
        };
        let (a_result, b_result) = (ended(&a_events), ended(&b_events));
        assert_eq!((a_result.outcome, b_result.outcome), (SessionOutcome::Done, SessionOutcome::Done));
        assert_eq!(
            a_events,
            [
                NodeEvent::SessionStarted { session, role: Role::Initiator, peer: b.peer() },
                NodeEvent::SessionAgreed { session },
                NodeEvent::ValueReceived { value: voucher.id(), session },
                NodeEvent::ValueGiven { value: ticket.id(), session },
                NodeEvent::SessionEnded { session, result: a_result.into() },
            ]
        );
        assert_eq!(
            b_events,
            [
                NodeEvent::SessionStarted { session, role: Role::Responder, peer: a.peer() },
                NodeEvent::SessionAgreed { session },
                NodeEvent::ValueReceived { value: ticket.id(), session },
                NodeEvent::ValueGiven { value: voucher.id(), session },
                NodeEvent::SessionEnded { session, result: b_result.into() },
            ]
        );
    }

    #[test]
    fn a_failed_commit_sends_nothing_announces_nothing_and_rebuilds_the_core() {
        let (mut a, mut b) = (Party::new(1), Party::new(2));
        let ticket = a.issue("ticket", 1);
        b.issue("voucher", 5);
        let session = start(&mut a, &b, &ticket);
        let m1 = a.take_request();
        a.events();

        b.driver.store.fail = 1;
        let failed = b.driver.step(Input::Request { from: a.peer(), request: m1.clone() }, Some(()), &mut b.out);
        assert!(matches!(failed, Err(NodeError::Store(_))), "{failed:?}");
        assert!(b.out.replies.is_empty() && b.out.sent.is_empty(), "nothing sent: {:?}", b.out);
        assert!(b.events().is_empty(), "nothing announced");
        let stored = b.driver.store.inner.load().unwrap().state;
        assert_eq!(b.driver.state(), &stored, "the core is back in step with the store");
        assert!(!b.driver.state().sessions.contains_key(&session));
        assert_eq!(b.driver.next_deadline(), None, "no timer of the lost step armed");

        // A's retry of M1 gets through once the store writes again.
        b.driver.step(Input::Request { from: a.peer(), request: m1 }, Some(()), &mut b.out).unwrap();
        assert!(matches!(b.take_reply(), ExchangeResponse::Agree(_)));
        assert_eq!(
            b.events(),
            [NodeEvent::SessionStarted { session, role: Role::Responder, peer: a.peer() }, NodeEvent::SessionAgreed { session },]
        );

        // The same for an issued value.
        b.driver.store.fail = 1;
        let value = Value::issue(&b.key, "voucher", 7, Vec::new(), [7; 16]).unwrap();
        assert!(matches!(b.driver.put_value(value.clone(), &mut b.out), Err(NodeError::Store(_))));
        assert!(!b.driver.state().vault.contains_key(&value.id()));
    }

    #[test]
    fn a_refused_request_is_answered_with_the_refusal_and_writes_nothing() {
        let (mut a, mut b) = (Party::new(1), Party::new(2));
        let ticket = a.issue("ticket", 1);
        start(&mut a, &b, &ticket);
        let m1 = a.take_request();
        let commits = b.driver.store.commits;
        // B has no voucher to give.
        let refused = b.driver.step(Input::Request { from: a.peer(), request: m1 }, Some(()), &mut b.out);
        assert!(matches!(refused, Err(NodeError::Exchange(_))), "{refused:?}");
        assert!(matches!(b.take_reply(), ExchangeResponse::Refusal(_)));
        assert_eq!(b.driver.store.commits, commits);
        assert!(b.events().is_empty());
    }

    #[test]
    fn a_subscription_ends_when_the_driver_is_gone() {
        let Party { driver, mut events, .. } = Party::new(1);
        drop(driver);
        assert_eq!(events.recv().now_or_never(), Some(Err(EventError::Closed)));
    }
}
