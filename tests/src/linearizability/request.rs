//! What a history records: etcd v3's KV, lease and compaction calls and
//! the server's answers, reduced to the fields the model judges.
//!
//! Keys and values are bytes. In JSON they are strings when they are valid
//! UTF-8 and `{"hex": "…"}` otherwise, so any byte string round-trips.

use serde::{Deserialize, Serialize};
use std::fmt;

/// gRPC message of etcd's `ErrGRPCCompacted`.
pub const ERR_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// gRPC message of etcd's `ErrGRPCFutureRev`.
pub const ERR_FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
/// gRPC message of etcd's `ErrGRPCLeaseNotFound`.
pub const ERR_LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// gRPC message of etcd's `ErrGRPCLeaseExist`.
pub const ERR_LEASE_EXISTS: &str = "etcdserver: lease already exists";
/// gRPC message of etcd's `ErrGRPCLeaseTTLTooLarge`.
pub const ERR_LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// gRPC message of etcd's `ErrGRPCDuplicateKey`.
pub const ERR_DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
/// etcd's `MaxLeaseTTL` (lease/lessor.go): a longer grant is refused.
pub const MAX_LEASE_TTL_S: i64 = 9_000_000_000;

/// A key as etcd stores it (`mvccpb.KeyValue`, without prev_kv noise).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(with = "bytes")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "bytes")]
    pub value: Vec<u8>,
    /// Revision of the put that created the key (kept across puts).
    pub create_revision: i64,
    /// Revision of the last put.
    pub mod_revision: i64,
    /// 1 on create, +1 per put.
    pub version: i64,
    /// The attached lease, 0 for none.
    pub lease: i64,
}

/// A client call.
///
/// Key ranges follow etcd: an empty `range_end` is the single key `key`,
/// `[0]` is every key from `key` on, anything else is `[key, range_end)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    /// A linearizable Range (serializable reads are not linearizable and
    /// must not be recorded).
    Range {
        /// First key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// End of the range (see [`Request`]).
        #[serde(with = "bytes")]
        range_end: Vec<u8>,
        /// 0 reads the current revision; > 0 reads the store as of it.
        revision: i64,
        /// At most this many kvs; 0 or less is no limit.
        limit: i64,
    },
    /// A Put.
    Put {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// The value.
        #[serde(with = "bytes")]
        value: Vec<u8>,
        /// Lease to attach, 0 for none (detaches the key's old lease).
        lease: i64,
    },
    /// A DeleteRange.
    Delete {
        /// First key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// End of the range (see [`Request`]).
        #[serde(with = "bytes")]
        range_end: Vec<u8>,
    },
    /// A Txn (no nested txns).
    Txn {
        /// All must hold for `success` to run.
        compares: Vec<Compare>,
        /// Run when every compare holds.
        success: Vec<TxnOp>,
        /// Run otherwise.
        failure: Vec<TxnOp>,
    },
    /// A LeaseGrant of a known ID (when the client asked for ID 0, record
    /// the ID the server chose).
    LeaseGrant {
        /// The lease ID.
        id: i64,
        /// The requested TTL.
        ttl_s: i64,
    },
    /// A LeaseRevoke: deletes the lease's keys in one revision.
    LeaseRevoke {
        /// The lease ID.
        id: i64,
    },
    /// One keep-alive request and its response on a LeaseKeepAlive stream.
    LeaseKeepAlive {
        /// The lease ID.
        id: i64,
    },
    /// A Compact (physical or not; the model sees no difference).
    Compact {
        /// Compact up to this revision.
        revision: i64,
    },
}

/// One operation of a Txn branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnOp {
    /// As [`Request::Range`].
    Range {
        /// First key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// End of the range.
        #[serde(with = "bytes")]
        range_end: Vec<u8>,
        /// 0 for the txn's own view, > 0 for a past revision.
        revision: i64,
        /// At most this many kvs; 0 or less is no limit.
        limit: i64,
    },
    /// As [`Request::Put`].
    Put {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// The value.
        #[serde(with = "bytes")]
        value: Vec<u8>,
        /// Lease to attach, 0 for none.
        lease: i64,
    },
    /// As [`Request::Delete`].
    Delete {
        /// First key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// End of the range.
        #[serde(with = "bytes")]
        range_end: Vec<u8>,
    },
}

/// One Txn compare on a single key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    #[serde(with = "bytes")]
    pub key: Vec<u8>,
    /// The field compared, with the operand it is compared to.
    pub target: CompareTarget,
    /// How they compare.
    pub op: CompareOp,
}

