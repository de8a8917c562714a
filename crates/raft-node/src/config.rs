//! [`Config`]: every knob of a raft node, with its default, range and unit,
//! checked once by [`Config::validate`].

use ironcd_wal::WalConfig;

use crate::error::{Error, Result};

/// Default tick interval: etcd's `--heartbeat-interval` (100 ms) is one tick.
pub const DEFAULT_TICK_MS: u64 = 100;
/// Default election timeout in ticks: etcd's 1000 ms over 100 ms ticks.
pub const DEFAULT_ELECTION_TICKS: u64 = 10;
/// Default heartbeat interval in ticks.
pub const DEFAULT_HEARTBEAT_TICKS: u64 = 1;
/// Default unacknowledged append messages in flight per follower (etcd's
/// `maxInflightMsgs`).
pub const DEFAULT_MAX_INFLIGHT_MSGS: u64 = 4096 / 8;
/// Default largest append message (etcd's `maxSizePerMsg`, 1 MiB).
pub const DEFAULT_MAX_SIZE_PER_MSG_BYTES: u64 = 1024 * 1024;
/// Default entries applied between snapshots (etcd's `--snapshot-count`).
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// Default entries kept behind a snapshot for slow followers (etcd's
/// `--snapshot-catchup-entries`).
pub const DEFAULT_SNAPSHOT_CATCHUP_ENTRIES: u64 = 5_000;
/// Default largest proposal: etcd's `--max-request-bytes` (1.5 MiB) plus
/// room for the request envelope.
pub const DEFAULT_MAX_PROPOSAL_BYTES: u64 = 1024 * 1024 * 3 / 2 + 64 * 1024;
/// Default time a proposal or read may take: etcd's request timeout (5 s
/// plus two election timeouts).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 7_000;
/// Default largest snapshot data accepted from a peer: etcd's default
/// `--quota-backend-bytes` (2 GiB) with the server's headroom (see
/// `ironcd-server`'s config), 4 GiB + 64 MiB.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = (4 << 30) + (64 << 20);
/// Smallest and largest allowed `max_snapshot_bytes`.
pub const MIN_MAX_SNAPSHOT_BYTES: u64 = 1 << 10;
/// See [`MIN_MAX_SNAPSHOT_BYTES`]: 1 TiB.
pub const MAX_MAX_SNAPSHOT_BYTES: u64 = 1 << 40;
/// Default capacity of the queue into the Ready loop (requests and peer
/// messages).
pub const DEFAULT_INBOX_CAPACITY: u64 = 4096;
/// Default capacity of the committed-entry stream to the applier, in
/// batches (one batch per Ready).
pub const DEFAULT_APPLY_QUEUE_CAPACITY: u64 = 1024;

