//! The Lease service through the real `etcd-client` crate, each area run
//! against etcd 3.4 (proving the expectations are etcd's) and ironcd: ids
//! and TTLs a grant gives (the minimum, the maximum, duplicates), keys
//! attached by puts and txns, TimeToLive, Leases, keep-alive streams (one
//! lease or several, unknown and revoked ones), revoke and expiry deleting
//! every attached key in one revision, renewal beyond the TTL, and on three
//! members the requests a follower forwards to the leader.
//!
//! One-member clusters run with a 1000 ms election timeout (no election to
//! fear with one member), which makes etcd's minimum TTL 2 s: one and a
//! half election timeouts, rounded up to whole seconds.

#[macro_use]
mod areas;
mod client;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::proto::PbLeaseKeepAliveRequest;
use etcd_client::{
    Client, Error, EventType, GetOptions, LeaseGrantOptions, LeaseKeepAliveStream, LeaseKeeper,
    LeaseTimeToLiveOptions, LeaseTimeToLiveResponse, PutOptions, Txn, TxnOp, WatchOptions,
    WatchResponse, WatchStream,
};
use ironcd_tests::{Cluster, Opts, Server};
use tonic::Code;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a response may take to arrive.
const ARRIVES: Duration = Duration::from_secs(10);
/// How long the tests wait to see that nothing more arrives.
const QUIET: Duration = Duration::from_millis(500);

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const LEASE_EXISTS: &str = "etcdserver: lease already exists";
const TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";

/// One-member clusters' election timeout (heartbeat: the harness's 100 ms).
const ELECTION_TIMEOUT_MS: u64 = 1000;
/// etcd's minimum TTL for that election timeout: ⌈1.5 × 1 s⌉.
const MIN_TTL_S: i64 = 2;
/// etcd's `MaxLeaseTTL`.
const MAX_TTL_S: i64 = 9_000_000_000;
/// A TTL no test outlives.
const LONG_TTL_S: i64 = 600;
const CHOSEN_ID: i64 = 0x1234_5678;
/// An id no test grants.
const UNKNOWN_ID: i64 = 0x7777;
/// How long after its TTL an unrenewed lease may take to be revoked (etcd
/// looks for expired leases every 500 ms, then proposes the revoke).
const EXPIRY_GRACE: Duration = Duration::from_secs(2);

on_both_implementations!(
    run: [
        grant_ids_and_ttls,
        puts_and_txns_attach_keys,
        time_to_live_reports_ttl_and_keys,
        leases_lists_every_lease,
        keep_alive_answers_the_granted_ttl,
        revoke_deletes_attached_keys_in_one_revision,
        an_unrenewed_lease_expires,
        a_renewed_lease_outlives_its_ttl,
    ],
    run_on_three_members: [a_follower_forwards_to_the_leader],
);

/// Runs `area` against a fresh one-member cluster.
fn run<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let opts = Opts {
        election_timeout_ms: Some(ELECTION_TIMEOUT_MS),
        ..Opts::default()
    };
    let cluster = Cluster::start(server, 1, opts);
    areas::drive(&cluster, area_name, REQUEST_TIMEOUT, move |client, _| {
        area(client)
    });
}

/// Runs `area` with a client of a follower and one of the leader of a
/// fresh three-member cluster; both members' own Status says which is which.
fn run_on_three_members<F, Fut>(server: Server, area_name: &str, area: F)
where
    F: FnOnce(Client, Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cluster = Cluster::start(server, 3, Opts::default());
    let leader = cluster.wait_for_leader();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let rt = client::runtime();
    rt.block_on(async {
        let mut to_follower = client::connect(&[cluster.endpoint(follower)], REQUEST_TIMEOUT).await;
        let mut to_leader = client::connect(&[cluster.endpoint(leader)], REQUEST_TIMEOUT).await;
        let (follower_status, leader_status) = (
            to_follower.status().await.expect("follower status"),
            to_leader.status().await.expect("leader status"),
        );
        let follower_id = follower_status.header().expect("header").member_id();
        let leader_id = leader_status.header().expect("header").member_id();
        assert_eq!(
            (follower_status.leader(), leader_status.leader()),
            (leader_id, leader_id),
            "both name the leader"
        );
        assert_ne!(follower_id, leader_id, "member {follower} follows");
        if let Err(e) = tokio::spawn(area(to_follower, to_leader)).await {
            panic!(
                "{area_name} on {} failed: {e}\n{}",
                cluster.implementation().name(),
                cluster.all_log_tails(30)
            );
        }
    });
}

