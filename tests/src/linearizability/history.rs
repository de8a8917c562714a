//! Operations, their recording, and a history's JSON.

use super::request::{Request, Response};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;

/// One client call: when it started and ended, what it asked, what came
/// back.
///
/// | `return_ns` | `response` | meaning |
/// |---|---|---|
/// | `Some` | `Some` | completed: took effect once, inside `[call_ns, return_ns]` (a [`Response::Error`] took no effect) |
/// | `Some` | `None` | took effect by `return_ns`, answer unknown (a [`patch`](super::patch) result) |
/// | `None` | `None` | failed (timeout, lost connection): took effect once after `call_ns`, or never |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Which client issued it; a client has one call outstanding at a time.
    pub client: u64,
    /// When the call was sent, in nanoseconds on the recorder's clock.
    pub call_ns: u64,
    /// When the answer arrived; `None` for a failed call.
    pub return_ns: Option<u64>,
    /// The request.
    pub request: Request,
    /// The answer; `None` when unknown.
    pub response: Option<Response>,
}

impl Operation {
    /// A call that returned `response`.
    pub fn completed(
        client: u64,
        call_ns: u64,
        return_ns: u64,
        request: Request,
        response: Response,
    ) -> Self {
        Operation {
            client,
            call_ns,
            return_ns: Some(return_ns),
            request,
            response: Some(response),
        }
    }

    /// A call whose outcome is unknown.
    pub fn failed(client: u64, call_ns: u64, request: Request) -> Self {
        Operation {
            client,
            call_ns,
            return_ns: None,
            request,
            response: None,
        }
    }

    /// Whether the call may never have taken effect.
    pub fn is_failed(&self) -> bool {
        self.return_ns.is_none()
    }
}

/// Why a history cannot be checked or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The JSON did not parse as a history.
    #[error("history JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An operation contradicts itself.
    #[error("operation #{op}: {reason}")]
    Invalid {
        /// Its index.
        op: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Every operation of a run, in any order; checker results name operations
/// by their index here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The operations.
    pub operations: Vec<Operation>,
}

impl History {
    /// A history of these operations.
    pub fn new(operations: Vec<Operation>) -> Self {
        History { operations }
    }

    /// The history as pretty JSON (save it when a check fails).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a history always serialises")
    }

    /// A history saved by [`History::to_json`], validated.
    pub fn from_json(json: &str) -> Result<Self, HistoryError> {
        let history: History = serde_json::from_str(json)?;
        history.validate()?;
        Ok(history)
    }

    /// Checks that every operation is self-consistent: it returns no
    /// earlier than it was called, and a failed one has no response.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (op, operation) in self.operations.iter().enumerate() {
            let reason = match (operation.return_ns, &operation.response) {
                (Some(ret), _) if ret < operation.call_ns => {
                    format!("returned at {ret} before its call at {}", operation.call_ns)
                }
                (None, Some(_)) => "a failed operation has a response".to_owned(),
                _ => continue,
            };
            return Err(HistoryError::Invalid { op, reason });
        }
        Ok(())
    }
}

/// Records operations as clients run them, on one monotonic clock. Shared
/// by the clients' threads (`&Recorder` is `Sync`).
#[derive(Debug)]
pub struct Recorder {
    origin: Instant,
    operations: Mutex<Vec<Operation>>,
}

/// A call in flight: finish it with [`Recorder::returned`] or
/// [`Recorder::failed`].
#[must_use = "a call must be recorded as returned or failed"]
#[derive(Debug)]
pub struct Call {
    client: u64,
    call_ns: u64,
    request: Request,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            origin: Instant::now(),
            operations: Mutex::new(Vec::new()),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Notes the call time; call it right before sending the request.
    pub fn call(&self, client: u64, request: Request) -> Call {
        Call {
            client,
            call_ns: self.now_ns(),
            request,
        }
    }

