//! Exhaustive model checking of one exchange among A, B and T — or two sharing the nodes.
//!
//! [`explore`] walks every state reachable from the initial [`World`] breadth first: A may start
//! each exchange; any message in flight may be delivered (once, or leaving a duplicate), dropped,
//! or delivered out of order; any armed timer may fire; a node's clock may move on to the next
//! moment that matters without its timer firing (so a message may arrive after an expiry but
//! before the deadline fires); A or B may crash and restart from what it persisted at any point
//! between steps (up to a crash budget, which bounds the run). States are told apart by a
//! 128-bit fingerprint of everything that matters to the protocol.
//!
//! It checks:
//!
//! - in every state, protocol.md §6 ([`check_world`]);
//! - that every action it takes applies: an action the world refuses, or a core that changes its
//!   state while refusing an input, is a [`Failure`] of the run (only the planted crash between
//!   two writes, offered on every delivery, is skipped on steps that write once);
//! - termination (§6.4) under every fair schedule once faults stop: over the graph of fault-free
//!   transitions (deliveries, timers, clocks, starts) among all explored states, no state with an
//!   open session may have no fault-free step, and no cycle among states with open sessions may be
//!   *fair* — a strongly connected set of states in which every action enabled in all of its
//!   states is also taken inside it (deliveries told apart by the message, not its index). Such a
//!   cycle is a schedule that never starves a message, a timer or a clock, yet never ends.
//!
//! The first violation stops the run and comes back as a [`Counterexample`]: the shortest
//! sequence of actions from the initial state that reaches it (and, for a fair cycle, one loop of
//! it).
//!
//! ```no_run
//! use valex_testnet::model::{explore, ModelConfig};
//! let report = explore(&ModelConfig::default());
//! println!("{report}");
//! assert!(report.violation.is_none() && report.failure.is_none());
//! ```

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use valex_node::exchange::{SessionId, StaticPolicy, TimerKind};

use crate::invariants::{Invariant, Violation, check_world};
use crate::sim::{Action, Envelope, Role, SecondExchange, SecondOffer, SimError, World, WorldConfig, fingerprint};

/// Bounds and settings of a model-checking run.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The simulated exchange(s) (timing, policies, a second exchange, and a bug to plant).
    pub world: WorldConfig,
    /// Crash-restarts allowed on any path (A's and B's together).
    pub max_crashes: u8,
    /// Whether messages may be dropped and duplicated (reordering is always explored).
    pub lossy_network: bool,
    /// Give up after this many states (the run is then reported as incomplete).
    pub max_states: usize,
}

impl Default for ModelConfig {
    /// One exchange, a lossy network and up to 2 crash-restarts per path.
    fn default() -> Self {
        Self { world: WorldConfig::default(), max_crashes: 2, lossy_network: true, max_states: 20_000_000 }
    }
}

impl ModelConfig {
    /// Two exchanges sharing A and B: A offers V1 in one and V3 in the other, both for B's only
    /// voucher V2 (escrow of one value wanted by two sessions). Budget: messages reordered but
    /// neither lost nor duplicated, 1 crash-restart (a crash loses the in-flight retries' timers,
    /// so it stands in for some loss).
    pub fn shared_v2() -> Self {
        let second = SecondExchange { give: SecondOffer::V3, expires_at_ms: 11_000 };
        Self::two_exchanges(second)
    }

    fn two_exchanges(second: SecondExchange) -> Self {
        let world = WorldConfig { second: Some(second), retries: false, ..WorldConfig::default() };
        Self { world, max_crashes: 1, lossy_network: false, ..Self::default() }
    }

    /// Two exchanges in which A offers V1 twice: the second may start only once the first has
    /// released it. Budget as [`shared_v2`](Self::shared_v2).
    pub fn reoffered_v1() -> Self {
        Self::two_exchanges(SecondExchange { give: SecondOffer::V1, expires_at_ms: 11_000 })
    }

    /// [`shared_v2`](Self::shared_v2) with B accepting one open session per peer: the second M1
    /// is refused while the first session is open.
    pub fn per_peer_cap() -> Self {
        let mut config = Self::shared_v2();
        config.world.policy_b = StaticPolicy { max_open_sessions_per_peer: 1, ..config.world.policy_b };
        config
    }

    /// Every configuration `valex-testnet model-check` runs, by name.
    pub fn named() -> Vec<(&'static str, Self)> {
        vec![
            ("one-exchange", Self::default()),
            ("shared-v2", Self::shared_v2()),
            ("reoffered-v1", Self::reoffered_v1()),
            ("per-peer-cap", Self::per_peer_cap()),
        ]
    }
}