/// `result` failed with exactly etcd's gRPC code and message.
fn assert_status<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, message: &str) {
    match result {
        Err(Error::GRpcStatus(status)) => assert_eq!(
            (status.code(), status.message()),
            (code, message),
            "wrong status"
        ),
        other => panic!("expected {code:?} {message:?}, got {other:?}"),
    }
}

async fn grant(client: &mut Client, ttl_s: i64) -> i64 {
    let granted = client.lease_grant(ttl_s, None).await.expect("lease grant");
    assert_eq!(granted.ttl(), ttl_s.max(MIN_TTL_S), "granted TTL");
    granted.id()
}

async fn put_leased(client: &mut Client, key: &str, lease: i64) -> i64 {
    let options = Some(PutOptions::new().with_lease(lease));
    let put = client
        .put(key, "v", options)
        .await
        .expect("put with a lease");
    put.header().expect("header").revision()
}

async fn current(client: &mut Client) -> i64 {
    let got = client.get("nothing", None).await.expect("get");
    got.header().expect("header").revision()
}

/// The keys under `prefix`.
async fn keys_under(client: &mut Client, prefix: &str) -> Vec<String> {
    let options = Some(GetOptions::new().with_prefix().with_keys_only());
    let got = client.get(prefix, options).await.expect("get");
    got.kvs()
        .iter()
        .map(|kv| kv.key_str().expect("utf-8").to_string())
        .collect()
}

async fn time_to_live(client: &mut Client, lease: i64) -> LeaseTimeToLiveResponse {
    let options = Some(LeaseTimeToLiveOptions::new().with_keys());
    let answer = client.lease_time_to_live(lease, options).await;
    let answer = answer.expect("lease time-to-live");
    assert_eq!(answer.id(), lease, "the answer names the lease asked about");
    answer
}

/// The keys TimeToLive lists for `lease`, sorted (etcd lists them in its
/// map's order).
async fn attached_keys(client: &mut Client, lease: i64) -> Vec<String> {
    let answer = time_to_live(client, lease).await;
    let mut keys: Vec<String> = answer
        .keys()
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    keys
}

/// TimeToLive answers `lease` is gone: TTL -1, and no error.
async fn assert_gone(client: &mut Client, lease: i64) {
    let answer = time_to_live(client, lease).await;
    assert_eq!(
        (answer.ttl(), answer.granted_ttl(), answer.keys().len()),
        (-1, 0, 0),
        "TimeToLive of a lease that is not there"
    );
}

async fn lease_ids(client: &mut Client) -> BTreeSet<i64> {
    let leases = client.leases().await.expect("leases");
    leases.leases().iter().map(|l| l.id()).collect()
}

/// Asks for a renewal of `lease` on `keeper`'s stream, whichever lease the
/// keeper was opened for.
async fn send_keep_alive(keeper: &LeaseKeeper, lease: i64) {
    let request = PbLeaseKeepAliveRequest { id: lease };
    keeper
        .sender
        .send(request)
        .await
        .expect("send a keep-alive");
}

/// The next keep-alive answer: (id, TTL).
async fn next_answer(stream: &mut LeaseKeepAliveStream) -> (i64, i64) {
    let answer = tokio::time::timeout(ARRIVES, stream.message())
        .await
        .expect("a keep-alive answer in time")
        .expect("the stream works")
        .expect("the stream is open");
    (answer.id(), answer.ttl())
}

