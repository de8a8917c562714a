//! Client traffic that records every request and answer: each client is
//! its own task with one call outstanding at a time, connected to one
//! member (or to all), drawing its next request from a seeded generator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp as EtcdCompareOp, ConnectOptions, DeleteOptions,
    GetOptions, LeaseGrantOptions, PutOptions, Txn, TxnOp as EtcdTxnOp, TxnOpResponse,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::linearizability::{
    Compare, CompareOp, CompareTarget, KeyValue, Recorder, Request, Response, TxnOp, TxnResult,
    ERR_COMPACTED, ERR_DUPLICATE_KEY, ERR_FUTURE_REV, ERR_LEASE_EXISTS, ERR_LEASE_NOT_FOUND,
    ERR_LEASE_TTL_TOO_LARGE,
};

/// Every key the traffic touches starts with this; watchers watch it.
pub const KEY_PREFIX: &str = "/robustness/";
/// The TTL of every lease the traffic grants: longer than any run, since
/// the model has no clock (an expiry would be an unrecorded revoke).
pub const LEASE_TTL_S: i64 = 600;
/// How long a request may take before it counts as failed (it may or may
/// not have happened).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client waits after a failed request before its next one.
const FAILURE_BACKOFF: Duration = Duration::from_millis(100);
/// How far behind the newest revision a client has seen a stale read or a
/// compaction aims.
const STALE_WINDOW: i64 = 20;

/// Which mix of requests the clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// etcd's robustness mix: gets, stale reads at a revision, ranges with
    /// a limit, puts, deletes, multi-op txns, compare-and-set, puts with a
    /// lease, lease grant, revoke and keep-alive.
    EtcdLike,
    /// Kubernetes' pattern: lists of a prefix, and creates, updates and
    /// deletes guarded by the mod revision the client last saw.
    KubernetesLike,
}

/// What the traffic of one run looks like.
#[derive(Clone, Debug)]
pub struct TrafficConfig {
    /// The mix.
    pub profile: Profile,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests per second over all clients (each client paces itself to
    /// its share; slow answers make it lower).
    pub rate_per_s: u32,
    /// Distinct keys written.
    pub keys: usize,
    /// A compaction every this often, at a revision behind the newest one
    /// seen; `None` for none.
    pub compaction_interval: Option<Duration>,
    /// Whether the etcd-like mix sends txns that write and read at a past
    /// revision. etcd 3.4.30 (Debian's) applies such a txn's writes on
    /// some members while failing it as compacted (etcd #18667, fixed in
    /// 3.4.35): the reference is run without them.
    pub txn_reads_at_revision: bool,
    /// Pads every value to this many bytes (0: no padding), for large
    /// snapshots.
    pub value_bytes: usize,
}

/// Which client ids the traffic uses: clients are `0..clients`, the
/// compactor is `clients`.
fn compactor_id(config: &TrafficConfig) -> u64 {
    config.clients as u64
}

/// Runs the traffic against `endpoints` until `stop` is set; returns once
/// every client has finished its last call. Client `i` talks to
/// `endpoints[i % len]` only, so a fault on one member shows in its
/// clients' histories; the compactor talks to all.
pub async fn run(
    config: TrafficConfig,
    endpoints: Vec<String>,
    seed: u64,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let per_client = (f64::from(config.rate_per_s.max(1)) / config.clients.max(1) as f64).max(0.1);
    let interval = Duration::from_secs_f64(1.0 / per_client);
    let mut tasks = Vec::new();
    for id in 0..config.clients {
        let endpoint = endpoints[id % endpoints.len()].clone();
        let client = TrafficClient {
            id: id as u64,
            client: connect(std::slice::from_ref(&endpoint)).await,
            rng: StdRng::seed_from_u64(seed ^ ((id as u64 + 1) << 40)),
            recorder: recorder.clone(),
            profile: config.profile,
            txn_reads_at_revision: config.txn_reads_at_revision,
            value_bytes: config.value_bytes,
            keys: config.keys.max(1),
            seq: 0,
            last_revision: 1,
            lease: None,
            leases_granted: 0,
            seen: HashMap::new(),
        };
        tasks.push(tokio::spawn(client.run(interval, stop.clone())));
    }
    if let Some(every) = config.compaction_interval {
        let compactor = Compactor {
            id: compactor_id(&config),
            client: connect(&endpoints).await,
            rng: StdRng::seed_from_u64(seed ^ 0xc0c0_c0c0),
            recorder: recorder.clone(),
            last_compacted: 0,
        };
        tasks.push(tokio::spawn(compactor.run(every, stop.clone())));
    }
    for task in tasks {
        task.await.expect("a traffic task panicked");
    }
}

/// A client of `endpoints` that connects lazily and gives up on a request
/// after [`REQUEST_TIMEOUT`].
pub async fn connect(endpoints: &[String]) -> Client {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(REQUEST_TIMEOUT);
    Client::connect(endpoints, Some(options.with_keep_alive_while_idle(false)))
        .await
        .expect("connect (lazy) to the cluster")
}

struct TrafficClient {
    id: u64,
    client: Client,
    rng: StdRng,
    recorder: Arc<Recorder>,
    profile: Profile,
    txn_reads_at_revision: bool,
    value_bytes: usize,
    keys: usize,
    /// Puts made, for unique values.
    seq: u64,
    /// The newest header revision this client has seen.
    last_revision: i64,
    /// A lease this client granted and has not revoked.
    lease: Option<i64>,
    leases_granted: i64,
    /// Mod revisions this client last read, per key (Kubernetes' cache).
    seen: HashMap<Vec<u8>, i64>,
}

impl TrafficClient {
    async fn run(mut self, interval: Duration, stop: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let request = match self.profile {
                Profile::EtcdLike => self.etcd_request(),
                Profile::KubernetesLike => self.kubernetes_request(),
            };
            let call = self.recorder.call(self.id, request.clone());
            match execute(&mut self.client, &request).await {
                Some(response) => {
                    self.observe(&request, &response);
                    self.recorder.returned(call, response);
                }
                None => {
                    self.recorder.failed(call);
                    tokio::time::sleep(FAILURE_BACKOFF).await;
                }
            }
        }
    }

