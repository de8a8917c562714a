//! The checker: splits a history at quiescent points, walks the segments
//! depth first carrying each reachable end state into the next segment,
//! and explains a violation.

use super::history::{History, Operation};
use super::model::{response_matches, EtcdState};
use super::search::{revision_bound, Budget, End, Pruning, Search, Step};
use std::collections::HashSet;
use std::fmt;

/// Default [`CheckLimits::max_states_explored`].
pub const DEFAULT_MAX_STATES_EXPLORED: u64 = 20_000_000;
/// Model steps a violation report may spend re-searching the stuck
/// segment without pruning, for a longer prefix (beyond the check's own).
const REPORT_MAX_STATES_EXPLORED: u64 = 1_000_000;

/// Bounds on one [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckLimits {
    /// Model steps the search may take in all (default
    /// [`DEFAULT_MAX_STATES_EXPLORED`], minimum 1); past it the result is
    /// [`CheckResult::Unknown`].
    pub max_states_explored: u64,
    /// Whether to cut the history at quiescent points (default true);
    /// false searches it as one segment, for comparison.
    pub split_at_quiescent_points: bool,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_states_explored: DEFAULT_MAX_STATES_EXPLORED,
            split_at_quiescent_points: true,
        }
    }
}

/// A checker's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The history is linearizable.
    Linearizable {
        /// One linearization: every completed operation and the failed
        /// ones that took effect in it, as indexes into the history.
        order: Vec<usize>,
    },
    /// No linearization exists.
    Violation(Violation),
    /// The search hit [`CheckLimits::max_states_explored`].
    Unknown {
        /// Model steps taken.
        states_explored: u64,
    },
}

impl CheckResult {
    /// Whether the verdict is [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable { .. })
    }
}

/// Why a history is not linearizable: the longest prefix the search could
/// linearize, and the operations that had to come next and could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The longest linearizable prefix found, as history indexes.
    pub prefix: Vec<usize>,
    /// The model's state after `prefix`.
    pub state: EtcdState,
    /// The completed operations that could come next in real time, the
    /// one that returned first (which every linearization must place
    /// before anything called after its return) first. When the prefix
    /// is a whole segment and only a later operation's answer rules out
    /// going on (it answered a revision lower than the segment reaches),
    /// that operation alone.
    pub stuck: Vec<StuckOperation>,
}

/// An operation that could not be linearized after a [`Violation`]'s
/// prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuckOperation {
    /// Its history index.
    pub op: usize,
    /// What it asked and got, against what the model answers there.
    pub description: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not linearizable: the longest linearizable prefix has {} operations",
            self.prefix.len()
        )?;
        if let Some(last) = self.prefix.last() {
            write!(f, " (the last is #{last})")?;
        }
        writeln!(f, "; after it the model is at {}.", self.state)?;
        writeln!(f, "None of the operations that must come next fits:")?;
        for stuck in &self.stuck {
            writeln!(f, "  {}", stuck.description)?;
        }
        Ok(())
    }
}

/// Checks `history` against etcd's model from a new cluster's state.
///
/// Panics if the history is invalid ([`History::validate`]): that is the
/// recording harness's bug, not the server's.
pub fn check(history: &History, limits: &CheckLimits) -> CheckResult {
    if let Err(err) = history.validate() {
        panic!("linearizability check of an invalid history: {err}");
    }
    let segments = segments(history, limits.split_at_quiescent_points);
    let mut checker = Checker {
        history,
        ceilings: ceilings(history, &segments),
        segments: &segments,
        budget: Budget {
            explored: 0,
            max: limits.max_states_explored.max(1),
        },
        dead: HashSet::new(),
        deepest: None,
    };
    checker.run()
}

/// Where the walk stands at a quiescent point: a reachable state, the
/// failed operations not yet applied in it, and how it was reached.
#[derive(Clone)]
struct Config {
    state: EtcdState,
    pending: Vec<usize>,
    order: Vec<usize>,
}

