//! Watch workloads: `watch` (events delivered to many watchers while writers
//! put) and `watch-get` (watch creation on historical revisions).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use etcd_client::{WatchOptions, WatchStream};
use serde_json::{json, Map};
use tokio::sync::watch as signal;
use tokio::task::JoinSet;

use super::Ctx;
use crate::driver::{is_unimplemented, join_all, request_loop, Control};
use crate::report::{Report, Stats};

/// The gRPC service these workloads need.
const SERVICE: &str = "Watch";

/// How long watchers may take to receive the last events after the last put.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes at the start of each value that carry the put's send time.
const STAMP: usize = 8;

/// Opens a watch stream on the key prefix and waits for its creation.
/// `Ok(None)`: the endpoint does not serve Watch.
async fn open_watcher(ctx: &Ctx, i: u64) -> Result<Option<WatchStream>> {
    let mut client = ctx.conn(i).watch_client();
    let options = WatchOptions::new().with_prefix();
    let mut stream = match client
        .watch(ctx.keys.prefix().to_vec(), Some(options))
        .await
    {
        Ok(stream) => stream,
        Err(e) if is_unimplemented(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match stream.message().await {
        Ok(Some(created)) if created.created() => Ok(Some(stream)),
        Ok(other) => bail!("watch {i} was not created: {other:?}"),
        Err(e) if is_unimplemented(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Watchers' end: after the last put, how many events each must see, and
/// until when it waits for them.
type Goal = Option<(u64, Instant)>;

/// One watcher: records put→event latency of each event until it has seen
/// the goal's events or the goal's time has passed.
async fn watcher(
    mut stream: WatchStream,
    epoch: Instant,
    mut goal: signal::Receiver<Goal>,
    last_event: Arc<AtomicU64>,
) -> Stats {
    let mut stats = Stats::default();
    let mut received = 0u64;
    loop {
        let current = *goal.borrow_and_update();
        if let Some((target, give_up)) = current {
            if received >= target {
                break;
            }
            if Instant::now() >= give_up {
                stats.errors_n(
                    target - received,
                    format!(
                        "{} events not delivered within {DRAIN_TIMEOUT:?} of the last put",
                        target - received
                    ),
                );
                break;
            }
        }
        let give_up = current.map(|(_, at)| at);
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(response)) => {
                    let now = epoch.elapsed();
                    for event in response.events() {
                        received += 1;
                        match event.kv().and_then(|kv| stamp(kv.value())) {
                            Some(sent) => stats.record(now.saturating_sub(sent)),
                            None => stats.error("an event without a send time in its value"),
                        }
                    }
                    last_event.fetch_max(now.as_nanos() as u64, Ordering::Relaxed);
                    if response.canceled() {
                        stats.error(format!("watch canceled: {}", response.cancel_reason()));
                        break;
                    }
                }
                Ok(None) => {
                    stats.error("the watch stream ended");
                    break;
                }
                Err(e) => {
                    stats.error(e.to_string());
                    break;
                }
            },
            _ = goal.changed() => {}
            _ = tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now).into()), if give_up.is_some() => {}
        }
    }
    stats
}

/// The send time stamped at the front of a value.
fn stamp(value: &[u8]) -> Option<Duration> {
    let bytes: [u8; STAMP] = value.get(..STAMP)?.try_into().ok()?;
    Some(Duration::from_nanos(u64::from_le_bytes(bytes)))
}

