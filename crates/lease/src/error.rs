//! The lessor's errors: one variant per condition a caller branches on.

/// What a lessor call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No lease with that id (or it has expired and waits for its revoke).
    #[error("lease not found")]
    LeaseNotFound,
    /// A lease with that id exists already.
    #[error("lease already exists")]
    LeaseExists,
    /// The TTL is above [`crate::MAX_LEASE_TTL_S`].
    #[error("too large lease TTL")]
    TtlTooLarge,
    /// Only the primary (the leader's lessor) renews leases; the caller
    /// forwards to the leader.
    #[error("not a primary lessor")]
    NotPrimary,
    /// A record in the `lease` bucket does not decode: the member stops.
    #[error("corrupt lease record: {0}")]
    Corrupt(String),
    /// The backend failed.
    #[error("backend: {0}")]
    Backend(String),
}

/// The lessor's result.
pub type Result<T> = std::result::Result<T, Error>;

impl From<ironcd_backend::Error> for Error {
    fn from(e: ironcd_backend::Error) -> Self {
        Error::Backend(e.to_string())
    }
}
