//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the WAL and the snapshotter.
///
/// Variants that describe damage on disk name the file and the byte offset of
/// the record where the damage starts, so an operator can look at it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`WalConfig`](crate::WalConfig) field is out of range.
    #[error("invalid wal config: {field} {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What the field must satisfy.
        reason: String,
    },
    /// A filesystem call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done: "open", "write", "fdatasync", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record's checksum does not match its bytes: corruption (not a torn
    /// write, which is repaired when it is the tail of the last segment).
    #[error("crc mismatch in {} at offset {offset}", file.display())]
    CrcMismatch {
        /// The segment or snapshot file.
        file: PathBuf,
        /// Byte offset of the record's first byte.
        offset: u64,
    },
    /// A record is malformed although its checksums may hold: an unknown
    /// type, wrong padding, a payload of the wrong size for its type, an
    /// entry index that skips ahead.
    #[error("corrupt record in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment or snapshot file.
        file: PathBuf,
        /// Byte offset of the record's first byte.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record on disk claims a payload longer than `max_record_bytes`
    /// (or `max_snapshot_bytes` for a snapshot file). Nothing was allocated.
    #[error("record in {} at offset {offset} claims {len} bytes, more than the limit {max}", file.display())]
    RecordTooLarge {
        /// The segment or snapshot file.
        file: PathBuf,
        /// Byte offset of the record's first byte.
        offset: u64,
        /// The claimed payload length.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A segment other than the last one ends inside a record or holds
    /// zeros where a record should be: a torn write where none may be.
    #[error("torn write in {} at offset {offset}, which is not the last segment", file.display())]
    Torn {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the first missing or torn record.
        offset: u64,
    },
    /// Two metadata records of one log differ.
    #[error("metadata in {} at offset {offset} differs from the log's first metadata", file.display())]
    MetadataConflict {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the record's first byte.
        offset: u64,
    },
    /// Segment files are missing from the sequence.
    #[error("wal segment sequence broken at {}: expected sequence {expected}", file.display())]
    SegmentGap {
        /// The first segment after the gap.
        file: PathBuf,
        /// The sequence number that is missing.
        expected: u64,
    },
    /// The WAL directory holds no segment.
    #[error("no wal segment in {}", dir.display())]
    NoSegments {
        /// The directory.
        dir: PathBuf,
    },
    /// `create` found a WAL already there.
    #[error("a wal already exists in {}", dir.display())]
    AlreadyExists {
        /// The directory.
        dir: PathBuf,
    },
    /// Another process (or another handle in this one) holds the WAL.
    #[error("wal {} is locked by another user", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A write or fsync failed earlier; the WAL no longer knows what is on
    /// disk, so it acknowledges nothing more. Reopen it to recover.
    #[error("wal is poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// The first failure.
        cause: String,
    },
    /// No snapshot marker record in the WAL matches the one asked for, or no
    /// segment covers its index.
    #[error("snapshot marker index {index} term {term} not found in the wal")]
    SnapshotNotFound {
        /// The marker's index.
        index: u64,
        /// The marker's term.
        term: u64,
    },
    /// A snapshot marker at the index asked for has another term.
    #[error("snapshot marker at index {index} has term {found}, expected {expected}")]
    SnapshotMismatch {
        /// The marker's index.
        index: u64,
        /// The term asked for.
        expected: u64,
        /// The term in the WAL.
        found: u64,
    },
    /// Entries passed to `save` do not continue the log.
    #[error("entries do not continue the log: expected index at most {expected}, got {found}")]
    EntryGap {
        /// The highest index the next entry may have.
        expected: u64,
        /// The index it has.
        found: u64,
    },
    /// Something passed to the WAL or snapshotter is over its limit.
    #[error("{what} of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// What was too large: "entry", "metadata", "snapshot".
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
}

impl Error {
    /// Wraps an OS error with the operation and path it came from.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
