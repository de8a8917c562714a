//! What the Watch service sends, with one encoding of an event shared by
//! every watcher it reaches.
//!
//! A revision's event goes to each watcher whose key or range holds it:
//! with a hundred watchers on a prefix, a hundred responses carry the same
//! bytes. A [`SharedEvent`] is made once per event and handed to each of
//! them behind an `Arc`; the first response to be encoded encodes the
//! event (as a `WatchResponse` `events` field, tag and length included)
//! and every later one copies those bytes. [`WatchReply::Shared`] is such a
//! response; it encodes to exactly the bytes prost gives the equivalent
//! [`WatchResponse`], so clients see no difference.

use std::sync::{Arc, OnceLock};

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::etcdserverpb::{ResponseHeader, WatchResponse};
use crate::mvccpb::Event;

/// `WatchResponse.events`' field number.
const EVENTS_FIELD: u32 = 11;

/// One event as every watcher it reaches sees it (no `prev_kv`: that is
/// per watcher), and its encoding once made.
#[derive(Debug)]
pub struct SharedEvent {
    event: Event,
    encoded: OnceLock<Box<[u8]>>,
}

/// Equal events are equal, encoded yet or not.
impl PartialEq for SharedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

impl SharedEvent {
    /// Shares `event`.
    pub fn new(event: Event) -> Arc<SharedEvent> {
        Arc::new(SharedEvent {
            event,
            encoded: OnceLock::new(),
        })
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event as one `events` field of a `WatchResponse`: tag, length
    /// and message, encoded on first use.
    pub fn encoded_field(&self) -> &[u8] {
        self.encoded.get_or_init(|| {
            let mut field =
                Vec::with_capacity(encoding::message::encoded_len(EVENTS_FIELD, &self.event));
            encoding::message::encode(EVENTS_FIELD, &self.event, &mut field);
            field.into_boxed_slice()
        })
    }
}

/// A response on a Watch stream.
#[derive(Debug)]
pub enum WatchReply {
    /// Any response, as a message of its own.
    Message(WatchResponse),
    /// A watcher's events, each shared with the other watchers it
    /// reached: the `WatchResponse` with only `header`, `watch_id` and
    /// `events` set.
    Shared {
        /// The response's header.
        header: ResponseHeader,
        /// The watcher.
        watch_id: i64,
        /// Its events, in revision order.
        events: Vec<Arc<SharedEvent>>,
    },
}

impl Default for WatchReply {
    fn default() -> Self {
        WatchReply::Message(WatchResponse::default())
    }
}

impl From<WatchResponse> for WatchReply {
    fn from(response: WatchResponse) -> Self {
        WatchReply::Message(response)
    }
}

impl WatchReply {
    /// The response as a message of its own (the events copied out of
    /// their shared form), for a caller that reads its fields.
    pub fn into_message(self) -> WatchResponse {
        match self {
            WatchReply::Message(response) => response,
            WatchReply::Shared {
                header,
                watch_id,
                events,
            } => WatchResponse {
                header: Some(header),
                watch_id,
                events: events.iter().map(|e| e.event().clone()).collect(),
                ..WatchResponse::default()
            },
        }
    }
}

/// A `WatchReply`'s bytes are a `WatchResponse`'s, and decode as one.
impl Message for WatchReply {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            WatchReply::Message(response) => response.encode_raw(buf),
            WatchReply::Shared {
                header,
                watch_id,
                events,
            } => {
                // Field order as prost writes WatchResponse's: 1, 2, 11.
                encoding::message::encode(1, header, buf);
                if *watch_id != 0 {
                    encoding::int64::encode(2, watch_id, buf);
                }
                for event in events {
                    buf.put_slice(event.encoded_field());
                }
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if let WatchReply::Shared { .. } = self {
            *self = WatchReply::Message(std::mem::take(self).into_message());
        }
        let WatchReply::Message(response) = self else {
            unreachable!("made a message above")
        };
        response.merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        match self {
            WatchReply::Message(response) => response.encoded_len(),
            WatchReply::Shared {
                header,
                watch_id,
                events,
            } => {
                let id = if *watch_id != 0 {
                    encoding::int64::encoded_len(2, watch_id)
                } else {
                    0
                };
                encoding::message::encoded_len(1, header)
                    + id
                    + events
                        .iter()
                        .map(|e| e.encoded_field().len())
                        .sum::<usize>()
            }
        }
    }

    fn clear(&mut self) {
        *self = WatchReply::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvccpb::KeyValue;

    fn event(i: usize, value: usize) -> Event {
        Event {
            r#type: (i % 2) as i32,
            kv: Some(KeyValue {
                key: format!("/registry/pods/{i}").into_bytes(),
                value: vec![i as u8; value],
                create_revision: 2,
                mod_revision: (i as i64 + 1) << 33,
                version: i as i64,
                lease: if i.is_multiple_of(3) { 0 } else { 0x694d_7a1b },
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn a_shared_reply_encodes_to_prosts_bytes_for_the_same_response() {
        let header = ResponseHeader {
            cluster_id: u64::MAX,
            member_id: 0x1234_5678_9abc,
            revision: 1 << 40,
            raft_term: 3,
        };
        for (watch_id, count, value) in [(0, 1, 256), (7, 3, 0), (-1, 0, 0), (1 << 40, 50, 3)] {
            let events: Vec<Event> = (0..count).map(|i| event(i, value)).collect();
            let shared: Vec<Arc<SharedEvent>> =
                events.iter().cloned().map(SharedEvent::new).collect();
            let reply = WatchReply::Shared {
                header,
                watch_id,
                events: shared.clone(),
            };
            let want = WatchResponse {
                header: Some(header),
                watch_id,
                events: events.clone(),
                ..WatchResponse::default()
            };
            assert_eq!(
                reply.encode_to_vec(),
                want.encode_to_vec(),
                "{watch_id} {count}"
            );
            assert_eq!(reply.encoded_len(), want.encoded_len());
            // Encoded twice (a second watcher): the same bytes again.
            let again = WatchReply::Shared {
                header,
                watch_id,
                events: shared,
            };
            assert_eq!(again.encode_to_vec(), want.encode_to_vec());
            assert_eq!(
                WatchResponse::decode(again.encode_to_vec().as_slice()).unwrap(),
                want
            );
            let decoded = WatchReply::decode(again.encode_to_vec().as_slice()).unwrap();
            assert_eq!(decoded.into_message(), want);
            assert_eq!(again.into_message(), want);
        }
    }

    #[test]
    fn a_plain_reply_is_the_message() {
        let response = WatchResponse {
            watch_id: 3,
            created: true,
            cancel_reason: "x".into(),
            ..WatchResponse::default()
        };
        let reply = WatchReply::from(response.clone());
        assert_eq!(reply.encode_to_vec(), response.encode_to_vec());
        let decoded = WatchReply::decode(response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.into_message(), response);
        assert_eq!(reply.into_message(), response);
    }
}
