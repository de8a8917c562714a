//! Streams through the gateway: a request body read as a sequence of JSON
//! messages and fed to a service as the `tonic::Streaming` it takes from
//! gRPC, and a service's response stream written as grpc-gateway's
//! newline-delimited `{"result":…}` chunks.

use std::convert::Infallible;

use axum::body::{Body, BodyDataStream};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::Status;

use super::errors::{json_response, stream_error, stream_error_chunk};
use super::json::{self, DecodeError, Next};

/// Encoded requests queued between the body reader and the service's
/// `Streaming`: the reader waits when the service is this far behind.
pub const REQUEST_STREAM_QUEUE: usize = 16;

/// The gRPC length-prefixed message header: a compression flag and a
/// big-endian 32-bit length.
const GRPC_FRAME_HEADER_BYTES: usize = 5;

/// Reads JSON messages one after another from a request body, as Go's
/// `json.Decoder` does for grpc-gateway's client streams.
pub struct JsonReader {
    body: BodyDataStream,
    buffer: Vec<u8>,
    /// The largest message text accepted, in bytes.
    limit_bytes: usize,
    ended: bool,
}

impl JsonReader {
    /// A reader of `body` refusing a message longer than `limit_bytes`.
    pub fn new(body: Body, limit_bytes: usize) -> Self {
        Self {
            body: body.into_data_stream(),
            buffer: Vec::new(),
            limit_bytes,
            ended: false,
        }
    }

    /// The next message; `None` once the body ends cleanly.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, DecodeError> {
        loop {
            match json::next_value(&self.buffer)? {
                Next::Value(value, used) => {
                    self.buffer.drain(..used);
                    return json::from_value(value).map(Some);
                }
                Next::End => self.buffer.clear(),
                Next::Incomplete => {}
            }
            if self.ended {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(DecodeError("unexpected EOF".into()))
                };
            }
            if self.buffer.len() > self.limit_bytes {
                return Err(DecodeError(format!(
                    "request message longer than {} bytes",
                    self.limit_bytes
                )));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(DecodeError(e.to_string())),
                None => self.ended = true,
            }
        }
    }
}

/// What happens to the service's request stream once the body ends (or a
/// later message does not decode: grpc-gateway then half-closes too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterBody {
    /// The request stream ends (the client half-closes).
    Close,
    /// The request stream stays open until the response is dropped. etcd's
    /// Watch ignores a half-close (its `recvLoop` returns on `io.EOF`
    /// without ending the stream), so a gateway watch outlives its body.
    HoldOpen,
}

/// The `tonic::Streaming` a bidirectional service takes, fed with `first`
/// and then every further message of `reader` by a task of its own.
/// `max_message_bytes` (at most `u32::MAX`, gRPC's frame length) is the
/// service's decoding limit: a longer message half-closes the stream, as
/// an undecodable one does.
pub fn request_stream<T>(
    first: Option<T>,
    mut reader: JsonReader,
    after: AfterBody,
    max_message_bytes: usize,
) -> tonic::Streaming<T>
where
    T: DeserializeOwned + prost::Message + Default + Send + 'static,
{
    assert!(
        max_message_bytes <= u32::MAX as usize,
        "a gRPC frame's length is 32 bits"
    );
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(REQUEST_STREAM_QUEUE);
    tokio::spawn(async move {
        let mut next = first;
        while let Some(message) = next.take() {
            if message.encoded_len() > max_message_bytes {
                tracing::debug!("gateway: streamed request over the message limit");
                break;
            }
            if tx.send(Ok(grpc_frame(&message))).await.is_err() {
                // The service dropped its request stream: the call is over.
                return;
            }
            next = reader.next::<T>().await.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "gateway: undecodable streamed request");
                None
            });
        }
        if after == AfterBody::HoldOpen {
            tx.closed().await;
        }
    });
    let body = Body::from_stream(ReceiverStream::new(rx));
    tonic::Streaming::new_request(
        tonic_prost::ProstDecoder::<T>::default(),
        body,
        None,
        Some(max_message_bytes),
    )
}

/// `message` as one uncompressed gRPC length-prefixed frame.
fn grpc_frame<T: prost::Message>(message: &T) -> Bytes {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(GRPC_FRAME_HEADER_BYTES + len);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(len).expect("checked against the message limit"));
    message
        .encode(&mut frame)
        .expect("BytesMut grows to hold any message");
    frame.freeze()
}

/// One `{"result":…}` chunk and its delimiter.
fn result_chunk<M: Serialize>(message: &M) -> Bytes {
    let body = json::encode(message);
    let mut chunk = Vec::with_capacity(body.len() + 12);
    chunk.extend_from_slice(b"{\"result\":");
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(b"}\n");
    Bytes::from(chunk)
}