/// A raft node's configuration. `Config::new(id, cluster_id)` gives etcd's
/// defaults; [`Config::validate`] checks every field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This member's id, non-zero.
    pub id: u64,
    /// The cluster's id, non-zero: peer messages carrying another are
    /// refused, and a data directory of another cluster does not open.
    pub cluster_id: u64,
    /// Voters of a new cluster (this member among them), used only the first
    /// time the data directory is made. Empty with `join` set.
    pub initial_voters: Vec<u64>,
    /// Join an existing cluster: start with no log and no membership, and
    /// wait for the leader's snapshot. Used only when the data directory is
    /// new.
    pub join: bool,
    /// One tick, in milliseconds. Default 100, range 1..=60 000.
    pub tick_ms: u64,
    /// Election timeout in ticks. Default 10; more than `heartbeat_ticks`,
    /// at most 10 000.
    pub election_ticks: u64,
    /// Heartbeat interval in ticks. Default 1, at least 1.
    pub heartbeat_ticks: u64,
    /// Pre-vote (§9.6 of the Raft thesis): a partitioned member does not
    /// disturb the cluster when it returns. Default on.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout
    /// steps down. Default on.
    pub check_quorum: bool,
    /// Append messages in flight per follower. Default 512, range 1..=65 536.
    pub max_inflight_msgs: u64,
    /// Largest append message, in bytes. Default 1 MiB, range 1 KiB..=64 MiB.
    pub max_size_per_msg_bytes: u64,
    /// Applied entries between snapshots: after this many the applier is
    /// asked for one. Default 100 000, at least 1.
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot so that a slow follower
    /// catches up without one. Default 5 000.
    pub snapshot_catchup_entries: u64,
    /// Largest proposal (data plus context), in bytes. Default 1.5 MiB +
    /// 64 KiB, range 1 KiB..=64 MiB, and below the WAL's record limit.
    pub max_proposal_bytes: u64,
    /// Longest wait for a proposal to commit or a read index, in
    /// milliseconds; then `Timeout`. Default 7 000, range 1..=3 600 000.
    pub request_timeout_ms: u64,
    /// Capacity of the queue into the Ready loop. Default 4 096, range
    /// 16..=1 048 576.
    pub inbox_capacity: u64,
    /// Capacity of the stream to the applier, in batches. Default 1 024,
    /// range 1..=1 048 576. When it is full the Ready loop waits.
    pub apply_queue_capacity: u64,
    /// Largest snapshot data (the application's state) accepted from a
    /// peer, in bytes. The transport streams it into a file under `snap/`
    /// and refuses a stream that grows past this. Default 4 GiB + 64 MiB,
    /// range 1 KiB..=1 TiB; the server derives it from its backend quota.
    pub max_snapshot_bytes: u64,
    /// Limits of the write-ahead log and snapshot files (which hold raft's
    /// metadata only: snapshot data travels as a file, never through them).
    pub wal: WalConfig,
}

impl Config {
    /// etcd's defaults for member `id` of cluster `cluster_id`.
    pub fn new(id: u64, cluster_id: u64) -> Config {
        Config {
            id,
            cluster_id,
            initial_voters: vec![id],
            join: false,
            tick_ms: DEFAULT_TICK_MS,
            election_ticks: DEFAULT_ELECTION_TICKS,
            heartbeat_ticks: DEFAULT_HEARTBEAT_TICKS,
            pre_vote: true,
            check_quorum: true,
            max_inflight_msgs: DEFAULT_MAX_INFLIGHT_MSGS,
            max_size_per_msg_bytes: DEFAULT_MAX_SIZE_PER_MSG_BYTES,
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            snapshot_catchup_entries: DEFAULT_SNAPSHOT_CATCHUP_ENTRIES,
            max_proposal_bytes: DEFAULT_MAX_PROPOSAL_BYTES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            inbox_capacity: DEFAULT_INBOX_CAPACITY,
            apply_queue_capacity: DEFAULT_APPLY_QUEUE_CAPACITY,
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
            wal: WalConfig::default(),
        }
    }

    /// Election timeout in milliseconds.
    pub fn election_timeout_ms(&self) -> u64 {
        self.tick_ms * self.election_ticks
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        nonzero("id", self.id)?;
        nonzero("cluster_id", self.cluster_id)?;
        if self.join && !self.initial_voters.is_empty() {
            return invalid("initial_voters", "must be empty when joining".into());
        }
        if !self.join && !self.initial_voters.contains(&self.id) {
            return invalid(
                "initial_voters",
                format!("must contain this member ({})", self.id),
            );
        }
        if self.initial_voters.contains(&0) {
            return invalid("initial_voters", "must not contain 0".into());
        }
        range("tick_ms", self.tick_ms, 1, 60_000)?;
        range("heartbeat_ticks", self.heartbeat_ticks, 1, 1_000)?;
        range(
            "election_ticks",
            self.election_ticks,
            self.heartbeat_ticks + 1,
            10_000,
        )?;
        range("max_inflight_msgs", self.max_inflight_msgs, 1, 65_536)?;
        range(
            "max_size_per_msg_bytes",
            self.max_size_per_msg_bytes,
            1024,
            64 << 20,
        )?;
        range("snapshot_count", self.snapshot_count, 1, u64::MAX)?;
        range(
            "max_proposal_bytes",
            self.max_proposal_bytes,
            1024,
            64 << 20,
        )?;
        range("request_timeout_ms", self.request_timeout_ms, 1, 3_600_000)?;
        range("inbox_capacity", self.inbox_capacity, 16, 1 << 20)?;
        range(
            "apply_queue_capacity",
            self.apply_queue_capacity,
            1,
            1 << 20,
        )?;
        range(
            "max_snapshot_bytes",
            self.max_snapshot_bytes,
            MIN_MAX_SNAPSHOT_BYTES,
            MAX_MAX_SNAPSHOT_BYTES,
        )?;
        self.wal.validate()?;
        // An entry is stored with its raft framing: leave room for it.
        let entry_overhead = 64;
        if self.max_proposal_bytes + entry_overhead > self.wal.max_record_bytes {
            return invalid(
                "max_proposal_bytes",
                format!(
                    "is {}, must leave {entry_overhead} bytes below the WAL's max_record_bytes ({})",
                    self.max_proposal_bytes, self.wal.max_record_bytes
                ),
            );
        }
        Ok(())
    }

