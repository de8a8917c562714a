//! The Election and Lock services through the real `etcd-client` crate,
//! each area run against etcd 3.4 (proving the expectations are etcd's)
//! and ironcd: campaign, leader, proclaim, re-campaign and resign; a
//! second candidate waiting for the leader to go; observe following
//! leader after leader; lock and unlock with fencing tokens that only
//! grow; a waiter getting the lock when the holder unlocks or its lease
//! is revoked; the session lease a call without a lease is given; a
//! cancelled wait leaving no key behind; and etcd's errors.
//!
//! Where ironcd goes past etcd (the `ironcd_only` areas): a waiter whose
//! lease expires stops waiting at once with etcd 3.5's "session is
//! expired" error (etcd 3.4 waits on, and answers a lock the lease no
//! longer holds once the holder goes: etcd #11456).

#[macro_use]
mod areas;
mod client;

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Error, GetOptions, LeaseTimeToLiveOptions, LockOptions, ProclaimOptions, ResignOptions,
};
use ironcd_tests::{Cluster, Opts, Server};
use tokio::task::JoinHandle;
use tonic::Code;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an answer may take to arrive.
const ARRIVES: Duration = Duration::from_secs(10);
/// How long the tests wait to see that a call keeps waiting.
const QUIET: Duration = Duration::from_millis(700);

const NO_LEADER: &str = "election: no leader";
const NOT_LEADER: &str = "election: not leader";
const MISSING_LEADER: &str = "\"leader\" field must be provided";
const SESSION_EXPIRED: &str = "mutex: session is expired";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// One-member clusters' election timeout: etcd's minimum TTL is then 2 s.
const ELECTION_TIMEOUT_MS: u64 = 1000;
/// A TTL no test outlives.
const LONG_TTL_S: i64 = 600;
/// The TTL of a waiter's lease the tests let expire.
const SHORT_TTL_S: i64 = 2;
/// The lease a call without one is given (etcd's `defaultSessionTTL`).
const SESSION_TTL_S: i64 = 60;
/// An id no test grants.
const UNKNOWN_LEASE: i64 = 0x7777;

on_both_implementations!(
    run: [
        campaign_leads_proclaims_and_resigns,
        a_second_candidate_waits_for_the_leader,
        observe_follows_each_leader,
        lock_answers_a_fencing_token_and_unlock_frees_it,
        a_waiting_lock_passes_on_when_the_holder_goes,
        a_call_without_a_lease_gets_a_session_lease,
        a_cancelled_wait_leaves_no_key,
        errors_are_etcds,
    ],
);

/// Behaviour etcd 3.4 does not have (see the module comment).
mod ironcd_only {
    #[test]
    fn a_wait_ends_when_its_lease_expires() {
        super::run(
            ironcd_tests::ironcd!(),
            "a_wait_ends_when_its_lease_expires",
            super::a_wait_ends_when_its_lease_expires,
        );
    }
}

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
    client
        .lease_grant(ttl_s, None)
        .await
        .expect("lease grant")
        .id()
}