/// A path to a violation.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// What was violated.
    pub violation: Violation,
    /// The actions from the initial state, each with the state it led to.
    pub trace: Vec<(Action, String)>,
    /// For a schedule that never ends: the trace's first `loop_from` actions reach a state of a
    /// fair cycle, the rest go once around it (and the schedule repeats them forever).
    pub loop_from: Option<usize>,
    /// The first action of the trace during which the planted bug (if any) changed a node's
    /// step; `None` when every node behaved honestly along the trace.
    pub planted_at: Option<usize>,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.violation)?;
        writeln!(f, "counterexample ({} steps from the initial state):", self.trace.len())?;
        write_trace(f, &self.trace, self.loop_from, self.planted_at)
    }
}

fn write_trace(f: &mut fmt::Formatter<'_>, trace: &[(Action, String)], loop_from: Option<usize>, planted_at: Option<usize>) -> fmt::Result {
    for (i, (action, state)) in trace.iter().enumerate() {
        if loop_from == Some(i) {
            writeln!(f, "  -- a fair schedule repeats the steps from here on forever, with no faults --")?;
        }
        let planted = if planted_at == Some(i) { "   <- the planted bug acts here" } else { "" };
        writeln!(f, "  {:>2}. {action}{planted}", i + 1)?;
        writeln!(f, "      => {state}")?;
    }
    Ok(())
}

/// An action that did not apply: an error of the run, not of the protocol's invariants.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why it did not apply.
    pub error: SimError,
    /// The actions from the initial state; the last one is the one that failed.
    pub trace: Vec<(Action, String)>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.error)?;
        writeln!(f, "trace ({} steps from the initial state, the last one failing):", self.trace.len())?;
        write_trace(f, &self.trace, None, None)
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Distinct states explored.
    pub states: usize,
    /// Transitions taken (actions applied).
    pub transitions: usize,
    /// Fault-free transitions among them (the graph termination is checked on).
    pub fault_free_transitions: usize,
    /// The longest shortest path, in actions.
    pub depth: usize,
    /// Whether every reachable state was explored (false if `max_states` stopped it).
    pub complete: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// The first violation, if any.
    pub violation: Option<Counterexample>,
    /// An action that failed to apply, if any.
    pub failure: Option<Failure>,
}

impl Report {
    /// Whether the run found nothing wrong and explored everything.
    pub fn passed(&self) -> bool {
        self.complete && self.violation.is_none() && self.failure.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "explored {} states ({} transitions, {} fault-free; depth {}) in {:.1} s{}",
            self.states,
            self.transitions,
            self.fault_free_transitions,
            self.depth,
            self.elapsed.as_secs_f64(),
            if self.complete { "" } else { " — INCOMPLETE: state limit reached" }
        )?;
        match (&self.failure, &self.violation) {
            (Some(failure), _) => write!(f, "FAILURE: an action did not apply: {failure}"),
            (None, Some(counterexample)) => write!(f, "VIOLATION {counterexample}"),
            (None, None) => write!(f, "no invariant of protocol.md §6 violated; every fair fault-free schedule ends"),
        }
    }
}

/// A state of the model: the world and the crashes spent reaching it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ModelState {
    world: World,
    crashes: u8,
}

fn is_crash(action: &Action) -> bool {
    matches!(action, Action::Restart { .. } | Action::CrashBetweenWrites { .. })
}

/// Whether `action` is a fault: a loss, a duplicate or a crash.
fn is_fault(action: &Action) -> bool {
    matches!(action, Action::Deliver { keep: true, .. } | Action::Drop { .. }) || is_crash(action)
}

/// A fault-free action as fairness sees it: the same delivery is the same message wherever it
/// sits in the network's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Label<'a> {
    Start(usize),
    Deliver(&'a Envelope),
    Fire(Role, SessionId, TimerKind),
    Clock(Role),
}

impl<'a> Label<'a> {
    fn of(world: &'a World, action: &Action) -> Option<Self> {
        Some(match action {
            Action::Start { exchange } => Self::Start(*exchange),
            Action::Deliver { index, keep: false } => Self::Deliver(world.network().get(*index)?),
            Action::Fire { role, session, kind } => Self::Fire(*role, *session, *kind),
            Action::AdvanceClock { role } => Self::Clock(*role),
            _ => return None,
        })
    }
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start(exchange) => write!(f, "start {exchange}"),
            Self::Deliver(envelope) => write!(f, "deliver {envelope}"),
            Self::Fire(role, session, kind) => write!(f, "{role}'s {kind:?} timer of {}", session.short()),
            Self::Clock(role) => write!(f, "{role}'s clock"),
        }
    }
}

