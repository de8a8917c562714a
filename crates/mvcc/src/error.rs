/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// mvcc errors; callers branch on the typed variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested revision has been compacted away.
    #[error("mvcc: required revision has been compacted")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The store's compaction revision.
        compacted: i64,
    },
    /// The requested revision is beyond the current one.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },
    /// A configuration value is out of range.
    #[error("mvcc: invalid config: {0}")]
    InvalidConfig(&'static str),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] ironcd_backend::Error),
    /// Stored data does not decode or contradicts the index.
    #[error("mvcc: corrupt store: {0}")]
    Corrupt(String),
    /// The store is shutting down.
    #[error("mvcc: store closed")]
    Closed,
}