    fn key(&mut self) -> Vec<u8> {
        format!("{KEY_PREFIX}{}", self.rng.gen_range(0..self.keys)).into_bytes()
    }

    /// A value no other put of the run writes (the checker's patching
    /// rests on unique values).
    fn value(&mut self) -> Vec<u8> {
        self.seq += 1;
        let mut value = format!("c{}-{}", self.id, self.seq).into_bytes();
        if value.len() < self.value_bytes {
            value.resize(self.value_bytes, b'.');
        }
        value
    }

    fn etcd_request(&mut self) -> Request {
        let choice = self.rng.gen_range(0..100);
        match (choice, self.lease) {
            (0..=19, _) => Request::get(self.key()),
            (20..=26, _) => {
                let oldest = (self.last_revision - STALE_WINDOW).max(1);
                let revision = self.rng.gen_range(oldest..=self.last_revision);
                Request::Range {
                    key: self.key(),
                    range_end: Vec::new(),
                    revision,
                    limit: 0,
                }
            }
            (27..=32, _) => Request::Range {
                key: KEY_PREFIX.as_bytes().to_vec(),
                range_end: prefix_end(KEY_PREFIX.as_bytes()),
                revision: 0,
                limit: 3,
            },
            (33..=57, _) => Request::put(self.key(), self.value()),
            (58..=63, _) => Request::delete(self.key()),
            (64..=66, _) if self.txn_reads_at_revision => {
                // A write with a read at a past revision (etcd #18667: a
                // compacted one must fail the txn on every member alike).
                let oldest = (self.last_revision - STALE_WINDOW).max(1);
                let revision = self.rng.gen_range(oldest..=self.last_revision);
                let (key, read) = (self.key(), self.key());
                let value = self.value();
                Request::Txn {
                    compares: Vec::new(),
                    success: vec![
                        TxnOp::put(key, value),
                        TxnOp::Range {
                            key: read,
                            range_end: Vec::new(),
                            revision,
                            limit: 0,
                        },
                    ],
                    failure: Vec::new(),
                }
            }
            (64..=69, _) => {
                // Put one key if another exists, else put a third; read a
                // fourth either way.
                let (a, b, c) = (self.key(), self.key(), self.key());
                let (va, vb) = (self.value(), self.value());
                let read = self.key();
                let mut success = vec![TxnOp::put(b.clone(), va)];
                let mut failure = vec![TxnOp::put(c.clone(), vb)];
                if read != b {
                    success.push(TxnOp::get(read.clone()));
                }
                if read != c {
                    failure.push(TxnOp::get(read));
                }
                Request::Txn {
                    compares: vec![Compare::new(
                        a,
                        CompareTarget::Version(0),
                        CompareOp::Greater,
                    )],
                    success,
                    failure,
                }
            }
            (70..=81, _) => {
                let key = self.key();
                let expected = self.seen.get(&key).copied().unwrap_or(0);
                let value = self.value();
                Request::Txn {
                    compares: vec![Compare::new(
                        key.clone(),
                        CompareTarget::ModRevision(expected),
                        CompareOp::Equal,
                    )],
                    success: vec![TxnOp::put(key.clone(), value)],
                    failure: vec![TxnOp::get(key)],
                }
            }
            (82..=90, Some(lease)) => Request::Put {
                key: self.key(),
                value: self.value(),
                lease,
            },
            (91..=95, Some(id)) => Request::LeaseRevoke { id },
            (96..=99, Some(id)) => Request::LeaseKeepAlive { id },
            (_, None) => {
                self.leases_granted += 1;
                // Ids of different clients never collide.
                let id = ((self.id as i64 + 1) << 32) | self.leases_granted;
                Request::LeaseGrant {
                    id,
                    ttl_s: LEASE_TTL_S,
                }
            }
            _ => unreachable!("every choice below 100 is matched"),
        }
    }

