//! Messages to and from JSON the way etcd's gateway reads and writes them.
//!
//! etcd marshals with grpc-gateway v1's `JSONPb{OrigName: true}` over
//! golang/protobuf's `jsonpb`: proto field names (`cluster_id`, `dbSize`,
//! `peerURLs` — whatever the `.proto` spells), zero values omitted, enums
//! by name, 64-bit integers as strings, bytes as standard base64. The serde
//! impls that do this are generated from the proto descriptors by
//! `pbjson-build` in `ironcd-proto`; this module adds what jsonpb does
//! around them: a request body is read as one JSON value (an empty body is
//! an empty request, text after the value is ignored, `null` means the
//! default), and a streamed body is a sequence of values.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Why a body did not decode: the text goes into the gateway's
/// `InvalidArgument` (unary) or `Unknown` (first streamed message) error,
/// as grpc-gateway puts the Go decoder's error text there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The JSON text of `message`, as etcd's gateway writes it.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // A generated impl over plain data and a `Vec` writer cannot fail;
    // a failure would be a bug in the generated code.
    serde_json::to_vec(message).expect("a generated serde impl serializes into a Vec")
}

/// Decodes the request in `body`: its first JSON value, or the default
/// request when the body holds none (grpc-gateway ignores `io.EOF`).
pub fn decode_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, DecodeError> {
    match next_value(body)? {
        Next::Value(value, _) => from_value(value),
        Next::End | Next::Incomplete => {
            if only_whitespace(body) {
                Ok(T::default())
            } else {
                Err(DecodeError("unexpected EOF".into()))
            }
        }
    }
}

/// Turns one parsed JSON value into a message. jsonpb reads `null` as "not
/// set" anywhere; the generated impls refuse it for scalars, so nulls are
/// dropped first.
pub fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, DecodeError> {
    strip_nulls(&mut value);
    if !value.is_object() {
        // jsonpb's own wording for a message that is not an object.
        return Err(DecodeError(format!(
            "json: cannot unmarshal {} into Go value of type map[string]json.RawMessage",
            kind(&value)
        )));
    }
    serde_json::from_value(value).map_err(|e| DecodeError(e.to_string()))
}

/// What the front of a buffer holds.
#[derive(Debug)]
pub enum Next {
    /// A whole value, and the bytes it took (with whitespace before it).
    Value(Value, usize),
    /// Only whitespace so far.
    End,
    /// The start of a value whose end has not arrived yet.
    Incomplete,
}

/// Reads the JSON value at the front of `buffer`, for a body that arrives in
/// pieces (a stream of requests, as Go's `json.Decoder` reads it).
pub fn next_value(buffer: &[u8]) -> Result<Next, DecodeError> {
    let mut values = serde_json::Deserializer::from_slice(buffer).into_iter::<Value>();
    match values.next() {
        None => Ok(Next::End),
        Some(Ok(value)) => Ok(Next::Value(value, values.byte_offset())),
        Some(Err(e)) if e.is_eof() => Ok(Next::Incomplete),
        Some(Err(e)) => Err(DecodeError(e.to_string())),
    }
}