/// etcd-client opens no keeper for a lease whose first answer is TTL 0.
async fn assert_keep_alive_refused(client: &mut Client, lease: i64) {
    match client.lease_keep_alive(lease).await {
        Err(Error::LeaseKeepAliveError(_)) => {}
        other => panic!("keep-alive of lease {lease:x}: expected TTL 0, got {other:?}"),
    }
}

async fn next_watched(stream: &mut WatchStream, within: Duration) -> WatchResponse {
    tokio::time::timeout(within, stream.message())
        .await
        .expect("a watch response in time")
        .expect("the stream works")
        .expect("the stream is open")
}

async fn quiet(stream: &mut WatchStream) {
    if let Ok(got) = tokio::time::timeout(QUIET, stream.message()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

/// A watcher of `prefix` whose created response was read.
async fn watch_prefix(client: &mut Client, prefix: &str) -> WatchStream {
    let options = Some(WatchOptions::new().with_prefix());
    let mut stream = client.watch(prefix, options).await.expect("watch");
    let created = next_watched(&mut stream, ARRIVES).await;
    assert!(created.created() && !created.canceled(), "{created:?}");
    stream
}

/// (type, key, mod revision) of each event.
fn events(resp: &WatchResponse) -> Vec<(EventType, String, i64)> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("an event's kv");
            let key = kv.key_str().expect("utf-8").to_string();
            (e.event_type(), key, kv.mod_revision())
        })
        .collect()
}

fn deletes(keys: &[&str], revision: i64) -> Vec<(EventType, String, i64)> {
    keys.iter()
        .map(|k| (EventType::Delete, k.to_string(), revision))
        .collect()
}

async fn grant_ids_and_ttls(mut client: Client) {
    let revision = current(&mut client).await;
    let automatic = client.lease_grant(LONG_TTL_S, None).await.expect("grant");
    assert!(automatic.id() > 0, "the server picks a positive id");
    assert_eq!((automatic.ttl(), automatic.error()), (LONG_TTL_S, ""));
    let another = grant(&mut client, LONG_TTL_S).await;
    assert!(another > 0 && another != automatic.id(), "a fresh id");

    let chosen = Some(LeaseGrantOptions::new().with_id(CHOSEN_ID));
    let chosen = client.lease_grant(LONG_TTL_S, chosen).await.expect("grant");
    assert_eq!((chosen.id(), chosen.ttl()), (CHOSEN_ID, LONG_TTL_S));
    for id in [CHOSEN_ID, automatic.id()] {
        let again = Some(LeaseGrantOptions::new().with_id(id));
        let again = client.lease_grant(LONG_TTL_S + 1, again).await;
        assert_status(again, Code::FailedPrecondition, LEASE_EXISTS);
    }
    let kept = time_to_live(&mut client, CHOSEN_ID).await;
    assert_eq!(
        kept.granted_ttl(),
        LONG_TTL_S,
        "a refused grant changes nothing"
    );

    // Below the minimum: raised to it (zero and negative TTLs too).
    for ttl_s in [1, 0, -5] {
        let short = grant(&mut client, ttl_s).await;
        let granted = time_to_live(&mut client, short).await.granted_ttl();
        assert_eq!(granted, MIN_TTL_S, "TTL {ttl_s} raised to the minimum");
    }
    let longest = client.lease_grant(MAX_TTL_S, None).await.expect("grant");
    assert_eq!(longest.ttl(), MAX_TTL_S, "the maximum TTL is allowed");
    let too_long = client.lease_grant(MAX_TTL_S + 1, None).await;
    assert_status(too_long, Code::OutOfRange, TTL_TOO_LARGE);
    assert_eq!(
        current(&mut client).await,
        revision,
        "grants write no revision"
    );
}