    fn kubernetes_request(&mut self) -> Request {
        let key = self.key();
        let known = self.seen.get(&key).copied();
        match (self.rng.gen_range(0..100), known) {
            (0..=29, _) => Request::Range {
                key: KEY_PREFIX.as_bytes().to_vec(),
                range_end: prefix_end(KEY_PREFIX.as_bytes()),
                revision: 0,
                limit: 0,
            },
            (30..=39, _) => Request::get(key),
            // Create: only if it does not exist.
            (40..=59, _) | (_, None) => {
                let value = self.value();
                guarded(&key, 0, TxnOp::put(key.clone(), value))
            }
            // Update: only if unchanged since this client saw it.
            (60..=89, Some(revision)) => {
                let value = self.value();
                guarded(&key, revision, TxnOp::put(key.clone(), value))
            }
            (_, Some(revision)) => guarded(&key, revision, TxnOp::delete(key.clone())),
        }
    }

    /// Learns revisions and leases from an answer.
    fn observe(&mut self, request: &Request, response: &Response) {
        if let Some(revision) = response.revision() {
            self.last_revision = self.last_revision.max(revision);
        }
        for kv in response.kvs() {
            self.seen.insert(kv.key.clone(), kv.mod_revision);
        }
        match (request, response) {
            (Request::Range { key, range_end, .. }, Response::Range { kvs, .. })
                if range_end.is_empty() && kvs.is_empty() =>
            {
                self.seen.insert(key.clone(), 0);
            }
            (Request::Put { key, .. }, Response::Put { revision }) => {
                self.seen.insert(key.clone(), *revision);
            }
            (Request::Delete { key, .. }, Response::Delete { .. }) => {
                self.seen.insert(key.clone(), 0);
            }
            (Request::LeaseGrant { id, .. }, Response::LeaseGrant { .. }) => self.lease = Some(*id),
            (Request::LeaseRevoke { .. }, _) => self.lease = None,
            (Request::Put { lease, .. }, Response::Error(e))
                if *lease != 0 && e == ERR_LEASE_NOT_FOUND =>
            {
                self.lease = None;
            }
            _ => {}
        }
    }
}