/// Writes a service's response stream as grpc-gateway's
/// `ForwardResponseStream` does: nothing is sent until the first message
/// (so an error before it sets the HTTP status), then one chunk per
/// message, and an error chunk (with no delimiter) ending the stream.
pub async fn forward<M, S>(stream: S) -> Response
where
    M: Serialize + Send + 'static,
    S: Stream<Item = Result<M, Status>> + Send + 'static,
{
    let mut stream = Box::pin(stream);
    let first = match stream.next().await {
        None => return json_response(StatusCode::OK, Body::empty()),
        Some(Err(status)) => return stream_error(&status),
        Some(Ok(message)) => result_chunk(&message),
    };
    let rest = futures_util::stream::unfold(Some(stream), |state| async move {
        let mut stream = state?;
        match stream.next().await {
            None => None,
            Some(Ok(message)) => Some((result_chunk(&message), Some(stream))),
            Some(Err(status)) => Some((Bytes::from(stream_error_chunk(&status)), None)),
        }
    });
    let chunks = futures_util::stream::once(async move { first })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    json_response(StatusCode::OK, Body::from_stream(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcd_proto::etcdserverpb::watch_request::RequestUnion;
    use ironcd_proto::etcdserverpb::{ResponseHeader, WatchRequest, WatchResponse};
    use std::time::Duration;

    fn body_of(chunks: &[&'static str]) -> Body {
        let items: Vec<Result<Bytes, Infallible>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(items))
    }

    fn watch_id(request: &WatchRequest) -> i64 {
        match &request.request_union {
            Some(RequestUnion::CreateRequest(create)) => create.watch_id,
            other => panic!("not a create: {other:?}"),
        }
    }

    #[tokio::test]
    async fn reader_splits_values_across_chunks() {
        let mut reader = JsonReader::new(
            body_of(&[
                r#"{"create_request":{"watch_id":1}} {"create_"#,
                r#"request":{"watch_id":"2"}}"#,
                "\n  ",
            ]),
            1024,
        );
        let first: WatchRequest = reader.next().await.unwrap().unwrap();
        let second: WatchRequest = reader.next().await.unwrap().unwrap();
        assert_eq!((watch_id(&first), watch_id(&second)), (1, 2));
        assert_eq!(reader.next::<WatchRequest>().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_refuses_truncated_and_oversized_messages() {
        let mut truncated = JsonReader::new(body_of(&[r#"{"create_request":"#]), 1024);
        assert!(truncated.next::<WatchRequest>().await.is_err());
        let mut long = JsonReader::new(body_of(&[r#"{"create_request":{"key":""#, "AAAA"]), 8);
        let error = long.next::<WatchRequest>().await.unwrap_err();
        assert!(error.0.contains("longer than 8 bytes"), "{error}");
    }

    #[tokio::test]
    async fn request_stream_feeds_the_service_and_holds_open() {
        let reader = JsonReader::new(
            body_of(&[r#"{"create_request":{"watch_id":"5"}} {bad"#]),
            1024,
        );
        let mut requests = request_stream(
            Some(WatchRequest::default()),
            reader,
            AfterBody::HoldOpen,
            1024,
        );
        assert_eq!(
            requests.message().await.unwrap(),
            Some(WatchRequest::default())
        );
        let second = requests.message().await.unwrap().unwrap();
        assert_eq!(watch_id(&second), 5);
        // The bad third message half-closes the body, but a watch stays
        // open: no end of stream arrives.
        let pending = tokio::time::timeout(Duration::from_millis(50), requests.message()).await;
        assert!(pending.is_err(), "the request stream ended: {pending:?}");

        let reader = JsonReader::new(body_of(&[]), 1024);
        let mut closed = request_stream(
            Some(WatchRequest::default()),
            reader,
            AfterBody::Close,
            1024,
        );
        assert!(closed.message().await.unwrap().is_some());
        assert_eq!(closed.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn forward_writes_result_lines_then_the_error() {
        let response = |revision| WatchResponse {
            header: Some(ResponseHeader {
                revision,
                ..ResponseHeader::default()
            }),
            created: true,
            ..WatchResponse::default()
        };
        let items = vec![
            Ok(response(1)),
            Ok(response(2)),
            Err(Status::unavailable("etcdserver: no leader")),
            Ok(response(3)),
        ];
        let answer = forward(futures_util::stream::iter(items)).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            concat!(
                r#"{"result":{"header":{"revision":"1"},"created":true}}"#,
                "\n",
                r#"{"result":{"header":{"revision":"2"},"created":true}}"#,
                "\n",
                r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#,
            )
        );
        let failed = forward(futures_util::stream::iter(vec![Err::<WatchResponse, _>(
            Status::not_found("gone"),
        )]))
        .await;
        assert_eq!(failed.status(), StatusCode::NOT_FOUND);
    }
}