fn only_whitespace(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Removes every `null` member of every object, recursively (jsonpb treats
/// them as absent), and `null` array elements' contents are left to fail.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|_, v| !v.is_null());
            members.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Go's name for the JSON kind of `value`, for the not-an-object error.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null | Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
    use ironcd_proto::etcdserverpb::range_request::SortOrder;
    use ironcd_proto::etcdserverpb::request_op::Request as Op;
    use ironcd_proto::etcdserverpb::watch_request::RequestUnion;
    use ironcd_proto::etcdserverpb::*;
    use ironcd_proto::mvccpb::{event::EventType, Event, KeyValue};

    fn text<T: Serialize>(message: &T) -> String {
        String::from_utf8(encode(message)).unwrap()
    }

    #[test]
    fn header_uses_proto_names_and_int64_strings() {
        let header = ResponseHeader {
            cluster_id: 324952591200643719,
            member_id: u64::MAX,
            revision: 2,
            raft_term: 0,
        };
        assert_eq!(
            text(&header),
            r#"{"cluster_id":"324952591200643719","member_id":"18446744073709551615","revision":"2"}"#
        );
        // Names the proto spells in camel case stay so (`OrigName`).
        let status = StatusResponse {
            header: Some(ResponseHeader::default()),
            version: "3.5.0".into(),
            db_size: 20480,
            raft_applied_index: 7,
            ..StatusResponse::default()
        };
        assert_eq!(
            text(&status),
            r#"{"header":{},"version":"3.5.0","dbSize":"20480","raftAppliedIndex":"7"}"#
        );
        let member = Member {
            id: 1,
            name: "a".into(),
            peer_ur_ls: vec!["http://x:2380".into()],
            is_learner: true,
            ..Member::default()
        };
        assert_eq!(
            text(&member),
            r#"{"ID":"1","name":"a","peerURLs":["http://x:2380"],"isLearner":true}"#
        );
    }

    #[test]
    fn bytes_are_base64_and_defaults_are_omitted() {
        let range = RangeResponse {
            header: None,
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            text(&range),
            r#"{"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
        assert_eq!(text(&PutResponse::default()), "{}");
    }

    #[test]
    fn enums_are_names_and_uint32_a_number() {
        let event = Event {
            r#type: EventType::Delete as i32,
            kv: Some(KeyValue::default()),
            prev_kv: None,
        };
        assert_eq!(text(&event), r#"{"type":"DELETE","kv":{}}"#);
        let hash = HashResponse {
            header: None,
            hash: 2996158770,
        };
        assert_eq!(text(&hash), r#"{"hash":2996158770}"#);
    }

    #[test]
    fn requests_accept_both_names_numbers_and_strings() {
        let range: RangeRequest = decode_body(
            br#"{"key":"Zm9v","range_end":"Zm9w","limit":5,"revision":"7","sort_order":"DESCEND","sortTarget":2,"keysOnly":true}"#,
        )
        .unwrap();
        assert_eq!(range.key, b"foo");
        assert_eq!(range.range_end, b"fop");
        assert_eq!(range.limit, 5);
        assert_eq!(range.revision, 7);
        assert_eq!(range.sort_order, SortOrder::Descend as i32);
        assert_eq!(range.sort_target, 2);
        assert!(range.keys_only);
        let lease: LeaseRevokeRequest = decode_body(br#"{"ID":"5"}"#).unwrap();
        assert_eq!(lease.id, 5);
    }

    #[test]
    fn empty_bodies_nulls_unknown_fields_and_trailing_text() {
        assert_eq!(
            decode_body::<RangeRequest>(b"").unwrap(),
            RangeRequest::default()
        );
        assert_eq!(
            decode_body::<RangeRequest>(b" \n").unwrap(),
            RangeRequest::default()
        );
        let range: RangeRequest =
            decode_body(br#"{"key":null,"limit":null,"nope":{"a":1}} trailing"#).unwrap();
        assert_eq!(range, RangeRequest::default());
        assert!(decode_body::<RangeRequest>(b"{xx").is_err());
        assert!(decode_body::<RangeRequest>(br#"{"key":"Zm9v"#).is_err());
        assert!(decode_body::<RangeRequest>(br#"{"key":"Zm9v!"}"#).is_err());
        assert!(decode_body::<RangeRequest>(br#"{"revision":"abc"}"#).is_err());
        let not_object = decode_body::<RangeRequest>(b"[1]").unwrap_err();
        assert!(
            not_object.0.contains("cannot unmarshal array"),
            "{not_object}"
        );
    }

    #[test]
    fn txn_round_trips_with_oneofs() {
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: b"k".to_vec(),
                range_end: vec![],
                // An empty oneof value is still written, as jsonpb does.
                target_union: Some(TargetUnion::Value(vec![])),
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    ..PutRequest::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Op::RequestRange(RangeRequest::default())),
            }],
        };
        let json = text(&txn);
        assert_eq!(
            json,
            r#"{"compare":[{"target":"VALUE","key":"aw==","value":""}],"success":[{"request_put":{"key":"aw==","value":"dg=="}}],"failure":[{"request_range":{}}]}"#
        );
        assert_eq!(decode_body::<TxnRequest>(json.as_bytes()).unwrap(), txn);
    }

    #[test]
    fn watch_requests_stream_value_by_value() {
        let body = br#" {"create_request":{"key":"Zm9v","watch_id":7}}
            {"progress_request":{}} {"cancel"#;
        let Next::Value(first, used) = next_value(body).unwrap() else {
            panic!("a whole first value")
        };
        let first: WatchRequest = from_value(first).unwrap();
        match first.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                assert_eq!(create.key, b"foo");
                assert_eq!(create.watch_id, 7);
            }
            other => panic!("not a create: {other:?}"),
        }
        let rest = &body[used..];
        let Next::Value(second, used2) = next_value(rest).unwrap() else {
            panic!("a whole second value")
        };
        let second: WatchRequest = from_value(second).unwrap();
        assert!(matches!(
            second.request_union,
            Some(RequestUnion::ProgressRequest(_))
        ));
        assert!(matches!(next_value(&rest[used2..]), Ok(Next::Incomplete)));
        assert!(matches!(next_value(b"  \n"), Ok(Next::End)));
        assert!(next_value(b"{bad").is_err());
    }
}
