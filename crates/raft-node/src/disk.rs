//! The durable half of a raft node: the WAL and the snapshot files under
//! the member directory, and recovery from them.
//!
//! ```text
//! <member-dir>/
//!     wal/    ironcd-wal segments: entries (raft-rs `Entry`, encoded),
//!             hard states, snapshot markers; metadata = [`Identity`]
//!     snap/   %016x-%016x.snap: raft-rs `Snapshot` (metadata with the conf
//!             state; data only where the applier gave `create_snapshot`
//!             some), encoded
//!             %016x.snap.db: the data of a snapshot at that index received
//!             from a peer (the leader's application state, streamed into
//!             `.snap.db.part`, fsynced, renamed); the applier restores from
//!             it and removes it
//! ```
//!
//! A new cluster member starts from a *bootstrap snapshot* at index 1, term
//! 1, whose conf state is the initial voters and whose data is empty. It is
//! never written as a file: the voters are in the WAL's metadata and the
//! snapshot is made again from them (the WAL holds an empty entry 1 so that
//! its log is gap-free from the start). Because every log then starts at
//! index 2, a member that joins later (empty log) is sent a snapshot by the
//! leader, and learns the membership from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironcd_wal::{SnapshotMarker, Snapshotter, Wal, WalIo};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

use crate::codec;
use crate::config::Config;
use crate::error::{Error, Result};

/// Suffix of a received snapshot's data file.
const SNAPSHOT_DATA_SUFFIX: &str = ".snap.db";
/// Suffix of one still being received (not `.tmp`: the snapshotter's purge
/// removes those, and it may run while a snapshot streams in).
pub(crate) const SNAPSHOT_DATA_PART_SUFFIX: &str = ".snap.db.part";

/// Where the data of a snapshot at `index` received from a peer is kept.
pub(crate) fn snapshot_data_path(snap_dir: &Path, index: u64) -> PathBuf {
    snap_dir.join(format!("{index:016x}{SNAPSHOT_DATA_SUFFIX}"))
}

/// The file a snapshot's data streams into before it is complete.
pub(crate) fn snapshot_data_part_path(data_path: &Path) -> PathBuf {
    let mut name = data_path.as_os_str().to_owned();
    name.push(".part");
    debug_assert!(name.to_string_lossy().ends_with(SNAPSHOT_DATA_PART_SUFFIX));
    PathBuf::from(name)
}