/// The field a [`Compare`] reads and its operand. A missing key has
/// version, revisions and lease 0, and fails every value compare (etcd's
/// `applyCompare`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value, compared bytewise.
    Value(#[serde(with = "bytes")] Vec<u8>),
    /// The version.
    Version(i64),
    /// The create revision.
    CreateRevision(i64),
    /// The mod revision.
    ModRevision(i64),
    /// The lease.
    Lease(i64),
}

/// A [`Compare`]'s relation: `field op operand`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

/// What the server answered. `revision` is always the response header's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    /// A Range's answer.
    Range {
        /// Header revision: the store's current revision, also for a read
        /// of a past revision.
        revision: i64,
        /// The kvs, in key order, at most `limit` of them.
        kvs: Vec<KeyValue>,
        /// How many keys matched, ignoring `limit`.
        count: i64,
    },
    /// A Put's answer.
    Put {
        /// The put's revision.
        revision: i64,
    },
    /// A DeleteRange's answer.
    Delete {
        /// The deletion's revision, or the current one when nothing was
        /// deleted.
        revision: i64,
        /// How many keys were deleted.
        deleted: i64,
    },
    /// A Txn's answer.
    Txn {
        /// The txn's revision, or the current one when the branch that ran
        /// changed nothing.
        revision: i64,
        /// Whether every compare held.
        succeeded: bool,
        /// One result per operation of the branch that ran.
        results: Vec<TxnResult>,
    },
    /// A LeaseGrant's answer.
    LeaseGrant {
        /// Header revision (a grant creates no revision).
        revision: i64,
    },
    /// A LeaseRevoke's answer.
    LeaseRevoke {
        /// Header revision after the revoke.
        revision: i64,
    },
    /// A keep-alive's answer.
    LeaseKeepAlive {
        /// 0 when the lease is gone; any positive TTL matches a live one.
        ttl_s: i64,
    },
    /// A Compact's answer.
    Compact {
        /// Header revision (a compaction creates no revision).
        revision: i64,
    },
    /// What is known of a Txn whose answer was lost but whose effect was
    /// seen (a watch event of one of its unique puts): its revision and
    /// the branch that ran, not the branch's results. Matches any
    /// [`Response::Txn`] with that revision and branch.
    TxnOutcome {
        /// The txn's revision.
        revision: i64,
        /// Whether the success branch ran.
        succeeded: bool,
    },
    /// A definite error: the server says the request did not take effect.
    /// The gRPC status message (the `ERR_*` constants). Timeouts and lost
    /// connections are not errors: record those operations as failed.
    Error(String),
}

/// The result of one [`TxnOp`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnResult {
    /// A Range's kvs and count.
    Range {
        /// The kvs, in key order, at most `limit` of them.
        kvs: Vec<KeyValue>,
        /// How many keys matched.
        count: i64,
    },
    /// A Put (its revision is the txn's).
    Put,
    /// A DeleteRange.
    Delete {
        /// How many keys were deleted.
        deleted: i64,
    },
}

