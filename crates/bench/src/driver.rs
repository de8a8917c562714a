//! Running clients: connections, request tickets (`--total`/`--duration`),
//! pacing (`--rate`), the progress bar and the end of a run.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use etcd_client::{Client, ConnectOptions};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::cli::{Global, DEFAULT_TOTAL};
use crate::pacer::Pacer;
use crate::report::Stats;

/// How long to wait for a connection to an endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `--conns` connections to the endpoints.
pub async fn connect(global: &Global) -> Result<Vec<Client>> {
    let mut clients = Vec::new();
    for _ in 0..global.conns {
        let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
        let client = Client::connect(&global.endpoints, Some(options))
            .await
            .with_context(|| format!("connecting to {}", global.endpoints.join(",")))?;
        clients.push(client);
    }
    Ok(clients)
}

/// True for gRPC Unimplemented: the endpoint does not serve that service.
pub fn is_unimplemented(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::Unimplemented)
}

/// What every client of a run shares: which request is next, when to stop.
#[derive(Debug)]
pub struct Control {
    total: Option<u64>,
    deadline_after: Option<Duration>,
    started: Mutex<Option<Instant>>,
    issued: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
    pacer: Option<Pacer>,
    not_served: Mutex<Option<String>>,
}

impl Control {
    /// `--total` requests (etcd's default without `--duration`) or for `--duration`.
    pub fn new(global: &Global) -> Arc<Control> {
        let total = match global.duration {
            Some(_) => None,
            None => Some(global.total.unwrap_or(DEFAULT_TOTAL)),
        };
        Control::with_limit(total, global.duration, global.rate)
    }

    /// A control for exactly `total` requests, unpaced (preparation phases).
    pub fn exactly(total: u64) -> Arc<Control> {
        Control::with_limit(Some(total), None, 0)
    }

    fn with_limit(total: Option<u64>, duration: Option<Duration>, rate: u64) -> Arc<Control> {
        Arc::new(Control {
            total,
            deadline_after: duration,
            started: Mutex::new(None),
            issued: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            pacer: Pacer::new(rate),
            not_served: Mutex::new(None),
        })
    }

    /// Starts the clock: `--duration` counts from here.
    pub fn start(&self) -> Instant {
        let now = Instant::now();
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        now
    }

    fn deadline(&self) -> Option<Instant> {
        let started = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        Some(started? + self.deadline_after?)
    }

    /// The next request's number, after its pacing slot; `None` when the
    /// run is over.
    pub async fn next_ticket(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let ticket = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.total.is_some_and(|total| ticket >= total) {
            return None;
        }
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        if self.deadline().is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        Some(ticket)
    }

    /// Ends the run early (the endpoint does not serve the workload).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the run was stopped early.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records that the endpoint answered `service` with Unimplemented, and stops.
    pub fn mark_not_served(&self, service: &str) {
        let mut slot = self.not_served.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| service.to_string());
        self.stop();
    }

    /// The service the endpoint does not serve, if a request found one.
    pub fn not_served(&self) -> Option<String> {
        self.not_served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests finished, for the progress bar.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Counts one finished request (or event) towards progress.
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Files one request's outcome: its latency, or its error. Unimplemented
    /// stops the run and names `service` as not served.
    pub fn finish(
        &self,
        stats: &mut Stats,
        service: &str,
        started: Instant,
        result: Result<(), etcd_client::Error>,
    ) {
        match result {
            Ok(()) => stats.record(started.elapsed()),
            Err(e) if is_unimplemented(&e) => self.mark_not_served(service),
            Err(e) => stats.error(e.to_string()),
        }
        self.add_done(1);
    }

    /// What the progress bar's length is: requests, or milliseconds of a timed run.
    fn progress_length(&self) -> (u64, bool) {
        match (self.total, self.deadline_after) {
            (Some(total), _) => (total, false),
            (None, Some(d)) => (d.as_millis() as u64, true),
            (None, None) => (0, false),
        }
    }
}

/// One client's loop: take a ticket, run `op` for it, file the outcome.
/// `op` gets the ticket and returns the request's future.
pub async fn request_loop<F, Fut>(control: Arc<Control>, service: &'static str, mut op: F) -> Stats
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), etcd_client::Error>>,
{
    let mut stats = Stats::default();
    while let Some(ticket) = control.next_ticket().await {
        let started = Instant::now();
        let result = op(ticket).await;
        control.finish(&mut stats, service, started, result);
    }
    stats
}

/// Waits for every client task and merges their figures.
pub async fn join_all(mut tasks: JoinSet<Stats>) -> Result<Stats> {
    let mut stats = Stats::default();
    while let Some(joined) = tasks.join_next().await {
        stats.merge(&joined.context("a client task failed")?);
    }
    Ok(stats)
}

/// A progress bar on stderr while a run goes, when stderr is a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Shows nothing when `quiet` or when stderr is not a terminal.
    pub fn start(control: &Arc<Control>, label: &str, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let (length, timed) = control.progress_length();
        let bar = ProgressBar::new(length);
        let template = if timed {
            "{prefix} [{bar:40}] {elapsed_precise} / {msg}"
        } else {
            "{prefix} [{bar:40}] {pos}/{len} {per_sec} eta {eta}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        if timed {
            bar.set_message(format!("{:.0}s", length as f64 / 1000.0));
        }
        let (ticking, control) = (bar.clone(), control.clone());
        let begun = Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                let position = if timed {
                    begun.elapsed().as_millis() as u64
                } else {
                    control.done()
                };
                ticking.set_position(position.min(length));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// Removes the bar (dropping it does the same, also when a run fails).
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn total_hands_out_each_ticket_once() {
        let control = Control::exactly(5);
        control.start();
        let mut seen = Vec::new();
        while let Some(t) = control.next_ticket().await {
            seen.push(t);
        }
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert_eq!(control.next_ticket().await, None);
    }

    #[tokio::test]
    async fn stop_and_not_served() {
        let control = Control::exactly(100);
        control.start();
        assert!(control.next_ticket().await.is_some());
        let mut stats = Stats::default();
        let unimplemented = etcd_client::Error::GRpcStatus(tonic::Status::unimplemented(
            "unknown service etcdserverpb.Watch",
        ));
        control.finish(&mut stats, "Watch", Instant::now(), Err(unimplemented));
        assert_eq!(control.not_served().as_deref(), Some("Watch"));
        assert_eq!(control.next_ticket().await, None);
        assert_eq!(stats.errors(), 0, "not served is not an error");
        let other = etcd_client::Error::GRpcStatus(tonic::Status::unavailable("x"));
        control.finish(&mut stats, "KV", Instant::now(), Err(other));
        assert_eq!(stats.errors(), 1);
    }
}
