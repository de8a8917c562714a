//! Watchers that record what they receive, and the validation of what
//! they received against the linearized history: etcd's watch guarantees
//! (ordered, unique, atomic, reliable, resumable, bookmarkable) and
//! `prev_kv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use serde::{Deserialize, Serialize};

use super::traffic::{connect, kv, prefix_end, KEY_PREFIX};
use crate::linearizability::{EtcdState, History, KeyValue, Request, Response, TxnOp};

/// How often a watcher asks for a progress notification (each answer is
/// a bookmark the validation holds the stream to).
const PROGRESS_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// How far from the current revision a short-lived watch starts: in the
/// past (replayed from the store, or refused as compacted) or the future.
const SHORT_WATCH_OFFSETS: std::ops::RangeInclusive<i64> = -30..=30;
/// How long a short-lived watch reads, in ms.
const SHORT_WATCH_MS: std::ops::RangeInclusive<u64> = 200..=800;
/// How long a watcher waits between attempts to (re)open its watch.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// One event as a watcher saw it or the model expects it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// A put (else a delete).
    pub put: bool,
    /// The kv: a delete's has only the key and its mod revision.
    pub kv: KeyValue,
    /// The key before the event, when the watcher asked for it.
    pub prev_kv: Option<KeyValue>,
}

/// One response a watcher received.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Received {
    /// The header revision.
    pub revision: i64,
    /// The events.
    pub events: Vec<WatchEvent>,
    /// Non-zero: the watch was cancelled because its start was compacted.
    pub compact_revision: i64,
    /// The watch was cancelled (by compaction or by the server).
    pub canceled: bool,
    /// Nanoseconds since the run's clock started.
    pub at_ns: u64,
}

impl Received {
    fn is_progress(&self) -> bool {
        self.events.is_empty() && !self.canceled
    }
}

/// One watch the watcher opened: from where, and what came back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Session {
    /// The start revision asked for.
    pub start_revision: i64,
    /// The responses after `created`, in arrival order.
    pub responses: Vec<Received>,
}

/// Everything one watcher of one member received, over every watch it had
/// to reopen (after a kill, a lost connection, a compaction).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WatchLog {
    /// The member watched.
    pub member: usize,
    /// Its watches, in order.
    pub sessions: Vec<Session>,
}

impl WatchLog {
    /// Every (key, value) a put event showed: what the cluster persisted.
    pub fn puts(&self) -> impl Iterator<Item = (&WatchEvent, u64)> {
        self.sessions
            .iter()
            .flat_map(|s| &s.responses)
            .flat_map(|r| r.events.iter().map(move |e| (e, r.at_ns)))
            .filter(|(e, _)| e.put)
    }

    /// Every kv it showed as written, with the arrival of the response
    /// that showed it: each put event's kv and each event's `prev_kv`. A
    /// write only ever seen as the key's value before a later event (it
    /// was overwritten before any read) is pinned by the `prev_kv`.
    pub fn written(&self) -> impl Iterator<Item = (&KeyValue, u64)> {
        self.sessions
            .iter()
            .flat_map(|s| &s.responses)
            .flat_map(|r| r.events.iter().map(move |e| (e, r.at_ns)))
            .flat_map(|(e, at_ns)| {
                let kv = e.put.then_some(&e.kv);
                kv.into_iter().chain(&e.prev_kv).map(move |kv| (kv, at_ns))
            })
    }

    /// The newest revision whose events it received (not counting
    /// progress notifications: a wrong one must not make a watcher with a
    /// gap look complete; every write of the traffic makes an event).
    pub fn last_revision(&self) -> i64 {
        self.sessions
            .iter()
            .flat_map(|s| &s.responses)
            .filter_map(|r| r.events.last().map(|e| e.kv.mod_revision))
            .max()
            .unwrap_or(0)
    }
}

/// What every long-lived watcher of a run shares.
#[derive(Debug)]
pub struct WatchRun {
    /// The run's clock (arrival times are nanoseconds since it).
    pub origin: Instant,
    /// Set when the traffic has stopped.
    pub stop: Arc<AtomicBool>,
    /// Set once known: the revision every watcher must reach.
    pub final_revision: Arc<AtomicI64>,
    /// How long after `stop` a watcher may take to reach it.
    pub deadline_after_stop: Duration,
    /// Whether to ask for progress notifications (each is a bookmark the
    /// validation holds the stream to). Not needed to see the final
    /// revision: every write of the traffic makes an event.
    pub progress_requests: bool,
}