    /// The raft-rs configuration for this node, `applied` being the
    /// applier's durable index.
    pub(crate) fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_ticks as usize,
            heartbeat_tick: self.heartbeat_ticks as usize,
            applied,
            max_size_per_msg: self.max_size_per_msg_bytes,
            max_inflight_msgs: self.max_inflight_msgs as usize,
            check_quorum: self.check_quorum,
            pre_vote: self.pre_vote,
            // The proposal limit is ours; raft-rs's own counts every
            // uncommitted entry and would turn a slow follower into drops.
            max_uncommitted_size: raft::NO_LIMIT,
            ..raft::Config::default()
        }
    }
}

fn nonzero(field: &'static str, value: u64) -> Result<()> {
    if value == 0 {
        return invalid(field, "must not be 0".into());
    }
    Ok(())
}

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        invalid(field, format!("is {value}, must be in {min}..={max}"))
    }
}

fn invalid(field: &'static str, reason: String) -> Result<()> {
    Err(Error::InvalidConfig { field, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bound_is_checked() {
        let config = Config::new(1, 7);
        config.validate().unwrap();
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("id", Box::new(|c| c.id = 0)),
            ("cluster_id", Box::new(|c| c.cluster_id = 0)),
            ("initial_voters", Box::new(|c| c.initial_voters = vec![2])),
            ("initial_voters", Box::new(|c| c.join = true)),
            ("tick_ms", Box::new(|c| c.tick_ms = 0)),
            ("election_ticks", Box::new(|c| c.election_ticks = 1)),
            ("heartbeat_ticks", Box::new(|c| c.heartbeat_ticks = 0)),
            ("max_inflight_msgs", Box::new(|c| c.max_inflight_msgs = 0)),
            (
                "max_size_per_msg_bytes",
                Box::new(|c| c.max_size_per_msg_bytes = 10),
            ),
            ("snapshot_count", Box::new(|c| c.snapshot_count = 0)),
            (
                "max_proposal_bytes",
                Box::new(|c| c.max_proposal_bytes = 64 << 20),
            ),
            ("request_timeout_ms", Box::new(|c| c.request_timeout_ms = 0)),
            ("inbox_capacity", Box::new(|c| c.inbox_capacity = 1)),
            (
                "apply_queue_capacity",
                Box::new(|c| c.apply_queue_capacity = 0),
            ),
            ("max_snapshot_bytes", Box::new(|c| c.max_snapshot_bytes = 0)),
            (
                "max_snapshot_bytes",
                Box::new(|c| c.max_snapshot_bytes = MAX_MAX_SNAPSHOT_BYTES + 1),
            ),
        ];
        for (field, mutate) in cases {
            let mut bad = config.clone();
            mutate(&mut bad);
            match bad.validate() {
                Err(Error::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
        let mut joining = Config::new(4, 7);
        joining.join = true;
        joining.initial_voters.clear();
        joining.validate().unwrap();
    }
}