/// One segment being searched from one config.
struct Frame<'h> {
    segment: usize,
    config: Config,
    search: Search<'h>,
    /// History index of each searched operation.
    ops: Vec<usize>,
    /// Whether the search reached an end; a frame that never did is where
    /// the history is stuck.
    ended: bool,
}

/// The longest prefix any stuck search reached, for the report.
#[derive(Clone)]
struct Deepest {
    segment: usize,
    config: Config,
    ops: Vec<usize>,
    prefix: Vec<usize>,
}

/// Walks the segments depth first: each end of segment k's search is
/// a config for segment k + 1, tried before the next end of k; a config
/// from which the rest of the history failed is remembered as dead, so no
/// two paths search the same rest twice. Ends are found lazily because
/// listing them all explodes when it is ambiguous which of several failed
/// writes took effect (each choice is a distinct state) while the first
/// choice would do.
struct Checker<'h> {
    history: &'h History,
    segments: &'h [Vec<usize>],
    /// Per segment, the lowest revision bound of every later segment's
    /// operations (see [`Pruning::RevisionBounds`]).
    ceilings: Vec<Option<i64>>,
    budget: Budget,
    /// (segment, state, pending) already searched to exhaustion.
    dead: HashSet<(usize, EtcdState, Vec<usize>)>,
    deepest: Option<Deepest>,
}

impl<'h> Checker<'h> {
    fn run(&mut self) -> CheckResult {
        if self.segments.is_empty() {
            // Empty, or only failed reads.
            return CheckResult::Linearizable { order: Vec::new() };
        }
        let initial = Config {
            state: EtcdState::new(),
            pending: Vec::new(),
            order: Vec::new(),
        };
        let mut stack = vec![self.frame(0, initial)];
        while let Some(top) = stack.last_mut() {
            match top.search.next_end(&mut self.budget) {
                Step::End(end) => {
                    top.ended = true;
                    let segment = top.segment + 1;
                    let config = self.next_config(top, end);
                    if segment == self.segments.len() {
                        return CheckResult::Linearizable {
                            order: config.order,
                        };
                    }
                    let key = (segment, config.state.clone(), config.pending.clone());
                    if !self.dead.contains(&key) {
                        stack.push(self.frame(segment, config));
                    }
                }
                Step::Exhausted => {
                    let frame = stack.pop().expect("the loop holds the top frame");
                    self.note_deepest(&frame);
                    let Frame {
                        segment, config, ..
                    } = frame;
                    self.dead.insert((segment, config.state, config.pending));
                }
                Step::OutOfBudget => {
                    let states_explored = self.budget.explored;
                    return CheckResult::Unknown { states_explored };
                }
            }
        }
        let deepest = self
            .deepest
            .take()
            .expect("an exhausted walk noted its deepest search");
        let later = self.ceiling_op(deepest.segment);
        CheckResult::Violation(report(self.history, &deepest, later))
    }

    /// A search of `segment`'s operations and the config's pending ones.
    fn frame(&self, segment: usize, config: Config) -> Frame<'h> {
        let ops: Vec<usize> = config
            .pending
            .iter()
            .chain(&self.segments[segment])
            .copied()
            .collect();
        let history = self.history;
        let refs = ops.iter().map(|&i| &history.operations[i]).collect();
        let pruning = Pruning::RevisionBounds {
            ceiling: self.ceilings[segment],
        };
        let search = Search::new(refs, config.state.clone(), pruning);
        Frame {
            segment,
            config,
            search,
            ops,
            ended: false,
        }
    }

    /// The config an end of `frame`'s search leads to.
    fn next_config(&self, frame: &Frame<'_>, end: End) -> Config {
        let applied: Vec<usize> = end.order.iter().map(|&local| frame.ops[local]).collect();
        let pending = frame
            .ops
            .iter()
            .copied()
            .filter(|i| self.history.operations[*i].is_failed() && !applied.contains(i))
            .collect();
        let mut order = frame.config.order.clone();
        order.extend(applied);
        Config {
            state: end.state,
            pending,
            order,
        }
    }

    /// The first operation after `segment` with the lowest revision
    /// bound: the one a segment's ceiling comes from.
    fn ceiling_op(&self, segment: usize) -> Option<usize> {
        let ceiling = self.ceilings[segment]?;
        self.segments[segment + 1..]
            .iter()
            .flatten()
            .copied()
            .find(|&i| revision_bound(&self.history.operations[i]) == Some(ceiling))
    }

    fn note_deepest(&mut self, frame: &Frame<'_>) {
        if frame.ended {
            // Its ends failed later; the later frames say where.
            return;
        }
        let prefix = frame.search.deepest();
        let length = frame.config.order.len() + prefix.len();
        let best = self
            .deepest
            .as_ref()
            .map(|d| d.config.order.len() + d.prefix.len());
        if best.is_none_or(|best| length > best) {
            self.deepest = Some(Deepest {
                segment: frame.segment,
                config: frame.config.clone(),
                ops: frame.ops.clone(),
                prefix: prefix.to_vec(),
            });
        }
    }
}

