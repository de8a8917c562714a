//! The gRPC codec every generated service and client uses: prost's wire
//! format, byte for byte, but each message is encoded into a scratch
//! `Vec` and copied into tonic's buffer in one piece.
//!
//! Encoding straight into tonic's buffer (what `tonic_prost::ProstCodec`
//! does) writes every varint byte through `BytesMut::put_slice`, which is
//! not inlined: a call and a `memmove` per byte, the largest cost of a
//! watch event's delivery. Into a `Vec` the same writes are inlined stores.
//! Decoding is prost's, unchanged.

use std::fmt;
use std::marker::PhantomData;

use prost::bytes::BufMut;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

/// A scratch buffer that grew past this (one large response) is dropped
/// after use rather than kept for the rest of the stream.
pub const SCRATCH_KEEP_BYTES: usize = 64 * 1024;

/// The codec of the generated services (`build.rs` names it).
pub struct VecCodec<T, U> {
    _types: PhantomData<fn(T) -> U>,
}

impl<T, U> Default for VecCodec<T, U> {
    fn default() -> Self {
        VecCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Clone for VecCodec<T, U> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T, U> fmt::Debug for VecCodec<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VecCodec")
    }
}

impl<T, U> Codec for VecCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = VecEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        VecEncoder {
            scratch: Vec::new(),
            _type: PhantomData,
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::default())
    }
}

/// Encodes `T` through a scratch buffer kept for the call's lifetime.
pub struct VecEncoder<T> {
    scratch: Vec<u8>,
    _type: PhantomData<fn(T)>,
}

impl<T: Message> Encoder for VecEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        encode_through(&mut self.scratch, &item, dst)
    }
}

/// Encodes `item` into `scratch`, then appends it to `dst` in one copy.
fn encode_through<T: Message>(
    scratch: &mut Vec<u8>,
    item: &T,
    dst: &mut impl BufMut,
) -> Result<(), Status> {
    scratch.clear();
    // A `Vec` grows as needed: encoding into it cannot run out of room.
    item.encode(scratch)
        .map_err(|e| Status::internal(format!("encoding a response: {e}")))?;
    dst.put_slice(scratch);
    if scratch.capacity() > SCRATCH_KEEP_BYTES {
        *scratch = Vec::new();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcdserverpb::{ResponseHeader, WatchResponse};
    use crate::mvccpb::{Event, KeyValue};
    use prost::bytes::BytesMut;

    fn response(events: usize, value: usize) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: u64::MAX,
                member_id: 0x1234_5678_9abc,
                revision: 1 << 40,
                raft_term: 3,
            }),
            watch_id: -1,
            events: (0..events)
                .map(|i| Event {
                    r#type: (i % 2) as i32,
                    kv: Some(KeyValue {
                        key: format!("/registry/pods/{i}").into_bytes(),
                        value: vec![i as u8; value],
                        mod_revision: i as i64 + 1,
                        ..KeyValue::default()
                    }),
                    prev_kv: None,
                })
                .collect(),
            ..WatchResponse::default()
        }
    }

    #[test]
    fn the_bytes_are_prosts_and_decode_back() {
        let mut scratch = Vec::new();
        let mut dst = BytesMut::new();
        let mut want = Vec::new();
        for (events, value) in [(0, 0), (1, 256), (50, 3), (3, SCRATCH_KEEP_BYTES), (2, 9)] {
            let r = response(events, value);
            encode_through(&mut scratch, &r, &mut dst).expect("encodes");
            assert!(
                scratch.capacity() <= SCRATCH_KEEP_BYTES,
                "a large scratch buffer is not kept"
            );
            let one = r.encode_to_vec();
            assert_eq!(
                &dst[want.len()..],
                &one[..],
                "{events} events of {value} bytes"
            );
            assert_eq!(WatchResponse::decode(&one[..]).expect("decodes"), r);
            want.extend_from_slice(&one);
        }
        assert_eq!(&dst[..], &want[..], "appended, never overwritten");
    }
}
