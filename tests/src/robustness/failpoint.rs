//! Failpoints armed at run time through a member's failpoint endpoint (an
//! ironcd built with the `failpoints` feature, gofail's HTTP shape): what
//! [`super::Fault::Failpoint`] injects.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The bound on one request to a failpoint endpoint.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A failpoint and what arming it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failpoint {
    /// The point's name (etcd's gofail name where etcd has one).
    pub name: &'static str,
    /// The action, in the `fail` crate's syntax (`panic`, `sleep(1000)`).
    pub action: &'static str,
    /// What makes the member reach the point.
    pub trigger: Trigger,
}

impl Failpoint {
    /// A point whose `panic` ends the member when the traffic reaches it.
    pub const fn crash(name: &'static str) -> Failpoint {
        Failpoint {
            name,
            action: "panic",
            trigger: Trigger::Traffic,
        }
    }

    /// A point that stalls its step for a second each time, for a while.
    pub const fn stall(name: &'static str) -> Failpoint {
        Failpoint {
            name,
            action: "sleep(1000)",
            trigger: Trigger::Traffic,
        }
    }

    /// A point whose `return` fails its storage write with ENOSPC (a full
    /// disk): the member stops by itself on the error.
    pub const fn no_space(name: &'static str) -> Failpoint {
        Failpoint {
            name,
            action: "return",
            trigger: Trigger::Traffic,
        }
    }

    /// The same point, reached by `trigger`.
    pub const fn reached_by(self, trigger: Trigger) -> Failpoint {
        Failpoint { trigger, ..self }
    }

    /// Whether the action ends the member: a `panic`, or a `return` (the
    /// `NoSpace` points' failed write is fatal; at any other point `fail`
    /// panics on it).
    pub fn crashes(&self) -> bool {
        self.action.contains("panic") || self.action.contains("return")
    }
}

/// What drives a member to an armed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The traffic (writes, compactions, watches) gets there by itself.
    Traffic,
    /// A defragmentation of the member.
    Defrag,
    /// A partition of the member (a follower) until it needs a snapshot,
    /// then healing it: the member installs one.
    SnapshotInstall,
}

/// Arms `point` on the endpoint at `addr`.
pub fn arm(addr: SocketAddr, point: &Failpoint) -> Result<(), String> {
    expect_no_content(
        request(addr, "PUT", point.name, point.action),
        "arm",
        point.name,
    )
}

/// Disarms point `name` on the endpoint at `addr`.
pub fn disarm(addr: SocketAddr, name: &str) -> Result<(), String> {
    expect_no_content(request(addr, "DELETE", name, ""), "disarm", name)
}

fn expect_no_content(
    answer: Result<(u16, String), String>,
    what: &str,
    name: &str,
) -> Result<(), String> {
    match answer? {
        (204, _) => Ok(()),
        (status, body) => Err(format!("{what} {name}: HTTP {status}: {body}")),
    }
}

/// One HTTP/1.1 request; the status and body.
fn request(
    addr: SocketAddr,
    method: &str,
    name: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let fail = |e: std::io::Error| {
        format!("{method} /{name} at {addr} (is ironcd built with --features failpoints?): {e}")
    };
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(fail)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(fail)?;
    let head = format!(
        "{method} /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(fail)?;
    stream.write_all(body.as_bytes()).map_err(fail)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(fail)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{method} /{name} at {addr}: not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

/// Every point the failpoint matrix (`make robustness`) arms, with the
/// trigger that reaches it: each crash point, a full disk under the WAL
/// and under the backend, and the stalls etcd's suite uses. A point a run
/// does not reach (a batch point when a compaction fits one batch) is
/// disarmed and the run goes on.
pub const MATRIX: &[Failpoint] = &[
    Failpoint::crash("raftBeforeSave"),
    Failpoint::crash("raftAfterSave"),
    Failpoint::crash("raftBeforeLeaderSend"),
    Failpoint::crash("raftBeforeFollowerSend"),
    Failpoint::crash("raftBeforeWALSaveSnaphot"),
    Failpoint::crash("beforeCommit"),
    Failpoint::crash("afterCommit"),
    Failpoint::crash("defragBeforeCopy").reached_by(Trigger::Defrag),
    Failpoint::crash("defragBeforeRename").reached_by(Trigger::Defrag),
    Failpoint::crash("compactBeforeCommitScheduledCompact"),
    Failpoint::crash("compactAfterCommitScheduledCompact"),
    Failpoint::crash("compactBeforeCommitBatch"),
    Failpoint::crash("compactAfterCommitBatch"),
    Failpoint::crash("compactBeforeSetFinishedCompact"),
    Failpoint::crash("compactAfterSetFinishedCompact"),
    Failpoint::crash("raftBeforeSaveSnap").reached_by(Trigger::SnapshotInstall),
    Failpoint::crash("raftAfterSaveSnap").reached_by(Trigger::SnapshotInstall),
    Failpoint::crash("raftBeforeApplySnap").reached_by(Trigger::SnapshotInstall),
    Failpoint::crash("raftAfterApplySnap").reached_by(Trigger::SnapshotInstall),
    Failpoint::crash("restore_before_swap").reached_by(Trigger::SnapshotInstall),
    Failpoint::crash("restore_after_set_aside").reached_by(Trigger::SnapshotInstall),
    Failpoint::crash("restore_after_swap").reached_by(Trigger::SnapshotInstall),
    Failpoint::no_space("walWriteNoSpace"),
    Failpoint::no_space("backendCommitNoSpace"),
    Failpoint::stall("beforeSendWatchResponse"),
    Failpoint::stall("beforeSyncWatchers"),
    Failpoint::stall("beforeMoveVictims"),
    Failpoint::stall("raftBeforeSave"),
    Failpoint::stall("beforeCommit"),
];