/// How the stuck segment looks searched again without pruning.
enum Unpruned {
    /// Its longest prefix (porcupine's, or the pruned one if the search
    /// took too long).
    Stuck(Vec<usize>),
    /// It linearizes alone, in this order: only a later segment's lower
    /// revision made it stuck.
    Ends(Vec<usize>),
}

fn search_unpruned(history: &History, deepest: &Deepest) -> Unpruned {
    let refs = deepest
        .ops
        .iter()
        .map(|&i| &history.operations[i])
        .collect();
    let mut search = Search::new(refs, deepest.config.state.clone(), Pruning::Off);
    let mut budget = Budget {
        explored: 0,
        max: REPORT_MAX_STATES_EXPLORED,
    };
    match search.next_end(&mut budget) {
        Step::End(end) => Unpruned::Ends(end.order),
        Step::Exhausted if search.deepest().len() > deepest.prefix.len() => {
            Unpruned::Stuck(search.deepest().to_vec())
        }
        Step::Exhausted | Step::OutOfBudget => Unpruned::Stuck(deepest.prefix.clone()),
    }
}

/// The violation at the deepest prefix: the model's state there and the
/// operations that had to come next. `later` is the operation of a later
/// segment with the lowest revision bound, blamed when the segment is
/// stuck only because of it.
fn report(history: &History, deepest: &Deepest, later: Option<usize>) -> Violation {
    let operations = &history.operations;
    let (local_prefix, blame) = match search_unpruned(history, deepest) {
        Unpruned::Stuck(prefix) => (prefix, None),
        Unpruned::Ends(order) => (order, later),
    };
    let mut state = deepest.config.state.clone();
    for &local in &local_prefix {
        state = state.step(&operations[deepest.ops[local]].request).0;
    }
    let done: HashSet<usize> = local_prefix.iter().map(|&l| deepest.ops[l]).collect();
    let stuck = match blame {
        Some(later) => vec![later],
        None => next_candidates(history, &deepest.ops, &done),
    };
    let mut prefix = deepest.config.order.clone();
    prefix.extend(local_prefix.iter().map(|&l| deepest.ops[l]));
    let stuck = stuck
        .into_iter()
        .map(|op| StuckOperation {
            op,
            description: describe(op, &operations[op], &state),
        })
        .collect();
    Violation {
        prefix,
        state,
        stuck,
    }
}

/// The completed operations of `ops` not in `done` that could come next
/// in real time, the one that returns first first.
fn next_candidates(history: &History, ops: &[usize], done: &HashSet<usize>) -> Vec<usize> {
    let operations = &history.operations;
    let remaining = ops.iter().copied().filter(|i| !done.contains(i));
    let completed: Vec<usize> = remaining.filter(|&i| !operations[i].is_failed()).collect();
    let Some(first_return) = completed
        .iter()
        .filter_map(|&i| operations[i].return_ns)
        .min()
    else {
        return Vec::new();
    };
    let mut next: Vec<usize> = completed
        .into_iter()
        .filter(|&i| operations[i].call_ns <= first_return)
        .collect();
    next.sort_by_key(|&i| (operations[i].return_ns, i));
    next
}

