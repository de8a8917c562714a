//! Differential test of the HTTP+JSON gateway: one script of curl calls
//! runs against a one-member etcd 3.4 and a one-member ironcd; every
//! answer's HTTP status and JSON must be equal once run-specific values
//! (cluster and member ids, terms, URLs with their ports, sizes, hashes,
//! version strings) are taken out. Lease ids are chosen by the script, so
//! they, keys, values and revisions compare exactly. Streams (keep-alive,
//! observe, snapshot, watch with a put from another request) compare line
//! by line.
//!
//! Paths etcd 3.4 lacks are checked on ironcd alone with etcd 3.5's
//! semantics (`ironcd_serves_3_5_only_paths`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::thread;

use ironcd_tests::{ironcd, require_installed, Cluster, Opts, Server};
use serde_json::Value;

const CURL: &str = "/usr/bin/curl";
/// Every curl call's own bound, in seconds.
const CURL_MAX_TIME_S: &str = "20";
/// `--max-request-bytes` of both servers: small, so the size checks are
/// cheap to reach.
const MAX_REQUEST_BYTES: usize = 4096;
/// Keys every answer carries that differ between two clusters.
const RUN_SPECIFIC: &[&str] = &["cluster_id", "member_id", "raft_term"];

/// How a step's answer is read.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// The whole body.
    Unary,
    /// Lines until the server ends the stream.
    ToEnd,
    /// This many lines, then the call is dropped.
    Lines(usize),
}

/// One curl call of the script.
struct Step {
    path: &'static str,
    /// The body; `{name}` is replaced by a value captured earlier.
    body: &'static str,
    read: Read,
    /// Keys removed from the answer before comparing (values that
    /// legitimately differ), beyond [`RUN_SPECIFIC`].
    ignore: &'static [&'static str],
    /// `(name, JSON pointer)`: a value of the answer later bodies use.
    capture: Option<(&'static str, &'static str)>,
    /// Extra curl arguments (`-X GET`, a header).
    curl_args: &'static [&'static str],
}

const fn step(path: &'static str, body: &'static str) -> Step {
    Step {
        path,
        body,
        read: Read::Unary,
        ignore: &[],
        capture: None,
        curl_args: &[],
    }
}

impl Step {
    const fn ignoring(mut self, keys: &'static [&'static str]) -> Self {
        self.ignore = keys;
        self
    }
    const fn capturing(mut self, name: &'static str, pointer: &'static str) -> Self {
        self.capture = Some((name, pointer));
        self
    }
    const fn reading(mut self, read: Read) -> Self {
        self.read = read;
        self
    }
    const fn with_curl(mut self, args: &'static [&'static str]) -> Self {
        self.curl_args = args;
        self
    }
}

/// The error texts of undecodable JSON are Go's `encoding/json` wording on
/// etcd and serde_json's on ironcd: only the status and code compare.
const DECODER_TEXT: &[&str] = &["error", "message"];
/// Member ids and URLs (ports) differ.
const MEMBER: &[&str] = &["ID", "peerURLs", "clientURLs"];