/// Watches [`KEY_PREFIX`] on one member from revision 1 with `prev_kv`
/// and progress notifications, reopening from the next revision whenever
/// the watch breaks, until the traffic has stopped and it has seen the
/// final revision (or the deadline after the stop passed). Sends on
/// `ready` once its first watch is created.
pub async fn watch(
    member: usize,
    endpoint: String,
    run: Arc<WatchRun>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> WatchLog {
    let WatchRun {
        origin,
        ref stop,
        ref final_revision,
        deadline_after_stop,
        progress_requests,
    } = *run;
    let mut log = WatchLog {
        member,
        sessions: Vec::new(),
    };
    let mut ready = Some(ready);
    let mut next = 1;
    let mut stopped_at: Option<Instant> = None;
    let done = |log: &WatchLog, stopped_at: &mut Option<Instant>| {
        if !stop.load(Ordering::Relaxed) {
            return false;
        }
        let since = *stopped_at.get_or_insert_with(Instant::now);
        let target = final_revision.load(Ordering::Relaxed);
        (target > 0 && log.last_revision() >= target) || since.elapsed() > deadline_after_stop
    };
    let options = || {
        WatchOptions::new()
            .with_range(prefix_end(KEY_PREFIX.as_bytes()))
            .with_prev_key()
            .with_progress_notify()
    };
    while !done(&log, &mut stopped_at) {
        let mut client = connect(std::slice::from_ref(&endpoint)).await;
        let opened = tokio::time::timeout(
            Duration::from_secs(2),
            client.watch(KEY_PREFIX, Some(options().with_start_revision(next))),
        )
        .await;
        let Ok(Ok(mut stream)) = opened else {
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        log.sessions.push(Session {
            start_revision: next,
            responses: Vec::new(),
        });
        let mut progress = tokio::time::interval(PROGRESS_REQUEST_INTERVAL);
        loop {
            if done(&log, &mut stopped_at) {
                break;
            }
            let message = tokio::select! {
                message = stream.message() => message,
                _ = progress.tick() => {
                    if progress_requests {
                        let _ = stream.request_progress().await;
                    }
                    continue;
                }
            };
            let Ok(Some(response)) = message else { break };
            if response.created() {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(()).await;
                }
                if !response.canceled() {
                    continue;
                }
            }
            let received = received(&response, origin);
            let canceled = received.canceled;
            if let Some(last) = received.events.last() {
                next = last.kv.mod_revision + 1;
            }
            if received.compact_revision > 0 {
                // The history from `next` is gone: go on from the
                // compaction, as a client would after a relist.
                next = next.max(received.compact_revision);
            }
            log.sessions
                .last_mut()
                .expect("a session is open")
                .responses
                .push(received);
            if canceled {
                break;
            }
        }
    }
    log
}

/// Opens watches at revisions around the current one, on members in
/// turn, each read for a moment and closed, until `stop`: one
/// [`WatchLog`] of one session each. They cover what the long watchers do
/// not: replay from the store, starts just past a compaction, and starts
/// in the future.
pub async fn short_watches(
    endpoints: Vec<String>,
    origin: Instant,
    seed: u64,
    stop: Arc<AtomicBool>,
    progress_requests: bool,
) -> Vec<WatchLog> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5157_a7c4);
    let mut logs = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let member = rng.gen_range(0..endpoints.len());
        let mut client = connect(std::slice::from_ref(&endpoints[member])).await;
        let Ok(Ok(current)) =
            tokio::time::timeout(Duration::from_secs(2), client.get(KEY_PREFIX, None)).await
        else {
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        let current = current.header().map_or(1, |h| h.revision());
        let start = (current + rng.gen_range(SHORT_WATCH_OFFSETS)).max(1);
        let options = WatchOptions::new()
            .with_range(prefix_end(KEY_PREFIX.as_bytes()))
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(start);
        let opened = tokio::time::timeout(
            Duration::from_secs(2),
            client.watch(KEY_PREFIX, Some(options)),
        )
        .await;
        let Ok(Ok(mut stream)) = opened else { continue };
        let mut session = Session {
            start_revision: start,
            responses: Vec::new(),
        };
        let until =
            tokio::time::Instant::now() + Duration::from_millis(rng.gen_range(SHORT_WATCH_MS));
        let mut asked = !progress_requests;
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = tokio::time::sleep_until(until) => break,
                _ = tokio::time::sleep(Duration::from_millis(150)), if !asked => {
                    asked = true;
                    let _ = stream.request_progress().await;
                    continue;
                }
            };
            let Ok(Some(response)) = message else { break };
            if response.created() && !response.canceled() {
                continue;
            }
            let received = received(&response, origin);
            let canceled = received.canceled;
            session.responses.push(received);
            if canceled {
                break;
            }
        }
        logs.push(WatchLog {
            member,
            sessions: vec![session],
        });
    }
    logs
}