/// One stuck operation against the model's answer at `state`.
fn describe(index: usize, op: &Operation, state: &EtcdState) -> String {
    let ret = op.return_ns.map_or("∞".to_owned(), |r| r.to_string());
    let head = format!(
        "#{index} client {} [{}, {ret}] {}",
        op.client, op.call_ns, op.request
    );
    let (_, expected) = state.step(&op.request);
    match &op.response {
        Some(observed) if response_matches(&expected, observed) => {
            format!("{head} → {observed}: fits here, but nothing linearizes the rest after it")
        }
        Some(observed) => format!("{head} → {observed}, but the model answers {expected}"),
        None => format!(
            "{head} → (unknown): took effect by its return; here it answers {expected}, \
             but nothing linearizes the rest after it"
        ),
    }
}

/// The history's operations worth checking, in call order, cut at
/// quiescent points: before an operation called after every completed
/// operation called before it has returned. A failed operation never
/// returns, so it holds no segment open; it is carried as pending.
/// Failed read-only operations are left out: they changed nothing and
/// observed nothing.
fn segments(history: &History, split: bool) -> Vec<Vec<usize>> {
    let operations = &history.operations;
    let mut relevant: Vec<usize> = (0..operations.len())
        .filter(|&i| !(operations[i].is_failed() && operations[i].request.is_read_only()))
        .collect();
    relevant.sort_by_key(|&i| (operations[i].call_ns, i));
    let mut segments: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    let mut latest_return: Option<u64> = None;
    for i in relevant {
        let op = &operations[i];
        let quiescent = latest_return.is_none_or(|ret| op.call_ns > ret);
        if split && quiescent && !current.is_empty() {
            segments.push(std::mem::take(&mut current));
        }
        current.push(i);
        if let Some(ret) = op.return_ns {
            latest_return = Some(latest_return.map_or(ret, |latest| latest.max(ret)));
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// For each segment, the lowest revision bound among the operations of
/// the segments after it.
fn ceilings(history: &History, segments: &[Vec<usize>]) -> Vec<Option<i64>> {
    let mut ceilings = vec![None; segments.len()];
    let mut lowest: Option<i64> = None;
    for (k, segment) in segments.iter().enumerate().rev() {
        ceilings[k] = lowest;
        let own = segment
            .iter()
            .filter_map(|&i| revision_bound(&history.operations[i]));
        lowest = own.chain(lowest).min();
    }
    ceilings
}

/// Checks that `order` linearizes `history`: each index at most once,
/// every completed operation present, real-time order respected (an
/// operation that returned before another was called comes first), and
/// every response what the model answers in this order.
pub fn validate_order(history: &History, order: &[usize]) -> Result<(), String> {
    let operations = &history.operations;
    let mut seen = vec![false; operations.len()];
    for &i in order {
        match seen.get_mut(i) {
            None => return Err(format!("#{i} is not an operation of the history")),
            Some(true) => return Err(format!("#{i} appears twice")),
            Some(seen) => *seen = true,
        }
    }
    if let Some(missing) = (0..operations.len()).find(|&i| !operations[i].is_failed() && !seen[i]) {
        return Err(format!("completed operation #{missing} is missing"));
    }
    let mut latest_call: Option<(u64, usize)> = None;
    for &i in order {
        let op = &operations[i];
        if let (Some(ret), Some((call, earlier))) = (op.return_ns, latest_call) {
            if ret < call {
                return Err(format!(
                    "#{i} returned at {ret}, before #{earlier} (ordered before it) was called at {call}"
                ));
            }
        }
        if latest_call.is_none_or(|(call, _)| op.call_ns > call) {
            latest_call = Some((op.call_ns, i));
        }
    }
    let mut state = EtcdState::new();
    for &i in order {
        let op = &operations[i];
        let (next, expected) = state.step(&op.request);
        if let Some(observed) = &op.response {
            if !response_matches(&expected, observed) {
                return Err(format!(
                    "#{i} {} got {observed}, but in this order the model answers {expected}",
                    op.request
                ));
            }
        }
        state = next;
    }
    Ok(())
}
