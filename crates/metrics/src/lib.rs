//! ironcd-metrics: the few Prometheus metric kinds ironcd exports, as
//! lock-free atomics that can live in `static`s (as etcd's live in Go's
//! default registry), and their text exposition format.
//!
//! Layers that measure something of their own (the WAL's fsyncs, the
//! backend's commits, raft's leader changes) keep a `static` here; the
//! server renders them with its own on `/metrics`. Label sets are fixed at
//! compile time or bounded by the caller ([`CounterVec`] refuses new label
//! values past its limit), so no metric grows with load.
//!
//! ```
//! use ironcd_metrics::{Histogram, Text};
//! static FSYNC: Histogram = Histogram::new(&[0.001, 0.002, 0.004]);
//! FSYNC.observe(0.0015);
//! let mut text = Text::default();
//! text.histogram("fsync_seconds", "Fsync latency.", &[], &FSYNC);
//! assert!(text.finish().contains("fsync_seconds_bucket{le=\"0.002\"} 1\n"));
//! ```

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The most buckets a [`Histogram`] has (etcd's largest is 14, plus +Inf).
pub const MAX_BUCKETS: usize = 24;

/// `count` upper bounds starting at `start`, each `factor` times the last
/// (Prometheus's `ExponentialBuckets`), computed at compile time.
pub const fn exponential_buckets<const N: usize>(start: f64, factor: f64) -> [f64; N] {
    let mut out = [0.0; N];
    let mut i = 0;
    let mut bound = start;
    while i < N {
        out[i] = bound;
        bound *= factor;
        i += 1;
    }
    out
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away (never below zero).
    pub fn dec(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observations counted into fixed buckets, with their sum, as a
/// Prometheus histogram. Bucket counts are kept per bucket and made
/// cumulative when rendered.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: [AtomicU64; MAX_BUCKETS],
    /// Observations above the last bound.
    overflow: AtomicU64,
    /// The sum of observations, in nanounits (1e-9), so that it adds up
    /// exactly without a float CAS loop.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// A histogram with `bounds` as the buckets' upper bounds (ascending,
    /// at most [`MAX_BUCKETS`]; extra bounds are ignored).
    pub const fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            overflow: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn bounds(&self) -> &[f64] {
        &self.bounds[..self.bounds.len().min(MAX_BUCKETS)]
    }

    /// Counts one observation of `v`.
    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
        match self.bounds().iter().position(|b| v <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_nanos
            .fetch_add((v * 1e9) as u64, Ordering::Relaxed);
    }

    /// Counts a duration in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.overflow.load(Ordering::Relaxed)
    }
}

/// Counters told apart by one label's value, at most `limit` values; past
/// that, further values count under `"other"` so the set stays bounded.
#[derive(Debug)]
pub struct CounterVec {
    limit: usize,
    values: Mutex<Vec<(String, u64)>>,
}

/// The label value counts go to once a [`CounterVec`] is full.
pub const OVERFLOW_LABEL: &str = "other";

impl CounterVec {
    /// An empty vector that keeps at most `limit` label values.
    pub const fn new(limit: usize) -> Self {
        Self {
            limit,
            values: Mutex::new(Vec::new()),
        }
    }

    /// Adds `n` to the counter of `label`.
    pub fn add(&self, label: &str, n: u64) {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let label = if values.len() < self.limit || values.iter().any(|(l, _)| l == label) {
            label
        } else {
            OVERFLOW_LABEL
        };
        match values.iter_mut().find(|(l, _)| l == label) {
            Some((_, v)) => *v += n,
            None => values.push((label.to_string(), n)),
        }
    }

    /// Every label value with its count, in order of first use.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Escapes a label value as the text format wants (`\`, `"`, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)], extra: Option<(&str, &str)>) -> String {
    let all: Vec<String> = pairs
        .iter()
        .copied()
        .chain(extra)
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", all.join(","))
    }
}

