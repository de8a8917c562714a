//! The Wing–Gong–Lowe search over one segment of a history, as porcupine's
//! `checkSingle`: the completed operations' call and return entries in one
//! doubly linked list in time order; linearizing an operation lifts its
//! two entries out, backtracking puts them back; a memo of (linearized
//! set, state) pairs prunes every node reached twice. The operations that
//! may come next at a node are the calls before the list's first return.
//!
//! A failed operation has no return: it may be linearized at any node
//! after its call, or never, and a node where every completed operation is
//! linearized is an end. Failed operations sit in a list of their own and
//! are tried at a node only after every completed candidate: applying one
//! eagerly (a grant or a compaction that never happened) is often
//! contradicted only much later, after a long useless subtree, while one
//! that did happen stays a candidate at every later node and is applied
//! where a completed operation first needs it.
//!
//! One pruning rule on top of porcupine's: revisions never decrease, and
//! most answers pin the revision at their linearization point. A node whose
//! revision is already past what some unlinearized completed operation
//! answered is dead — without it, a failed write tried too early lets every
//! other pending failed write follow in every order before anything notices.

use super::history::Operation;
use super::model::{response_matches, EtcdState};
use super::request::{Response, TxnResult};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

/// The list's sentinel head, and the "no entry" link.
const HEAD: usize = 0;
const NIL: usize = usize::MAX;

/// A node where every completed operation is linearized.
pub(super) struct End {
    pub state: EtcdState,
    /// Indexes into the searched operations, in linearization order.
    pub order: Vec<usize>,
}

/// What [`Search::next_end`] found.
pub(super) enum Step {
    End(End),
    /// No further end is reachable.
    Exhausted,
    OutOfBudget,
}

/// Model steps allowed across every search of one check.
pub(super) struct Budget {
    pub explored: u64,
    pub max: u64,
}

struct Entry {
    op: usize,
    time_ns: u64,
    is_call: bool,
    /// A call's return entry.
    matching: usize,
    prev: usize,
    next: usize,
}

/// Porcupine's entry list, on indexes, of the completed operations.
struct Entries(Vec<Entry>);

impl Entries {
    fn new(ops: &[&Operation]) -> Self {
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            if let Some(ret) = op.return_ns {
                events.push((op.call_ns, false, i));
                events.push((ret, true, i));
            }
        }
        // At equal times calls come first: touching operations count as
        // concurrent, which never rejects a linearizable history.
        events.sort_unstable();
        let mut entries = vec![Entry {
            op: NIL,
            time_ns: 0,
            is_call: false,
            matching: NIL,
            prev: NIL,
            next: NIL,
        }];
        let mut return_of = vec![NIL; ops.len()];
        for (position, &(time_ns, is_return, op)) in events.iter().enumerate() {
            let index = position + 1;
            if is_return {
                return_of[op] = index;
            }
            entries[index - 1].next = index;
            entries.push(Entry {
                op,
                time_ns,
                is_call: !is_return,
                matching: NIL,
                prev: index - 1,
                next: NIL,
            });
        }
        for entry in entries.iter_mut().skip(1).filter(|e| e.is_call) {
            entry.matching = return_of[entry.op];
        }
        Entries(entries)
    }

    fn first(&self) -> usize {
        self.0[HEAD].next
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.0[i].prev, self.0[i].next);
        self.0[prev].next = next;
        if next != NIL {
            self.0[next].prev = prev;
        }
    }

    /// Undoes `unlink(i)`; valid because unlinks are undone in LIFO order.
    fn relink(&mut self, i: usize) {
        let (prev, next) = (self.0[i].prev, self.0[i].next);
        self.0[prev].next = i;
        if next != NIL {
            self.0[next].prev = i;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.0[call].matching);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.0[call].matching);
        self.relink(call);
    }

    /// When the first return still listed happens: failed operations
    /// called later cannot come next.
    fn first_return_ns(&self) -> u64 {
        let mut i = self.first();
        while i != NIL && self.0[i].is_call {
            i = self.0[i].next;
        }
        if i == NIL {
            u64::MAX
        } else {
            self.0[i].time_ns
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Bitset(vec![0; bits.div_ceil(64)])
    }

    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: usize) {
        self.0[bit / 64] &= !(1 << (bit % 64));
    }

    fn get(&self, bit: usize) -> bool {
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// Whether [`revision_bound`] prunes the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pruning {
    /// Cut nodes past a pending operation's revision (sound, and what
    /// keeps failed writes cheap), or past `ceiling`: the lowest bound of
    /// the operations of later segments, which all come after these.
    RevisionBounds { ceiling: Option<i64> },
    /// Porcupine's search as is: slower, but its longest prefix runs up to
    /// the operation that truly cannot fit, which a report wants.
    Off,
}