/// The explored states' fault-free transitions, for the termination check.
#[derive(Default)]
struct Graph {
    /// Per state (by discovery index): its fault-free successors, with the label taken.
    edges: Vec<Vec<(u32, u32)>>,
    /// Per state: whether A or B holds an open session.
    open: Vec<bool>,
    /// Labels by id, as text.
    labels: Vec<String>,
    label_ids: HashMap<u128, u32>,
}

impl Graph {
    fn label_id(&mut self, label: Label<'_>) -> u32 {
        let key = fingerprint(&label);
        let next = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        *self.label_ids.entry(key).or_insert_with(|| {
            self.labels.push(label.to_string());
            next
        })
    }
}

/// Explores every reachable state within the bounds of `config`; see the [module docs](self).
pub fn explore(config: &ModelConfig) -> Report {
    let started = Instant::now();
    let initial = ModelState { world: World::new(config.world.clone()), crashes: 0 };
    // Every state's parent and the action that reached it, for counterexamples.
    let mut parents: Vec<(u32, Option<Action>)> = vec![(0, None)];
    let mut index_of: HashMap<u128, u32> = HashMap::from([(fingerprint(&initial), 0)]);
    let mut graph = Graph::default();
    let mut queue: VecDeque<(u32, usize, ModelState)> = VecDeque::from([(0, 0, initial)]);
    let mut report = Report {
        states: 1,
        transitions: 0,
        fault_free_transitions: 0,
        depth: 0,
        complete: true,
        elapsed: Duration::ZERO,
        violation: None,
        failure: None,
    };

    'explore: while let Some((index, depth, state)) = queue.pop_front() {
        report.depth = report.depth.max(depth);
        if let Err(violation) = check_world(&state.world) {
            report.violation = Some(counterexample(config, trace_of(&parents, index), None, violation));
            break;
        }
        // States are expanded in discovery order, so `index` is the next row of the graph.
        debug_assert_eq!(graph.edges.len(), index as usize);
        let mut edges = Vec::new();
        for action in state.world.enabled(true) {
            if is_crash(&action) && state.crashes >= config.max_crashes {
                continue;
            }
            if !config.lossy_network && is_fault(&action) && !is_crash(&action) {
                continue;
            }
            if matches!(action, Action::Restart { role: Role::T }) {
                continue; // T keeps nothing in memory: its restart changes no state.
            }
            let mut next = state.clone();
            match next.world.apply(&action) {
                Ok(()) => {}
                // The planted crash is offered on every delivery; most steps write once.
                Err(SimError::SingleWrite) if matches!(action, Action::CrashBetweenWrites { .. }) => continue,
                Err(error) => {
                    let mut actions = trace_of(&parents, index);
                    actions.push(action);
                    report.failure = Some(Failure { error, trace: replay(config, &actions).0 });
                    break 'explore;
                }
            }
            report.transitions += 1;
            if is_crash(&action) {
                next.crashes += 1;
            }
            let label = if is_fault(&action) { None } else { Label::of(&state.world, &action) };
            let print = fingerprint(&next);
            let target = match index_of.get(&print) {
                Some(known) => *known,
                None if report.states >= config.max_states => {
                    report.complete = false;
                    continue;
                }
                None => {
                    let child = u32::try_from(parents.len()).unwrap_or(u32::MAX);
                    index_of.insert(print, child);
                    parents.push((index, Some(action)));
                    report.states += 1;
                    queue.push_back((child, depth + 1, next));
                    child
                }
            };
            if let Some(label) = label {
                report.fault_free_transitions += 1;
                edges.push((target, graph.label_id(label)));
            }
        }
        graph.edges.push(edges);
        graph.open.push(state.world.has_open_sessions());
    }

    if report.violation.is_none() && report.failure.is_none() && report.complete {
        report.violation = check_fair_termination(config, &graph, &parents, &index_of);
    }
    report.elapsed = started.elapsed();
    report
}

