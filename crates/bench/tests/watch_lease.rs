//! The Watch and Lease workloads against etcd 3.4 and ironcd (in this
//! process): counts, and what the workloads leave behind.

mod support;

use etcd_client::GetOptions;
use support::{assert_clean, bench, client, Etcd, Ironcd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_lease_workloads_against_etcd() {
    let etcd = Etcd::start().await;
    watch_and_lease_workloads(etcd.endpoint.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_lease_workloads_against_ironcd() {
    let server = Ironcd::start(&[]).await;
    watch_and_lease_workloads(&server.endpoint).await;
    server.stop().await;
}

async fn watch_and_lease_workloads(ep: &str) {
    // watch: every put reaches every watcher, with its put→event latency.
    let args = "--clients 4 --conns 2 --total 200 --key-size 8 --val-size 16 \
                --key-space-size 50 --key-prefix /w/ watch --watchers 5";
    let report = bench(ep, args).await;
    assert_eq!(report.not_served, None);
    assert_clean(&report, 1000);
    assert_eq!(report.extra["puts"], 200);
    assert_eq!(report.extra["watchers"], 5);
    assert!(report.to_text().contains("Events/sec:"));

    // The same by time: events are puts × watchers.
    let args = "--clients 2 --duration 300ms --val-size 8 --key-size 6 --key-prefix /wd/ \
                watch --watchers 3";
    let report = bench(ep, args).await;
    let puts = report.extra["puts"].as_u64().unwrap();
    assert!(puts > 0);
    assert_clean(&report, puts * 3);

    // A value too short for the send time is refused up front.
    let cli = support::cli(ep, "--val-size 4 watch");
    let err = ironcd_bench::run(&cli.global, &cli.workload)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("--val-size of at least 8"),
        "{err}"
    );

    // watch-get: each request is one watch on a historical revision.
    let args = "--clients 8 --conns 2 --total 40 --key-size 8 --key-space-size 20 \
                --key-prefix /wg/ watch-get";
    assert_clean(&bench(ep, args).await, 40);

    let mut c = client(ep).await;
    // lease-keepalive: one lease per client, revoked at the end.
    let report = bench(ep, "--clients 4 --conns 2 --total 200 lease-keepalive").await;
    assert_eq!(report.not_served, None);
    assert_clean(&report, 200);
    let leases = c.leases().await.unwrap();
    assert!(leases.leases().is_empty(), "keep-alive leases are revoked");

    // lease-grant-revoke: the revoke deletes the keys attached.
    let args = "--clients 4 --total 50 --key-size 8 --key-space-size 1000 --key-prefix /l/ \
                lease-grant-revoke --keys-per-lease 3";
    assert_clean(&bench(ep, args).await, 50);
    let options = GetOptions::new().with_prefix().with_count_only();
    let left = c.get("/l/", Some(options)).await.unwrap();
    assert_eq!(left.count(), 0, "revoked leases leave no keys");
    assert!(c.leases().await.unwrap().leases().is_empty());
}