impl Request {
    /// A current read of one key.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Request::Range {
            key: key.into(),
            range_end: Vec::new(),
            revision: 0,
            limit: 0,
        }
    }

    /// A current read of `[key, range_end)` (etcd's rules for `range_end`).
    pub fn range(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Self {
        Request::Range {
            key: key.into(),
            range_end: range_end.into(),
            revision: 0,
            limit: 0,
        }
    }

    /// A put without a lease.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Request::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        }
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Request::Delete {
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    /// Whether the request can never change the store, whatever the state
    /// (a failed one then needs no linearization point at all).
    pub fn is_read_only(&self) -> bool {
        match self {
            Request::Range { .. } | Request::LeaseKeepAlive { .. } => true,
            Request::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .all(|op| matches!(op, TxnOp::Range { .. })),
            _ => false,
        }
    }

    /// The (key, value) pairs the request may put, in any branch.
    pub fn puts(&self) -> Vec<(&[u8], &[u8])> {
        match self {
            Request::Put { key, value, .. } => vec![(key, value)],
            Request::Txn {
                success, failure, ..
            } => success
                .iter()
                .chain(failure)
                .filter_map(|op| match op {
                    TxnOp::Put { key, value, .. } => Some((key.as_slice(), value.as_slice())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl TxnOp {
    /// A read of one key in the txn's view.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Range {
            key: key.into(),
            range_end: Vec::new(),
            revision: 0,
            limit: 0,
        }
    }

    /// A put without a lease.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        }
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        TxnOp::Delete {
            key: key.into(),
            range_end: Vec::new(),
        }
    }
}

impl Compare {
    /// `target op operand` on `key`.
    pub fn new(key: impl Into<Vec<u8>>, target: CompareTarget, op: CompareOp) -> Self {
        Compare {
            key: key.into(),
            target,
            op,
        }
    }
}

impl Response {
    /// The header revision, if the response has one.
    pub fn revision(&self) -> Option<i64> {
        match self {
            Response::Range { revision, .. }
            | Response::Put { revision }
            | Response::Delete { revision, .. }
            | Response::Txn { revision, .. }
            | Response::LeaseGrant { revision }
            | Response::LeaseRevoke { revision }
            | Response::Compact { revision }
            | Response::TxnOutcome { revision, .. } => Some(*revision),
            Response::LeaseKeepAlive { .. } | Response::Error(_) => None,
        }
    }

    /// The response with its header revision replaced (tests mutate
    /// histories with it). Responses without one are returned unchanged.
    pub fn with_revision(&self, new: i64) -> Response {
        let mut response = self.clone();
        match &mut response {
            Response::Range { revision, .. }
            | Response::Put { revision }
            | Response::Delete { revision, .. }
            | Response::Txn { revision, .. }
            | Response::LeaseGrant { revision }
            | Response::LeaseRevoke { revision }
            | Response::Compact { revision }
            | Response::TxnOutcome { revision, .. } => *revision = new,
            Response::LeaseKeepAlive { .. } | Response::Error(_) => {}
        }
        response
    }

    /// Every kv the response shows (a Range's, a Txn's ranges').
    pub fn kvs(&self) -> Vec<&KeyValue> {
        match self {
            Response::Range { kvs, .. } => kvs.iter().collect(),
            Response::Txn { results, .. } => results
                .iter()
                .flat_map(|result| match result {
                    TxnResult::Range { kvs, .. } => kvs.as_slice(),
                    _ => &[],
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Bytes shown as a quoted, escaped string.
pub(super) struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// A key range as etcd reads `range_end`.
struct Keys<'a>(&'a [u8], &'a [u8]);

impl fmt::Display for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            [] => write!(f, "{}", Quoted(self.0)),
            [0] => write!(f, "{}..", Quoted(self.0)),
            end => write!(f, "[{}, {})", Quoted(self.0), Quoted(end)),
        }
    }
}

fn fmt_range(f: &mut fmt::Formatter<'_>, keys: Keys<'_>, revision: i64, limit: i64) -> fmt::Result {
    write!(f, "range {keys}")?;
    if revision > 0 {
        write!(f, " at rev {revision}")?;
    }
    if limit > 0 {
        write!(f, " limit {limit}")?;
    }
    Ok(())
}

fn fmt_put(f: &mut fmt::Formatter<'_>, key: &[u8], value: &[u8], lease: i64) -> fmt::Result {
    write!(f, "put {} = {}", Quoted(key), Quoted(value))?;
    if lease != 0 {
        write!(f, " lease {lease}")?;
    }
    Ok(())
}

fn fmt_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    write!(f, "[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{item}")?;
    }
    write!(f, "]")
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Range {
                key,
                range_end,
                revision,
                limit,
            } => fmt_range(f, Keys(key, range_end), *revision, *limit),
            Request::Put { key, value, lease } => fmt_put(f, key, value, *lease),
            Request::Delete { key, range_end } => write!(f, "delete {}", Keys(key, range_end)),
            Request::Txn {
                compares,
                success,
                failure,
            } => {
                write!(f, "txn if ")?;
                fmt_list(f, compares)?;
                write!(f, " then ")?;
                fmt_list(f, success)?;
                write!(f, " else ")?;
                fmt_list(f, failure)
            }
            Request::LeaseGrant { id, ttl_s } => write!(f, "lease grant {id} ttl {ttl_s}s"),
            Request::LeaseRevoke { id } => write!(f, "lease revoke {id}"),
            Request::LeaseKeepAlive { id } => write!(f, "lease keep-alive {id}"),
            Request::Compact { revision } => write!(f, "compact {revision}"),
        }
    }
}

impl fmt::Display for TxnOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnOp::Range {
                key,
                range_end,
                revision,
                limit,
            } => fmt_range(f, Keys(key, range_end), *revision, *limit),
            TxnOp::Put { key, value, lease } => fmt_put(f, key, value, *lease),
            TxnOp::Delete { key, range_end } => write!(f, "delete {}", Keys(key, range_end)),
        }
    }
}

impl fmt::Display for Compare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            CompareOp::Equal => "==",
            CompareOp::NotEqual => "!=",
            CompareOp::Less => "<",
            CompareOp::Greater => ">",
        };
        let key = Quoted(&self.key);
        match &self.target {
            CompareTarget::Value(value) => write!(f, "value({key}) {op} {}", Quoted(value)),
            CompareTarget::Version(n) => write!(f, "version({key}) {op} {n}"),
            CompareTarget::CreateRevision(n) => write!(f, "create({key}) {op} {n}"),
            CompareTarget::ModRevision(n) => write!(f, "mod({key}) {op} {n}"),
            CompareTarget::Lease(n) => write!(f, "lease({key}) {op} {n}"),
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} (create {}, mod {}, version {}, lease {})",
            Quoted(&self.key),
            Quoted(&self.value),
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease
        )
    }
}

