//! The store's past, as the watchable store reads it.

use std::sync::Arc;

use ironcd_backend::Backend;
use ironcd_mvcc::{RangeOptions, Store};
use ironcd_proto::mvccpb::{Event, KeyValue};

/// Why the history could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The revisions asked for were compacted away.
    #[error("mvcc: required revision has been compacted (compact revision {0})")]
    Compacted(i64),
    /// The store failed (corruption, I/O): the watcher cannot be served.
    #[error("{0}")]
    Failed(String),
}

/// What the watchable store needs of the store: its revisions and its
/// events, read back. The server implements it over whichever store is
/// current (a snapshot install replaces it).
pub trait History: Send + Sync + 'static {
    /// The revision of the last committed write txn.
    fn current_rev(&self) -> i64;
    /// The events of revisions `from..=to`, in order, stopping after the
    /// revision during which they reached `max_events`; and the last
    /// revision read in full.
    fn events(
        &self,
        from: i64,
        to: i64,
        max_events: usize,
    ) -> Result<(Vec<Event>, i64), HistoryError>;
    /// `key` as it was at revision `rev` (for `prev_kv`), if it existed
    /// and `rev` is still readable.
    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue>;
}

fn history_error(e: ironcd_mvcc::Error) -> HistoryError {
    match e {
        ironcd_mvcc::Error::Compacted { compacted, .. } => HistoryError::Compacted(compacted),
        other => HistoryError::Failed(other.to_string()),
    }
}

impl<B: Backend> History for Store<B> {
    fn current_rev(&self) -> i64 {
        Store::current_rev(self)
    }

    fn events(
        &self,
        from: i64,
        to: i64,
        max_events: usize,
    ) -> Result<(Vec<Event>, i64), HistoryError> {
        self.read()
            .events(from, to, max_events)
            .map_err(history_error)
    }

    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let opts = RangeOptions {
            rev,
            ..RangeOptions::default()
        };
        self.range(key, None, opts).ok()?.kvs.into_iter().next()
    }
}

impl<H: History + ?Sized> History for Arc<H> {
    fn current_rev(&self) -> i64 {
        (**self).current_rev()
    }

    fn events(
        &self,
        from: i64,
        to: i64,
        max_events: usize,
    ) -> Result<(Vec<Event>, i64), HistoryError> {
        (**self).events(from, to, max_events)
    }

    fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        (**self).kv_at(key, rev)
    }
}