/// `<name>/<lease in hex>`, the key etcd gives a participant.
fn participant(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

/// The keys under `prefix`, in key order.
async fn keys_under(client: &mut Client, prefix: &str) -> Vec<String> {
    let options = Some(GetOptions::new().with_prefix().with_keys_only());
    let got = client.get(prefix, options).await.expect("get");
    got.kvs()
        .iter()
        .map(|kv| kv.key_str().expect("utf-8").to_string())
        .collect()
}

/// The create revision of `key`, if it exists.
async fn created(client: &mut Client, key: &str) -> Option<i64> {
    let got = client.get(key, None).await.expect("get");
    got.kvs().first().map(|kv| kv.create_revision())
}

/// The current leader's key and value of election `name`.
async fn leader_of(client: &mut Client, name: &str) -> (String, String) {
    let answer = client.leader(name).await.expect("leader");
    let kv = answer.kv().expect("the leader's key value");
    let key = kv.key_str().expect("utf-8").to_string();
    (key, kv.value_str().expect("utf-8").to_string())
}

/// `task` is still running after [`QUIET`].
async fn assert_waiting<T>(task: &JoinHandle<T>, what: &str) {
    tokio::time::sleep(QUIET).await;
    assert!(!task.is_finished(), "{what} should still be waiting");
}

async fn joined<T>(task: JoinHandle<T>, what: &str) -> T {
    tokio::time::timeout(ARRIVES, task)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
        .expect("task")
}

async fn campaign_leads_proclaims_and_resigns(mut client: Client) {
    let lease = grant(&mut client, LONG_TTL_S).await;
    let won = client.campaign("e", "v1", lease).await.expect("campaign");
    let leader = won.leader().expect("the leader key").clone();
    let header_rev = won.header().expect("header").revision();
    assert_eq!(leader.name(), b"e");
    assert_eq!(leader.key_str().unwrap(), participant("e", lease));
    assert_eq!(leader.lease(), lease);
    assert_eq!(
        leader.rev(),
        header_rev,
        "the key was created by the campaign"
    );
    assert_eq!(
        created(&mut client, &participant("e", lease)).await,
        Some(leader.rev())
    );
    assert_eq!(
        leader_of(&mut client, "e").await,
        (participant("e", lease), "v1".to_string())
    );

    let with_leader = || Some(ProclaimOptions::new().with_leader(leader.clone()));
    let proclaimed = client
        .proclaim("v2", with_leader())
        .await
        .expect("proclaim");
    assert_eq!(proclaimed.header().unwrap().revision(), header_rev + 1);
    assert_eq!(leader_of(&mut client, "e").await.1, "v2");

    // Campaigning again on the same lease keeps the key, with the new value.
    let again = client
        .campaign("e", "v3", lease)
        .await
        .expect("re-campaign");
    let again_leader = again.leader().expect("leader key");
    assert_eq!(
        (again_leader.key(), again_leader.rev()),
        (leader.key(), leader.rev()),
        "the same key, created at the same revision"
    );
    assert_eq!(leader_of(&mut client, "e").await.1, "v3");

    let resign = || Some(ResignOptions::new().with_leader(leader.clone()));
    client.resign(resign()).await.expect("resign");
    assert!(keys_under(&mut client, "e/").await.is_empty());
    assert_status(client.leader("e").await, Code::Unknown, NO_LEADER);
    // A former leader can neither proclaim nor do harm by resigning again.
    assert_status(
        client.proclaim("v4", with_leader()).await,
        Code::Unknown,
        NOT_LEADER,
    );
    client.resign(resign()).await.expect("a second resign");
}

async fn a_second_candidate_waits_for_the_leader(mut client: Client) {
    let (first, second) = (
        grant(&mut client, LONG_TTL_S).await,
        grant(&mut client, LONG_TTL_S).await,
    );
    let won = client.campaign("e", "a", first).await.expect("campaign");
    let leader = won.leader().unwrap().clone();
    let mut other = client.clone();
    let waiting = tokio::spawn(async move { other.campaign("e", "b", second).await });
    assert_waiting(&waiting, "the second campaign").await;
    // The waiting candidate is a participant already, behind the leader.
    assert_eq!(
        keys_under(&mut client, "e/").await.len(),
        2,
        "both candidates' keys"
    );
    assert_eq!(leader_of(&mut client, "e").await.1, "a");

    let resign = ResignOptions::new().with_leader(leader.clone());
    client.resign(Some(resign)).await.expect("resign");
    let next = joined(waiting, "the second campaign")
        .await
        .expect("campaign");
    let next_leader = next.leader().unwrap();
    assert_eq!(next_leader.key_str().unwrap(), participant("e", second));
    assert!(next_leader.rev() > leader.rev());
    assert_eq!(
        leader_of(&mut client, "e").await,
        (participant("e", second), "b".to_string())
    );
}

async fn observe_follows_each_leader(mut client: Client) {
    let (first, second) = (
        grant(&mut client, LONG_TTL_S).await,
        grant(&mut client, LONG_TTL_S).await,
    );
    // etcd answers an observe's headers only with its first leader, so the
    // observer starts once there is one.
    let won = client.campaign("e", "a1", first).await.expect("campaign");
    let mut stream = client.observe("e").await.expect("observe");
    let leader = won.leader().unwrap().clone();
    assert_eq!(
        next_leader(&mut stream).await,
        (participant("e", first), "a1".to_string())
    );
    let proclaim = ProclaimOptions::new().with_leader(leader.clone());
    client
        .proclaim("a2", Some(proclaim))
        .await
        .expect("proclaim");
    assert_eq!(
        next_leader(&mut stream).await,
        (participant("e", first), "a2".to_string())
    );

    let mut other = client.clone();
    let waiting = tokio::spawn(async move { other.campaign("e", "b1", second).await });
    assert_waiting(&waiting, "the second campaign").await;
    let resign = ResignOptions::new().with_leader(leader);
    client.resign(Some(resign)).await.expect("resign");
    assert_eq!(
        next_leader(&mut stream).await,
        (participant("e", second), "b1".to_string())
    );
    joined(waiting, "the second campaign")
        .await
        .expect("campaign");

    // A new observer starts from the current leader.
    let mut late = client.observe("e").await.expect("observe");
    let first_seen = tokio::time::timeout(ARRIVES, late.message()).await;
    let first_seen = first_seen.expect("the current leader").expect("observe");
    let kv = first_seen.expect("a message").kv().unwrap().clone();
    assert_eq!(kv.value_str().unwrap(), "b1");
}

async fn lock_answers_a_fencing_token_and_unlock_frees_it(mut client: Client) {
    let lease = grant(&mut client, LONG_TTL_S).await;
    let options = || Some(LockOptions::new().with_lease(lease));
    let locked = client.lock("l", options()).await.expect("lock");
    let key = participant("l", lease);
    assert_eq!(locked.key(), key.as_bytes());
    let token = locked.header().unwrap().revision();
    assert_eq!(
        created(&mut client, &key).await,
        Some(token),
        "the fencing token"
    );
    let got = client.get(key.as_str(), None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), lease, "the key is the lease's");
    assert_eq!(got.kvs()[0].value(), b"", "the lock key holds no value");

    // The lease holds the lock already: Lock answers at once, same key.
    let again = client.lock("l", options()).await.expect("lock again");
    assert_eq!(again.key(), key.as_bytes());
    assert_eq!(created(&mut client, &key).await, Some(token));

    let unlocked = client.unlock(key.as_str()).await.expect("unlock");
    assert_eq!(unlocked.header().unwrap().revision(), token + 1);
    assert!(keys_under(&mut client, "l/").await.is_empty());
    // Unlocking a lock nobody holds is not an error.
    client.unlock(key.as_str()).await.expect("unlock again");

    let relocked = client
        .lock("l", options())
        .await
        .expect("lock after unlock");
    assert!(
        relocked.header().unwrap().revision() > token,
        "fencing tokens only grow"
    );
}

