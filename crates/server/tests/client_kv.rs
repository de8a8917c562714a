//! The KV service through the real `etcd-client` crate: every Range, Put,
//! DeleteRange, Txn and Compact option and error path, with exact gRPC codes
//! and `etcdserver: …` messages. Each area runs against etcd 3.4 (proving
//! the expectations are etcd's) and against ironcd, on a fresh one-member
//! cluster started with `--max-txn-ops=4 --max-request-bytes=1024`.
//!
//! `lease_dependent_put_and_txn` also uses LeaseGrant and LeaseRevoke (the
//! Lease service itself is `client_lease.rs`'s); every other area needs
//! only KV. `*_restart_keeps_data` runs three members and restarts them
//! after SIGTERM and SIGKILL.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, Error, GetOptions, KeyValue,
    PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use ironcd_tests::{ironcd, Cluster, Opts, Server};
use tonic::Code;

const MAX_TXN_OPS: usize = 4;
const MAX_REQUEST_BYTES: usize = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const TOO_LARGE: &str = "etcdserver: request is too large";

/// One `#[tokio::test]` per area and implementation: `etcd::range_…` and
/// `ironcd::range_…`.
macro_rules! on_both_implementations {
    ($($area:ident),* $(,)?) => {
        mod etcd {
            $(
                #[tokio::test]
                async fn $area() {
                    super::run(super::Server::etcd(), stringify!($area), super::$area).await;
                }
            )*
        }
        mod ironcd {
            $(
                #[tokio::test]
                async fn $area() {
                    super::run(ironcd_tests::ironcd!(), stringify!($area), super::$area).await;
                }
            )*
        }
    };
}

on_both_implementations!(
    response_headers,
    range_keys_and_ranges,
    range_limit_revision_and_projections,
    range_sort_orders,
    range_revision_filters,
    put_options,
    put_errors,
    delete_range,
    txn_compares,
    txn_compare_over_a_range,
    txn_branches_and_nesting,
    txn_errors,
    compaction,
    request_limits,
    lease_dependent_put_and_txn,
);

#[tokio::test]
async fn etcd_restart_keeps_data() {
    restart_keeps_data(Server::etcd()).await;
}

#[tokio::test]
async fn ironcd_restart_keeps_data() {
    restart_keeps_data(ironcd!()).await;
}

/// Writes survive SIGTERM and SIGKILL of members, and a restarted member
/// (same flags, existing data dir) serves them again.
async fn restart_keeps_data(implementation: Server) {
    let mut cluster = Cluster::start(implementation, 3, Opts::default());
    let leader = cluster.wait_for_leader();
    assert_eq!(cluster.leader_index(), Some(leader));
    let mut client = connect(&cluster, 0).await;
    let before = put(&mut client, "durable", "1").await;

    cluster.terminate(0);
    assert!(!cluster.is_running(0));
    cluster.restart(0);
    let mut client = connect(&cluster, 0).await;
    let got = client
        .get("durable", None)
        .await
        .expect("get after SIGTERM");
    assert_eq!(
        (values(got.kvs()), got.kvs()[0].mod_revision()),
        (vec!["1".to_string()], before)
    );

    let leader = cluster.wait_for_leader();
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, leader, "a killed member cannot lead");
    let survivor = (0..3).find(|&i| i != leader).expect("a live member");
    let mut client = connect(&cluster, survivor).await;
    let after = put(&mut client, "durable", "2").await;
    assert_eq!(after, before + 1);

    cluster.restart(leader);
    let mut client = connect(&cluster, leader).await;
    let got = client
        .get("durable", None)
        .await
        .expect("get after SIGKILL");
    assert_eq!(values(got.kvs()), ["2"], "{}", cluster.log_tail(leader, 20));
    assert_eq!(header(got.header()).revision(), after);
}

/// Starts a one-member cluster, runs `area` against it, then checks the
/// server still serves. A failure carries the member's log tail.
async fn run<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let opts = Opts::with_args(&[
        &format!("--max-txn-ops={MAX_TXN_OPS}"),
        &format!("--max-request-bytes={MAX_REQUEST_BYTES}"),
    ]);
    let cluster = Cluster::start(server, 1, opts);
    let mut client = connect(&cluster, 0).await;
    if let Err(e) = tokio::spawn(area(client.clone())).await {
        panic!(
            "{area_name} on {} failed: {e}\n{}",
            cluster.implementation().name(),
            cluster.log_tail(0, 30)
        );
    }
    assert_serves(&mut client).await;
}

async fn connect(cluster: &Cluster, member: usize) -> Client {
    let options = ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT);
    let endpoint = cluster.endpoint(member);
    Client::connect([endpoint.as_str()], Some(options))
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"))
}

/// A write and a read of it still succeed.
async fn assert_serves(client: &mut Client) {
    let put = client.put("serves", "yes", None).await;
    let put = put.expect("the server still accepts writes");
    let got = client.get("serves", None).await.expect("and reads");
    assert_eq!(values(got.kvs()), ["yes"]);
    assert_eq!(got.kvs()[0].mod_revision(), header(put.header()).revision());
}

