//! End-to-end comparison on the way to `ironcd-bench`: the same client
//! (Rust `etcd-client`) against a one-member etcd 3.4 and a one-member
//! ironcd, one after the other on this machine. Put and linearizable get,
//! with 1 client (latency) and with many (throughput).
//!
//! `cargo bench -p ironcd-server --bench e2e`; `IRONCD_BENCH_SECS` (default
//! 5) sets each row's length, `IRONCD_BENCH_CLIENTS` (default 256) the
//! concurrency, `IRONCD_BENCH_CONNS` (default 16) the connections.

use std::time::{Duration, Instant};

use etcd_client::Client;
use hdrhistogram::Histogram;
use ironcd_tests::{ironcd, Cluster, Opts, Server};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
}

/// Runs `clients` loops of `op` over `conns` connections for `secs`;
/// returns (ops per second, p50 ms, p99 ms).
async fn run(endpoint: &str, op: Op, clients: u64, conns: u64, secs: u64) -> (f64, f64, f64) {
    let mut pool = Vec::new();
    for _ in 0..conns {
        pool.push(Client::connect([endpoint], None).await.expect("connect"));
    }
    let value = vec![b'v'; 256];
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = pool[(c % conns) as usize].clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let key = format!("{:08}{:08}", c, n % 1000);
                let start = Instant::now();
                let ok = match op {
                    Op::Put => client.put(key, value.clone(), None).await.is_ok(),
                    Op::Get => client.get(key, None).await.is_ok(),
                };
                assert!(ok, "request failed");
                hist.record(start.elapsed().as_micros() as u64).unwrap();
                n += 1;
            }
            hist
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    (all.len() as f64 / secs as f64, ms(0.5), ms(0.99))
}

fn main() {
    let secs = env("IRONCD_BENCH_SECS", 5);
    let clients = env("IRONCD_BENCH_CLIENTS", 256);
    let conns = env("IRONCD_BENCH_CONNS", 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = [
        ("put", Op::Put, 1, 1),
        ("put", Op::Put, clients, conns),
        ("get (linearizable)", Op::Get, 1, 1),
        ("get (linearizable)", Op::Get, clients, conns),
    ];
    let mut results = Vec::new();
    for server in [Server::etcd(), ironcd!()] {
        let name = server.name();
        let cluster = Cluster::start(server, 1, Opts::default());
        let endpoint = cluster.endpoint(0);
        for (row, op, c, k) in rows {
            let r = rt.block_on(run(&endpoint, op, c, k, secs));
            results.push((name, row, c, k, r));
        }
    }
    println!("| workload | clients/conns | etcd req/s | ironcd req/s | ratio | etcd p50 / p99 ms | ironcd p50 / p99 ms | p50 ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let half = results.len() / 2;
    for i in 0..half {
        let (_, name, c, k, e) = results[i];
        let (_, _, _, _, r) = results[i + half];
        println!(
            "| {name} | {c}/{k} | {:.0} | {:.0} | {:.2}× | {:.2} / {:.2} | {:.2} / {:.2} | {:.2}× |",
            e.0, r.0, r.0 / e.0, e.1, e.2, r.1, r.2, r.1 / e.1
        );
    }
}
