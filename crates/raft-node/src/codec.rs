//! raft-rs's types on the wire and on disk. They are prost 0.11 messages, so
//! they are encoded and decoded with prost 0.11 (`prost011`) — never through
//! the compatibility wrapper's `parse_from_bytes`, which is unimplemented.
//! raft-node's own records (the WAL's identity metadata) are bincode, also
//! only here ([`encode_record`], [`decode_record`]).

use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};

/// Encodes any raft-rs message.
pub(crate) fn encode<M: prost011::Message>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

/// Decodes a raft-rs message, naming what it was on failure.
pub(crate) fn decode<M: prost011::Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, String> {
    M::decode(bytes).map_err(|e| format!("undecodable {what}: {e}"))
}

/// A raft entry as the WAL stores it (the whole entry, encoded).
pub(crate) fn entry_to_wal(entry: &Entry) -> ironcd_wal::Entry {
    ironcd_wal::Entry {
        index: entry.index,
        term: entry.term,
        data: encode(entry),
    }
}

/// Back from the WAL, checking the framing agrees with the payload.
pub(crate) fn entry_from_wal(stored: &ironcd_wal::Entry) -> Result<Entry, String> {
    let entry: Entry = decode("entry", &stored.data)?;
    if entry.index != stored.index || entry.term != stored.term {
        return Err(format!(
            "entry at {}/{} holds {}/{}",
            stored.index, stored.term, entry.index, entry.term
        ));
    }
    Ok(entry)
}

/// The conf change an entry carries, as V2 (V1 converted).
pub(crate) fn conf_change_of(entry: &Entry) -> Result<ConfChangeV2, String> {
    use raft_proto::ConfChangeI as _;
    match entry.get_entry_type() {
        EntryType::EntryConfChange => {
            Ok(decode::<ConfChange>("conf change", &entry.data)?.into_v2())
        }
        EntryType::EntryConfChangeV2 => decode("conf change v2", &entry.data),
        EntryType::EntryNormal => Err("not a conf change entry".into()),
    }
}

/// Largest record of ours decoded ([`encode_record`]).
pub(crate) const MAX_RECORD_BYTES: usize = 1 << 20;

fn record_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// One of raft-node's own records (the WAL's identity metadata), with
/// bincode behind its version byte:
///
/// ```text
/// | version u8 | bincode (standard config) of the record |
/// ```
pub(crate) fn encode_record<T: bincode::Encode>(version: u8, record: &T) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(
        bincode::encode_to_vec(record, record_config()).expect("encoding into a Vec cannot fail"),
    );
    out
}

/// The record of `version` in `bytes`, which must hold nothing else;
/// decoding is bounded by [`MAX_RECORD_BYTES`] before it allocates.
pub(crate) fn decode_record<T: bincode::Decode<()>>(version: u8, bytes: &[u8]) -> Option<T> {
    let (&found, body) = bytes.split_first()?;
    if found != version {
        return None;
    }
    let (record, read) = bincode::decode_from_slice(body, record_config()).ok()?;
    (read == body.len()).then_some(record)
}

/// A message without its snapshot data (which travels in chunks), and the
/// data.
pub(crate) fn split_snapshot(mut message: Message) -> (Vec<u8>, Vec<u8>) {
    let data = message.mut_snapshot().take_data();
    (encode(&message), data)
}

/// The other half of [`split_snapshot`] (the receiver streams the data into
/// a file instead; this checks the split in tests).
#[cfg(test)]
pub(crate) fn join_snapshot(message: &[u8], data: Vec<u8>) -> Result<Message, String> {
    let mut message: Message = decode("snapshot message", message)?;
    message.mut_snapshot().data = data;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::MessageType;

    #[test]
    fn entries_round_trip_through_the_wal_form() {
        let entry = Entry {
            index: 9,
            term: 3,
            data: b"put a".to_vec(),
            context: vec![1; 16],
            ..Entry::default()
        };
        let stored = entry_to_wal(&entry);
        assert_eq!(entry_from_wal(&stored).unwrap(), entry);
        let mut wrong = stored.clone();
        wrong.term = 4;
        assert!(entry_from_wal(&wrong).unwrap_err().contains("holds"));
        let garbage = ironcd_wal::Entry {
            index: 9,
            term: 3,
            data: vec![0xff; 7],
        };
        assert!(entry_from_wal(&garbage)
            .unwrap_err()
            .contains("undecodable"));
    }

    #[test]
    fn snapshot_messages_split_and_join() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgSnapshot);
        message.to = 2;
        message.mut_snapshot().mut_metadata().index = 40;
        message.mut_snapshot().data = vec![7; 1000];
        let (head, data) = split_snapshot(message.clone());
        assert_eq!(data.len(), 1000);
        assert!(head.len() < 100);
        assert_eq!(join_snapshot(&head, data).unwrap(), message);
    }
}