async fn puts_and_txns_attach_keys(mut client: Client) {
    let lease = grant(&mut client, LONG_TTL_S).await;
    let revision = put_leased(&mut client, "a", lease).await;
    let got = client.get("a", None).await.expect("get");
    assert_eq!(
        (got.kvs()[0].lease(), got.kvs()[0].mod_revision()),
        (lease, revision)
    );

    let options = Some(PutOptions::new().with_lease(lease));
    let txn = Txn::new().and_then([TxnOp::put("b", "v", options)]);
    assert!(client
        .txn(txn)
        .await
        .expect("txn put with a lease")
        .succeeded());
    let got = client.get("b", None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), lease);
    assert_eq!(attached_keys(&mut client, lease).await, ["a", "b"]);

    // An unknown lease refuses the put, alone or in a txn, and writes nothing.
    let revision = current(&mut client).await;
    let unknown = Some(PutOptions::new().with_lease(UNKNOWN_ID));
    let put = client.put("c", "v", unknown.clone()).await;
    assert_status(put, Code::NotFound, LEASE_NOT_FOUND);
    let txn = Txn::new().and_then([TxnOp::put("d", "v", None), TxnOp::put("c", "v", unknown)]);
    assert_status(client.txn(txn).await, Code::NotFound, LEASE_NOT_FOUND);
    assert_eq!(current(&mut client).await, revision, "nothing written");
    assert_eq!(keys_under(&mut client, "").await, ["a", "b"]);
}

async fn time_to_live_reports_ttl_and_keys(mut client: Client) {
    let lease = grant(&mut client, LONG_TTL_S).await;
    for key in ["z", "x", "y"] {
        put_leased(&mut client, key, lease).await;
    }
    let answer = client.lease_time_to_live(lease, None).await.expect("ttl");
    assert_eq!((answer.id(), answer.granted_ttl()), (lease, LONG_TTL_S));
    assert!(
        answer.ttl() > 0 && answer.ttl() <= LONG_TTL_S,
        "remaining TTL {} of {LONG_TTL_S}",
        answer.ttl()
    );
    assert!(answer.keys().is_empty(), "keys only when asked for");
    assert_eq!(attached_keys(&mut client, lease).await, ["x", "y", "z"]);

    // A put with another lease moves the key; a delete detaches it.
    let other = grant(&mut client, LONG_TTL_S).await;
    put_leased(&mut client, "y", other).await;
    client.delete("x", None).await.expect("delete");
    assert_eq!(attached_keys(&mut client, lease).await, ["z"]);
    assert_eq!(attached_keys(&mut client, other).await, ["y"]);

    assert_gone(&mut client, UNKNOWN_ID).await;
}

async fn leases_lists_every_lease(mut client: Client) {
    assert_eq!(
        lease_ids(&mut client).await,
        BTreeSet::new(),
        "a fresh cluster"
    );
    let automatic = grant(&mut client, LONG_TTL_S).await;
    let chosen = Some(LeaseGrantOptions::new().with_id(CHOSEN_ID));
    client.lease_grant(LONG_TTL_S, chosen).await.expect("grant");
    let another = grant(&mut client, LONG_TTL_S + 1).await;
    assert_eq!(
        lease_ids(&mut client).await,
        BTreeSet::from([automatic, CHOSEN_ID, another])
    );
    client.lease_revoke(automatic).await.expect("revoke");
    assert_eq!(
        lease_ids(&mut client).await,
        BTreeSet::from([CHOSEN_ID, another])
    );
}