/// A response as the validation reads it.
fn received(response: &etcd_client::WatchResponse, origin: Instant) -> Received {
    Received {
        revision: response.header().map_or(0, |h| h.revision()),
        events: response
            .events()
            .iter()
            .map(|e| WatchEvent {
                put: e.event_type() == EventType::Put,
                kv: e.kv().map(kv).unwrap_or_else(empty_kv),
                prev_kv: e.prev_kv().map(kv),
            })
            .collect(),
        compact_revision: response.compact_revision(),
        canceled: response.canceled(),
        at_ns: u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
    }
}

fn empty_kv() -> KeyValue {
    KeyValue {
        key: Vec::new(),
        value: Vec::new(),
        create_revision: 0,
        mod_revision: 0,
        version: 0,
        lease: 0,
    }
}

/// The events each revision of a linearization makes, in etcd's order:
/// a txn's in the order of its operations, a delete range's and a lease
/// revocation's in key order. Only keys under [`KEY_PREFIX`] are kept.
pub fn expected_events(history: &History, order: &[usize]) -> BTreeMap<i64, Vec<WatchEvent>> {
    let mut state = EtcdState::new();
    let mut events = BTreeMap::new();
    for &index in order {
        let request = &history.operations[index].request;
        let (next, response) = state.step(request);
        if next.revision() > state.revision() {
            let revision = next.revision();
            let changed = changed_keys(&state, request, &response);
            let list = changed
                .into_iter()
                .filter(|key| key.starts_with(KEY_PREFIX.as_bytes()))
                .map(|key| {
                    let prev_kv = state.get(&key).cloned();
                    match next.get(&key).filter(|kv| kv.mod_revision == revision) {
                        Some(kv) => WatchEvent {
                            put: true,
                            kv: kv.clone(),
                            prev_kv,
                        },
                        None => WatchEvent {
                            put: false,
                            kv: KeyValue {
                                key,
                                mod_revision: revision,
                                ..empty_kv()
                            },
                            prev_kv,
                        },
                    }
                })
                .collect();
            events.insert(revision, list);
        }
        state = next;
    }
    events
}