/// A Prometheus text exposition being written: one `# HELP` and `# TYPE`
/// per metric family, however many labelled samples follow.
#[derive(Default)]
pub struct Text {
    out: String,
    last_family: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.last_family != name {
            let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            self.last_family = name.to_string();
        }
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: impl Display) {
        self.family(name, "gauge", help);
        let _ = writeln!(self.out, "{name}{} {v}", labels(l, None));
    }

    /// A counter sample.
    pub fn counter(&mut self, name: &str, help: &str, l: &[(&str, &str)], v: impl Display) {
        self.family(name, "counter", help);
        let _ = writeln!(self.out, "{name}{} {v}", labels(l, None));
    }

    /// A histogram's cumulative buckets, `+Inf`, sum and count.
    pub fn histogram(&mut self, name: &str, help: &str, l: &[(&str, &str)], h: &Histogram) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (bound, count) in h.bounds().iter().zip(&h.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let le = bound.to_string();
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {cumulative}",
                labels(l, Some(("le", &le)))
            );
        }
        cumulative += h.overflow.load(Ordering::Relaxed);
        let _ = writeln!(
            self.out,
            "{name}_bucket{} {cumulative}",
            labels(l, Some(("le", "+Inf")))
        );
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(self.out, "{name}_sum{} {sum}", labels(l, None));
        let _ = writeln!(self.out, "{name}_count{} {cumulative}", labels(l, None));
    }

    /// The exposition written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [f64; 3] = [0.001, 0.002, 0.004];

    #[test]
    fn exponential_buckets_double() {
        const B: [f64; 4] = exponential_buckets(0.001, 2.0);
        assert_eq!(B, [0.001, 0.002, 0.004, 0.008]);
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let h = Histogram::new(&BOUNDS);
        for v in [0.0005, 0.0015, 0.0015, 0.003, 10.0] {
            h.observe(v);
        }
        let mut text = Text::default();
        text.histogram("x_seconds", "X.", &[("To", "a\"b")], &h);
        let out = text.finish();
        let expected = "# HELP x_seconds X.\n# TYPE x_seconds histogram\n\
            x_seconds_bucket{To=\"a\\\"b\",le=\"0.001\"} 1\n\
            x_seconds_bucket{To=\"a\\\"b\",le=\"0.002\"} 3\n\
            x_seconds_bucket{To=\"a\\\"b\",le=\"0.004\"} 4\n\
            x_seconds_bucket{To=\"a\\\"b\",le=\"+Inf\"} 5\n\
            x_seconds_sum{To=\"a\\\"b\"} 10.0065\n\
            x_seconds_count{To=\"a\\\"b\"} 5\n";
        assert_eq!(out, expected);
        assert_eq!(h.count(), 5);
    }

    #[test]
    fn one_help_line_per_family() {
        let mut text = Text::default();
        text.counter("c_total", "C.", &[("code", "OK")], 1);
        text.counter("c_total", "C.", &[("code", "Unknown")], 2);
        text.gauge("g", "G.", &[], 7);
        assert_eq!(
            text.finish(),
            "# HELP c_total C.\n# TYPE c_total counter\nc_total{code=\"OK\"} 1\n\
             c_total{code=\"Unknown\"} 2\n# HELP g G.\n# TYPE g gauge\ng 7\n"
        );
    }

    #[test]
    fn counter_vec_is_bounded() {
        let v = CounterVec::new(2);
        v.add("a", 1);
        v.add("b", 1);
        v.add("c", 1);
        v.add("d", 2);
        v.add("a", 1);
        assert_eq!(
            v.snapshot(),
            [
                ("a".to_string(), 2),
                ("b".to_string(), 1),
                (OVERFLOW_LABEL.to_string(), 3)
            ]
        );
    }

    #[test]
    fn gauge_never_goes_below_zero() {
        let g = Gauge::new();
        g.inc();
        g.dec();
        g.dec();
        assert_eq!(g.get(), 0);
    }
}