async fn keep_alive_answers_the_granted_ttl(mut client: Client) {
    let (first_ttl_s, second_ttl_s, third_ttl_s) = (LONG_TTL_S, LONG_TTL_S + 100, LONG_TTL_S + 200);
    let first = grant(&mut client, first_ttl_s).await;
    let second = grant(&mut client, second_ttl_s).await;
    let third = grant(&mut client, third_ttl_s).await;
    let (mut keeper, mut stream) = client.lease_keep_alive(first).await.expect("keep-alive");
    assert_eq!(keeper.id(), first);
    for _ in 0..3 {
        keeper.keep_alive().await.expect("send a keep-alive");
        assert_eq!(next_answer(&mut stream).await, (first, first_ttl_s));
    }

    // Several leases on one stream, answered in the order asked.
    for lease in [second, third, first] {
        send_keep_alive(&keeper, lease).await;
    }
    assert_eq!(next_answer(&mut stream).await, (second, second_ttl_s));
    assert_eq!(next_answer(&mut stream).await, (third, third_ttl_s));
    assert_eq!(next_answer(&mut stream).await, (first, first_ttl_s));

    // A lease that is not there, or no longer: TTL 0; the stream lives on.
    send_keep_alive(&keeper, UNKNOWN_ID).await;
    assert_eq!(next_answer(&mut stream).await, (UNKNOWN_ID, 0));
    client.lease_revoke(second).await.expect("revoke");
    send_keep_alive(&keeper, second).await;
    assert_eq!(next_answer(&mut stream).await, (second, 0));
    keeper.keep_alive().await.expect("send a keep-alive");
    assert_eq!(next_answer(&mut stream).await, (first, first_ttl_s));
    assert_keep_alive_refused(&mut client, UNKNOWN_ID).await;
    assert_keep_alive_refused(&mut client, second).await;
}

async fn revoke_deletes_attached_keys_in_one_revision(mut client: Client) {
    let lease = grant(&mut client, LONG_TTL_S).await;
    let mut watcher = watch_prefix(&mut client, "r/").await;
    for key in ["r/c", "r/a", "r/b"] {
        put_leased(&mut client, key, lease).await;
    }
    client.put("r/plain", "v", None).await.expect("put");
    for _ in 0..4 {
        next_watched(&mut watcher, ARRIVES).await;
    }

    let before = current(&mut client).await;
    let revoked = client.lease_revoke(lease).await.expect("revoke");
    let revision = revoked.header().expect("header").revision();
    assert_eq!(revision, before + 1, "one revision for every key");
    let deleted = next_watched(&mut watcher, ARRIVES).await;
    assert_eq!(
        events(&deleted),
        deletes(&["r/a", "r/b", "r/c"], revision),
        "one response, in key order"
    );
    quiet(&mut watcher).await;
    assert_eq!(keys_under(&mut client, "r/").await, ["r/plain"]);
    assert_gone(&mut client, lease).await;
    assert!(!lease_ids(&mut client).await.contains(&lease));

    for lease in [lease, UNKNOWN_ID] {
        let again = client.lease_revoke(lease).await;
        assert_status(again, Code::NotFound, LEASE_NOT_FOUND);
    }
    // A lease without keys: its revoke deletes nothing, writes no revision.
    let empty = grant(&mut client, LONG_TTL_S).await;
    let revoked = client.lease_revoke(empty).await.expect("revoke");
    assert_eq!(revoked.header().expect("header").revision(), revision);
    quiet(&mut watcher).await;
}

async fn an_unrenewed_lease_expires(mut client: Client) {
    let ttl = Duration::from_secs(MIN_TTL_S as u64);
    let mut watcher = watch_prefix(&mut client, "e/").await;
    let asked = Instant::now();
    let lease = grant(&mut client, MIN_TTL_S).await;
    let granted = Instant::now();
    for key in ["e/b", "e/a"] {
        put_leased(&mut client, key, lease).await;
    }
    client.put("e/plain", "v", None).await.expect("put");
    for _ in 0..3 {
        next_watched(&mut watcher, ARRIVES).await;
    }

    tokio::time::sleep_until((asked + ttl / 2).into()).await;
    let alive = keys_under(&mut client, "e/").await;
    // Only a read answered before the TTL passed must still see the keys.
    if asked.elapsed() < ttl {
        assert_eq!(alive, ["e/a", "e/b", "e/plain"], "alive within its TTL");
    }

    let deadline = granted + ttl + EXPIRY_GRACE;
    let expired = next_watched(
        &mut watcher,
        deadline.saturating_duration_since(Instant::now()),
    )
    .await;
    assert!(asked.elapsed() >= ttl, "expired before its TTL");
    let revision = expired.header().expect("header").revision();
    assert_eq!(
        events(&expired),
        deletes(&["e/a", "e/b"], revision),
        "the expiry deletes every key in one revision"
    );
    assert_eq!(keys_under(&mut client, "e/").await, ["e/plain"]);
    assert_gone(&mut client, lease).await;

    let other = grant(&mut client, LONG_TTL_S).await;
    let (keeper, mut stream) = client.lease_keep_alive(other).await.expect("keep-alive");
    send_keep_alive(&keeper, lease).await;
    assert_eq!(next_answer(&mut stream).await, (lease, 0));
    assert_keep_alive_refused(&mut client, lease).await;
    quiet(&mut watcher).await;
}