/// §6.4 under every fair fault-free schedule; see the [module docs](self).
fn check_fair_termination(
    config: &ModelConfig,
    graph: &Graph,
    parents: &[(u32, Option<Action>)],
    index_of: &HashMap<u128, u32>,
) -> Option<Counterexample> {
    let n = graph.edges.len();
    // A state with an open session and no fault-free step at all.
    if let Some(stuck) = (0..n).find(|&v| graph.open[v] && graph.edges[v].is_empty()) {
        let violation =
            Violation { invariant: Invariant::Termination, detail: "a session is open and, once faults stop, nothing can happen".into() };
        return Some(counterexample(config, trace_of(parents, stuck as u32), None, violation));
    }
    let component = strongly_connected(n, |v| {
        let open = graph.open[v as usize];
        graph.edges[v as usize].iter().map(|(w, _)| *w).filter(move |w| open && graph.open[*w as usize])
    });
    // Per component: the labels taken inside it, whether it has an inner edge, and the labels
    // enabled in every one of its states.
    let components = component.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut taken: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); components];
    let mut enabled_everywhere: Vec<Option<BTreeSet<u32>>> = vec![None; components];
    for v in (0..n).filter(|&v| graph.open[v]) {
        let c = component[v] as usize;
        let enabled: BTreeSet<u32> = graph.edges[v].iter().map(|(_, label)| *label).collect();
        for (w, label) in &graph.edges[v] {
            if component[*w as usize] as usize == c && graph.open[*w as usize] {
                taken[c].insert(*label);
            }
        }
        enabled_everywhere[c] = Some(match enabled_everywhere[c].take() {
            None => enabled,
            Some(common) => common.intersection(&enabled).copied().collect(),
        });
    }
    let fair = (0..components).find(|&c| !taken[c].is_empty() && enabled_everywhere[c].as_ref().is_some_and(|e| e.is_subset(&taken[c])))?;
    let states: Vec<u32> = (0..n as u32).filter(|&v| graph.open[v as usize] && component[v as usize] as usize == fair).collect();
    let entry = states[0];
    let cycle = covering_cycle(graph, &component, entry, &taken[fair]);
    let names: Vec<&str> = taken[fair].iter().map(|label| graph.labels[*label as usize].as_str()).collect();
    let violation = Violation {
        invariant: Invariant::Termination,
        detail: format!(
            "a fair schedule never ends: {} states with open sessions loop forever, every action enabled throughout is taken \
             ({}), and no session ends",
            states.len(),
            names.join("; ")
        ),
    };
    // The actions of the loop: in each state, a fault-free action that leads to the next.
    let path = trace_of(parents, entry);
    let around = |mut state: ModelState| -> Option<Vec<Action>> {
        let mut actions = Vec::new();
        for next in &cycle {
            let (action, after) = state.world.enabled(false).into_iter().find_map(|action| {
                let mut after = state.clone();
                after.world.apply(&action).ok()?;
                (index_of.get(&fingerprint(&after)) == Some(next)).then_some((action, after))
            })?;
            actions.push(action);
            state = after;
        }
        Some(actions)
    };
    let loop_actions = replay_world(config, &path).and_then(around).unwrap_or_default();
    let loop_from = (!loop_actions.is_empty()).then_some(path.len());
    Some(counterexample(config, [path, loop_actions].concat(), loop_from, violation))
}

/// A walk from `entry` back to `entry` inside its component that takes every label of `labels`
/// (each leg the shortest to the next label not yet taken), as the states it visits after
/// `entry` (ending with `entry`).
fn covering_cycle(graph: &Graph, component: &[u32], entry: u32, labels: &BTreeSet<u32>) -> Vec<u32> {
    let inside = |w: u32| component[w as usize] == component[entry as usize] && graph.open[w as usize];
    let (mut walk, mut at, mut left) = (Vec::new(), entry, labels.clone());
    loop {
        // Breadth first from `at` to the nearest edge with a label still to take (or, once all
        // are taken, back to `entry`).
        let mut previous: HashMap<u32, u32> = HashMap::from([(at, at)]);
        let mut queue = VecDeque::from([at]);
        let mut found = None;
        'search: while let Some(v) = queue.pop_front() {
            for (w, label) in &graph.edges[v as usize] {
                if !inside(*w) {
                    continue;
                }
                if if left.is_empty() { *w == entry } else { left.contains(label) } {
                    found = Some((v, *w, *label));
                    break 'search;
                }
                if !previous.contains_key(w) {
                    previous.insert(*w, v);
                    queue.push_back(*w);
                }
            }
        }
        let Some((v, w, label)) = found else { return walk };
        let mut leg = Vec::new();
        let mut x = v;
        while x != at {
            leg.push(x);
            x = previous[&x];
        }
        leg.reverse();
        walk.extend(leg);
        walk.push(w);
        left.remove(&label);
        at = w;
        if left.is_empty() && w == entry {
            return walk;
        }
    }
}