/// The keys a write changed, in event order.
fn changed_keys(before: &EtcdState, request: &Request, response: &Response) -> Vec<Vec<u8>> {
    let live_in = |key: &[u8], range_end: &[u8]| -> Vec<Vec<u8>> {
        before
            .kvs()
            .filter(|kv| in_range(&kv.key, key, range_end))
            .map(|kv| kv.key.clone())
            .collect()
    };
    match (request, response) {
        (Request::Put { key, .. }, _) => vec![key.clone()],
        (Request::Delete { key, range_end }, _) => live_in(key, range_end),
        (
            Request::Txn {
                success, failure, ..
            },
            Response::Txn { succeeded, .. },
        ) => {
            let branch = if *succeeded { success } else { failure };
            branch
                .iter()
                .flat_map(|op| match op {
                    TxnOp::Put { key, .. } => vec![key.clone()],
                    TxnOp::Delete { key, range_end } => live_in(key, range_end),
                    TxnOp::Range { .. } => Vec::new(),
                })
                .collect()
        }
        (Request::LeaseRevoke { id }, _) => before
            .lease_keys(*id)
            .map(|keys| {
                let mut keys: Vec<Vec<u8>> = keys.into_iter().map(<[u8]>::to_vec).collect();
                keys.sort();
                keys
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether a revision's events are the expected ones. A `prev_kv` shown
/// must be the expected one; a missing one is allowed only where etcd
/// leaves it out too: for a create, or once a compaction has passed the
/// revision it is read at (etcd reads it at the event's revision − 1 and
/// drops it if that read fails).
fn events_match(got: &[WatchEvent], expected: &[WatchEvent], compactions: &[i64]) -> bool {
    let compacted = compactions.iter().copied().max().unwrap_or(0);
    got.len() == expected.len()
        && got.iter().zip(expected).all(|(got, expected)| {
            got.put == expected.put
                && got.kv == expected.kv
                && match (&got.prev_kv, &expected.prev_kv) {
                    (None, _) => expected.prev_kv.is_none() || compacted > got.kv.mod_revision - 1,
                    (Some(_), _) => got.prev_kv == expected.prev_kv,
                }
        })
}

fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => key <= k && k < end,
    }
}

/// Checks every watcher's sessions against the events the linearization
/// makes; the first problem of each watcher, or nothing.
pub fn validate(
    logs: &[WatchLog],
    expected: &BTreeMap<i64, Vec<WatchEvent>>,
    compactions: &[i64],
) -> Vec<String> {
    let mut problems = Vec::new();
    for log in logs {
        if let Err(problem) = validate_log(log, expected, compactions) {
            problems.push(format!("watcher of member {}: {problem}", log.member));
        }
    }
    problems
}

fn validate_log(
    log: &WatchLog,
    expected: &BTreeMap<i64, Vec<WatchEvent>>,
    compactions: &[i64],
) -> Result<(), String> {
    let mut next_start = 1;
    for (n, session) in log.sessions.iter().enumerate() {
        let fail = |what: String| {
            format!(
                "watch #{n} from revision {}: {what}",
                session.start_revision
            )
        };
        // Resumable: a reopened watch starts right after the last revision
        // delivered (or at a compaction that cut the history before it).
        if session.start_revision < next_start {
            return Err(fail(format!(
                "started before {next_start}, the next revision it lacked"
            )));
        }
        let mut want = session.start_revision;
        for received in &session.responses {
            if received.compact_revision > 0 {
                if !compactions.contains(&received.compact_revision) {
                    return Err(fail(format!(
                        "cancelled with compact revision {}, which no compaction used",
                        received.compact_revision
                    )));
                }
                // etcd cancels only a watch whose next revision is
                // compacted: below the compaction's revision.
                if want >= received.compact_revision {
                    return Err(fail(format!(
                        "cancelled by the compaction at {} though it wanted revision {want} on",
                        received.compact_revision
                    )));
                }
                next_start = received.compact_revision;
                continue;
            }
            if received.is_progress() {
                // Bookmarkable: everything up to the notification's revision
                // was sent before it.
                // (One below the watch's start, as a watch from the
                // future gets, promises nothing.)
                let missing = (received.revision >= want)
                    .then(|| expected.range(want..=received.revision).next())
                    .flatten();
                if let Some((&missing, _)) = missing {
                    return Err(fail(format!(
                        "progress notification at {} before the events of revision {missing}",
                        received.revision
                    )));
                }
                want = want.max(received.revision + 1);
                continue;
            }
            // Atomic, ordered, unique, reliable: the response holds whole
            // revisions, each the next one that has events.
            let mut events = received.events.as_slice();
            while let Some(first) = events.first() {
                let revision = first.kv.mod_revision;
                let n_events = events
                    .iter()
                    .take_while(|e| e.kv.mod_revision == revision)
                    .count();
                let (these, rest) = events.split_at(n_events);
                let Some((&expected_revision, expected_events)) = expected.range(want..).next()
                else {
                    return Err(fail(format!(
                        "events at revision {revision}, after the last revision with events"
                    )));
                };
                if revision != expected_revision {
                    return Err(fail(format!(
                        "events of revision {revision} where revision {expected_revision} was next{}",
                        if revision < want { " (repeated or out of order)" } else { " (a gap)" }
                    )));
                }
                if !events_match(these, expected_events, compactions) {
                    let mut message = format!("revision {revision}'s events differ:\n");
                    let _ = writeln!(message, "  got      {these:?}");
                    let _ = write!(message, "  expected {expected_events:?}");
                    return Err(fail(message));
                }
                if received.revision < revision {
                    return Err(fail(format!(
                        "header revision {} below its events' {revision}",
                        received.revision
                    )));
                }
                want = revision + 1;
                events = rest;
            }
            next_start = want;
        }
        next_start = next_start.max(want);
    }
    Ok(())
}
