//! Failpoints: named steps where a test makes a member crash, fail or stall.
//!
//! # Crash points (every build)
//!
//! `IRONCD_FAILPOINTS=name[,name…]` in the environment makes the process
//! abort (as a SIGKILL would end it: no unwinding, no destructors, nothing
//! flushed) when it reaches a named point. They are compiled into every
//! build, so tests drive the very binary users run; unarmed, a point costs
//! one read of a value parsed once at the first call. Points:
//! `restore_before_swap`, `restore_after_set_aside`, `restore_after_swap`
//! (see `RocksStorage::install`). Each is also a `fail` point of the same
//! name (below).
//!
//! # `fail` points (the `failpoints` feature)
//!
//! Built with `--features failpoints` (which turns on the feature of
//! raft-node, wal, backend, mvcc and watch too), the steps below are points of
//! the `fail` crate, named as etcd's gofail points where etcd has one, so
//! a scenario written for etcd names the same step. Without the feature
//! `fail_point!` expands to nothing: the default build has no points, no
//! endpoint and reads no variable but `IRONCD_FAILPOINTS`.
//!
//! | point | where |
//! |---|---|
//! | `raftBeforeLeaderSend` | raft-node `driver.rs`: before a Ready's messages that go out ahead of the fsync (a leader's) |
//! | `raftBeforeSaveSnap`, `raftAfterSaveSnap` | `driver.rs`: around saving a snapshot received from the leader (file, then WAL marker) |
//! | `raftBeforeWALSaveSnaphot` | raft-node `disk.rs`: between a snapshot's file and its WAL marker, for any snapshot (etcd's spelling) |
//! | `raftBeforeSave`, `raftAfterSave` | `driver.rs`: around the WAL save of a Ready's entries and hard state |
//! | `walWriteNoSpace` | wal `wal.rs`: the write of a batch of records (entries, hard state, snapshot marker) to the tail segment; `return` fails it with ENOSPC, nothing written (a full disk: the raft thread stops the member) |
//! | `raftBeforeFollowerSend` | `driver.rs`: before the messages that wait for the fsync (a follower's or candidate's) |
//! | `raftBeforeApplySnap`, `raftAfterApplySnap` | `driver.rs`: around installing a received snapshot in raft's log store, before the applier gets it |
//! | `beforeCommit`, `afterCommit` | backend `buffered.rs`: around writing the published batch to the engine (RocksDB) |
//! | `backendCommitNoSpace` | `buffered.rs`: writing the published batch to the engine; `return` fails it as RocksDB fails on a full disk, with ENOSPC, nothing written (the committer stops the member) |
//! | `defragBeforeCopy`, `defragBeforeRename` | `buffered.rs`: defrag, after its commit, before and after the engine rewrites its data (RocksDB has no copy and rename: see the comment there) |
//! | `compactBeforeCommitScheduledCompact`, `compactAfterCommitScheduledCompact` | mvcc `store.rs`: around the force-commit of `scheduledCompactRev` |
//! | `compactBeforeCommitBatch`, `compactAfterCommitBatch` | mvcc `compaction.rs`: around the end of each batch of deletes but the last |
//! | `compactBeforeSetFinishedCompact`, `compactAfterSetFinishedCompact` | `compaction.rs`: around the last batch, which writes `finishedCompactRev` |
//! | `beforeSyncWatchers` | watch `store.rs`: a pass over unsynced watchers, before it reads the history (the `watch-sync` thread, outside the lock) |
//! | `beforeMoveVictims` | watch `store.rs`: before a pass that retries victims (the `watch-sync` thread, outside the lock) |
//! | `beforeSendWatchResponse` | `watch_api.rs`: a response taken from a stream's channel, before the Watch service sends it; async: see below |
//! | `beforeApplyOneConfChange`, `applyBeforeConfChange` | `apply/mod.rs`: before a conf change is applied (two names of one step: etcd 3.6's and the robustness suite's) |
//! | `restore_before_swap`, `restore_after_set_aside`, `restore_after_swap` | `storage.rs`: the crash points above |
//!
//! Every point but one runs on a thread of its own (raft's, the
//! applier's, the backend committer's, the compactor's, `watch-sync`), so
//! `sleep(ms)` stalls that step only. `beforeSendWatchResponse` sits in a
//! stream polled by a runtime worker, where `fail`'s sleep would block the
//! worker: when armed it runs on the blocking pool and the stream awaits
//! it (`async_point`), so it delays that stream alone, as etcd's sleep
//! delays one `sendLoop`.
//!
//! A `panic` action ends the process: `main.rs`'s panic hook aborts after
//! printing the message, as a Go panic ends etcd. So does a `return` at
//! the two `NoSpace` points, through the error: a failed WAL write or
//! engine commit is fatal, as etcd's `lg.Fatal` makes it.
//!
//! Arming (fail's syntax: `[p%][count*]task[(arg)]` chained with `->`;
//! tasks `off`, `return` (the `NoSpace` points only: elsewhere it panics),
//! `panic`, `sleep(ms)`, `pause`, `print`, `yield`, `delay(ms)`):
//! * `FAILPOINTS=raftBeforeSave=panic;beforeSyncWatchers=sleep(1000)` at
//!   start (`setup`); an unknown name or a bad action is an error that
//!   names it.
//! * `IRONCD_FAILPOINTS_HTTP=127.0.0.1:22381` serves gofail's endpoint
//!   there (`serve_http`): `PUT /<name>` with the action as the body
//!   arms it (204; 400 with the reason for a bad action, 404 for an
//!   unknown name), `DELETE /<name>` disarms (204), `GET /` lists
//!   `name=action` lines, `GET /<name>` answers the action (404 when not
//!   armed). `curl -X PUT -d 'sleep(1000)' 127.0.0.1:22381/beforeCommit`.