/// The next candidate to try at the current node.
#[derive(Clone, Copy)]
enum Cursor {
    /// An entry of the completed operations' list.
    Completed(usize),
    /// A position in the failed operations' list.
    Failed(usize),
}

/// Where [`Search::next_end`] picks up.
enum Resume {
    Start,
    At(Cursor),
    /// Just yielded an end (or exhausted): undo the last step first.
    Backtrack,
}

/// One linearized operation on the search's stack.
struct Linearized {
    op: usize,
    /// Its call entry, or `NIL` for a failed operation.
    entry: usize,
    before: EtcdState,
}

/// A resumable search: each [`Search::next_end`] continues where the last
/// one stopped, so the checker can walk a segment's ends lazily.
pub(super) struct Search<'h> {
    ops: Vec<&'h Operation>,
    entries: Entries,
    /// The failed operations, by call time.
    failed: Vec<usize>,
    /// Each failed operation's position in `failed`.
    failed_position: HashMap<usize, usize>,
    linearized: Bitset,
    state: EtcdState,
    stack: Vec<Linearized>,
    /// Completed operations not yet linearized.
    open_returns: usize,
    /// Revision bounds of the completed operations not yet linearized
    /// (bound → how many), see [`revision_bound`].
    bounds: BTreeMap<i64, usize>,
    memo: HashMap<u64, Vec<(Bitset, EtcdState)>>,
    deepest: Vec<usize>,
    resume: Resume,
    pruning: Pruning,
}