impl fmt::Display for TxnResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnResult::Range { kvs, count } => {
                write!(f, "count {count} ")?;
                fmt_list(f, kvs)
            }
            TxnResult::Put => write!(f, "put"),
            TxnResult::Delete { deleted } => write!(f, "deleted {deleted}"),
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Range {
                revision,
                kvs,
                count,
            } => {
                write!(f, "rev {revision} count {count} ")?;
                fmt_list(f, kvs)
            }
            Response::Put { revision }
            | Response::LeaseGrant { revision }
            | Response::LeaseRevoke { revision }
            | Response::Compact { revision } => write!(f, "rev {revision}"),
            Response::Delete { revision, deleted } => {
                write!(f, "rev {revision} deleted {deleted}")
            }
            Response::Txn {
                revision,
                succeeded,
                results,
            } => {
                let branch = if *succeeded { "succeeded" } else { "failed" };
                write!(f, "rev {revision} {branch} ")?;
                fmt_list(f, results)
            }
            Response::LeaseKeepAlive { ttl_s } => write!(f, "ttl {ttl_s}s"),
            Response::TxnOutcome {
                revision,
                succeeded,
            } => write!(f, "rev {revision} succeeded {succeeded} (results unknown)"),
            Response::Error(message) => write!(f, "error {message:?}"),
        }
    }
}

/// Serde for byte strings: UTF-8 text as a JSON string, anything else as
/// `{"hex": "…"}` (no base64 crate here, and hex is easy to read back).
mod bytes {
    use serde::de::Error as _;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: AsRef<[u8]>, S: Serializer>(bytes: &T, s: S) -> Result<S::Ok, S::Error> {
        let bytes = bytes.as_ref();
        match std::str::from_utf8(bytes) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("hex", &to_hex(bytes))?;
                map.end()
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Hex { hex: String },
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(text) => Ok(text.into_bytes()),
            Repr::Hex { hex } => {
                from_hex(&hex).ok_or_else(|| D::Error::custom("invalid hex bytes"))
            }
        }
    }

    pub(super) fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn from_hex(hex: &str) -> Option<Vec<u8>> {
        if !hex.is_ascii() || !hex.len().is_multiple_of(2) {
            return None;
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(bytes::from_hex(&bytes::to_hex(&all)), Some(all));
        assert_eq!(bytes::from_hex("abc"), None);
        assert_eq!(bytes::from_hex("zz"), None);
    }

    #[test]
    fn bytes_are_text_when_utf8_and_hex_otherwise() {
        let text = serde_json::to_string(&Request::put("k", "v")).unwrap();
        assert_eq!(text, r#"{"Put":{"key":"k","value":"v","lease":0}}"#);
        let binary = Request::put(vec![0xff, 0x00], "v");
        let json = serde_json::to_string(&binary).unwrap();
        assert!(json.contains(r#"{"hex":"ff00"}"#), "{json}");
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), binary);
    }

    #[test]
    fn display_names_key_ranges_as_etcd_reads_them() {
        assert_eq!(Request::get("a").to_string(), r#"range "a""#);
        assert_eq!(Request::range("a", [0]).to_string(), r#"range "a".."#);
        assert_eq!(Request::range("a", "c").to_string(), r#"range ["a", "c")"#);
        let txn = Request::Txn {
            compares: vec![Compare::new(
                "k",
                CompareTarget::ModRevision(3),
                CompareOp::Equal,
            )],
            success: vec![TxnOp::put("k", "v")],
            failure: vec![TxnOp::get("k")],
        };
        assert_eq!(
            txn.to_string(),
            r#"txn if [mod("k") == 3] then [put "k" = "v"] else [range "k"]"#
        );
    }

    #[test]
    fn read_only_requests_are_those_that_cannot_write() {
        assert!(Request::get("a").is_read_only());
        assert!(Request::LeaseKeepAlive { id: 1 }.is_read_only());
        assert!(!Request::put("a", "1").is_read_only());
        let reads = Request::Txn {
            compares: vec![],
            success: vec![TxnOp::get("a")],
            failure: vec![],
        };
        assert!(reads.is_read_only());
        let write = Request::Txn {
            compares: vec![],
            success: vec![],
            failure: vec![TxnOp::delete("a")],
        };
        assert!(!write.is_read_only());
    }
}