use std::sync::OnceLock;

/// The environment variable that arms crash points.
pub const FAILPOINTS_ENV: &str = "IRONCD_FAILPOINTS";

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(FAILPOINTS_ENV)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Aborts the process here if `name` is armed; with the `failpoints`
/// feature, runs the `fail` point of the same name too.
pub fn crash_point(name: &'static str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("{FAILPOINTS_ENV}: crashing at {name}");
        std::process::abort();
    }
    fail::fail_point!(name);
}

/// Every point of the table above: what arming checks names against (`fail`
/// itself takes any name, so a misspelt one would arm nothing), kept equal
/// to the sites by a test.
#[cfg(any(feature = "failpoints", test))]
pub const POINTS: &[&str] = &[
    "raftBeforeLeaderSend",
    "raftBeforeSaveSnap",
    "raftAfterSaveSnap",
    "raftBeforeWALSaveSnaphot",
    "raftBeforeSave",
    "raftAfterSave",
    "walWriteNoSpace",
    "raftBeforeFollowerSend",
    "raftBeforeApplySnap",
    "raftAfterApplySnap",
    "beforeCommit",
    "afterCommit",
    "backendCommitNoSpace",
    "defragBeforeCopy",
    "defragBeforeRename",
    "compactBeforeCommitScheduledCompact",
    "compactAfterCommitScheduledCompact",
    "compactBeforeCommitBatch",
    "compactAfterCommitBatch",
    "compactBeforeSetFinishedCompact",
    "compactAfterSetFinishedCompact",
    "beforeSyncWatchers",
    "beforeMoveVictims",
    "beforeSendWatchResponse",
    "beforeApplyOneConfChange",
    "applyBeforeConfChange",
    "restore_before_swap",
    "restore_after_set_aside",
    "restore_after_swap",
];

#[cfg(feature = "failpoints")]
pub(crate) use arming::{async_point, serve_http};
#[cfg(feature = "failpoints")]
pub use arming::{setup, FAIL_ENV, HTTP_ENV};

#[cfg(feature = "failpoints")]
mod arming {
    use std::sync::{PoisonError, RwLock};

    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;

    use super::POINTS;
    use crate::error::{Error, Result};

    type Refusal<T> = std::result::Result<T, Refused>;

    /// The variable `fail` reads at start: `name=actions;…`.
    pub const FAIL_ENV: &str = "FAILPOINTS";
    /// The variable naming the HTTP endpoint's address (`host:port`).
    pub const HTTP_ENV: &str = "IRONCD_FAILPOINTS_HTTP";

    /// The names armed now, for `async_point`; its lock also orders
    /// every change, so the names always follow `fail`'s registry.
    static ARMED: RwLock<Vec<String>> = RwLock::new(Vec::new());

    #[derive(Debug, thiserror::Error)]
    enum Refused {
        #[error("unknown failpoint {0:?}")]
        Unknown(String),
        #[error("failpoint {name}: {reason}")]
        Action { name: String, reason: String },
    }

    fn known(name: &str) -> Refusal<()> {
        if POINTS.contains(&name) {
            Ok(())
        } else {
            Err(Refused::Unknown(name.to_string()))
        }
    }

    /// Runs `change` on `fail`'s registry, then records what is armed.
    fn change<T>(change: impl FnOnce() -> T) -> T {
        let mut armed = ARMED.write().unwrap_or_else(PoisonError::into_inner);
        let result = change();
        *armed = fail::list()
            .into_iter()
            .filter(|(_, actions)| !actions.is_empty())
            .map(|(name, _)| name)
            .collect();
        result
    }

