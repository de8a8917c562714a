//! A history that is always at revision 1 and never read: every watcher of
//! the benches starts synced. Shared by the bench targets (`#[path]`).

use ironcd_proto::mvccpb::{Event, KeyValue};
use ironcd_watch::{History, HistoryError};

/// The history.
pub struct Fixed;

impl History for Fixed {
    fn current_rev(&self) -> i64 {
        1
    }
    fn events(&self, _: i64, to: i64, _: usize) -> Result<(Vec<Event>, i64), HistoryError> {
        Ok((Vec::new(), to))
    }
    fn kv_at(&self, _: &[u8], _: i64) -> Option<KeyValue> {
        None
    }
}
