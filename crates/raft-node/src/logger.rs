//! raft-rs logs through `slog`; this drain hands every record to `tracing`
//! (target `raft`), with the record's key-value pairs in the message.

use std::fmt::Write as _;

use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};

/// The `slog::Logger` given to raft-rs: everything goes to `tracing`.
pub(crate) fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TextDrain(to_tracing).fuse(), slog::o!("raft_id" => id))
}

fn to_tracing(level: slog::Level, text: &str) {
    match level {
        slog::Level::Critical | slog::Level::Error => tracing::error!(target: "raft", "{text}"),
        slog::Level::Warning => tracing::warn!(target: "raft", "{text}"),
        slog::Level::Info => tracing::info!(target: "raft", "{text}"),
        slog::Level::Debug => tracing::debug!(target: "raft", "{text}"),
        slog::Level::Trace => tracing::trace!(target: "raft", "{text}"),
    }
}

/// Formats each record as one line (`message, key: value, …`) for `emit`.
struct TextDrain<F>(F);

impl<F: Fn(slog::Level, &str)> Drain for TextDrain<F> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut text = String::new();
        let _ = write!(text, "{}", record.msg());
        let mut fields = Fields(&mut text);
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        (self.0)(record.level(), &text);
        Ok(())
    }
}

struct Fields<'a>(&'a mut String);

impl Serializer for Fields<'_> {
    fn emit_arguments(&mut self, key: Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, ", {key}: {value}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn records_become_one_line_with_their_fields_and_level() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let drain = TextDrain(move |level, text: &str| {
            sink.lock().unwrap().push((level, text.to_string()))
        });
        let logger = slog::Logger::root(drain.fuse(), slog::o!("raft_id" => 7));
        slog::info!(logger, "became leader"; "term" => 3);
        slog::crit!(logger, "odd"; "why" => ?vec![1, 2]);
        let lines = lines.lock().unwrap();
        assert_eq!(
            lines[0],
            (
                slog::Level::Info,
                "became leader, term: 3, raft_id: 7".to_string()
            )
        );
        assert_eq!(
            lines[1],
            (
                slog::Level::Critical,
                "odd, why: [1, 2], raft_id: 7".to_string()
            )
        );
        // And the real logger accepts records (to tracing's no-op default).
        slog::warn!(raft_logger(1), "to tracing"; "index" => 5);
    }
}
