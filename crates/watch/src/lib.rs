//! ironcd-watch: the watchable store over `ironcd-mvcc` — synced, unsynced
//! and victim watcher groups, bounded streams, progress notifications.
//!
//! Not built yet: arrives with the watch issue.