/// `result` failed with exactly etcd's gRPC code and message, and the
/// server still serves afterwards.
async fn assert_status<T: std::fmt::Debug>(
    client: &mut Client,
    result: Result<T, Error>,
    code: Code,
    message: &str,
) {
    match result {
        Err(Error::GRpcStatus(status)) => {
            assert_eq!(
                (status.code(), status.message()),
                (code, message),
                "wrong status"
            );
        }
        other => panic!("expected {code:?} {message:?}, got {other:?}"),
    }
    assert_serves(client).await;
}

fn header(header: Option<&ResponseHeader>) -> &ResponseHeader {
    header.expect("every response carries a header")
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

fn values(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        .collect()
}

async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = client.put(key, value, None).await.expect("put");
    header(response.header()).revision()
}

async fn current_revision(client: &mut Client) -> i64 {
    let response = client.get("any", None).await.expect("get");
    header(response.header()).revision()
}

/// Revisions 2..=7 on a fresh cluster, then `x` at 8:
/// k1: version 3, create 2, mod 7, "zeta";
/// k2: version 2, create 3, mod 5, "alpha";
/// k3: version 1, create 4, mod 4, "mid".
async fn seed(client: &mut Client) {
    let writes = [
        ("k1", "one"),
        ("k2", "two"),
        ("k3", "mid"),
        ("k2", "alpha"),
        ("k1", "omega"),
        ("k1", "zeta"),
        ("x", "other"),
    ];
    for (i, (key, value)) in writes.into_iter().enumerate() {
        assert_eq!(put(client, key, value).await, i as i64 + 2, "seed {key}");
    }
}

async fn get_keys(client: &mut Client, key: &str, options: GetOptions) -> Vec<String> {
    let response = client.get(key, Some(options)).await.expect("get");
    keys(response.kvs())
}

async fn response_headers(mut client: Client) {
    let first = client.get("nothing", None).await.expect("get");
    let first = header(first.header()).clone();
    assert_ne!(first.cluster_id(), 0, "cluster_id");
    assert_ne!(first.member_id(), 0, "member_id");
    assert!(first.raft_term() >= 1, "raft_term {}", first.raft_term());
    assert_eq!(first.revision(), 1, "a fresh store is at revision 1");

    let put = client.put("h", "1", None).await.expect("put");
    let put_header = header(put.header());
    assert_eq!(put_header.revision(), 2);
    assert_eq!(
        (put_header.cluster_id(), put_header.member_id()),
        (first.cluster_id(), first.member_id())
    );
    assert!(put_header.raft_term() >= first.raft_term());

    let status = client.status().await.expect("maintenance status");
    let status_header = header(status.header());
    assert_eq!(status_header.member_id(), first.member_id());
    assert_eq!(status_header.cluster_id(), first.cluster_id());
    assert_eq!(status.leader(), first.member_id(), "a single member leads");

    // Reads, no-op deletes and failed writes leave the revision alone.
    let deleted = client.delete("nothing", None).await.expect("delete");
    assert_eq!(header(deleted.header()).revision(), 2);
    assert_eq!(deleted.deleted(), 0);
    let failed = client.put("", "v", None).await;
    assert_status(&mut client, failed, Code::InvalidArgument, KEY_NOT_PROVIDED).await;
    // `assert_serves` wrote once.
    assert_eq!(current_revision(&mut client).await, 3);
    let got = client.get("h", None).await.expect("get");
    assert_eq!(got.kvs()[0].mod_revision(), 2);
    assert_eq!(header(got.header()).revision(), 3);
}

async fn range_keys_and_ranges(mut client: Client) {
    seed(&mut client).await;
    let one = client.get("k1", None).await.expect("get k1");
    let kv = &one.kvs()[0];
    assert_eq!((kv.key(), kv.value()), (&b"k1"[..], &b"zeta"[..]));
    assert_eq!(
        (
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.lease()
        ),
        (2, 7, 3, 0)
    );
    assert_eq!(
        (one.count(), one.more(), header(one.header()).revision()),
        (1, false, 8)
    );

    let missing = client.get("k", None).await.expect("get a missing key");
    assert_eq!(
        (missing.kvs().len(), missing.count(), missing.more()),
        (0, 0, false)
    );

    let prefix = get_keys(&mut client, "k", GetOptions::new().with_prefix()).await;
    assert_eq!(prefix, ["k1", "k2", "k3"]);
    let range = get_keys(&mut client, "k1", GetOptions::new().with_range("k3")).await;
    assert_eq!(range, ["k1", "k2"]);
    let from_key = get_keys(&mut client, "k2", GetOptions::new().with_from_key()).await;
    assert_eq!(from_key, ["k2", "k3", "x"]);
    // An empty key with from_key is sent as key "\0", range_end "\0".
    let all = get_keys(&mut client, "", GetOptions::new().with_from_key()).await;
    assert_eq!(all, ["k1", "k2", "k3", "x"]);
    let explicit = get_keys(&mut client, "\0", GetOptions::new().with_range("\0")).await;
    assert_eq!(explicit, all);
    let all_keys = get_keys(&mut client, "", GetOptions::new().with_all_keys()).await;
    assert_eq!(all_keys, all);
    // A range whose end sorts before its start is empty, not an error.
    let backwards = get_keys(&mut client, "k3", GetOptions::new().with_range("k1")).await;
    assert!(backwards.is_empty(), "{backwards:?}");
    let serializable = GetOptions::new().with_prefix().with_serializable();
    let serializable = client.get("k", Some(serializable)).await.expect("get");
    assert_eq!(values(serializable.kvs()), ["zeta", "alpha", "mid"]);
}