async fn a_waiting_lock_passes_on_when_the_holder_goes(mut client: Client) {
    let leases = [
        grant(&mut client, LONG_TTL_S).await,
        grant(&mut client, LONG_TTL_S).await,
        grant(&mut client, LONG_TTL_S).await,
    ];
    let lock_on = |client: &Client, lease: i64| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let options = Some(LockOptions::new().with_lease(lease));
            client.lock("l", options).await
        })
    };
    let first = client
        .lock("l", Some(LockOptions::new().with_lease(leases[0])))
        .await
        .expect("lock");
    let first_token = first.header().unwrap().revision();

    let second = lock_on(&client, leases[1]);
    assert_waiting(&second, "the second lock").await;
    client.unlock(first.key()).await.expect("unlock");
    let second = joined(second, "the second lock").await.expect("lock");
    assert_eq!(second.key(), participant("l", leases[1]).as_bytes());
    let second_token = second.header().unwrap().revision();
    assert!(second_token > first_token, "fencing tokens only grow");

    // Revoking the holder's lease deletes its key and passes the lock on.
    let third = lock_on(&client, leases[2]);
    assert_waiting(&third, "the third lock").await;
    client.lease_revoke(leases[1]).await.expect("revoke");
    let third = joined(third, "the third lock").await.expect("lock");
    assert_eq!(third.key(), participant("l", leases[2]).as_bytes());
    assert!(third.header().unwrap().revision() > second_token);
    assert_eq!(
        keys_under(&mut client, "l/").await,
        vec![participant("l", leases[2])]
    );
}

