//! Segment file names: `%016x-%016x.wal` (sequence, first raft index), as
//! etcd names them, and the choice of segments to read.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix of a segment being prepared; never read, removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";
const HEX_DIGITS: usize = 16;

/// A segment's identity, parsed from or formatted to its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SegmentName {
    /// Position in the log's sequence of segments, from 0, without gaps.
    pub(crate) seq: u64,
    /// Index the first entry appended to the segment was expected to have
    /// (last index + 1 at the cut). Entries rewritten after a leader change
    /// may go lower, but never below a committed index.
    pub(crate) first_index: u64,
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:016x}-{:016x}{SEGMENT_SUFFIX}",
            self.seq, self.first_index
        )
    }
}

impl SegmentName {
    /// Parses a file name; `None` for anything that is not a segment.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
        let (seq, index) = parse_hex_pair(stem)?;
        Some(SegmentName {
            seq,
            first_index: index,
        })
    }

    pub(crate) fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.to_string())
    }

    pub(crate) fn temp_path_in(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{self}{TEMP_SUFFIX}"))
    }
}

/// Parses `%016x-%016x` exactly: lower-case hex only, so that every value
/// has one name and sorting names sorts values.
pub(crate) fn parse_hex_pair(stem: &str) -> Option<(u64, u64)> {
    let (a, b) = stem.split_once('-')?;
    Some((parse_hex(a)?, parse_hex(b)?))
}

fn parse_hex(s: &str) -> Option<u64> {
    let canonical =
        s.len() == HEX_DIGITS && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if canonical {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// The segments among `names`, sorted by sequence, checked to have no gap.
pub(crate) fn segments_of(dir: &Path, names: &[String]) -> Result<Vec<SegmentName>> {
    let mut segments: Vec<SegmentName> =
        names.iter().filter_map(|n| SegmentName::parse(n)).collect();
    segments.sort();
    for pair in segments.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(Error::SegmentGap {
                file: pair[1].path_in(dir),
                expected: pair[0].seq + 1,
            });
        }
    }
    Ok(segments)
}

/// Position of the segment to start reading at for a snapshot at `index`:
/// the last one whose first index is at most `index`.
pub(crate) fn start_for(segments: &[SegmentName], index: u64) -> Option<usize> {
    segments.iter().rposition(|s| s.first_index <= index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = SegmentName {
            seq: 0x1f,
            first_index: u64::MAX,
        };
        assert_eq!(name.to_string(), "000000000000001f-ffffffffffffffff.wal");
        assert_eq!(SegmentName::parse(&name.to_string()), Some(name));
    }

    #[test]
    fn non_segments_are_ignored() {
        for bad in [
            "000000000000001f-0000000000000001.wal.tmp",
            "000000000000001F-0000000000000001.wal",
            "1f-1.wal",
            "+00000000000001f-0000000000000001.wal",
            "000000000000001f_0000000000000001.wal",
            "000000000000001f-0000000000000001.snap",
            "LOCK",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn segments_sort_and_gaps_are_errors() {
        let dir = Path::new("/wal");
        let names: Vec<String> = [
            "0000000000000001-0000000000000010.wal",
            "LOCK",
            "0000000000000000-0000000000000000.wal",
        ]
        .map(String::from)
        .to_vec();
        let segments = segments_of(dir, &names).unwrap();
        assert_eq!(segments.iter().map(|s| s.seq).collect::<Vec<_>>(), [0, 1]);
        let gap = vec![
            "0000000000000000-0000000000000000.wal".to_string(),
            "0000000000000002-0000000000000010.wal".to_string(),
        ];
        assert!(matches!(
            segments_of(dir, &gap),
            Err(Error::SegmentGap { expected: 1, .. })
        ));
    }

    #[test]
    fn start_is_the_last_segment_not_after_the_index() {
        let segs =
            [(0, 0), (1, 10), (2, 20)].map(|(seq, first_index)| SegmentName { seq, first_index });
        assert_eq!(start_for(&segs, 0), Some(0));
        assert_eq!(start_for(&segs, 9), Some(0));
        assert_eq!(start_for(&segs, 10), Some(1));
        assert_eq!(start_for(&segs, 100), Some(2));
        assert_eq!(start_for(&segs[1..], 5), None);
    }
}