async fn range_limit_revision_and_projections(mut client: Client) {
    seed(&mut client).await;
    let limited = GetOptions::new().with_prefix().with_limit(2);
    let limited = client.get("k", Some(limited)).await.expect("get");
    assert_eq!(keys(limited.kvs()), ["k1", "k2"]);
    assert_eq!((limited.more(), limited.count()), (true, 3));
    let exact = GetOptions::new().with_prefix().with_limit(3);
    let exact = client.get("k", Some(exact)).await.expect("get");
    assert_eq!(
        (exact.kvs().len(), exact.more(), exact.count()),
        (3, false, 3)
    );

    let past = GetOptions::new().with_prefix().with_revision(4);
    let past = client
        .get("k", Some(past))
        .await
        .expect("get at revision 4");
    assert_eq!(values(past.kvs()), ["one", "two", "mid"]);
    assert!(past.kvs().iter().all(|kv| kv.version() == 1));
    assert_eq!(header(past.header()).revision(), 8, "the header is current");
    let before = GetOptions::new().with_prefix().with_revision(1);
    let before = client
        .get("k", Some(before))
        .await
        .expect("get at revision 1");
    assert_eq!((before.kvs().len(), before.count()), (0, 0));
    let current = GetOptions::new().with_revision(8);
    let current = client
        .get("x", Some(current))
        .await
        .expect("get at revision 8");
    assert_eq!(values(current.kvs()), ["other"]);

    let keys_only = GetOptions::new().with_prefix().with_keys_only();
    let keys_only = client.get("k", Some(keys_only)).await.expect("get");
    assert_eq!(keys(keys_only.kvs()), ["k1", "k2", "k3"]);
    assert!(keys_only.kvs().iter().all(|kv| kv.value().is_empty()));
    assert_eq!(keys_only.kvs()[0].version(), 3, "metadata stays");

    let count_only = GetOptions::new().with_prefix().with_count_only();
    let count_only = client.get("k", Some(count_only)).await.expect("get");
    assert!(count_only.kvs().is_empty());
    assert_eq!((count_only.count(), count_only.more()), (3, false));
    let counted = GetOptions::new()
        .with_prefix()
        .with_count_only()
        .with_limit(1);
    let counted = client.get("k", Some(counted)).await.expect("get");
    assert_eq!((counted.kvs().len(), counted.count()), (0, 3));
}

async fn range_sort_orders(mut client: Client) {
    use SortOrder::{Ascend, Descend};
    use SortTarget::{Create, Key, Mod, Value, Version};
    seed(&mut client).await;
    let cases: [(SortTarget, SortOrder, [&str; 3]); 11] = [
        (Key, Ascend, ["k1", "k2", "k3"]),
        (Key, Descend, ["k3", "k2", "k1"]),
        (Version, Ascend, ["k3", "k2", "k1"]),
        (Version, Descend, ["k1", "k2", "k3"]),
        (Create, Ascend, ["k1", "k2", "k3"]),
        (Create, Descend, ["k3", "k2", "k1"]),
        (Mod, Ascend, ["k3", "k2", "k1"]),
        (Mod, Descend, ["k1", "k2", "k3"]),
        (Value, Ascend, ["k2", "k3", "k1"]),
        (Value, Descend, ["k1", "k3", "k2"]),
        // No order with a target other than the key sorts ascending.
        (Version, SortOrder::None, ["k3", "k2", "k1"]),
    ];
    for (target, order, expected) in cases {
        let options = GetOptions::new().with_prefix().with_sort(target, order);
        let got = get_keys(&mut client, "k", options).await;
        assert_eq!(got, expected, "sort by {target:?} {order:?}");
    }
    // The limit applies after sorting; count is the whole range.
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(Value, Descend)
        .with_limit(2);
    let response = client.get("k", Some(options)).await.expect("get");
    assert_eq!(keys(response.kvs()), ["k1", "k3"]);
    assert_eq!((response.more(), response.count()), (true, 3));
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(Create, Ascend)
        .with_revision(4);
    let response = client.get("k", Some(options)).await.expect("get");
    assert_eq!(values(response.kvs()), ["one", "two", "mid"]);
}