/// Removes the received snapshot data files in `snap_dir` other than the
/// one at `keep` (the snapshot the applier has yet to restore), and any
/// partial one: raft refused them, or the applier restored them before a
/// crash kept it from removing them. Returns how many went.
pub(crate) fn remove_stale_snapshot_data(snap_dir: &Path, keep: Option<u64>) -> Result<usize> {
    let mut removed = 0;
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    let entries = match std::fs::read_dir(snap_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("list", snap_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("list", snap_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = if name.ends_with(SNAPSHOT_DATA_PART_SUFFIX) {
            true
        } else if let Some(hex) = name.strip_suffix(SNAPSHOT_DATA_SUFFIX) {
            u64::from_str_radix(hex, 16).ok() != keep
        } else {
            false
        };
        if stale {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Index and term of the bootstrap snapshot.
pub(crate) const BOOTSTRAP_INDEX: u64 = 1;
const BOOTSTRAP_TERM: u64 = 1;
/// 2: bincode (1 was a hand-laid layout, no longer read).
const IDENTITY_VERSION: u8 = 2;
/// Most voters the identity records (its encoding is bounded by it).
const MAX_INITIAL_VOTERS: usize = 1024;

/// Who the WAL belongs to: written once as the WAL's metadata, through
/// [`codec::encode_record`] at [`IDENTITY_VERSION`].
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
struct Identity {
    id: u64,
    cluster_id: u64,
    initial_voters: Vec<u64>,
}

impl Identity {
    fn encode(&self) -> Vec<u8> {
        codec::encode_record(IDENTITY_VERSION, self)
    }

    fn decode(bytes: &[u8]) -> Option<Identity> {
        let identity: Identity = codec::decode_record(IDENTITY_VERSION, bytes)?;
        (identity.initial_voters.len() <= MAX_INITIAL_VOTERS).then_some(identity)
    }

    fn bootstrap_snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        if !self.initial_voters.is_empty() {
            let meta = snapshot.mut_metadata();
            meta.index = BOOTSTRAP_INDEX;
            meta.term = BOOTSTRAP_TERM;
            meta.set_conf_state(ConfState {
                voters: self.initial_voters.clone(),
                ..ConfState::default()
            });
        }
        snapshot
    }
}

/// What a node starts from.
pub(crate) struct Recovered {
    pub(crate) disk: Disk,
    /// The newest snapshot (index 0 for a joining member that has none).
    pub(crate) snapshot: Snapshot,
    pub(crate) hard_state: HardState,
    /// Entries after the snapshot.
    pub(crate) entries: Vec<Entry>,
}

/// The WAL and the snapshot files, owned by the Ready loop.
pub(crate) struct Disk {
    dir: PathBuf,
    wal: Wal,
    snapshotter: Snapshotter,
}

impl Disk {
    /// Opens the member directory, creating it for a new member.
    pub(crate) fn open(io: Arc<dyn WalIo>, dir: &Path, config: &Config) -> Result<Recovered> {
        let wal_dir = dir.join("wal");
        let snapshotter = Snapshotter::with_io(io.clone(), dir.join("snap"), &config.wal)?;
        let identity = Identity {
            id: config.id,
            cluster_id: config.cluster_id,
            initial_voters: config.initial_voters.clone(),
        };
        if identity.initial_voters.len() > MAX_INITIAL_VOTERS {
            return Err(Error::InvalidConfig {
                field: "initial_voters",
                reason: format!("more than {MAX_INITIAL_VOTERS}"),
            });
        }
        let (wal, contents, snapshot) = match open_newest(
            io.clone(),
            &wal_dir,
            &snapshotter,
            &config.wal,
        ) {
            Err(Error::Wal(ironcd_wal::Error::NoSegments { .. })) => {
                let wal = Wal::create_with_io(io, &wal_dir, &identity.encode(), &config.wal)?;
                tracing::info!(dir = %dir.display(), id = config.id, voters = ?identity.initial_voters, "created raft member directory");
                return Self::recover(
                    dir,
                    wal,
                    snapshotter,
                    &identity,
                    None,
                    Default::default(),
                    Vec::new(),
                );
            }
            opened => opened?,
        };
        let found = Identity::decode(&contents.metadata)
            .ok_or_else(|| corrupt(dir, "undecodable WAL metadata".into()))?;
        if found.id != config.id || found.cluster_id != config.cluster_id {
            return Err(corrupt(
                dir,
                format!(
                    "the WAL belongs to member {:x} of cluster {:x}, not member {:x} of cluster {:x}",
                    found.id, found.cluster_id, config.id, config.cluster_id
                ),
            ));
        }
        let entries = contents
            .entries
            .iter()
            .map(codec::entry_from_wal)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|reason| corrupt(dir, reason))?;
        let hard_state = HardState {
            term: contents.hard_state.term,
            vote: contents.hard_state.vote,
            commit: contents.hard_state.commit,
        };
        Self::recover(dir, wal, snapshotter, &found, snapshot, hard_state, entries)
    }

    fn recover(
        dir: &Path,
        mut wal: Wal,
        snapshotter: Snapshotter,
        identity: &Identity,
        snapshot: Option<Snapshot>,
        mut hard_state: HardState,
        mut entries: Vec<Entry>,
    ) -> Result<Recovered> {
        let snapshot = snapshot.unwrap_or_else(|| identity.bootstrap_snapshot());
        let meta = snapshot.get_metadata();
        if meta.index == BOOTSTRAP_INDEX && wal.last_index() < BOOTSTRAP_INDEX {
            // The WAL takes entry 2 only after entry 1: store the entry the
            // bootstrap snapshot covers (empty; dropped again on recovery).
            // Repeated if creation was cut short.
            let first = Entry {
                index: BOOTSTRAP_INDEX,
                term: BOOTSTRAP_TERM,
                ..Entry::default()
            };
            let state = HardState {
                term: BOOTSTRAP_TERM,
                vote: 0,
                commit: BOOTSTRAP_INDEX,
            };
            wal.save(&to_wal_state(&state), &[codec::entry_to_wal(&first)])?;
        }
        entries.retain(|e| e.index > meta.index);
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = hard_state.commit.max(meta.index);
        if let Some(first) = entries.first() {
            if first.index != meta.index + 1 {
                return Err(corrupt(
                    dir,
                    format!(
                        "the log starts at {} after a snapshot at {}",
                        first.index, meta.index
                    ),
                ));
            }
        }
        Ok(Recovered {
            disk: Disk {
                dir: dir.to_path_buf(),
                wal,
                snapshotter,
            },
            snapshot,
            hard_state,
            entries,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `entries` and the hard state, with one fsync — unless there
    /// are no entries and the term and vote are unchanged: a commit index
    /// alone is written unsynced (raft's `MustSync` rule, as etcd does). A
    /// lost commit index is learnt again; see `Driver::open`.
    pub(crate) fn save(&mut self, hard_state: &HardState, entries: &[Entry]) -> Result<()> {
        let state = to_wal_state(hard_state);
        let previous = self.wal.hard_state();
        if entries.is_empty() && state.term == previous.term && state.vote == previous.vote {
            self.wal.save_state_unsynced(&state)?;
            return Ok(());
        }
        let stored: Vec<_> = entries.iter().map(codec::entry_to_wal).collect();
        self.wal.save(&state, &stored)?;
        Ok(())
    }

    /// Writes a snapshot file, then its marker in the WAL: a crash between
    /// the two leaves a file the WAL does not name, which recovery skips.
    pub(crate) fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata();
        let marker = SnapshotMarker {
            index: meta.index,
            term: meta.term,
        };
        self.snapshotter.save(marker, &codec::encode(snapshot))?;
        fail::fail_point!("raftBeforeWALSaveSnaphot"); // etcd's spelling
        self.wal.save_snapshot(marker)?;
        Ok(())
    }

    /// Deletes WAL segments and snapshot files no longer needed to recover
    /// from the snapshot at `index`.
    pub(crate) fn release_to(&mut self, index: u64) -> Result<()> {
        self.wal.release_to(index)?;
        let removed = self.snapshotter.purge()?;
        tracing::debug!(dir = %self.dir.display(), index, removed, "released raft files");
        Ok(())
    }
}

/// Opens the WAL at the newest snapshot it records (falling back to older
/// ones, then to its beginning) and reads it.
fn open_newest(
    io: Arc<dyn WalIo>,
    wal_dir: &Path,
    snapshotter: &Snapshotter,
    config: &ironcd_wal::WalConfig,
) -> Result<(Wal, ironcd_wal::WalContents, Option<Snapshot>)> {
    let mut markers = snapshotter.list()?;
    markers.sort_unstable_by(|a, b| b.cmp(a));
    for marker in markers {
        let stored = match snapshotter.load(marker) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(index = marker.index, term = marker.term, error = %e, "skipping unreadable snapshot");
                continue;
            }
        };
        let snapshot: Snapshot = match codec::decode("snapshot", &stored.data) {
            Ok(snapshot) => snapshot,
            Err(reason) => {
                tracing::warn!(index = marker.index, %reason, "skipping undecodable snapshot");
                continue;
            }
        };
        // The marker's segment may exist while the marker record does not: a
        // crash after the snapshot file was written but before its WAL record
        // was. Reading then ends in `SnapshotNotFound`; an older one serves.
        let opened = Wal::open_with_io(io.clone(), wal_dir, marker, config)
            .and_then(|reader| reader.read_all());
        match opened {
            Ok((wal, contents)) => return Ok((wal, contents, Some(snapshot))),
            Err(ironcd_wal::Error::SnapshotNotFound { .. }) => {
                tracing::warn!(
                    index = marker.index,
                    "snapshot file not recorded in the WAL; trying an older one"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (wal, contents) =
        Wal::open_with_io(io, wal_dir, SnapshotMarker::default(), config)?.read_all()?;
    Ok((wal, contents, None))
}

fn to_wal_state(hard_state: &HardState) -> ironcd_wal::HardState {
    ironcd_wal::HardState {
        term: hard_state.term,
        vote: hard_state.vote,
        commit: hard_state.commit,
    }
}

fn corrupt(dir: &Path, reason: String) -> Error {
    Error::Corrupt {
        dir: dir.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(first: u64, last: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                index,
                term: 2,
                data: vec![index as u8],
                ..Entry::default()
            })
            .collect()
    }

    #[test]
    fn recovery_skips_a_snapshot_file_the_wal_never_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(1, 9);
        config.initial_voters = vec![1, 2, 3];
        let io: Arc<dyn WalIo> = Arc::new(ironcd_wal::StdIo);
        let mut recovered = Disk::open(io.clone(), dir.path(), &config).unwrap();
        assert_eq!(recovered.snapshot.get_metadata().index, BOOTSTRAP_INDEX);
        let state = HardState {
            term: 2,
            vote: 1,
            commit: 10,
        };
        recovered.disk.save(&state, &entries(2, 10)).unwrap();
        // A crash between the snapshot file and its WAL record.
        let mut orphan = Snapshot::default();
        orphan.mut_metadata().index = 6;
        orphan.mut_metadata().term = 2;
        let marker = SnapshotMarker { index: 6, term: 2 };
        recovered
            .disk
            .snapshotter
            .save(marker, &codec::encode(&orphan))
            .unwrap();
        drop(recovered);

        let again = Disk::open(io.clone(), dir.path(), &config).unwrap();
        assert_eq!(again.snapshot.get_metadata().index, BOOTSTRAP_INDEX);
        assert_eq!(again.entries, entries(2, 10));
        assert_eq!(again.hard_state, state);
        // A recorded one is used.
        let mut disk = again.disk;
        disk.save_snapshot(&orphan).unwrap();
        drop(disk);
        let last = Disk::open(io, dir.path(), &config).unwrap();
        assert_eq!(last.snapshot.get_metadata().index, 6);
        assert_eq!(last.entries, entries(7, 10));
    }

    #[test]
    fn a_wal_of_another_member_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let io: Arc<dyn WalIo> = Arc::new(ironcd_wal::StdIo);
        drop(Disk::open(io.clone(), dir.path(), &Config::new(1, 9)).unwrap());
        let other = Disk::open(io, dir.path(), &Config::new(2, 9));
        assert!(
            matches!(other, Err(Error::Corrupt { .. })),
            "{:?}",
            other.err()
        );
    }

    #[test]
    fn identity_round_trips_and_refuses_garbage() {
        let identity = Identity {
            id: 3,
            cluster_id: 9,
            initial_voters: vec![1, 2, 3],
        };
        assert_eq!(Identity::decode(&identity.encode()), Some(identity.clone()));
        let bytes = identity.encode();
        assert_eq!(Identity::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Identity::decode(&[bytes.clone(), vec![0]].concat()), None);
        assert_eq!(Identity::decode(&[2]), None);
        let mut other_version = bytes.clone();
        other_version[0] = IDENTITY_VERSION + 1;
        assert_eq!(Identity::decode(&other_version), None);
        let too_many = Identity {
            initial_voters: (1..=MAX_INITIAL_VOTERS as u64 + 1).collect(),
            ..identity
        };
        assert_eq!(Identity::decode(&too_many.encode()), None);
    }
}
