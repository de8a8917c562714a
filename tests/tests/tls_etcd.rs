//! The harness against the reference server over TLS: etcd 3.4 members
//! with https client and peer URLs, each side requiring certificates from
//! a [`Pki`] made by the test, reached by the harness's own etcdctl runs
//! (leader waits, `move-leader`, `member add`) and by the test's.

use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::status::parse_status;
use ironcd_tests::{etcdctl_tls_args, etcdctl_with_flags, Cluster, Opts, Pki, Server};

/// How long a joined learner may take to hold the leader's data.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Enough of a member's log to hold its rejections of every bad client
/// (etcdctl retries each a few times within its dial timeout).
const REJECTIONS_LOG_LINES: usize = 1000;

fn stdout_of(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_etcd_cluster_over_mutual_tls_serves_good_certificates_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let client = pki.client("client").unwrap();
    let revoked = pki.client("revoked").unwrap();
    let crl = pki.crl("revocations", &[&revoked]).unwrap();
    let mut opts = Opts::tls(&pki, &member, &client);
    opts.extra_args
        .push(format!("--client-crl-file={}", crl.display()));
    let cluster = Cluster::start(Server::etcd(), 3, opts);
    assert!(cluster.endpoint(0).starts_with("https://127.0.0.1:"));

    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % cluster.len();
    let put = cluster.etcdctl(&[cluster.host_port(leader)], &["put", "k", "v"]);
    stdout_of(&put, "put over TLS");
    let get = cluster.etcdctl(
        &[cluster.host_port(follower)],
        &["get", "k", "--print-value-only"],
    );
    assert_eq!(stdout_of(&get, "get over TLS"), "v\n");
    cluster.ensure_leader(follower);
    assert_eq!(cluster.wait_for_leader(), follower);

    // The same request with one thing wrong each time fails, and the
    // member says why (etcdctl only sees its dial time out); the good
    // client above shows that nothing else is wrong. Each failure waits
    // out etcdctl's dial timeout, so they run side by side.
    let ca = pki.ca_cert().display().to_string();
    let rejected = [
        (
            "no TLS",
            Vec::new(),
            "first record does not look like a TLS handshake",
        ),
        (
            "no client certificate",
            vec![format!("--cacert={ca}")],
            "client didn't provide a certificate",
        ),
        (
            "an expired client certificate",
            etcdctl_tls_args(pki.ca_cert(), &pki.expired_client("expired").unwrap()),
            "certificate has expired",
        ),
        (
            "a client certificate from another CA",
            etcdctl_tls_args(pki.ca_cert(), &pki.wrong_ca_client("stranger").unwrap()),
            "certificate signed by unknown authority",
        ),
        (
            "a revoked client certificate",
            etcdctl_tls_args(pki.ca_cert(), &revoked),
            "revoked",
        ),
        (
            "a client that trusts another CA",
            etcdctl_tls_args(pki.wrong_ca_cert(), &client),
            "remote error: tls: bad certificate",
        ),
    ];
    let endpoint = [cluster.host_port(0)];
    thread::scope(|scope| {
        for (what, flags, _) in &rejected {
            let endpoint = &endpoint;
            scope.spawn(move || {
                let out = etcdctl_with_flags(endpoint, flags, &["get", "k"], None);
                assert!(
                    !out.status.success(),
                    "{what} was served: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            });
        }
    });
    let log = cluster.log_tail(0, REJECTIONS_LOG_LINES);
    for (what, _, reason) in &rejected {
        assert!(
            log.lines()
                .any(|line| line.contains("rejected connection") && line.contains(reason)),
            "{what}: no rejection for {reason:?} in the member's log\n{log}"
        );
    }
}

#[test]
fn a_learner_joins_an_etcd_cluster_over_tls_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let client = pki.client("client").unwrap();
    let cluster = Cluster::start(Server::etcd(), 1, Opts::tls(&pki, &member, &client));
    let leader = cluster.wait_for_leader();
    let put = cluster.etcdctl(&[cluster.host_port(leader)], &["put", "k", "v"]);
    stdout_of(&put, "put over TLS");
    let want_revision = cluster.status(leader).expect("the leader answers").revision;

    let tls_flags: Vec<&str> = cluster
        .opts()
        .extra_args
        .iter()
        .map(String::as_str)
        .collect();
    let mut learner = cluster.join("learner", true, &tls_flags);
    assert!(learner.client_url.starts_with("https://127.0.0.1:"));
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        if let Some(status) = learner.exited() {
            panic!("the learner exited ({status}):\n{}", learner.log_tail(40));
        }
        let out = cluster.etcdctl(
            std::slice::from_ref(&learner.host_port),
            &["endpoint", "status", "-w", "json"],
        );
        let status = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|json| parse_status(&json[0]["Status"]));
        if let Some(status) = status {
            assert!(status.is_learner, "{status:?}");
            if status.revision == want_revision {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the learner did not reach revision {want_revision} within {CATCH_UP_TIMEOUT:?}: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            learner.log_tail(40),
            cluster.all_log_tails(20)
        );
        thread::sleep(POLL_INTERVAL);
    }
}