async fn range_revision_filters(mut client: Client) {
    seed(&mut client).await;
    let cases: [(GetOptions, &[&str]); 6] = [
        (GetOptions::new().with_min_mod_revision(5), &["k1", "k2"]),
        (GetOptions::new().with_max_mod_revision(4), &["k3"]),
        (GetOptions::new().with_min_create_revision(3), &["k2", "k3"]),
        (GetOptions::new().with_max_create_revision(2), &["k1"]),
        (
            GetOptions::new()
                .with_min_mod_revision(4)
                .with_max_mod_revision(5),
            &["k2", "k3"],
        ),
        (GetOptions::new().with_min_create_revision(9), &[]),
    ];
    for (options, expected) in cases {
        let described = format!("{options:?}");
        let response = client.get("k", Some(options.with_prefix())).await;
        let response = response.expect("get with filters");
        assert_eq!(keys(response.kvs()), expected, "{described}");
        // etcd counts the range before the filters prune it.
        assert_eq!(response.count(), 3, "count with {described}");
    }
    // With a filter, the limit applies after pruning.
    let options = GetOptions::new()
        .with_prefix()
        .with_min_mod_revision(5)
        .with_limit(1);
    let response = client.get("k", Some(options)).await.expect("get");
    assert_eq!(keys(response.kvs()), ["k1"]);
    assert_eq!((response.more(), response.count()), (true, 3));
}

async fn put_options(mut client: Client) {
    let first = client
        .put("p", "v1", Some(PutOptions::new().with_prev_key()))
        .await;
    let first = first.expect("put a new key");
    assert!(first.prev_key().is_none(), "no previous kv for a new key");
    assert_eq!(header(first.header()).revision(), 2);

    let second = client
        .put("p", "v2", Some(PutOptions::new().with_prev_key()))
        .await;
    let second = second.expect("overwrite");
    let prev = second.prev_key().expect("the previous kv");
    assert_eq!(
        (prev.value(), prev.version(), prev.mod_revision()),
        (&b"v1"[..], 1, 2)
    );
    let plain = client
        .put("p", "v3", None)
        .await
        .expect("put without prev_kv");
    assert!(plain.prev_key().is_none(), "prev_kv only when asked");

    // ignore_value keeps the value but bumps version and mod revision.
    let kept = client
        .put("p", "", Some(PutOptions::new().with_ignore_value()))
        .await;
    let kept = header(kept.expect("ignore_value on an existing key").header()).revision();
    let got = client.get("p", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (kv.value(), kv.version(), kv.mod_revision()),
        (&b"v3"[..], 4, kept)
    );
    assert_eq!(kv.create_revision(), 2);

    // ignore_lease on a key without a lease: the value changes, no lease.
    let options = PutOptions::new().with_ignore_lease().with_prev_key();
    let replaced = client
        .put("p", "v5", Some(options))
        .await
        .expect("ignore_lease");
    assert_eq!(replaced.prev_key().map(|kv| kv.value()), Some(&b"v3"[..]));
    let got = client.get("p", None).await.expect("get");
    assert_eq!(
        (got.kvs()[0].value(), got.kvs()[0].lease()),
        (&b"v5"[..], 0)
    );

    // Keys and values are bytes.
    let key = [0u8, 0xff, b'k'];
    let value = [0xffu8, 0, 1, 2];
    client.put(key, value, None).await.expect("binary put");
    let got = client.get(key, None).await.expect("binary get");
    assert_eq!(
        (got.kvs()[0].key(), got.kvs()[0].value()),
        (&key[..], &value[..])
    );
}

async fn put_errors(mut client: Client) {
    put(&mut client, "exists", "v").await;
    let revision = current_revision(&mut client).await;
    let ignore_value = Some(PutOptions::new().with_ignore_value());
    let missing = client.put("missing", "", ignore_value.clone()).await;
    assert_status(&mut client, missing, Code::InvalidArgument, KEY_NOT_FOUND).await;
    let with_value = client.put("exists", "v", ignore_value).await;
    let message = "etcdserver: value is provided";
    assert_status(&mut client, with_value, Code::InvalidArgument, message).await;
    let ignore_lease = Some(PutOptions::new().with_ignore_lease());
    let missing = client.put("missing", "v", ignore_lease).await;
    assert_status(&mut client, missing, Code::InvalidArgument, KEY_NOT_FOUND).await;
    let both = Some(PutOptions::new().with_ignore_lease().with_lease(7));
    let both = client.put("exists", "v", both).await;
    let message = "etcdserver: lease is provided";
    assert_status(&mut client, both, Code::InvalidArgument, message).await;
    let unknown_lease = Some(PutOptions::new().with_lease(0x1234_5678));
    let unknown_lease = client.put("exists", "v", unknown_lease).await;
    assert_status(&mut client, unknown_lease, Code::NotFound, LEASE_NOT_FOUND).await;
    let empty = client.put("", "v", None).await;
    assert_status(&mut client, empty, Code::InvalidArgument, KEY_NOT_PROVIDED).await;
    let empty_get = client.get("", None).await;
    assert_status(
        &mut client,
        empty_get,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    )
    .await;
    let empty_delete = client.delete("", None).await;
    assert_status(
        &mut client,
        empty_delete,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    )
    .await;
    // Only the `assert_serves` writes happened: each failed put wrote nothing.
    let serves_writes = 8;
    assert_eq!(
        current_revision(&mut client).await,
        revision + serves_writes
    );
    let got = client.get("exists", None).await.expect("get");
    assert_eq!(
        (got.kvs()[0].version(), got.kvs()[0].value()),
        (1, &b"v"[..])
    );
}

