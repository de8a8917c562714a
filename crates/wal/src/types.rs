//! The plain data the WAL stores. Deliberately not raft-rs types: the WAL is
//! usable without raft, and raft-node converts at its boundary.

/// Raft's persistent state: current term, vote, commit index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Node voted for in `term`, 0 for none.
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// One raft log entry. `data` is opaque: raft-node stores its encoded raft
/// entry there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Log index, from 1.
    pub index: u64,
    /// Term the entry was proposed in.
    pub term: u64,
    /// Opaque payload.
    pub data: Vec<u8>,
}

/// Where a snapshot was taken: entries up to `index` are in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotMarker {
    /// Last index the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
}

/// What [`WalReader::read_all`](crate::WalReader::read_all) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalContents {
    /// The opaque metadata given to `create`.
    pub metadata: Vec<u8>,
    /// The last hard state saved (the default when none was).
    pub hard_state: HardState,
    /// The entries after the snapshot marker the WAL was opened at, with
    /// every later overwrite applied.
    pub entries: Vec<Entry>,
}