/// The script. Keys and values are base64: `foo` Zm9v, `bar` YmFy,
/// `baz` YmF6, `fop` Zm9w, `k1` azE=, `k2` azI=, `v` dg==.
fn script() -> Vec<Step> {
    vec![
        // KV.
        step("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
        step(
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#,
        ),
        step("/v3/kv/put", r#"{"key":"azE=","value":"dg=="}"#),
        step("/v3/kv/put", r#"{"key":"azI=","value":"dg=="}"#),
        step("/v3/kv/range", r#"{"key":"Zm9v"}"#),
        step(
            "/v3/kv/range",
            r#"{"key":"azE=","range_end":"azM=","sort_order":"DESCEND","sortTarget":"KEY","keys_only":true}"#,
        ),
        step(
            "/v3/kv/range",
            r#"{"key":"AA==","range_end":"AA==","count_only":true}"#,
        ),
        step(
            "/v3/kv/range",
            r#"{"key":"azE=","range_end":"azM=","limit":"1"}"#,
        ),
        step("/v3beta/kv/range", r#"{"key":"Zm9v","serializable":true}"#),
        step(
            "/v3/kv/range",
            r#"{"key":"Zm9v","unknown_field":{"a":[1]},"limit":null}"#,
        ),
        step("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
        step("/v3/kv/range", r#"{"key":"Zm9v","revision":"100"}"#),
        step(
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","target":"VALUE","result":"EQUAL","value":"YmF6"}],
                "success":[{"request_put":{"key":"dHg=","value":"dg=="}},{"request_range":{"key":"Zm9v"}}],
                "failure":[{"request_delete_range":{"key":"Zm9v"}}]}"#,
        ),
        step(
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","target":"VERSION","result":"GREATER","version":"9"}],
                "failure":[{"request_range":{"key":"dHg="}}]}"#,
        ),
        step(
            "/v3/kv/deleterange",
            r#"{"key":"azE=","range_end":"azM=","prev_kv":true}"#,
        ),
        step("/v3/kv/compaction", r#"{"revision":"3","physical":true}"#),
        step("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#),
        // Request errors.
        step("/v3/kv/put", r#"{"key":""}"#),
        step("/v3/kv/put", ""),
        step("/v3/kv/put", "{xx").ignoring(DECODER_TEXT),
        step("/v3/kv/range", r#"{"key":"Zm9v!"}"#).ignoring(DECODER_TEXT),
        step("/v3/kv/range", r#"{"revision":"abc"}"#).ignoring(DECODER_TEXT),
        step("/v3/kv/range", "").with_curl(&["-X", "GET"]),
        step("/v3/kv/nothing", "{}"),
        // Over --max-request-bytes but within gRPC's overhead: etcd's own
        // check.
        step("/v3/kv/put", "BIG_VALUE"),
        // Past gRPC's overhead too: the transport's ResourceExhausted.
        step("/v3/kv/put", "HUGE_VALUE"),
        // Leases, with ids the script chooses.
        step("/v3/lease/grant", r#"{"TTL":"600","ID":"4660"}"#),
        step("/v3/lease/grant", r#"{"TTL":600,"ID":4661}"#),
        step("/v3/lease/grant", r#"{"TTL":"600","ID":"4660"}"#),
        step("/v3/lease/grant", r#"{"TTL":"100000000000"}"#),
        step(
            "/v3/kv/put",
            r#"{"key":"bGs=","value":"dg==","lease":"4660"}"#,
        ),
        step("/v3/lease/timetolive", r#"{"ID":"4660","keys":true}"#).ignoring(&["TTL"]),
        step("/v3/kv/lease/timetolive", r#"{"ID":"4660"}"#).ignoring(&["TTL"]),
        step("/v3/lease/timetolive", r#"{"ID":"999"}"#),
        step("/v3/lease/leases", "{}"),
        step("/v3/kv/lease/leases", ""),
        step("/v3/lease/keepalive", r#"{"ID":"4660"} {"ID":"4661"}"#)
            .reading(Read::ToEnd)
            .ignoring(&["TTL"]),
        step("/v3/lease/keepalive", r#"{"ID":"999"}"#).reading(Read::ToEnd),
        step("/v3/lease/revoke", r#"{"ID":"4660"}"#),
        step("/v3/lease/revoke", r#"{"ID":"4660"}"#),
        step("/v3/kv/lease/revoke", r#"{"ID":"999"}"#),
        step("/v3/kv/range", r#"{"key":"bGs="}"#),
        // Cluster.
        step("/v3/cluster/member/list", "{}")
            .ignoring(MEMBER)
            .capturing("self", "/members/0/ID"),
        step("/v3/cluster/member/list", "{}")
            .ignoring(MEMBER)
            .capturing("self_peer", "/members/0/peerURLs/0"),
        step("/v3/cluster/member/promote", r#"{"ID":{self}}"#),
        step("/v3/cluster/member/remove", r#"{"ID":"77"}"#),
        step(
            "/v3/cluster/member/add",
            r#"{"peerURLs":["http://127.0.0.1:9"],"isLearner":true}"#,
        )
        .ignoring(MEMBER)
        .capturing("learner", "/member/ID"),
        // Our own member, unchanged: etcd 3.4 turns a learner it updates
        // into a voter (fixed in 3.5).
        step(
            "/v3/cluster/member/update",
            r#"{"ID":{self},"peerURLs":[{self_peer}]}"#,
        )
        .ignoring(MEMBER),
        step("/v3/cluster/member/remove", r#"{"ID":{learner}}"#).ignoring(MEMBER),
        step("/v3/cluster/member/add", r#"{"peerURLs":["not a url"]}"#),
        // Maintenance.
        step("/v3/maintenance/status", "{}").ignoring(&[
            "version",
            "dbSize",
            "dbSizeInUse",
            "dbSizeQuota",
            "leader",
            "raftIndex",
            "raftAppliedIndex",
            "raftTerm",
        ]),
        step("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
        // etcd answers Defragment and MoveLeader with no header (3.4 and
        // 3.5 alike), and so does ironcd.
        step("/v3/maintenance/defragment", ""),
        step("/v3/maintenance/hash", "{}").ignoring(&["hash"]),
        step(
            "/v3/maintenance/transfer-leadership",
            r#"{"targetID":{self}}"#,
        ),
        step("/v3/maintenance/transfer-leadership", r#"{"targetID":"5"}"#),
        // Election and Lock, over a lease of the script's.
        step("/v3/lease/grant", r#"{"TTL":"600","ID":"4662"}"#),
        step(
            "/v3/election/campaign",
            r#"{"name":"ZWw=","value":"djE=","lease":"4662"}"#,
        )
        .capturing("leader", "/leader"),
        step("/v3/election/leader", r#"{"name":"ZWw="}"#),
        step(
            "/v3/election/proclaim",
            r#"{"leader":{leader},"value":"djI="}"#,
        ),
        step("/v3/election/observe", r#"{"name":"ZWw="}"#).reading(Read::Lines(1)),
        step("/v3/election/resign", r#"{"leader":{leader}}"#),
        step("/v3/election/leader", r#"{"name":"ZWw="}"#),
        step("/v3/election/proclaim", r#"{"value":"djI="}"#),
        step("/v3/lock/lock", r#"{"name":"bGs=","lease":"4662"}"#).capturing("lock", "/key"),
        step(
            "/v3/kv/range",
            r#"{"key":"bGs=","range_end":"bGw=","keys_only":true}"#,
        ),
        step("/v3/lock/unlock", r#"{"key":{lock}}"#),
        step("/v3/lock/lock", r#"{"name":"bGs=","lease":"999"}"#),
    ]
}

/// What one call answered: the HTTP status and the body, each JSON value
/// normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: Vec<String>,
}

/// Runs curl for `step` against `endpoint`, reading as the step says.
fn call(endpoint: &str, step: &Step, body: &str) -> (u16, Vec<String>) {
    require_installed(CURL);
    let mut command = Command::new(CURL);
    command
        .args(["-s", "-N", "--max-time", CURL_MAX_TIME_S])
        .args(["-X", "POST", "--data-binary", "@-"])
        .args(["-w", "\n%{http_code}"])
        .args(step.curl_args)
        .arg(format!("{endpoint}{}", step.path))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("curl starts");
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).unwrap();
    }
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut out = Vec::new();
    if let Read::Lines(n) = step.read {
        for _ in 0..n {
            out.push(lines.next().expect("a line").expect("readable"));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        return (200, out);
    }
    out.extend(lines.map(|l| l.expect("readable")));
    let status = child.wait().unwrap();
    assert!(status.success(), "curl {} failed: {status}", step.path);
    let code = out.pop().expect("curl writes the status").parse().unwrap();
    // The delimiter after a stream's last chunk.
    out.retain(|line| !line.is_empty());
    (code, out)
}

/// Removes `keys` from every object in `value`. Member lists are in
/// member id order, and ids are random: they are sorted once stripped.
fn strip(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(members) => {
            members.retain(|k, _| !keys.contains(&k.as_str()));
            members.values_mut().for_each(|v| strip(v, keys));
            if let Some(Value::Array(list)) = members.get_mut("members") {
                list.sort_by_key(|m| m.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

fn normalise(line: &str, ignore: &[&str]) -> String {
    match serde_json::from_str::<Value>(line) {
        Ok(mut value) => {
            strip(&mut value, RUN_SPECIFIC);
            strip(&mut value, ignore);
            value.to_string()
        }
        // Plain text (Go's 404 and 405) compares as it is.
        Err(_) => line.to_string(),
    }
}

/// gRPC's room beyond `--max-request-bytes` (etcd's `grpcOverheadBytes`).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// A put of a value of `bytes` bytes (base64 of zeros).
fn put_of(bytes: usize) -> String {
    let value = "A".repeat(bytes.div_ceil(3) * 4);
    format!(r#"{{"key":"Ymln","value":"{value}"}}"#)
}

/// Runs the script on a fresh one-member cluster of `server`.
fn run(server: Server) -> Vec<Answer> {
    let max = format!("--max-request-bytes={MAX_REQUEST_BYTES}");
    let cluster = Cluster::start(server, 1, Opts::with_args(&[max.as_str()]));
    let endpoint = cluster.endpoint(0);
    let mut captured: HashMap<&str, String> = HashMap::new();
    let mut answers = Vec::new();
    for step in script() {
        let mut body = match step.body {
            "BIG_VALUE" => put_of(MAX_REQUEST_BYTES + 8),
            "HUGE_VALUE" => put_of(MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES + 8),
            text => text.to_string(),
        };
        for (name, value) in &captured {
            body = body.replace(&format!("{{{name}}}"), value);
        }
        let (status, lines) = call(&endpoint, &step, &body);
        if let Some((name, pointer)) = step.capture {
            let first: Value = serde_json::from_str(&lines.concat()).expect("a JSON answer");
            let value = first
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{pointer} in {first}"));
            captured.insert(name, value.to_string());
        }
        answers.push(Answer {
            status,
            body: lines.iter().map(|l| normalise(l, step.ignore)).collect(),
        });
    }
    answers
}

#[test]
fn gateway_matches_etcd() {
    let (etcd, ironcd) = thread::scope(|scope| {
        let etcd = scope.spawn(|| run(Server::etcd()));
        let ironcd = scope.spawn(|| run(ironcd!()));
        (etcd.join().unwrap(), ironcd.join().unwrap())
    });
    let mut report = String::new();
    for ((step, etcd), ironcd) in script().iter().zip(&etcd).zip(&ironcd) {
        if std::env::var_os("GATEWAY_DUMP").is_some() {
            eprintln!(
                "{} {}\n  -> {} {:?}",
                step.path, step.body, etcd.status, etcd.body
            );
        }
        if etcd != ironcd {
            report.push_str(&format!(
                "{} {}\n  etcd:   {} {:?}\n  ironcd: {} {:?}\n",
                step.path, step.body, etcd.status, etcd.body, ironcd.status, ironcd.body
            ));
        }
    }
    assert!(
        report.is_empty(),
        "the gateway differs from etcd's:\n{report}"
    );
    // The script reaches what it means to: a stream line, a JSON error
    // and Go's plain-text answers.
    let statuses: Vec<u16> = etcd.iter().map(|a| a.status).collect();
    for status in [200, 400, 404, 405, 412, 429] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
}

/// A streamed watch: the body creates a watcher (and ends, which etcd's
/// Watch ignores), a put from another request is delivered as an event.
fn watch_lines(server: Server) -> Vec<String> {
    let cluster = Cluster::start(server, 1, Opts::default());
    let endpoint = cluster.endpoint(0);
    let put = |body: &str| {
        let (status, _) = call(&endpoint, &step("/v3/kv/put", ""), body);
        assert_eq!(status, 200);
    };
    put(r#"{"key":"d2s=","value":"djE="}"#);
    let mut child = Command::new(CURL)
        .args(["-s", "-N", "--max-time", CURL_MAX_TIME_S, "--data-binary"])
        .arg(concat!(
            r#"{"create_request":{"key":"d2s=","prev_kv":true}}"#,
            r#"{"create_request":{"key":"d2s=","start_revision":"2","watch_id":"7"}}"#,
        ))
        .arg(format!("{endpoint}/v3/watch"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("readable");
    // Both watchers are created and watcher 7 gets revision 2 from history,
    // in an order the two watchers need not share: read all three.
    let mut first = [next(), next(), next()];
    first.sort();
    put(r#"{"key":"d2s=","value":"djI="}"#);
    // One event per watcher.
    let mut second = [next(), next()];
    second.sort();
    child.kill().unwrap();
    child.wait().unwrap();
    // A cancel in the same body: the created and canceled answers (an
    // unknown id is answered nothing).
    let (_, third) = call(
        &endpoint,
        &step("/v3/watch", "").reading(Read::Lines(2)),
        concat!(
            r#"{"create_request":{"key":"eA==","watch_id":3}}"#,
            r#"{"cancel_request":{"watch_id":"9"}} {"cancel_request":{"watch_id":3}}"#,
        ),
    );
    first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|l| normalise(l, &[]))
        .collect()
}

#[test]
fn streamed_watch_matches_etcd() {
    let (etcd, ironcd) = thread::scope(|scope| {
        let etcd = scope.spawn(|| watch_lines(Server::etcd()));
        let ironcd = scope.spawn(|| watch_lines(ironcd!()));
        (etcd.join().unwrap(), ironcd.join().unwrap())
    });
    assert_eq!(etcd, ironcd);
    assert!(
        etcd.iter().all(|l| l.starts_with(r#"{"result":"#)),
        "{etcd:?}"
    );
    assert!(etcd.iter().any(|l| l.contains(r#""prev_kv""#)), "{etcd:?}");
    assert!(
        etcd.iter().any(|l| l.contains(r#""canceled":true"#)),
        "{etcd:?}"
    );
}

/// A snapshot streams the backend in base64 chunks. The bytes differ
/// (bbolt on etcd, ironcd's own format), so each server's stream is
/// checked for its shape: result lines with a blob, the last with
/// nothing remaining.
#[test]
fn snapshot_streams_result_chunks() {
    for server in [Server::etcd(), ironcd!()] {
        let name = server.name();
        let cluster = Cluster::start(server, 1, Opts::default());
        let (status, lines) = call(
            &cluster.endpoint(0),
            &step("/v3/maintenance/snapshot", "").reading(Read::ToEnd),
            "{}",
        );
        assert_eq!(status, 200, "{name}");
        assert!(!lines.is_empty(), "{name}: no chunk");
        for line in &lines {
            let chunk: Value = serde_json::from_str(line).unwrap();
            assert!(chunk["result"]["blob"].is_string(), "{name}: {line}");
        }
        let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert!(
            last["result"].get("remaining_bytes").is_none(),
            "{name}: {last}"
        );
    }
}

/// etcd 3.5's paths etcd 3.4 does not serve, on ironcd alone: HashKV has
/// its own path, Downgrade is refused as the gRPC service refuses it, and
/// Auth (not built) answers `Unimplemented`.
#[test]
fn ironcd_serves_3_5_only_paths() {
    let cluster = Cluster::start(ironcd!(), 1, Opts::default());
    let endpoint = cluster.endpoint(0);
    let (status, lines) = call(&endpoint, &step("/v3/maintenance/hashkv", "{}"), "{}");
    assert_eq!(status, 200);
    let hash: Value = serde_json::from_str(&lines.concat()).unwrap();
    assert!(hash["hash"].is_number(), "{hash}");
    assert!(hash["header"]["revision"].is_string(), "{hash}");
    let (status, lines) = call(&endpoint, &step("/v3/maintenance/downgrade", "{}"), "{}");
    let error: Value = serde_json::from_str(&lines.concat()).unwrap();
    assert_eq!((status, &error["code"]), (501, &Value::from(12)), "{error}");
    let (status, lines) = call(&endpoint, &step("/v3/auth/status", "{}"), "{}");
    let error: Value = serde_json::from_str(&lines.concat()).unwrap();
    assert_eq!((status, &error["code"]), (501, &Value::from(12)), "{error}");
}

/// What a watch asking for a leader (`Grpc-Metadata-Hasleader: true`,
/// clientv3's `WithRequireLeader`) sees when its member loses quorum: the
/// open stream ends with grpc-gateway's error chunk, and a new one (or a
/// unary call) is refused with the unary error.
fn no_leader_answers(server: Server) -> Vec<String> {
    let mut cluster = Cluster::start(server, 3, Opts::default());
    let endpoint = cluster.endpoint(0);
    let mut child = Command::new(CURL)
        .args(["-s", "-N", "--max-time", CURL_MAX_TIME_S])
        .args(["-H", "Grpc-Metadata-Hasleader: true", "--data-binary"])
        .arg(r#"{"create_request":{"key":"d2s="}}"#)
        .arg(format!("{endpoint}/v3/watch"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let created = lines.next().expect("a line").expect("readable");
    cluster.kill(1);
    cluster.kill(2);
    // The stream's error, then its end (curl exits by itself).
    let mut answers = vec![created];
    answers.extend(lines.map(|l| l.expect("readable")));
    assert!(child.wait().unwrap().success(), "the watch did not end");
    const REQUIRE_LEADER: &[&str] = &["-H", "Grpc-Metadata-Hasleader: true"];
    for (path, body) in [
        ("/v3/watch", r#"{"create_request":{"key":"d2s="}}"#),
        ("/v3/kv/range", r#"{"key":"d2s="}"#),
    ] {
        let (status, body) = call(&endpoint, &step(path, "").with_curl(REQUIRE_LEADER), body);
        answers.push(format!("{status} {}", body.concat()));
    }
    answers.iter().map(|l| normalise(l, &[])).collect()
}

#[test]
fn no_leader_ends_a_required_leader_watch_as_etcd() {
    let (etcd, ironcd) = thread::scope(|scope| {
        let etcd = scope.spawn(|| no_leader_answers(Server::etcd()));
        let ironcd = scope.spawn(|| no_leader_answers(ironcd!()));
        (etcd.join().unwrap(), ironcd.join().unwrap())
    });
    assert_eq!(etcd, ironcd);
    assert_eq!(
        etcd[1],
        r#"{"error":{"grpc_code":14,"http_code":503,"http_status":"Service Unavailable","message":"etcdserver: no leader"}}"#,
        "{etcd:?}"
    );
}

/// `--enable-grpc-gateway=false` takes the JSON paths away, on etcd 3.4
/// and ironcd alike; gRPC and `/health` stay.
#[test]
fn the_gateway_can_be_turned_off() {
    for server in [Server::etcd(), ironcd!()] {
        let cluster = Cluster::start(server, 1, Opts::with_args(&["--enable-grpc-gateway=false"]));
        let name = cluster.server().name();
        let endpoint = cluster.endpoint(0);
        let (status, _) = call(&endpoint, &step("/v3/kv/range", r#"{"key":"YQ=="}"#), "");
        assert_eq!(status, 404, "{name}");
        let out = ironcd_tests::etcdctl(&[cluster.host_port(0)], &["put", "a", "b"]);
        assert!(out.status.success(), "{name}: {out:?}");
    }
}
