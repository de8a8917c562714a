//! The errors of raft-node.

use std::path::PathBuf;

/// What can go wrong in raft-node. Callers branch on the variant: the server
/// maps `NoLeader`, `Timeout`, `TooLarge` and `Dropped` to etcd's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Raft refused the proposal, or it was overwritten by another leader's
    /// entry: it is certain not to be committed.
    #[error("proposal dropped")]
    Dropped,
    /// No leader is known, so nothing can be proposed or read.
    #[error("no leader")]
    NoLeader,
    /// The node has stopped (or is stopping); nothing more will happen.
    #[error("raft node stopped")]
    Stopped,
    /// The proposal is larger than `Config::max_proposal_bytes`.
    #[error("proposal of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// Size of the proposal.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// No answer in time. For a proposal the outcome is unknown: it may
    /// still commit.
    #[error("timed out")]
    Timeout,
    /// A configuration value is out of its documented range.
    #[error("invalid raft-node config: {field} {reason}")]
    InvalidConfig {
        /// The field at fault.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A request that makes no sense in the node's current state (a snapshot
    /// beyond what was applied, compaction past the last snapshot, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// raft-rs refused an operation.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The write-ahead log or snapshot files failed.
    #[error(transparent)]
    Wal(#[from] ironcd_wal::Error),
    /// Durable state that cannot be right (undecodable entries, a WAL of
    /// another member or cluster, an applied index beyond the commit index).
    #[error("corrupt raft state in {dir}: {reason}")]
    Corrupt {
        /// The data directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file outside the WAL (received snapshot data) could not be read,
    /// written or removed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Peer transport setup failed (bad address, listener).
    #[error("transport: {0}")]
    Transport(String),
}

/// `Result` with raft-node's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
