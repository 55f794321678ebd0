//! Exhaustive model checking of one exchange among A, B and T.
//!
//! [`explore`] walks every state reachable from the initial [`World`] breadth first: A may start;
//! any message in flight may be delivered (once, or leaving a duplicate), dropped, or delivered
//! out of order; any armed timer may fire; A or B may crash and restart from what it persisted at
//! any point between steps (up to a crash budget, which bounds the run). In every state it checks
//! protocol.md §6 ([`check_world`]) and that, were faults to stop there, every session would end
//! ([`World::heal`]). States are told apart by a 128-bit fingerprint of everything that
//! matters to the protocol. The first violation stops the run and comes back as a
//! [`Counterexample`]: the shortest sequence of actions from the initial state that reaches it.
//!
//! ```no_run
//! use valex_testnet::model::{explore, ModelConfig};
//! let report = explore(&ModelConfig::default());
//! println!("{report}");
//! assert!(report.violation.is_none());
//! ```

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::invariants::{Invariant, Violation, check_world};
use crate::sim::{Action, World, WorldConfig, fingerprint};

/// Bounds and settings of a model-checking run.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The simulated exchange (timing, policies, and a bug to plant, if any).
    pub world: WorldConfig,
    /// Crash-restarts allowed on any path (A's and B's together).
    pub max_crashes: u8,
    /// Whether messages may be dropped and duplicated (reordering is always explored).
    pub lossy_network: bool,
    /// Fault-free steps allowed for every session to end, from any state (§6.4).
    pub heal_steps: usize,
    /// Give up after this many states (the run is then reported as incomplete).
    pub max_states: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { world: WorldConfig::default(), max_crashes: 4, lossy_network: true, heal_steps: 200, max_states: 20_000_000 }
    }
}

/// A path to a violation.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// What was violated.
    pub violation: Violation,
    /// The actions from the initial state, each with the state it led to.
    pub trace: Vec<(Action, String)>,
    /// Where faults stopped, when the violation was found by letting the world heal from there
    /// (§6.4, or §6 broken on the way): the trace's first `faults_stop_at` actions reach an
    /// explored state, the rest are fault-free.
    pub faults_stop_at: Option<usize>,
    /// The first action of the trace during which the planted bug (if any) changed a node's
    /// step; `None` when every node behaved honestly along the trace.
    pub planted_at: Option<usize>,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.violation)?;
        writeln!(f, "counterexample ({} steps from the initial state):", self.trace.len())?;
        for (i, (action, state)) in self.trace.iter().enumerate() {
            if self.faults_stop_at == Some(i) {
                writeln!(f, "  -- faults stop here; from now on every message is delivered and timers fire --")?;
            }
            let planted = if self.planted_at == Some(i) { "   <- the planted bug acts here" } else { "" };
            writeln!(f, "  {:>2}. {action}{planted}", i + 1)?;
            writeln!(f, "      => {state}")?;
        }
        Ok(())
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Distinct states explored.
    pub states: usize,
    /// Transitions taken (actions applied).
    pub transitions: usize,
    /// The longest shortest path, in actions.
    pub depth: usize,
    /// Whether every reachable state was explored (false if `max_states` stopped it).
    pub complete: bool,
    /// How long it took.
    pub elapsed: Duration,
    /// The first violation, if any.
    pub violation: Option<Counterexample>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "explored {} states ({} transitions, depth {}) in {:.1} s{}",
            self.states,
            self.transitions,
            self.depth,
            self.elapsed.as_secs_f64(),
            if self.complete { "" } else { " — INCOMPLETE: state limit reached" }
        )?;
        match &self.violation {
            None => write!(f, "no invariant of protocol.md §6 violated"),
            Some(counterexample) => write!(f, "VIOLATION {counterexample}"),
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

/// Explores every reachable state within the bounds of `config`; see the [module docs](self).
pub fn explore(config: &ModelConfig) -> Report {
    let started = Instant::now();
    let initial = ModelState { world: World::new(config.world.clone()), crashes: 0 };
    // Every state's parent and the action that reached it, for counterexamples.
    let mut parents: Vec<(u32, Option<Action>)> = vec![(0, None)];
    let mut seen: HashSet<u128> = HashSet::from([fingerprint(&initial)]);
    let mut healthy: HashSet<u128> = HashSet::new();
    let mut queue: VecDeque<(u32, usize, ModelState)> = VecDeque::from([(0, 0, initial)]);
    let mut report = Report { states: 1, transitions: 0, depth: 0, complete: true, elapsed: Duration::ZERO, violation: None };

    let found = |parents: &[(u32, Option<Action>)], index: u32, violation: Violation, healing: Vec<Action>| {
        let mut actions = trace_of(parents, index);
        let faults_stop_at = (!healing.is_empty()).then_some(actions.len());
        actions.extend(healing);
        let (trace, planted_at) = replay(config, &actions);
        Counterexample { violation, trace, faults_stop_at, planted_at }
    };

    while let Some((index, depth, state)) = queue.pop_front() {
        report.depth = report.depth.max(depth);
        if let Err(violation) = check_world(&state.world) {
            report.violation = Some(found(&parents, index, violation, Vec::new()));
            break;
        }
        if let Err((violation, healing)) = check_healing(&state.world, config.heal_steps, &mut healthy) {
            report.violation = Some(found(&parents, index, violation, healing));
            break;
        }
        for action in state.world.enabled(config.lossy_network) {
            if is_crash(&action) && state.crashes >= config.max_crashes {
                continue;
            }
            if matches!(action, Action::Restart { role: crate::sim::Role::T }) {
                continue; // T keeps nothing in memory: its restart changes no state.
            }
            let mut next = state.clone();
            if next.world.apply(&action).is_err() {
                continue;
            }
            report.transitions += 1;
            if is_crash(&action) {
                next.crashes += 1;
            }
            if !seen.insert(fingerprint(&next)) {
                continue;
            }
            if report.states >= config.max_states {
                report.complete = false;
                continue;
            }
            let child = u32::try_from(parents.len()).unwrap_or(u32::MAX);
            parents.push((index, Some(action)));
            report.states += 1;
            queue.push_back((child, depth + 1, next));
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// §6.4 from `world`, remembering the fingerprint of every state on a path known to end well.
/// A failure comes with the fault-free actions that lead to it.
fn check_healing(world: &World, max_steps: usize, healthy: &mut HashSet<u128>) -> Result<(), (Violation, Vec<Action>)> {
    if healthy.contains(&fingerprint(world)) {
        return Ok(());
    }
    let mut path = Vec::new();
    let mut healed = world.clone();
    let mut known = |w: &World| {
        let print = fingerprint(w);
        path.push(print);
        healthy.contains(&print)
    };
    let mut taken = Vec::new();
    match healed.heal_with(max_steps, &mut known, &mut taken) {
        // Every state on the way and the end state must satisfy §6 too.
        Ok(_) => {
            let mut replay = world.clone();
            for action in &taken {
                check_world(&replay).map_err(|v| (v, taken.clone()))?;
                let _ = replay.apply(action);
            }
            check_world(&healed).map_err(|v| (v, taken.clone()))?;
            healthy.extend(path);
            Ok(())
        }
        Err(detail) => Err((Violation { invariant: Invariant::Termination, detail }, taken)),
    }
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
            (action.clone(), outcome.unwrap_or_else(|e| format!("(replay failed: {e})")))
        })
        .collect();
    (trace, planted_at)
}