async fn delete_range(mut client: Client) {
    for key in ["a", "b1", "b2", "b3", "c", "d"] {
        put(&mut client, key, &format!("{key}-value")).await;
    }
    let nothing = client
        .delete("zzz", None)
        .await
        .expect("delete a missing key");
    assert_eq!(
        (nothing.deleted(), header(nothing.header()).revision()),
        (0, 7)
    );

    let one = client
        .delete("a", Some(DeleteOptions::new().with_prev_key()))
        .await;
    let one = one.expect("delete a");
    assert_eq!((one.deleted(), header(one.header()).revision()), (1, 8));
    assert_eq!(values(one.prev_kvs()), ["a-value"]);
    assert_eq!(one.prev_kvs()[0].mod_revision(), 2);

    // One revision for a multi-key delete; prev_kvs only when asked.
    let prefix = client
        .delete("b", Some(DeleteOptions::new().with_prefix()))
        .await;
    let prefix = prefix.expect("delete prefix b");
    assert_eq!(
        (prefix.deleted(), header(prefix.header()).revision()),
        (3, 9)
    );
    assert!(prefix.prev_kvs().is_empty());
    let remaining = get_keys(&mut client, "", GetOptions::new().with_all_keys()).await;
    assert_eq!(remaining, ["c", "d"]);

    put(&mut client, "b", "again").await;
    let range = DeleteOptions::new().with_range("c").with_prev_key();
    let range = client
        .delete("a", Some(range))
        .await
        .expect("delete [a, c)");
    assert_eq!(
        (range.deleted(), keys(range.prev_kvs())),
        (1, vec!["b".to_string()])
    );

    let from_key = DeleteOptions::new().with_from_key().with_prev_key();
    let from_key = client
        .delete("c", Some(from_key))
        .await
        .expect("delete from c");
    assert_eq!(from_key.deleted(), 2);
    assert_eq!(keys(from_key.prev_kvs()), ["c", "d"]);
    assert_eq!(header(from_key.header()).revision(), 12);

    deleted_key_starts_anew(&mut client).await;
}

/// A key deleted and put again starts a new life (`a` was deleted at 8).
async fn deleted_key_starts_anew(client: &mut Client) {
    let revision = put(client, "a", "reborn").await;
    let got = client.get("a", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (revision, revision, 1)
    );
    let old = client
        .get("a", Some(GetOptions::new().with_revision(7)))
        .await;
    assert_eq!(values(old.expect("get at 7").kvs()), ["a-value"]);

    let all = DeleteOptions::new().with_all_keys();
    let all = client
        .delete("", Some(all))
        .await
        .expect("delete everything");
    assert_eq!(all.deleted(), 1);
}

/// Whether `compare` holds, by a txn that reads `k1` on success and `k2`
/// on failure (and checks it got the branch it reports).
/// Each compare's txn takes the branch it is paired with (true: then).
async fn assert_txn_outcomes(
    client: &mut Client,
    cases: impl IntoIterator<Item = (Compare, bool)>,
) {
    for (compare, expected) in cases {
        let described = format!("{compare:?}");
        assert_eq!(txn_outcome(client, compare).await, expected, "{described}");
    }
}

async fn txn_outcome(client: &mut Client, compare: Compare) -> bool {
    let described = format!("{compare:?}");
    let txn = Txn::new()
        .when([compare])
        .and_then([TxnOp::get("k1", None)])
        .or_else([TxnOp::get("k2", None)]);
    let response = client.txn(txn).await.expect("txn");
    let responses = response.op_responses();
    let TxnOpResponse::Get(get) = &responses[0] else {
        panic!("a get response for {described}");
    };
    let expected_key = if response.succeeded() { "k1" } else { "k2" };
    assert_eq!(keys(get.kvs()), [expected_key], "{described}");
    response.succeeded()
}