async fn a_call_without_a_lease_gets_a_session_lease(mut client: Client) {
    let locked = client.lock("l", None).await.expect("lock");
    let key = String::from_utf8(locked.key().to_vec()).unwrap();
    let won = client.campaign("e", "v", 0).await.expect("campaign");
    let leader = won.leader().unwrap().clone();
    assert_eq!(leader.key_str().unwrap(), participant("e", leader.lease()));
    let lock_lease = key
        .strip_prefix("l/")
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .expect("the key names its lease in hex");
    assert_ne!(lock_lease, leader.lease(), "each call has its own lease");
    for lease in [lock_lease, leader.lease()] {
        let options = Some(LeaseTimeToLiveOptions::new().with_keys());
        let ttl = client
            .lease_time_to_live(lease, options)
            .await
            .expect("ttl");
        assert_eq!(ttl.granted_ttl(), SESSION_TTL_S);
        assert!(ttl.ttl() > 0 && ttl.ttl() <= SESSION_TTL_S, "{}", ttl.ttl());
        assert_eq!(ttl.keys().len(), 1, "the lease holds the call's key");
    }
}

async fn a_cancelled_wait_leaves_no_key(mut client: Client) {
    let (holder, waiter) = (
        grant(&mut client, LONG_TTL_S).await,
        grant(&mut client, LONG_TTL_S).await,
    );
    client
        .lock("l", Some(LockOptions::new().with_lease(holder)))
        .await
        .expect("lock");
    client.campaign("e", "a", holder).await.expect("campaign");

    // Dropping the call cancels it on the server.
    let gave_up = tokio::time::timeout(
        QUIET,
        client.lock("l", Some(LockOptions::new().with_lease(waiter))),
    )
    .await;
    assert!(gave_up.is_err(), "the lock must wait: {gave_up:?}");
    let gave_up = tokio::time::timeout(QUIET, client.campaign("e", "b", waiter)).await;
    assert!(gave_up.is_err(), "the campaign must wait: {gave_up:?}");

    let only_holder = |name: &str| vec![participant(name, holder)];
    let deadline = tokio::time::Instant::now() + ARRIVES;
    loop {
        let (locks, candidates) = (
            keys_under(&mut client, "l/").await,
            keys_under(&mut client, "e/").await,
        );
        if locks == only_holder("l") && candidates == only_holder("e") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cancelled waiters' keys stay: {locks:?} {candidates:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn errors_are_etcds(mut client: Client) {
    assert_status(client.leader("nobody").await, Code::Unknown, NO_LEADER);
    assert_status(
        client.proclaim("v", None).await,
        Code::Unknown,
        MISSING_LEADER,
    );
    assert_status(client.resign(None).await, Code::Unknown, MISSING_LEADER);
    assert_status(
        client.campaign("e", "v", UNKNOWN_LEASE).await,
        Code::Unknown,
        LEASE_NOT_FOUND,
    );
    let options = Some(LockOptions::new().with_lease(UNKNOWN_LEASE));
    assert_status(
        client.lock("l", options).await,
        Code::Unknown,
        LEASE_NOT_FOUND,
    );
    assert!(
        keys_under(&mut client, "").await.is_empty(),
        "nothing was written"
    );
}

async fn a_wait_ends_when_its_lease_expires(mut client: Client) {
    let holder = grant(&mut client, LONG_TTL_S).await;
    client
        .lock("l", Some(LockOptions::new().with_lease(holder)))
        .await
        .expect("lock");
    client.campaign("e", "a", holder).await.expect("campaign");

    let short = grant(&mut client, SHORT_TTL_S).await;
    let mut other = client.clone();
    let lock = tokio::spawn(async move {
        let options = Some(LockOptions::new().with_lease(short));
        other.lock("l", options).await
    });
    let mut other = client.clone();
    let campaign = tokio::spawn(async move { other.campaign("e", "b", short).await });
    assert_status(
        joined(lock, "the lock").await,
        Code::Unknown,
        SESSION_EXPIRED,
    );
    assert_status(
        joined(campaign, "the campaign").await,
        Code::Unknown,
        NOT_LEADER,
    );
    assert_eq!(
        keys_under(&mut client, "l/").await,
        vec![participant("l", holder)]
    );
    assert_eq!(
        keys_under(&mut client, "e/").await,
        vec![participant("e", holder)]
    );
}

/// The next leader an observe stream reports, as (key, value).
async fn next_leader(stream: &mut etcd_client::ObserveStream) -> (String, String) {
    let message = tokio::time::timeout(ARRIVES, stream.message()).await;
    let message = message.expect("an observed leader").expect("observe");
    let kv = message.expect("the stream goes on").kv().unwrap().clone();
    (
        kv.key_str().unwrap().to_string(),
        kv.value_str().unwrap().to_string(),
    )
}