impl<'h> Search<'h> {
    /// A search of `ops` from `start`.
    pub(super) fn new(ops: Vec<&'h Operation>, start: EtcdState, pruning: Pruning) -> Self {
        let mut bounds = BTreeMap::new();
        for bound in ops.iter().filter_map(|op| revision_bound(op)) {
            *bounds.entry(bound).or_insert(0) += 1;
        }
        let mut failed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].is_failed()).collect();
        failed.sort_by_key(|&i| (ops[i].call_ns, i));
        let failed_position = failed.iter().enumerate().map(|(p, &op)| (op, p)).collect();
        Search {
            entries: Entries::new(&ops),
            linearized: Bitset::new(ops.len()),
            state: start,
            stack: Vec::new(),
            open_returns: ops.len() - failed.len(),
            bounds,
            memo: HashMap::new(),
            deepest: Vec::new(),
            resume: Resume::Start,
            pruning,
            failed,
            failed_position,
            ops,
        }
    }

    /// The longest prefix linearized so far (indexes into the operations).
    pub(super) fn deepest(&self) -> &[usize] {
        &self.deepest
    }

    /// The next end not yet yielded.
    pub(super) fn next_end(&mut self, budget: &mut Budget) -> Step {
        let mut cursor = match std::mem::replace(&mut self.resume, Resume::Backtrack) {
            // Nothing to linearize: the start is the only end worth having
            // (failed operations stay pending for the next segment).
            Resume::Start if self.open_returns == 0 => return Step::End(self.end()),
            Resume::Start => Cursor::Completed(self.entries.first()),
            Resume::At(cursor) => cursor,
            Resume::Backtrack => match self.backtrack() {
                Some(cursor) => cursor,
                None => return Step::Exhausted,
            },
        };
        loop {
            let Some((op, entry)) = self.candidate(&mut cursor) else {
                // Every operation that could come next here was tried.
                match self.backtrack() {
                    Some(next) => cursor = next,
                    None => return Step::Exhausted,
                }
                continue;
            };
            if budget.explored >= budget.max {
                self.resume = Resume::At(cursor);
                return Step::OutOfBudget;
            }
            budget.explored += 1;
            if !self.try_linearize(op, entry) {
                cursor = self.after(op, entry);
            } else if self.open_returns > 0 {
                cursor = Cursor::Completed(self.entries.first());
            } else {
                // An end. Failed operations still pending are carried to
                // the next segment rather than tried here: placing one
                // after the last completed operation is the same as placing
                // it first in the next segment.
                return Step::End(self.end());
            }
        }
    }

    /// The operation at `cursor` (and its call entry, `NIL` for a failed
    /// one), moving the cursor from the completed phase to the failed one
    /// and past linearized failed operations; `None` when none is left.
    fn candidate(&self, cursor: &mut Cursor) -> Option<(usize, usize)> {
        if let Cursor::Completed(entry) = *cursor {
            if entry != NIL && self.entries.0[entry].is_call {
                return Some((self.entries.0[entry].op, entry));
            }
            *cursor = Cursor::Failed(0);
        }
        let Cursor::Failed(mut position) = *cursor else {
            unreachable!("the completed phase returned or moved on");
        };
        let limit_ns = self.entries.first_return_ns();
        while let Some(&op) = self.failed.get(position) {
            if self.ops[op].call_ns > limit_ns {
                break;
            }
            if !self.linearized.get(op) {
                *cursor = Cursor::Failed(position);
                return Some((op, NIL));
            }
            position += 1;
        }
        None
    }

    /// The cursor just past `op` at the current node.
    fn after(&self, op: usize, entry: usize) -> Cursor {
        if entry == NIL {
            Cursor::Failed(self.failed_position[&op] + 1)
        } else {
            Cursor::Completed(self.entries.0[entry].next)
        }
    }

    /// Linearizes `op` if the model accepts its response and the resulting
    /// node is new and not dead.
    fn try_linearize(&mut self, op: usize, entry: usize) -> bool {
        let Some(next) = self.step(op) else {
            return false;
        };
        let bound = revision_bound(self.ops[op]);
        self.release(bound);
        // Revisions never go back: once past the revision some pending
        // completed operation answered with, that one can never fit.
        let dead = match self.pruning {
            Pruning::RevisionBounds { ceiling } => {
                let lowest = self
                    .bounds
                    .keys()
                    .next()
                    .copied()
                    .into_iter()
                    .chain(ceiling)
                    .min();
                lowest.is_some_and(|bound| next.revision() > bound)
            }
            Pruning::Off => false,
        };
        self.linearized.set(op);
        if dead || !self.remember(&next) {
            self.linearized.clear(op);
            self.hold(bound);
            return false;
        }
        let before = std::mem::replace(&mut self.state, next);
        self.stack.push(Linearized { op, entry, before });
        if entry != NIL {
            self.entries.lift(entry);
            self.open_returns -= 1;
        }
        if self.stack.len() > self.deepest.len() {
            self.deepest = self.order();
        }
        true
    }

    fn release(&mut self, bound: Option<i64>) {
        let Some(bound) = bound else { return };
        let count = self
            .bounds
            .get_mut(&bound)
            .expect("a pending op's bound is held");
        *count -= 1;
        if *count == 0 {
            self.bounds.remove(&bound);
        }
    }

    fn hold(&mut self, bound: Option<i64>) {
        if let Some(bound) = bound {
            *self.bounds.entry(bound).or_insert(0) += 1;
        }
    }

    /// The state after `op`, if its response fits here.
    fn step(&self, op: usize) -> Option<EtcdState> {
        let operation = self.ops[op];
        let (next, expected) = self.state.step(&operation.request);
        match &operation.response {
            Some(observed) => response_matches(&expected, observed).then_some(next),
            // A failed operation that would change nothing here needs no
            // linearization point: leaving it out is the same node.
            None if operation.return_ns.is_none() && next == self.state => None,
            None => Some(next),
        }
    }

    /// Adds (linearized set, `state`) to the memo; false if already there.
    fn remember(&mut self, state: &EtcdState) -> bool {
        let mut hasher = DefaultHasher::new();
        self.linearized.hash(&mut hasher);
        state.hash(&mut hasher);
        let bucket = self.memo.entry(hasher.finish()).or_default();
        if bucket
            .iter()
            .any(|(set, seen)| *set == self.linearized && seen == state)
        {
            return false;
        }
        bucket.push((self.linearized.clone(), state.clone()));
        true
    }

    /// Undoes the last linearization; the cursor to try next, or `None`
    /// when the search is exhausted.
    fn backtrack(&mut self) -> Option<Cursor> {
        let Linearized { op, entry, before } = self.stack.pop()?;
        self.state = before;
        self.linearized.clear(op);
        self.hold(revision_bound(self.ops[op]));
        if entry != NIL {
            self.entries.unlift(entry);
            self.open_returns += 1;
        }
        Some(self.after(op, entry))
    }

    fn order(&self) -> Vec<usize> {
        self.stack.iter().map(|linearized| linearized.op).collect()
    }

    fn end(&self) -> End {
        End {
            state: self.state.clone(),
            order: self.order(),
        }
    }
}