async fn txn_compares(mut client: Client) {
    use CompareOp::{Equal, Greater, Less, NotEqual};
    seed(&mut client).await;
    let cases = [
        (Compare::value("k2", Equal, "alpha"), true),
        (Compare::value("k2", NotEqual, "alpha"), false),
        (Compare::value("k2", Greater, "aaa"), true),
        (Compare::value("k2", Less, "aaa"), false),
        (Compare::version("k1", Equal, 3), true),
        (Compare::version("k1", Greater, 3), false),
        (Compare::version("k1", Less, 4), true),
        (Compare::version("k1", NotEqual, 3), false),
        (Compare::create_revision("k2", Equal, 3), true),
        (Compare::create_revision("k2", Greater, 2), true),
        (Compare::create_revision("k2", Less, 3), false),
        (Compare::create_revision("k2", NotEqual, 4), true),
        (Compare::mod_revision("k1", Equal, 7), true),
        (Compare::mod_revision("k1", Greater, 7), false),
        (Compare::mod_revision("k1", Less, 8), true),
        (Compare::mod_revision("k1", NotEqual, 7), false),
        (Compare::lease("k1", Equal, 0), true),
        (Compare::lease("k1", NotEqual, 0), false),
        (Compare::lease("k1", Greater, 0), false),
        (Compare::lease("k1", Less, 1), true),
        // A missing key has version, revisions and lease 0, and no value.
        (Compare::version("missing", Equal, 0), true),
        (Compare::create_revision("missing", Equal, 0), true),
        (Compare::mod_revision("missing", Less, 1), true),
        (Compare::lease("missing", Equal, 0), true),
        (Compare::value("missing", Equal, ""), false),
        (Compare::value("missing", NotEqual, "x"), false),
    ];
    assert_txn_outcomes(&mut client, cases).await;
    assert_eq!(current_revision(&mut client).await, 8, "read-only txns");
}

async fn txn_compare_over_a_range(mut client: Client) {
    use CompareOp::{Equal, Greater, Less, NotEqual};
    seed(&mut client).await;
    let cases = [
        // Every key in the range must satisfy the compare.
        (Compare::version("k", Greater, 0).with_prefix(), true),
        (Compare::version("k", Greater, 1).with_prefix(), false),
        (
            Compare::create_revision("k1", Less, 5).with_range("k3"),
            true,
        ),
        (
            Compare::create_revision("k1", Less, 5).with_range("k4"),
            true,
        ),
        (
            Compare::create_revision("k1", Less, 4).with_range("k4"),
            false,
        ),
        (Compare::value("k", NotEqual, "none").with_prefix(), true),
        (Compare::value("k", Equal, "zeta").with_prefix(), false),
        (Compare::mod_revision("\0", Less, 9).with_range("\0"), true),
        // An empty range compares like a missing key.
        (Compare::version("q", Equal, 0).with_prefix(), true),
        (Compare::value("q", NotEqual, "x").with_prefix(), false),
    ];
    assert_txn_outcomes(&mut client, cases).await;
    // All compares must hold.
    let txn = Txn::new().when([
        Compare::value("k1", Equal, "zeta"),
        Compare::value("k2", Equal, "wrong"),
    ]);
    let response = client.txn(txn).await.expect("txn");
    assert!(!response.succeeded());
    assert!(response.op_responses().is_empty());
}

async fn txn_branches_and_nesting(mut client: Client) {
    use CompareOp::Equal;
    seed(&mut client).await;
    let success = Txn::new()
        .when([Compare::value("k1", Equal, "zeta")])
        .and_then([
            TxnOp::put("t", "yes", Some(PutOptions::new().with_prev_key())),
            TxnOp::get("t", None),
            TxnOp::delete("k3", Some(DeleteOptions::new().with_prev_key())),
            TxnOp::get("k", Some(GetOptions::new().with_prefix())),
        ])
        .or_else([TxnOp::put("t", "no", None)]);
    let response = client.txn(success).await.expect("txn");
    assert!(response.succeeded());
    assert_eq!(
        header(response.header()).revision(),
        9,
        "one revision per txn"
    );
    let ops = response.op_responses();
    let [TxnOpResponse::Put(put), TxnOpResponse::Get(read_own_write), TxnOpResponse::Delete(deleted), TxnOpResponse::Get(after)] =
        &ops[..]
    else {
        panic!("put, get, delete, get responses: {ops:?}");
    };
    assert!(put.prev_key().is_none());
    assert_eq!(
        values(read_own_write.kvs()),
        ["yes"],
        "a txn reads its own writes"
    );
    assert_eq!(read_own_write.kvs()[0].mod_revision(), 9);
    assert_eq!(
        (deleted.deleted(), values(deleted.prev_kvs())),
        (1, vec!["mid".to_string()])
    );
    assert_eq!(keys(after.kvs()), ["k1", "k2"]);

    let failure = Txn::new()
        .when([Compare::version("t", Equal, 5)])
        .and_then([TxnOp::put("t", "unreachable", None)])
        .or_else([TxnOp::put("f", "failed", None), TxnOp::get("t", None)]);
    let response = client.txn(failure).await.expect("txn");
    assert!(!response.succeeded());
    assert_eq!(
        (
            header(response.header()).revision(),
            response.op_responses().len()
        ),
        (10, 2)
    );
    assert_eq!(
        values(client.get("t", None).await.expect("get").kvs()),
        ["yes"]
    );
    nested_txn(&mut client).await;
}