/// Tarjan's strongly connected components, without recursion: each state's component number.
fn strongly_connected<I: Iterator<Item = u32>>(n: usize, successors: impl Fn(u32) -> I) -> Vec<u32> {
    let mut tarjan = Tarjan {
        order: vec![Tarjan::UNSEEN; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        component: vec![Tarjan::UNSEEN; n],
        stack: Vec::new(),
        next_order: 0,
        next_component: 0,
    };
    for root in 0..n as u32 {
        if tarjan.order[root as usize] != Tarjan::UNSEEN {
            continue;
        }
        // The call stack: a state, its successors, and how many of them were looked at.
        let mut calls: Vec<(u32, Vec<u32>, usize)> = vec![(root, successors(root).collect(), 0)];
        tarjan.enter(root);
        while let Some((v, successors_of_v, position)) = calls.last_mut() {
            let v = *v;
            if let Some(&w) = successors_of_v.get(*position) {
                *position += 1;
                if tarjan.order[w as usize] == Tarjan::UNSEEN {
                    tarjan.enter(w);
                    calls.push((w, successors(w).collect(), 0));
                } else if tarjan.on_stack[w as usize] {
                    tarjan.low[v as usize] = tarjan.low[v as usize].min(tarjan.order[w as usize]);
                }
                continue;
            }
            calls.pop();
            if let Some((parent, _, _)) = calls.last() {
                tarjan.low[*parent as usize] = tarjan.low[*parent as usize].min(tarjan.low[v as usize]);
            }
            tarjan.leave(v);
        }
    }
    tarjan.component
}

struct Tarjan {
    order: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    component: Vec<u32>,
    stack: Vec<u32>,
    next_order: u32,
    next_component: u32,
}

impl Tarjan {
    const UNSEEN: u32 = u32::MAX;

    fn enter(&mut self, v: u32) {
        self.order[v as usize] = self.next_order;
        self.low[v as usize] = self.next_order;
        self.next_order += 1;
        self.stack.push(v);
        self.on_stack[v as usize] = true;
    }

    /// After every successor of `v`: if `v` roots a component, pop it.
    fn leave(&mut self, v: u32) {
        if self.low[v as usize] != self.order[v as usize] {
            return;
        }
        while let Some(w) = self.stack.pop() {
            self.on_stack[w as usize] = false;
            self.component[w as usize] = self.next_component;
            if w == v {
                break;
            }
        }
        self.next_component += 1;
    }
}

fn counterexample(config: &ModelConfig, actions: Vec<Action>, loop_from: Option<usize>, violation: Violation) -> Counterexample {
    let (trace, planted_at) = replay(config, &actions);
    Counterexample { violation, trace, loop_from, planted_at }
}

fn trace_of(parents: &[(u32, Option<Action>)], mut index: u32) -> Vec<Action> {
    let mut actions = Vec::new();
    while let Some((parent, Some(action))) = parents.get(index as usize) {
        actions.push(action.clone());
        index = *parent;
    }
    actions.reverse();
    actions
}

/// The model state `actions` lead to from the initial state.
fn replay_world(config: &ModelConfig, actions: &[Action]) -> Option<ModelState> {
    let mut state = ModelState { world: World::new(config.world.clone()), crashes: 0 };
    for action in actions {
        state.world.apply(action).ok()?;
        state.crashes += u8::from(is_crash(action));
    }
    Some(state)
}

/// Replays `actions` from the initial state, describing each state reached, and finds the first
/// action the planted bug (if any) acted in.
fn replay(config: &ModelConfig, actions: &[Action]) -> (Vec<(Action, String)>, Option<usize>) {
    let mut world = World::new(config.world.clone());
    let mut planted_at = None;
    let trace = actions
        .iter()
        .enumerate()
        .map(|(i, action)| {
            let mutated_before = world.mutated_steps();
            let outcome = world.apply(action).map(|()| world.to_string());
            if planted_at.is_none() && world.mutated_steps() > mutated_before {
                planted_at = Some(i);
            }
            (action.clone(), outcome.unwrap_or_else(|e| format!("(failed: {e})")))
        })
        .collect();
    (trace, planted_at)
}
