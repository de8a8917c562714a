use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid backend config: {0}")]
    InvalidConfig(&'static str),
    /// The storage engine reported an error.
    #[error("storage engine error: {0}")]
    Engine(String),
    /// Reading or writing a snapshot stream failed.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A snapshot stream is malformed or fails its checksum.
    #[error("corrupt snapshot stream: {0}")]
    CorruptSnapshot(String),
    /// Restoring needs an empty backend.
    #[error("cannot restore into a backend that holds data")]
    NotEmpty,
    /// The data directory cannot be used.
    #[error("cannot open data directory {path}: {reason}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Engine(e.into_string())
    }
}