/// `watchers` watch streams on the key prefix while `--clients` writers put;
/// each event's latency is from its put being sent to its delivery.
pub(super) async fn watch(ctx: &Ctx, watchers: u64) -> Result<Report> {
    anyhow::ensure!(
        ctx.global.val_size >= STAMP,
        "watch needs --val-size of at least {STAMP}: values carry the put's send time"
    );
    let mut streams = Vec::new();
    for i in 0..watchers {
        match open_watcher(ctx, i).await? {
            Some(stream) => streams.push(stream),
            None => return Ok(ctx.not_served(SERVICE)),
        }
    }
    let epoch = Instant::now();
    let (goal_tx, goal_rx) = signal::channel::<Goal>(None);
    let last_event = Arc::new(AtomicU64::new(0));
    let mut watching = JoinSet::new();
    for stream in streams {
        watching.spawn(watcher(stream, epoch, goal_rx.clone(), last_event.clone()));
    }

    let control = Control::new(&ctx.global);
    let progress = ctx.progress(&control, "watch (puts)");
    let started = control.start();
    let mut writers = JoinSet::new();
    for i in 0..ctx.global.clients {
        let (kv, keys, value) = (ctx.conn(i).kv_client(), ctx.keys.clone(), ctx.value.clone());
        let mut rng = Ctx::rng();
        writers.spawn(request_loop(control.clone(), "KV", move |t| {
            let key = keys.key(keys.pick(t, &mut rng));
            let mut value = value.clone();
            let sent = epoch.elapsed().as_nanos() as u64;
            value[..STAMP].copy_from_slice(&sent.to_le_bytes());
            let mut kv = kv.clone();
            async move { kv.put(key, value, None).await.map(drop) }
        }));
    }
    let puts = join_all(writers).await?;
    progress.finish();
    let _ = goal_tx.send(Some((puts.count(), Instant::now() + DRAIN_TIMEOUT)));
    let mut stats = join_all(watching).await?;
    let delivered_by = Duration::from_nanos(last_event.load(Ordering::Relaxed));
    // From the first put to the last event delivered (or to now, if none was).
    let elapsed = match delivered_by.saturating_sub(started.duration_since(epoch)) {
        Duration::ZERO => started.elapsed(),
        d => d,
    };
    if puts.errors() > 0 {
        stats.errors_n(
            puts.errors(),
            format!(
                "put: {}",
                puts.first_errors().first().cloned().unwrap_or_default()
            ),
        );
    }
    let mut extra = Map::new();
    extra.insert("watchers".into(), json!(watchers));
    extra.insert("puts".into(), json!(puts.count()));
    extra.insert("put_p50_secs".into(), json!(puts.percentile(50.0)));
    extra.insert("put_p99_secs".into(), json!(puts.percentile(99.0)));
    Ok(ctx.report(elapsed, stats, control.not_served(), extra))
}

/// Each request creates a watch on one key from the revision it was written
/// at, waits for that historical event, and cancels the watch. Each client
/// keeps one watch stream for all its watches.
pub(super) async fn watch_get(ctx: &Ctx) -> Result<Report> {
    let revisions = Arc::new(ctx.prefill().await?);
    let control = Control::new(&ctx.global);
    let progress = ctx.progress(&control, "watch-get");
    let started = control.start();
    let mut tasks = JoinSet::new();
    for i in 0..ctx.global.clients {
        let (mut client, keys, revisions) = (
            ctx.conn(i).watch_client(),
            ctx.keys.clone(),
            revisions.clone(),
        );
        let control = control.clone();
        tasks.spawn(async move {
            let mut stats = Stats::default();
            let mut rng = Ctx::rng();
            let mut stream: Option<WatchStream> = None;
            while let Some(ticket) = control.next_ticket().await {
                let n = keys.pick(ticket, &mut rng);
                let options = WatchOptions::new().with_start_revision(revisions[n as usize]);
                let begun = Instant::now();
                let result = historical_event(&mut client, &mut stream, keys.key(n), options).await;
                if result.is_err() {
                    stream = None; // a broken stream is reopened by the next request
                }
                control.finish(&mut stats, SERVICE, begun, result);
            }
            stats
        });
    }
    let stats = join_all(tasks).await?;
    let elapsed = started.elapsed();
    progress.finish();
    Ok(ctx.report(elapsed, stats, control.not_served(), Map::new()))
}

/// Creates one watch (opening the stream on first use), waits for its first
/// event, and cancels it.
async fn historical_event(
    client: &mut etcd_client::WatchClient,
    stream: &mut Option<WatchStream>,
    key: Vec<u8>,
    options: WatchOptions,
) -> Result<(), etcd_client::Error> {
    match stream {
        Some(s) => s.watch(key, Some(options)).await?,
        None => *stream = Some(client.watch(key, Some(options)).await?),
    }
    let s = stream.as_mut().expect("opened above");
    let mut id = None;
    loop {
        let Some(response) = s.message().await? else {
            return Err(etcd_client::Error::WatchError(
                "the watch stream ended".into(),
            ));
        };
        if response.created() && id.is_none() {
            id = Some(response.watch_id());
        }
        if response.compact_revision() != 0
            || (response.canceled() && Some(response.watch_id()) == id)
        {
            return Err(etcd_client::Error::WatchError(format!(
                "watch canceled: {} (compacted at {})",
                response.cancel_reason(),
                response.compact_revision()
            )));
        }
        if id == Some(response.watch_id()) && !response.events().is_empty() {
            s.cancel(response.watch_id()).await?;
            return Ok(());
        }
    }
}