/// A Kubernetes-style write: `op` on `key` if its mod revision is still
/// `revision` (0: the key does not exist), else read it back.
fn guarded(key: &[u8], revision: i64, op: TxnOp) -> Request {
    Request::Txn {
        compares: vec![Compare::new(
            key.to_vec(),
            CompareTarget::ModRevision(revision),
            CompareOp::Equal,
        )],
        success: vec![op],
        failure: vec![TxnOp::get(key.to_vec())],
    }
}

/// Compacts every so often at a revision a little behind the newest one
/// it has seen, as etcd's robustness traffic does.
struct Compactor {
    id: u64,
    client: Client,
    rng: StdRng,
    recorder: Arc<Recorder>,
    last_compacted: i64,
}

impl Compactor {
    async fn run(mut self, every: Duration, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let jitter = self.rng.gen_range(0..=every.as_millis() as u64);
            tokio::time::sleep(every + Duration::from_millis(jitter) / 2).await;
            let current = self.current_revision().await;
            let Some(current) = current else { continue };
            let target = current - self.rng.gen_range(0..=STALE_WINDOW / 2);
            if target <= self.last_compacted {
                continue;
            }
            let request = Request::Compact { revision: target };
            let call = self.recorder.call(self.id, request.clone());
            match execute(&mut self.client, &request).await {
                Some(response) => {
                    if matches!(response, Response::Compact { .. }) {
                        self.last_compacted = target;
                    }
                    self.recorder.returned(call, response);
                }
                None => self.recorder.failed(call),
            }
        }
    }

    /// The newest revision, read (and recorded) as a linearizable get.
    async fn current_revision(&mut self) -> Option<i64> {
        let request = Request::get(format!("{KEY_PREFIX}0"));
        let call = self.recorder.call(self.id, request.clone());
        match execute(&mut self.client, &request).await {
            Some(response) => {
                let revision = response.revision();
                self.recorder.returned(call, response);
                revision
            }
            None => {
                self.recorder.failed(call);
                None
            }
        }
    }
}