/// After `txn_branches_and_nesting`'s first two txns (revision 10, `f` put).
async fn nested_txn(client: &mut Client) {
    use CompareOp::Equal;
    let inner = Txn::new()
        .when([Compare::value("f", Equal, "failed")])
        .and_then([TxnOp::put("nested", "inner-success", None)])
        .or_else([TxnOp::put("nested", "inner-failure", None)]);
    let outer = Txn::new()
        .when([Compare::version("f", Equal, 1)])
        .and_then([TxnOp::txn(inner), TxnOp::get("nested", None)]);
    let response = client.txn(outer).await.expect("nested txn");
    assert!(response.succeeded());
    let ops = response.op_responses();
    let [TxnOpResponse::Txn(inner), TxnOpResponse::Get(nested)] = &ops[..] else {
        panic!("txn, get responses: {ops:?}");
    };
    assert!(inner.succeeded());
    assert!(matches!(inner.op_responses()[..], [TxnOpResponse::Put(_)]));
    assert_eq!(values(nested.kvs()), ["inner-success"]);
    assert_eq!(header(response.header()).revision(), 11);

    let empty = client.txn(Txn::new()).await.expect("an empty txn");
    assert!(empty.succeeded(), "no compares: success");
    assert_eq!(header(empty.header()).revision(), 11);
}

async fn txn_errors(mut client: Client) {
    use CompareOp::Equal;
    seed(&mut client).await;
    let duplicates = [
        vec![TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)],
        vec![TxnOp::put("d", "1", None), TxnOp::delete("d", None)],
        vec![
            TxnOp::put("k2", "1", None),
            TxnOp::delete("k", Some(DeleteOptions::new().with_prefix())),
        ],
    ];
    for ops in duplicates {
        let result = client.txn(Txn::new().and_then(ops)).await;
        assert_status(&mut client, result, Code::InvalidArgument, DUPLICATE_KEY).await;
    }
    // The same key in both branches, or read twice, is fine.
    let branches = Txn::new()
        .when([Compare::version("d", Equal, 0)])
        .and_then([
            TxnOp::put("d", "1", None),
            TxnOp::get("d", None),
            TxnOp::get("d", None),
        ])
        .or_else([TxnOp::put("d", "2", None)]);
    assert!(client.txn(branches).await.expect("txn").succeeded());

    let ops = |n: usize| {
        (0..n)
            .map(|i| TxnOp::put(format!("op{i}"), "v", None))
            .collect::<Vec<_>>()
    };
    let compares = |n: usize| {
        (0..n)
            .map(|i| Compare::version(format!("c{i}"), Equal, 0))
            .collect::<Vec<_>>()
    };
    let at_limit = Txn::new()
        .when(compares(MAX_TXN_OPS))
        .and_then(ops(MAX_TXN_OPS))
        .or_else(ops(MAX_TXN_OPS));
    assert!(client
        .txn(at_limit)
        .await
        .expect("txn at the limit")
        .succeeded());
    let over = [
        Txn::new().and_then(ops(MAX_TXN_OPS + 1)),
        Txn::new().or_else(ops(MAX_TXN_OPS + 1)),
        Txn::new().when(compares(MAX_TXN_OPS + 1)),
    ];
    for txn in over {
        let result = client.txn(txn).await;
        assert_status(&mut client, result, Code::InvalidArgument, TOO_MANY_OPS).await;
    }
    let empty_keys = [
        Txn::new().and_then([TxnOp::put("", "v", None)]),
        Txn::new().or_else([TxnOp::get("", None)]),
        Txn::new().when([Compare::version("", Equal, 0)]),
    ];
    for txn in empty_keys {
        let result = client.txn(txn).await;
        assert_status(&mut client, result, Code::InvalidArgument, KEY_NOT_PROVIDED).await;
    }
    let future = Txn::new().and_then([TxnOp::get(
        "k1",
        Some(GetOptions::new().with_revision(1000)),
    )]);
    let result = client.txn(future).await;
    assert_status(&mut client, result, Code::OutOfRange, FUTURE_REV).await;
}