async fn a_renewed_lease_outlives_its_ttl(mut client: Client) {
    const TTL_S: i64 = 3;
    const RENEW_EVERY: Duration = Duration::from_secs(1);
    const RENEW_FOR: Duration = Duration::from_secs(8);
    let renewed = grant(&mut client, TTL_S).await;
    // Granted with it and never renewed: shows the TTLs did pass.
    let control = grant(&mut client, TTL_S).await;
    put_leased(&mut client, "k/renewed", renewed).await;
    put_leased(&mut client, "k/control", control).await;

    let (mut keeper, mut stream) = client.lease_keep_alive(renewed).await.expect("keep-alive");
    let start = Instant::now();
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    while start.elapsed() < RENEW_FOR {
        ticks.tick().await;
        keeper.keep_alive().await.expect("send a keep-alive");
        assert_eq!(next_answer(&mut stream).await, (renewed, TTL_S));
    }
    assert_eq!(keys_under(&mut client, "k/").await, ["k/renewed"]);
    let answer = time_to_live(&mut client, renewed).await;
    assert!(answer.ttl() > 0 && answer.ttl() <= TTL_S, "{answer:?}");
    assert_gone(&mut client, control).await;
}

/// Grants and revokes go through raft from any member; renewals and
/// TimeToLive are the leader's, which a follower forwards.
async fn a_follower_forwards_to_the_leader(mut follower: Client, mut leader: Client) {
    let lease = grant(&mut follower, LONG_TTL_S).await;
    put_leased(&mut follower, "f/a", lease).await;
    let got = leader.get("f/a", None).await.expect("get on the leader");
    assert_eq!(got.kvs()[0].lease(), lease);

    let answer = time_to_live(&mut follower, lease).await;
    assert_eq!(answer.granted_ttl(), LONG_TTL_S);
    assert!(answer.ttl() > 0 && answer.ttl() <= LONG_TTL_S, "{answer:?}");
    assert_eq!(attached_keys(&mut follower, lease).await, ["f/a"]);
    assert_gone(&mut follower, UNKNOWN_ID).await;
    assert!(lease_ids(&mut follower).await.contains(&lease));

    let (mut keeper, mut stream) = follower.lease_keep_alive(lease).await.expect("keep-alive");
    for _ in 0..2 {
        keeper.keep_alive().await.expect("send a keep-alive");
        assert_eq!(next_answer(&mut stream).await, (lease, LONG_TTL_S));
    }
    send_keep_alive(&keeper, UNKNOWN_ID).await;
    assert_eq!(next_answer(&mut stream).await, (UNKNOWN_ID, 0));

    follower
        .lease_revoke(lease)
        .await
        .expect("revoke through a follower");
    let got = leader.get("f/a", None).await.expect("get on the leader");
    assert!(got.kvs().is_empty(), "the revoke deleted the key");
    assert_gone(&mut follower, lease).await;
    send_keep_alive(&keeper, lease).await;
    assert_eq!(next_answer(&mut stream).await, (lease, 0));
    let again = follower.lease_revoke(lease).await;
    assert_status(again, Code::NotFound, LEASE_NOT_FOUND);
}
