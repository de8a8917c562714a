//! The KV workloads (and the binary's output) against ironcd running in
//! this process: each run's counts, and what it left in the store.

mod support;

use std::process::Command;

use etcd_client::GetOptions;
use support::{assert_clean, bench, client, revision, Ironcd};

/// Every key under `prefix` with its value size and version.
async fn contents(endpoint: &str, prefix: &str) -> Vec<(String, usize, i64)> {
    let mut c = client(endpoint).await;
    let r = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("range");
    r.kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8(kv.key().to_vec()).unwrap();
            (key, kv.value().len(), kv.version())
        })
        .collect()
}

/// Eight clients on two connections, 12-byte keys, 32-byte values.
const COMMON: &str = "--clients 8 --conns 2 --key-size 12 --val-size 32";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_workloads_against_ironcd() {
    let server = Ironcd::start(&[]).await;
    let ep = server.endpoint.clone();
    let run = |args: &str| format!("{COMMON} {args}");

    // put: 300 puts walking 50 keys in order, 6 versions each.
    let before = revision(&ep).await;
    let args = run("--total 300 --key-space-size 50 --sequential-keys --key-prefix /put/ put");
    assert_clean(&bench(&ep, &args).await, 300);
    assert_eq!(revision(&ep).await, before + 300);
    let keys = contents(&ep, "/put/").await;
    assert_eq!(keys.len(), 50);
    assert_eq!(keys[0], ("/put/0000000".to_string(), 32, 6));
    assert!(keys
        .iter()
        .all(|k| k.0.len() == 12 && k.1 == 32 && k.2 == 6));

    // fill: 500 distinct keys in order, whatever --key-space-size says.
    let args = "--clients 16 --total 500 --key-size 16 --val-size 256 --key-prefix /fill/ fill";
    assert_clean(&bench(&ep, args).await, 500);
    let keys = contents(&ep, "/fill/").await;
    assert_eq!(keys.len(), 500);
    assert_eq!(keys[499].0, "/fill/0000000499");
    assert!(keys
        .iter()
        .all(|k| k.0.len() == 16 && k.1 == 256 && k.2 == 1));

    // range, both consistencies: the key space is written once, then only read.
    for consistency in ["l", "s"] {
        let before = revision(&ep).await;
        let prefix = format!("/range-{consistency}/");
        let args = run(&format!(
            "--total 400 --key-space-size 100 --consistency {consistency} --key-prefix {prefix} range"
        ));
        assert_clean(&bench(&ep, &args).await, 400);
        assert_eq!(revision(&ep).await, before + 100, "range must not write");
        assert_eq!(contents(&ep, &prefix).await.len(), 100);
    }

    // range-prefix: prefill, then limited ranges.
    let before = revision(&ep).await;
    let args = run("--total 200 --key-space-size 30 --key-prefix /rp/ range-prefix --limit 10");
    assert_clean(&bench(&ep, &args).await, 200);
    assert_eq!(revision(&ep).await, before + 30);

    // txn-put: every compare holds, so every txn puts.
    let before = revision(&ep).await;
    let args = run("--total 200 --key-space-size 20 --sequential-keys --key-prefix /txn/ txn-put");
    assert_clean(&bench(&ep, &args).await, 200);
    assert_eq!(revision(&ep).await, before + 200);
    assert!(contents(&ep, "/txn/").await.iter().all(|k| k.2 == 10));

    // txn-mixed: with --rw-ratio 0 every txn writes; with 1 some read.
    let before = revision(&ep).await;
    let args = run("--total 300 --key-space-size 10 --key-prefix /mx0/ txn-mixed --rw-ratio 0");
    assert_clean(&bench(&ep, &args).await, 300);
    assert_eq!(revision(&ep).await, before + 10 + 300);
    let before = revision(&ep).await;
    let args = run("--total 400 --key-space-size 10 --key-prefix /mx1/ txn-mixed --rw-ratio 1");
    assert_clean(&bench(&ep, &args).await, 400);
    let writes = revision(&ep).await - before - 10;
    assert!(
        writes > 0 && writes < 400,
        "{writes} writes of 400 at rw-ratio 1"
    );

    // --duration stops the run by time; --rate spaces the requests.
    let report = bench(&ep, "--clients 4 --duration 300ms put").await;
    assert!(report.stats.count() > 0 && report.stats.errors() == 0);
    assert!(report.elapsed.as_secs_f64() >= 0.3, "{:?}", report.elapsed);
    let report = bench(&ep, "--clients 4 --rate 100 --total 30 put").await;
    assert_clean(&report, 30);
    let secs = report.elapsed.as_secs_f64();
    assert!(secs >= 0.29, "30 requests at 100/s took {secs} s");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_and_shown() {
    let server = Ironcd::start(&["--max-request-bytes", "1024"]).await;
    let report = bench(
        &server.endpoint,
        "--clients 4 --total 20 --val-size 2048 put",
    )
    .await;
    assert_eq!(report.stats.count(), 0);
    assert_eq!(report.stats.errors(), 20);
    let first = &report.stats.first_errors()[0];
    assert!(
        first.contains("etcdserver: request is too large"),
        "{first}"
    );
    let text = report.to_text();
    assert!(
        text.contains("This run had errors: 20 of 20 requests failed"),
        "{text}"
    );
    assert_eq!(report.to_json()["errors"], 20);
    server.stop().await;
}

/// Runs the `ironcd-bench` binary with `args` split at whitespace.
fn bench_binary(args: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ironcd-bench"))
        .args(args.split_whitespace())
        .output()
        .expect("run ironcd-bench")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_etcds_summary_or_one_json_object() {
    let server = Ironcd::start(&[]).await;
    let base = format!(
        "--endpoints {} --clients 4 --conns 2 --total 100",
        server.endpoint
    );

    let text = bench_binary(&format!("{base} put"));
    assert!(text.status.success(), "{text:?}");
    let stdout = String::from_utf8(text.stdout).unwrap();
    for needle in [
        "Summary:",
        "Requests/sec:",
        "Response time histogram:",
        "Latency distribution:",
        "99.9% in",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing:\n{stdout}");
    }
    // Not a terminal: no progress bar.
    assert!(
        text.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );

    let json = bench_binary(&format!("{base} --json range"));
    assert!(json.status.success(), "{json:?}");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    assert_eq!(v["workload"], "range");
    assert_eq!(
        (v["requests"].as_u64(), v["errors"].as_u64()),
        (Some(100), Some(0))
    );
    assert_eq!(
        (v["clients"].as_u64(), v["conns"].as_u64()),
        (Some(4), Some(2))
    );
    assert!(v["requests_per_sec"].as_f64().unwrap() > 0.0);
    let latency = &v["latency_secs"];
    assert!(latency["p99.9"].as_f64().unwrap() >= latency["p10"].as_f64().unwrap());

    // Usage errors are clap's (exit 2); impossible runs are refused (exit 1).
    assert_eq!(bench_binary("--consistency x put").status.code(), Some(2));
    let small = bench_binary(&format!("{base} --key-size 2 --key-space-size 1000 put"));
    assert_eq!(small.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&small.stderr);
    assert!(
        stderr.contains("--key-size 2 cannot hold 1000 distinct keys"),
        "{stderr}"
    );
    let fill = bench_binary(&format!(
        "--endpoints {} --duration 1s fill",
        server.endpoint
    ));
    assert_eq!(fill.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fill.stderr).contains("fill needs --total N"));
    server.stop().await;
}
