//! etcd's client-facing errors, and the one place they become
//! `tonic::Status`.
//!
//! Clients branch on the exact gRPC code and message (clientv3's `rpctypes`
//! turns the message back into a typed error), so every variant carries
//! etcd's text verbatim: checked against etcd's
//! `etcdserver/api/v3rpc/rpctypes/error.go`.

use tonic::{Code, Status};

/// Every error an etcd v3 server answers a client with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    // --- request validation
    /// A key (or a compare's key) is empty.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` on a key that does not exist, or an empty txn op.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn with more operations than `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn that puts or deletes the same key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A request larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// Too many requests are waiting to be applied.
    #[error("etcdserver: too many requests")]
    TooManyRequests,

    // --- mvcc
    /// The requested revision has been compacted.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is beyond the current one.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// The NOSPACE alarm is raised: writes are refused until disarmed.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,

    // --- leases
    /// The lease does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease with that id exists.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// The TTL is beyond the maximum.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,

    // --- membership
    /// The member id is taken.
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    /// Another member has one of these peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    /// The change would leave too few started members for a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    /// Peer URLs that do not parse.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// No member with that id.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// Promote of a voting member.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// Promote of a learner that has not caught up.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Too many learners already.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,

    // --- cluster state
    /// No leader is known.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// This member is not the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// The leader changed while the request was in flight.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The server is stopping.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The request was not applied in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Timed out, and the leader changed meanwhile.
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    /// Timed out waiting for the applied index to reach the read index.
    #[error("etcdserver: request timed out, waiting for the applied index took too long")]
    TimeoutWaitAppliedIndex,
    /// The cluster is not healthy enough for the request.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// The CORRUPT alarm is raised.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// The RPC is not served by a learner.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// MoveLeader to a member that cannot lead.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,

    // --- auth
    /// Auth is not enabled.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// The token is not valid.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// The user may not do this.
    #[error("etcdserver: permission denied")]
    PermissionDenied,

    // --- election and lock (etcd's concurrency package; plain Go errors,
    // so etcd answers them with code Unknown)
    /// Proclaim, or a Campaign whose key went, by a candidate that does
    /// not lead.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// Leader of an election nobody campaigns in.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Proclaim or Resign without a leader key.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// A Lock whose key went (its lease expired) before it held the lock.
    #[error("mutex: session is expired")]
    SessionExpired,
    /// The watch a Lock or Campaign waited on ended.
    #[error("lost watcher waiting for delete")]
    LostWatcher,

    // --- not etcd's vocabulary
    /// The RPC exists in etcd's API but ironcd does not serve it yet.
    #[error("{0} is not implemented by ironcd yet")]
    Unimplemented(&'static str),
    /// A server-side failure with no etcd equivalent (storage, IO).
    #[error("{0}")]
    Internal(String),
}

impl EtcdError {
    /// The gRPC code etcd answers this error with.
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | RequestTooLarge | MemberBadUrls => Code::InvalidArgument,
            Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            NoSpace | TooManyRequests => Code::ResourceExhausted,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            LeaseExist
            | MemberExist
            | PeerUrlExist
            | MemberNotEnoughStarted
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | NotLeader
            | BadLeaderTransferee
            | AuthNotEnabled => Code::FailedPrecondition,
            NoLeader
            | LeaderChanged
            | Stopped
            | Timeout
            | TimeoutDueToLeaderFail
            | TimeoutWaitAppliedIndex
            | Unhealthy
            | NotSupportedForLearner => Code::Unavailable,
            Corrupt => Code::DataLoss,
            InvalidAuthToken => Code::Unauthenticated,
            PermissionDenied => Code::PermissionDenied,
            Unimplemented(_) => Code::Unimplemented,
            ElectionNotLeader | ElectionNoLeader | MissingLeaderKey | SessionExpired
            | LostWatcher | Internal(_) => Code::Unknown,
        }
    }
}

/// The errors with a fixed message, for reading a peer's answer back.
const KNOWN: &[EtcdError] = {
    use EtcdError::*;
    &[
        EmptyKey,
        KeyNotFound,
        ValueProvided,
        LeaseProvided,
        TooManyOps,
        DuplicateKey,
        RequestTooLarge,
        TooManyRequests,
        Compacted,
        FutureRev,
        NoSpace,
        LeaseNotFound,
        LeaseExist,
        LeaseTtlTooLarge,
        MemberExist,
        PeerUrlExist,
        MemberNotEnoughStarted,
        MemberBadUrls,
        MemberNotFound,
        MemberNotLearner,
        LearnerNotReady,
        TooManyLearners,
        NoLeader,
        NotLeader,
        LeaderChanged,
        Stopped,
        Timeout,
        TimeoutDueToLeaderFail,
        TimeoutWaitAppliedIndex,
        Unhealthy,
        Corrupt,
        NotSupportedForLearner,
        BadLeaderTransferee,
        AuthNotEnabled,
        InvalidAuthToken,
        PermissionDenied,
        ElectionNotLeader,
        ElectionNoLeader,
        MissingLeaderKey,
        SessionExpired,
        LostWatcher,
    ]
};

impl EtcdError {
    /// Reads an etcd error back from a peer's gRPC answer (as clientv3's
    /// `rpctypes.Error` does): the message names it.
    pub fn from_status(status: &Status) -> EtcdError {
        KNOWN
            .iter()
            .find(|e| e.to_string() == status.message())
            .cloned()
            .unwrap_or_else(|| EtcdError::Internal(status.message().to_string()))
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (code, message) pairs clients match on, as etcd 3.4 defines them.
    #[test]
    fn codes_and_messages_are_etcds() {
        let cases: &[(EtcdError, Code, &str)] = &[
            (
                EtcdError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                EtcdError::KeyNotFound,
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                EtcdError::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                EtcdError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                EtcdError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                EtcdError::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                EtcdError::FutureRev,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                EtcdError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                EtcdError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                EtcdError::MemberNotFound,
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                EtcdError::PeerUrlExist,
                Code::FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
            (
                EtcdError::LearnerNotReady,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                EtcdError::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                EtcdError::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                EtcdError::BadLeaderTransferee,
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
            ),
            (
                EtcdError::Corrupt,
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
        ];
        for (err, code, message) in cases {
            let status = Status::from(err.clone());
            assert_eq!(status.code(), *code, "{err:?}");
            assert_eq!(status.message(), *message, "{err:?}");
            assert_eq!(EtcdError::from_status(&status), *err);
        }
    }
}
