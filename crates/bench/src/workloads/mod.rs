//! The workloads, and what they share: connections, keys, the timed phase.

mod kv;
mod lease;
mod watch;

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Result};
use etcd_client::{Client, GetOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Map;
use tokio::task::JoinSet;

use crate::cli::{Consistency, Global, Workload};
use crate::driver::{self, join_all, request_loop, Control, Progress};
use crate::keys::{self, Keys};
use crate::report::{Report, Stats};

/// Runs `workload` against `global.endpoints` and reports on it.
pub async fn run(global: &Global, workload: &Workload) -> Result<Report> {
    let ctx = Ctx::new(global, workload).await?;
    match workload {
        Workload::Put => kv::put(&ctx).await,
        Workload::Fill => kv::fill(&ctx).await,
        Workload::Range => kv::range(&ctx).await,
        Workload::RangePrefix { limit } => kv::range_prefix(&ctx, *limit).await,
        Workload::TxnPut => kv::txn_put(&ctx).await,
        Workload::TxnMixed { rw_ratio } => kv::txn_mixed(&ctx, *rw_ratio).await,
        Workload::Watch { watchers } => watch::watch(&ctx, *watchers).await,
        Workload::WatchGet => watch::watch_get(&ctx).await,
        Workload::LeaseKeepalive { ttl } => lease::keepalive(&ctx, *ttl).await,
        Workload::LeaseGrantRevoke {
            keys_per_lease,
            ttl,
        } => lease::grant_revoke(&ctx, *keys_per_lease, *ttl).await,
    }
}

/// One run's connections, key space and value.
pub(crate) struct Ctx {
    global: Global,
    workload: &'static str,
    conns: Vec<Client>,
    keys: Keys,
    value: Vec<u8>,
}

impl Ctx {
    async fn new(global: &Global, workload: &Workload) -> Result<Ctx> {
        let space = match workload {
            // fill writes --total distinct keys, in order.
            Workload::Fill => match (global.total, global.duration) {
                (Some(total), None) if total > 0 => total,
                _ => bail!("fill needs --total N (the number of distinct keys to write)"),
            },
            _ => global.key_space_size,
        };
        let sequential = global.sequential_keys || matches!(workload, Workload::Fill);
        let keys = Keys::new(&global.key_prefix, global.key_size, space, sequential)?;
        let conns = driver::connect(global).await?;
        Ok(Ctx {
            global: global.clone(),
            workload: workload.name(),
            conns,
            keys,
            value: keys::value(global.val_size),
        })
    }

    /// Connection for client `i`: clients share the connections round-robin.
    fn conn(&self, i: u64) -> Client {
        self.conns[(i % self.conns.len() as u64) as usize].clone()
    }

    /// Range options for `--consistency`.
    fn read_options(&self) -> GetOptions {
        match self.global.consistency {
            Consistency::L => GetOptions::new(),
            Consistency::S => GetOptions::new().with_serializable(),
        }
    }

    fn rng() -> StdRng {
        StdRng::from_entropy()
    }

    fn progress(&self, control: &Arc<Control>, label: &str) -> Progress {
        Progress::start(control, label, self.global.json)
    }

    /// The timed phase: `--clients` request loops, client `i`'s requests made
    /// by `make(i)`; all its requests are calls on `service`.
    async fn timed<M, F, Fut>(&self, service: &'static str, mut make: M) -> Result<Report>
    where
        M: FnMut(u64) -> F,
        F: FnMut(u64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), etcd_client::Error>> + Send + 'static,
    {
        let control = Control::new(&self.global);
        let progress = self.progress(&control, self.workload);
        let started = control.start();
        let mut tasks = JoinSet::new();
        for i in 0..self.global.clients {
            tasks.spawn(request_loop(control.clone(), service, make(i)));
        }
        let stats = join_all(tasks).await?;
        let elapsed = started.elapsed();
        progress.finish();
        Ok(self.report(elapsed, stats, control.not_served(), Map::new()))
    }

    /// The report of a run the endpoint refused: it does not serve `service`.
    fn not_served(&self, service: &str) -> Report {
        self.report(
            std::time::Duration::ZERO,
            Stats::default(),
            Some(service.to_string()),
            Map::new(),
        )
    }

    fn report(
        &self,
        elapsed: std::time::Duration,
        stats: Stats,
        not_served: Option<String>,
        extra: Map<String, serde_json::Value>,
    ) -> Report {
        Report {
            workload: self.workload,
            endpoints: self.global.endpoints.clone(),
            clients: self.global.clients,
            conns: self.global.conns,
            elapsed,
            stats,
            not_served,
            extra,
        }
    }

    /// Writes every key of the key space once (untimed), with `--clients`
    /// writers, and returns each key's revision.
    async fn prefill(&self) -> Result<Vec<i64>> {
        let space = self.keys.space();
        let control = Control::exactly(space);
        let progress = self.progress(&control, "preparing keys");
        control.start();
        let revisions = Arc::new(std::sync::Mutex::new(vec![0i64; space as usize]));
        let mut tasks = JoinSet::new();
        for i in 0..self.global.clients.min(space) {
            let (kv, keys, value) = (
                self.conn(i).kv_client(),
                self.keys.clone(),
                self.value.clone(),
            );
            let revisions = revisions.clone();
            tasks.spawn(request_loop(control.clone(), "KV", move |n| {
                let (mut kv, key, value) = (kv.clone(), keys.key(n), value.clone());
                let revisions = revisions.clone();
                async move {
                    let put = kv.put(key, value, None).await?;
                    let revision = put.header().map_or(0, |h| h.revision());
                    revisions.lock().unwrap_or_else(|e| e.into_inner())[n as usize] = revision;
                    Ok(())
                }
            }));
        }
        let stats = join_all(tasks).await?;
        progress.finish();
        if stats.errors() > 0 {
            bail!(
                "preparing {space} keys: {} puts failed, first: {}",
                stats.errors(),
                stats.first_errors().join("; ")
            );
        }
        let revisions = revisions.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(revisions)
    }
}