    fn arm(name: &str, actions: &str) -> Refusal<()> {
        known(name)?;
        change(|| fail::cfg(name, actions)).map_err(|reason| Refused::Action {
            name: name.to_string(),
            reason,
        })
    }

    /// Arms the points `FAILPOINTS` names and returns the scenario, to be
    /// kept for the life of the process. Each entry is tried first: `fail`
    /// panics on a bad one and ignores unknown names.
    pub fn setup() -> Result<fail::FailScenario<'static>> {
        let spec = match std::env::var(FAIL_ENV) {
            Ok(spec) => spec,
            Err(std::env::VarError::NotPresent) => String::new(),
            Err(e) => return Err(Error::Config(format!("{FAIL_ENV}: {e}"))),
        };
        // Split as `fail` splits it, so what is tried is what it arms.
        for entry in spec.trim().split(';').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let (name, actions) = entry.split_once('=').ok_or_else(|| {
                Error::Config(format!("{FAIL_ENV}: {entry:?} is not name=actions"))
            })?;
            arm(name, actions).map_err(|e| Error::Config(format!("{FAIL_ENV}: {e}")))?;
        }
        // Clears what was tried, then arms the same entries.
        Ok(change(fail::FailScenario::setup))
    }

    /// A point on an async path. `fail` runs an action on the calling
    /// thread (`sleep` blocks it), so an armed point runs on the blocking
    /// pool while the task awaits it; unarmed it costs a read lock.
    pub async fn async_point(name: &'static str) {
        let is_armed = ARMED
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|armed| armed == name);
        if !is_armed {
            return;
        }
        if let Err(e) = tokio::task::spawn_blocking(move || fail::fail_point!(name)).await {
            if e.is_panic() {
                // A `panic` action: the binary's hook has aborted already;
                // elsewhere the panic goes on in this task.
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    /// Serves the endpoint at `IRONCD_FAILPOINTS_HTTP`, if set, on the
    /// current runtime until it stops.
    pub async fn serve_http() -> Result<()> {
        let addr = match std::env::var(HTTP_ENV) {
            Ok(addr) => addr,
            Err(std::env::VarError::NotPresent) => return Ok(()),
            Err(e) => return Err(Error::Config(format!("{HTTP_ENV}: {e}"))),
        };
        let listener = tokio::net::TcpListener::bind(addr.as_str())
            .await
            .map_err(|e| Error::Config(format!("{HTTP_ENV}={addr}: {e}")))?;
        tracing::info!(address = %listener.local_addr()?, "serving failpoints over HTTP");
        let router = Router::new()
            .route("/", get(list))
            .route("/{name}", get(show).put(put).delete(delete));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the failpoint endpoint stopped");
            }
        });
        Ok(())
    }

    async fn list() -> String {
        let mut points = fail::list();
        points.sort();
        points
            .into_iter()
            .map(|(name, actions)| format!("{name}={actions}\n"))
            .collect()
    }

    async fn show(Path(name): Path<String>) -> Response {
        match fail::list().into_iter().find(|(armed, _)| *armed == name) {
            Some((_, actions)) => actions.into_response(),
            None => (StatusCode::NOT_FOUND, format!("{name} is not armed\n")).into_response(),
        }
    }

    async fn put(Path(name): Path<String>, actions: String) -> Response {
        match arm(&name, actions.trim()) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e @ Refused::Unknown(_)) => {
                (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
            }
            Err(e @ Refused::Action { .. }) => {
                (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
            }
        }
    }

    async fn delete(Path(name): Path<String>) -> Response {
        if let Err(e) = known(&name) {
            return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response();
        }
        change(|| fail::remove(&name));
        StatusCode::NO_CONTENT.into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::POINTS;

    /// The crates whose sources hold points.
    const CRATES: [&str; 6] = ["raft-node", "wal", "backend", "mvcc", "watch", "server"];

    /// Every point name in those crates' sources, in the three ways a site
    /// names one.
    fn sites() -> BTreeSet<String> {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut dirs: Vec<_> = CRATES.iter().map(|c| crates.join(c).join("src")).collect();
        let mut names = BTreeSet::new();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("list a source dir") {
                let path = entry.expect("a dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read a source file");
                for marker in ["fail_point!(\"", "crash_point(\"", "async_point(\""] {
                    for (at, _) in text.match_indices(marker) {
                        let rest = &text[at + marker.len()..];
                        let end = rest.find('"').expect("a point name ends");
                        names.insert(rest[..end].to_string());
                    }
                }
            }
        }
        names
    }

    #[test]
    fn the_list_of_points_is_the_list_of_sites() {
        let listed: BTreeSet<String> = POINTS.iter().map(|p| p.to_string()).collect();
        assert_eq!(listed.len(), POINTS.len(), "a point is listed twice");
        assert_eq!(sites(), listed);
    }
}
