//! The server's own errors. Client-facing ones become `ironcd_api::EtcdError`
//! (etcd's vocabulary) at the boundary; the rest stop the server.

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag or combination of flags is invalid.
    #[error("{0}")]
    Config(String),
    /// The data directory does not match the flags (another cluster, another
    /// member, a torn restore).
    #[error("data dir: {0}")]
    DataDir(String),
    /// Consensus failed.
    #[error(transparent)]
    Raft(#[from] ironcd_raft_node::Error),
    /// The store failed.
    #[error(transparent)]
    Mvcc(#[from] ironcd_mvcc::Error),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] ironcd_backend::Error),
    /// A listener or file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A stored record does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}