async fn compaction(mut client: Client) {
    use etcd_client::CompactionOptions;
    seed(&mut client).await;
    let compacted = client.compact(4, None).await.expect("compact at 4");
    assert_eq!(header(compacted.header()).revision(), 8);
    let below = client
        .get("k1", Some(GetOptions::new().with_revision(3)))
        .await;
    assert_status(&mut client, below, Code::OutOfRange, COMPACTED).await;
    let at = client
        .get("k", Some(GetOptions::new().with_prefix().with_revision(4)))
        .await;
    assert_eq!(
        values(at.expect("read at the compacted revision").kvs()),
        ["one", "two", "mid"]
    );
    let again = client.compact(4, None).await;
    assert_status(&mut client, again, Code::OutOfRange, COMPACTED).await;
    let lower = client.compact(2, None).await;
    assert_status(&mut client, lower, Code::OutOfRange, COMPACTED).await;

    let revision = current_revision(&mut client).await;
    let future = client.compact(revision + 1, None).await;
    assert_status(&mut client, future, Code::OutOfRange, FUTURE_REV).await;
    let future_read = client
        .get("k1", Some(GetOptions::new().with_revision(revision + 100)))
        .await;
    assert_status(&mut client, future_read, Code::OutOfRange, FUTURE_REV).await;

    let physical = Some(CompactionOptions::new().with_physical());
    client
        .compact(7, physical)
        .await
        .expect("physical compaction at 7");
    let below = client
        .get("k1", Some(GetOptions::new().with_revision(6)))
        .await;
    assert_status(&mut client, below, Code::OutOfRange, COMPACTED).await;
    let in_txn = Txn::new().and_then([TxnOp::get("k1", Some(GetOptions::new().with_revision(5)))]);
    let in_txn = client.txn(in_txn).await;
    assert_status(&mut client, in_txn, Code::OutOfRange, COMPACTED).await;
    // Compaction keeps the latest version of every live key.
    let latest = client
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(values(latest.kvs()), ["zeta", "alpha", "mid"]);
    let at = client
        .get("k1", Some(GetOptions::new().with_revision(7)))
        .await
        .expect("get at 7");
    assert_eq!(at.kvs()[0].version(), 3);
    // Compacting up to the current revision is allowed.
    let revision = current_revision(&mut client).await;
    client
        .compact(revision, None)
        .await
        .expect("compact at the current revision");
    let now = client
        .get("x", Some(GetOptions::new().with_revision(revision)))
        .await;
    assert_eq!(
        values(now.expect("get at the current revision").kvs()),
        ["other"]
    );
}

async fn request_limits(mut client: Client) {
    let big = "x".repeat(2 * MAX_REQUEST_BYTES);
    let revision = current_revision(&mut client).await;
    let too_large = client.put("big", big.as_str(), None).await;
    assert_status(&mut client, too_large, Code::InvalidArgument, TOO_LARGE).await;
    let big_txn = Txn::new().and_then([TxnOp::put("big", big.as_str(), None)]);
    let too_large = client.txn(big_txn).await;
    assert_status(&mut client, too_large, Code::InvalidArgument, TOO_LARGE).await;
    let got = client.get("big", None).await.expect("get");
    assert!(
        got.kvs().is_empty(),
        "nothing of the oversized put was stored"
    );

    let fits = "y".repeat(MAX_REQUEST_BYTES / 2);
    let stored = put(&mut client, "fits", &fits).await;
    assert_eq!(
        stored,
        revision + 3,
        "two assert_serves writes, then this one"
    );
    let got = client.get("fits", None).await.expect("get");
    assert_eq!(got.kvs()[0].value().len(), fits.len());
    // Reads are not limited by --max-request-bytes.
    for i in 0..4 {
        put(&mut client, &format!("fits{i}"), &fits).await;
    }
    let all = client
        .get("fits", Some(GetOptions::new().with_prefix()))
        .await;
    assert_eq!(all.expect("a large read").kvs().len(), 5);
}

/// Keys attached to a lease by puts, compared in txns, detached by a
/// plain put, and deleted by the lease's revoke.
async fn lease_dependent_put_and_txn(mut client: Client) {
    use CompareOp::{Equal, Greater};
    let lease = client
        .lease_grant(600, None)
        .await
        .expect("lease grant")
        .id();
    let options = Some(PutOptions::new().with_lease(lease));
    client
        .put("leased", "v1", options)
        .await
        .expect("put with a lease");
    let got = client.get("leased", None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), lease);

    let ignore = Some(PutOptions::new().with_ignore_lease());
    client
        .put("leased", "v2", ignore)
        .await
        .expect("put ignoring the lease");
    let got = client.get("leased", None).await.expect("get");
    assert_eq!(
        (got.kvs()[0].value(), got.kvs()[0].lease()),
        (&b"v2"[..], lease)
    );

    assert!(txn_lease_outcome(&mut client, Compare::lease("leased", Equal, lease)).await);
    assert!(txn_lease_outcome(&mut client, Compare::lease("leased", Greater, 0)).await);
    let other = Compare::lease("leased", Equal, lease + 1);
    assert!(!txn_lease_outcome(&mut client, other).await);

    // A plain put detaches the key from its lease.
    client
        .put("plain", "p", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    client
        .put("plain", "p2", None)
        .await
        .expect("put without a lease");
    let got = client.get("plain", None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), 0);

    // Revoking the lease deletes the keys still attached, in one revision.
    let before = current_revision(&mut client).await;
    client.lease_revoke(lease).await.expect("lease revoke");
    assert!(client
        .get("leased", None)
        .await
        .expect("get")
        .kvs()
        .is_empty());
    assert_eq!(
        values(client.get("plain", None).await.expect("get").kvs()),
        ["p2"]
    );
    assert_eq!(current_revision(&mut client).await, before + 1);
    let revoked = Some(PutOptions::new().with_lease(lease));
    let revoked = client.put("leased", "v3", revoked).await;
    assert_status(&mut client, revoked, Code::NotFound, LEASE_NOT_FOUND).await;
}

async fn txn_lease_outcome(client: &mut Client, compare: Compare) -> bool {
    let txn = Txn::new().when([compare]);
    client
        .txn(txn)
        .await
        .expect("txn with a lease compare")
        .succeeded()
}