/// The highest revision the store may be at just before `op` takes
/// effect, from its answer: a header revision is the revision after the
/// operation, and an answer that shows a change (a put, a deletion) made
/// that revision itself.
pub(super) fn revision_bound(op: &Operation) -> Option<i64> {
    let response = op.response.as_ref()?;
    let revision = response.revision()?;
    let changed = match response {
        Response::Put { .. } => true,
        Response::Delete { deleted, .. } => *deleted > 0,
        Response::Txn { results, .. } => results.iter().any(|result| match result {
            TxnResult::Put => true,
            TxnResult::Delete { deleted } => *deleted > 0,
            TxnResult::Range { .. } => false,
        }),
        // Only made for a txn whose put a watcher saw.
        Response::TxnOutcome { .. } => true,
        _ => false,
    };
    Some(if changed { revision - 1 } else { revision })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::request::{Request, Response};

    const PRUNED: Pruning = Pruning::RevisionBounds { ceiling: None };

    fn ops_of(history: &[Operation]) -> Vec<&Operation> {
        history.iter().collect()
    }

    fn budget() -> Budget {
        Budget {
            explored: 0,
            max: 1_000,
        }
    }

    #[test]
    fn lift_and_unlift_restore_the_list() {
        let history = [
            Operation::completed(
                1,
                0,
                10,
                Request::put("a", "1"),
                Response::Put { revision: 2 },
            ),
            Operation::failed(2, 5, Request::put("a", "2")),
            Operation::completed(3, 5, 5, Request::get("a"), Response::Put { revision: 2 }),
        ];
        let ops = ops_of(&history);
        let mut entries = Entries::new(&ops);
        assert_eq!(entries.first_return_ns(), 5);
        let walk = |entries: &Entries| {
            let mut seen = Vec::new();
            let mut i = entries.0[HEAD].next;
            while i != NIL {
                seen.push((entries.0[i].op, entries.0[i].is_call));
                i = entries.0[i].next;
            }
            seen
        };
        let before = walk(&entries);
        // Calls before returns at equal times; the failed op is not listed.
        let expected = vec![(0, true), (2, true), (2, false), (0, false)];
        assert_eq!(before, expected);
        let calls: Vec<usize> = (1..entries.0.len())
            .filter(|&i| entries.0[i].is_call)
            .collect();
        for &call in &calls {
            entries.lift(call);
        }
        assert!(walk(&entries).is_empty());
        for &call in calls.iter().rev() {
            entries.unlift(call);
        }
        assert_eq!(walk(&entries), before);
    }

    fn ends(search: &mut Search<'_>) -> Vec<End> {
        let mut budget = budget();
        let mut ends = Vec::new();
        while let Step::End(end) = search.next_end(&mut budget) {
            ends.push(end);
        }
        ends
    }

    #[test]
    fn next_end_yields_each_distinct_end_once() {
        // Two concurrent puts whose answers were lost but which did
        // happen: either order is an end.
        let put = |client, value: &str| Operation {
            client,
            call_ns: 0,
            return_ns: Some(10),
            request: Request::put("a", value),
            response: None,
        };
        let history = [put(1, "x"), put(2, "y")];
        let mut search = Search::new(ops_of(&history), EtcdState::new(), PRUNED);
        let mut values: Vec<Vec<u8>> = ends(&mut search)
            .iter()
            .map(|end| end.state.get(b"a").unwrap().value.clone())
            .collect();
        values.sort();
        assert_eq!(values, vec![b"x".to_vec(), b"y".to_vec()]);
        assert!(matches!(search.next_end(&mut budget()), Step::Exhausted));
    }

    #[test]
    fn a_segment_of_failed_operations_only_ends_at_its_start() {
        let history = [Operation::failed(1, 0, Request::put("a", "1"))];
        let mut search = Search::new(ops_of(&history), EtcdState::new(), PRUNED);
        let found = ends(&mut search);
        assert_eq!(found.len(), 1);
        assert!(found[0].order.is_empty());
    }

    #[test]
    fn revision_bounds_prune_orders_that_passed_a_pending_answer() {
        // The read answered revision 1, so no put may come before it; the
        // put that would, is refused before the memo sees it.
        let history = [
            Operation::completed(
                1,
                0,
                10,
                Request::put("a", "1"),
                Response::Put { revision: 2 },
            ),
            Operation::completed(
                2,
                0,
                10,
                Request::get("b"),
                Response::Range {
                    revision: 1,
                    kvs: vec![],
                    count: 0,
                },
            ),
        ];
        let mut search = Search::new(ops_of(&history), EtcdState::new(), PRUNED);
        let found = ends(&mut search);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].order, vec![1, 0]);
        assert_eq!(search.memo.values().map(Vec::len).sum::<usize>(), 2);
    }

    #[test]
    fn failed_operations_are_applied_only_where_a_completed_one_needs_them() {
        let empty = Response::Range {
            revision: 1,
            kvs: vec![],
            count: 0,
        };
        let history = [
            Operation::failed(1, 1, Request::LeaseGrant { id: 9, ttl_s: 60 }),
            Operation::failed(2, 0, Request::put("a", "x")),
            Operation::completed(3, 1, 2, Request::get("a"), empty.clone()),
            Operation::completed(3, 3, 4, Request::get("b"), empty),
            Operation::completed(
                3,
                5,
                6,
                Request::put("b", "1"),
                Response::Put { revision: 3 },
            ),
        ];
        let mut search = Search::new(ops_of(&history), EtcdState::new(), PRUNED);
        let Step::End(end) = search.next_end(&mut budget()) else {
            panic!("expected an end");
        };
        // Not eagerly at the start: the put of "a" fills revision 2 right
        // before the put of "b" needs it, and the grant is never applied.
        assert_eq!(end.order, vec![2, 3, 1, 4]);
    }

    #[test]
    fn the_budget_bounds_the_search() {
        let history: Vec<Operation> = (0..20)
            .map(|i| {
                Operation::completed(i, 0, 100, Request::get("a"), Response::Put { revision: 2 })
            })
            .collect();
        let mut search = Search::new(ops_of(&history), EtcdState::new(), PRUNED);
        let mut budget = Budget {
            explored: 0,
            max: 5,
        };
        assert!(matches!(search.next_end(&mut budget), Step::OutOfBudget));
        assert_eq!(budget.explored, 5);
    }
}