/// The end of etcd's prefix range for `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Sends `request`; its answer, a definite error as [`Response::Error`],
/// or `None` when the outcome is unknown (timeout, lost connection, or an
/// error that does not say the request did not happen).
pub async fn execute(client: &mut Client, request: &Request) -> Option<Response> {
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, send(client, request)).await;
    match answer {
        Ok(Ok(response)) => Some(response),
        Ok(Err(etcd_client::Error::GRpcStatus(status))) if is_definite(status.message()) => {
            Some(Response::Error(status.message().to_owned()))
        }
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Whether etcd's error message says the request was refused (it did not
/// take effect); everything else may hide a request that did.
fn is_definite(message: &str) -> bool {
    [
        ERR_COMPACTED,
        ERR_FUTURE_REV,
        ERR_LEASE_NOT_FOUND,
        ERR_LEASE_EXISTS,
        ERR_LEASE_TTL_TOO_LARGE,
        ERR_DUPLICATE_KEY,
    ]
    .contains(&message)
}

async fn send(client: &mut Client, request: &Request) -> Result<Response, etcd_client::Error> {
    Ok(match request {
        Request::Range {
            key,
            range_end,
            revision,
            limit,
        } => {
            let got = client
                .get(key.clone(), Some(get_options(range_end, *revision, *limit)))
                .await?;
            Response::Range {
                revision: header_revision(got.header()),
                kvs: got.kvs().iter().map(kv).collect(),
                count: got.count(),
            }
        }
        Request::Put { key, value, lease } => {
            let options = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            let put = client.put(key.clone(), value.clone(), options).await?;
            Response::Put {
                revision: header_revision(put.header()),
            }
        }
        Request::Delete { key, range_end } => {
            let deleted = client
                .delete(key.clone(), Some(delete_options(range_end)))
                .await?;
            Response::Delete {
                revision: header_revision(deleted.header()),
                deleted: deleted.deleted(),
            }
        }
        Request::Txn {
            compares,
            success,
            failure,
        } => {
            let txn = Txn::new()
                .when(compares.iter().map(compare).collect::<Vec<_>>())
                .and_then(success.iter().map(txn_op).collect::<Vec<_>>())
                .or_else(failure.iter().map(txn_op).collect::<Vec<_>>());
            let answer = client.txn(txn).await?;
            let results = answer
                .op_responses()
                .into_iter()
                .map(|op| match op {
                    TxnOpResponse::Get(got) => TxnResult::Range {
                        kvs: got.kvs().iter().map(kv).collect(),
                        count: got.count(),
                    },
                    TxnOpResponse::Put(_) => TxnResult::Put,
                    TxnOpResponse::Delete(deleted) => TxnResult::Delete {
                        deleted: deleted.deleted(),
                    },
                    TxnOpResponse::Txn(_) => unreachable!("the traffic sends no nested txns"),
                })
                .collect();
            Response::Txn {
                revision: header_revision(answer.header()),
                succeeded: answer.succeeded(),
                results,
            }
        }
        Request::LeaseGrant { id, ttl_s } => {
            let granted = client
                .lease_grant(*ttl_s, Some(LeaseGrantOptions::new().with_id(*id)))
                .await?;
            Response::LeaseGrant {
                revision: header_revision(granted.header()),
            }
        }
        Request::LeaseRevoke { id } => {
            let revoked = client.lease_revoke(*id).await?;
            Response::LeaseRevoke {
                revision: header_revision(revoked.header()),
            }
        }
        Request::LeaseKeepAlive { id } => {
            let (mut keeper, mut stream) = client.lease_keep_alive(*id).await?;
            keeper.keep_alive().await?;
            match stream.message().await? {
                Some(answer) => Response::LeaseKeepAlive {
                    ttl_s: answer.ttl(),
                },
                // The stream ended without an answer: unknown.
                None => {
                    return Err(etcd_client::Error::WatchError(
                        "no keep-alive answer".into(),
                    ))
                }
            }
        }
        Request::Compact { revision } => {
            let compacted = client.compact(*revision, None).await?;
            Response::Compact {
                revision: header_revision(compacted.header()),
            }
        }
    })
}

fn get_options(range_end: &[u8], revision: i64, limit: i64) -> GetOptions {
    let mut options = GetOptions::new().with_revision(revision).with_limit(limit);
    if !range_end.is_empty() {
        options = options.with_range(range_end.to_vec());
    }
    options
}

fn delete_options(range_end: &[u8]) -> DeleteOptions {
    if range_end.is_empty() {
        DeleteOptions::new()
    } else {
        DeleteOptions::new().with_range(range_end.to_vec())
    }
}

fn compare(compare: &Compare) -> EtcdCompare {
    let op = match compare.op {
        CompareOp::Equal => EtcdCompareOp::Equal,
        CompareOp::NotEqual => EtcdCompareOp::NotEqual,
        CompareOp::Less => EtcdCompareOp::Less,
        CompareOp::Greater => EtcdCompareOp::Greater,
    };
    let key = compare.key.clone();
    match &compare.target {
        CompareTarget::Value(value) => EtcdCompare::value(key, op, value.clone()),
        CompareTarget::Version(v) => EtcdCompare::version(key, op, *v),
        CompareTarget::CreateRevision(r) => EtcdCompare::create_revision(key, op, *r),
        CompareTarget::ModRevision(r) => EtcdCompare::mod_revision(key, op, *r),
        CompareTarget::Lease(l) => EtcdCompare::lease(key, op, *l),
    }
}

fn txn_op(op: &TxnOp) -> EtcdTxnOp {
    match op {
        TxnOp::Range {
            key,
            range_end,
            revision,
            limit,
        } => EtcdTxnOp::get(key.clone(), Some(get_options(range_end, *revision, *limit))),
        TxnOp::Put { key, value, lease } => {
            let options = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            EtcdTxnOp::put(key.clone(), value.clone(), options)
        }
        TxnOp::Delete { key, range_end } => {
            EtcdTxnOp::delete(key.clone(), Some(delete_options(range_end)))
        }
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, etcd_client::ResponseHeader::revision)
}

/// A kv as the checker records it.
pub fn kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}