    /// Records the answer; call it right after receiving it. A definite
    /// server error is a [`Response::Error`].
    pub fn returned(&self, call: Call, response: Response) {
        let return_ns = self.now_ns();
        let op = Operation::completed(call.client, call.call_ns, return_ns, call.request, response);
        self.push(op);
    }

    /// Records a call whose outcome is unknown (timeout, connection lost).
    pub fn failed(&self, call: Call) {
        self.push(Operation::failed(call.client, call.call_ns, call.request));
    }

    fn push(&self, op: Operation) {
        // A client thread that panicked mid-push cannot leave a torn Vec.
        let mut operations = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        operations.push(op);
    }

    /// The operations so far, in call order.
    pub fn history(&self) -> History {
        let mut operations = self
            .operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        operations.sort_by_key(|op| (op.call_ns, op.client));
        History::new(operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::request::{
        Compare, CompareOp, CompareTarget, KeyValue, TxnOp, TxnResult,
    };

    #[test]
    fn json_round_trips_every_kind_of_operation() {
        let kv = KeyValue {
            key: vec![0xff, b'k'],
            value: "välue".into(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 7,
        };
        let txn = Request::Txn {
            compares: vec![Compare::new(
                vec![0x00],
                CompareTarget::Value(vec![0x80]),
                CompareOp::NotEqual,
            )],
            success: vec![TxnOp::put("a", "1"), TxnOp::delete("b")],
            failure: vec![TxnOp::get("a")],
        };
        let txn_response = Response::Txn {
            revision: 4,
            succeeded: false,
            results: vec![TxnResult::Range {
                kvs: vec![kv.clone()],
                count: 1,
            }],
        };
        let range = Response::Range {
            revision: 3,
            kvs: vec![kv],
            count: 1,
        };
        let history = History::new(vec![
            Operation::completed(1, 10, 20, Request::get("a"), range),
            Operation::completed(2, 11, 30, txn, txn_response),
            Operation::failed(3, 12, Request::LeaseRevoke { id: 7 }),
            Operation::completed(
                1,
                21,
                22,
                Request::Compact { revision: 9 },
                Response::Error("etcdserver: mvcc: required revision is a future revision".into()),
            ),
            Operation {
                client: 4,
                call_ns: 5,
                return_ns: Some(6),
                request: Request::LeaseKeepAlive { id: 7 },
                response: None,
            },
        ]);
        let json = history.to_json();
        assert_eq!(History::from_json(&json).unwrap(), history);
    }

    #[test]
    fn from_json_rejects_contradictory_operations() {
        let backwards = History::new(vec![Operation::completed(
            1,
            10,
            5,
            Request::get("a"),
            Response::Put { revision: 2 },
        )]);
        let err = History::from_json(&backwards.to_json()).unwrap_err();
        assert!(matches!(err, HistoryError::Invalid { op: 0, .. }), "{err}");
        let mut failed = Operation::failed(1, 10, Request::get("a"));
        failed.response = Some(Response::Put { revision: 2 });
        let err = History::from_json(&History::new(vec![failed]).to_json()).unwrap_err();
        assert!(err.to_string().contains("failed operation"), "{err}");
        assert!(matches!(
            History::from_json("{"),
            Err(HistoryError::Json(_))
        ));
    }

    #[test]
    fn recorder_times_calls_in_order_and_keeps_failures_open() {
        let recorder = Recorder::new();
        let first = recorder.call(1, Request::put("a", "1"));
        let second = recorder.call(2, Request::get("a"));
        recorder.returned(first, Response::Put { revision: 2 });
        recorder.failed(second);
        let history = recorder.history();
        let [put, get] = history.operations.as_slice() else {
            panic!("{history:?}");
        };
        assert!(put.call_ns <= get.call_ns);
        assert!(put.return_ns.unwrap() >= get.call_ns);
        assert_eq!(put.response, Some(Response::Put { revision: 2 }));
        assert!(get.is_failed() && get.response.is_none());
        history.validate().unwrap();
    }
}
