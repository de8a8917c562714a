//! Latency statistics and the summary etcd's benchmark prints.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// How many error messages a run keeps to show.
pub const FIRST_ERRORS: usize = 5;

/// The percentiles reported, as etcd's benchmark lists them.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Latencies and errors of one client, merged into a run's at the end.
#[derive(Debug, Clone)]
pub struct Stats {
    hist: Histogram<u64>,
    count: u64,
    sum_ns: f64,
    sum_sq_ns: f64,
    min_ns: u64,
    max_ns: u64,
    errors: u64,
    first_errors: Vec<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            // 1 ns to 10 min, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 600_000_000_000, 3)
                .expect("valid histogram bounds"),
            count: 0,
            sum_ns: 0.0,
            sum_sq_ns: 0.0,
            min_ns: u64::MAX,
            max_ns: 0,
            errors: 0,
            first_errors: Vec::new(),
        }
    }
}

impl Stats {
    /// One successful request (or delivered event) that took `latency`.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(ns);
        self.count += 1;
        let f = ns as f64;
        self.sum_ns += f;
        self.sum_sq_ns += f * f;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// One failed request; the first few messages are kept.
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors_n(1, message);
    }

    /// `n` failures with the same message.
    pub fn errors_n(&mut self, n: u64, message: impl Into<String>) {
        if n == 0 {
            return;
        }
        self.errors += n;
        if self.first_errors.len() < FIRST_ERRORS {
            self.first_errors.push(message.into());
        }
    }

    /// Folds another client's figures in.
    pub fn merge(&mut self, other: &Stats) {
        self.hist
            .add(&other.hist)
            .expect("histograms of equal bounds merge");
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.sum_sq_ns += other.sum_sq_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.errors += other.errors;
        for e in &other.first_errors {
            if self.first_errors.len() < FIRST_ERRORS {
                self.first_errors.push(e.clone());
            }
        }
    }

    /// Successful requests recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Failed requests.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The first few error messages.
    pub fn first_errors(&self) -> &[String] {
        &self.first_errors
    }

    fn secs(ns: f64) -> f64 {
        ns / 1e9
    }

    /// Fastest latency in seconds (0 with no samples).
    pub fn fastest(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            Self::secs(self.min_ns as f64)
        }
    }

    /// Slowest latency in seconds.
    pub fn slowest(&self) -> f64 {
        Self::secs(self.max_ns as f64)
    }

    /// Mean latency in seconds.
    pub fn average(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            Self::secs(self.sum_ns / self.count as f64)
        }
    }

    /// Population standard deviation of the latency, in seconds.
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let mean = self.sum_ns / n;
        Self::secs((self.sum_sq_ns / n - mean * mean).max(0.0).sqrt())
    }

    /// The latency at percentile `p` (0–100), in seconds.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        Self::secs(self.hist.value_at_percentile(p) as f64)
    }

    /// etcd's "Response time histogram": 11 marks from fastest to slowest,
    /// each with the requests that took at most that long (and more than the
    /// mark before).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        if self.count == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.min_ns as f64, self.max_ns as f64);
        let step = (hi - lo) / 10.0;
        let mut marks: Vec<(f64, u64)> = (0..=10).map(|i| (lo + step * i as f64, 0)).collect();
        for v in self.hist.iter_recorded() {
            // The bucket's lowest value, so the fastest sample falls on the first mark.
            let ns = (self.hist.lowest_equivalent(v.value_iterated_to()) as f64).clamp(lo, hi);
            let i = if step > 0.0 {
                (((ns - lo) / step).ceil() as usize).min(10)
            } else {
                0
            };
            marks[i].1 += v.count_at_value();
        }
        marks
            .into_iter()
            .map(|(ns, c)| (Self::secs(ns), c))
            .collect()
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The workload's name.
    pub workload: &'static str,
    /// The endpoints driven.
    pub endpoints: Vec<String>,
    /// Concurrent clients.
    pub clients: u64,
    /// gRPC connections.
    pub conns: u64,
    /// The timed phase's length.
    pub elapsed: Duration,
    /// Latencies and errors.
    pub stats: Stats,
    /// The gRPC service the endpoint does not serve (answered Unimplemented).
    pub not_served: Option<String>,
    /// Workload-specific figures (for the JSON object and the summary).
    pub extra: Map<String, Value>,
}

impl Report {
    /// Successful requests (events, for `watch`) per second.
    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.count() as f64 / secs
        } else {
            0.0
        }
    }

    /// The `--json` object.
    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        let mut latency = Map::new();
        for (name, v) in [
            ("fastest", s.fastest()),
            ("slowest", s.slowest()),
            ("average", s.average()),
            ("stddev", s.stddev()),
        ] {
            latency.insert(name.into(), json!(v));
        }
        for p in PERCENTILES {
            latency.insert(format!("p{p}"), json!(s.percentile(p)));
        }
        let mut object = json!({
            "workload": self.workload,
            "endpoints": self.endpoints,
            "clients": self.clients,
            "conns": self.conns,
            "requests": s.count(),
            "errors": s.errors(),
            "first_errors": s.first_errors(),
            "not_served": self.not_served,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "requests_per_sec": self.requests_per_sec(),
            "latency_secs": latency,
        });
        let map = object.as_object_mut().expect("an object");
        for (k, v) in &self.extra {
            map.insert(k.clone(), v.clone());
        }
        object
    }

    /// The text summary, in the layout of etcd's benchmark.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.stats;
        if let Some(service) = &self.not_served {
            let _ = writeln!(
                out,
                "\n{}: the endpoint does not serve the {service} service (gRPC Unimplemented); no figures.",
                self.workload
            );
            return out;
        }
        let _ = writeln!(out, "\nSummary:");
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        let _ = writeln!(out, "  Slowest:\t{:.4} secs.", s.slowest());
        let _ = writeln!(out, "  Fastest:\t{:.4} secs.", s.fastest());
        let _ = writeln!(out, "  Average:\t{:.4} secs.", s.average());
        let _ = writeln!(out, "  Stddev:\t{:.4} secs.", s.stddev());
        let rate_name = if self.workload == "watch" {
            "Events/sec"
        } else {
            "Requests/sec"
        };
        let _ = writeln!(out, "  {rate_name}:\t{:.4}", self.requests_per_sec());
        for (k, v) in &self.extra {
            let _ = writeln!(out, "  {k}:\t{v}");
        }
        let buckets = s.buckets();
        if !buckets.is_empty() {
            let _ = writeln!(out, "\nResponse time histogram:");
            let most = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
            for (mark, count) in &buckets {
                let bar = "∎".repeat((count * 40 / most) as usize);
                let _ = writeln!(out, "  {mark:.4} [{count}]\t|{bar}");
            }
            let _ = writeln!(out, "\nLatency distribution:");
            for p in PERCENTILES {
                let _ = writeln!(out, "  {p}% in {:.4} secs.", s.percentile(p));
            }
        }
        if s.errors() > 0 {
            let _ = writeln!(
                out,
                "\nThis run had errors: {} of {} requests failed. The first {}:",
                s.errors(),
                s.errors() + s.count(),
                s.first_errors().len()
            );
            for e in s.first_errors() {
                let _ = writeln!(out, "  {e}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn statistics_of_known_samples() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for i in 1..=50 {
            a.record(ms(i));
        }
        for i in 51..=100 {
            b.record(ms(i));
        }
        b.error("boom");
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.errors(), 1);
        assert_eq!(a.first_errors(), ["boom"]);
        assert!((a.fastest() - 0.001).abs() < 1e-9);
        assert!((a.slowest() - 0.100).abs() < 1e-9);
        assert!((a.average() - 0.0505).abs() < 1e-9);
        // Population stddev of 1..=100 ms: sqrt((100²-1)/12) ms.
        assert!((a.stddev() - 0.028_866).abs() < 1e-5, "{}", a.stddev());
        assert!((a.percentile(50.0) - 0.050).abs() < 0.0001);
        assert!((a.percentile(99.0) - 0.099).abs() < 0.0001);
        let buckets = a.buckets();
        assert_eq!(buckets.len(), 11);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 100);
        assert_eq!(buckets[0].1, 1);
        assert!((buckets[10].0 - 0.100).abs() < 1e-9);
    }

    #[test]
    fn error_messages_are_capped() {
        let mut s = Stats::default();
        for i in 0..20 {
            s.error(format!("e{i}"));
        }
        assert_eq!(s.errors(), 20);
        assert_eq!(s.first_errors().len(), FIRST_ERRORS);
    }

    #[test]
    fn summary_text_and_json() {
        let mut stats = Stats::default();
        for i in 1..=10 {
            stats.record(ms(i));
        }
        stats.error("etcdserver: too many requests");
        let report = Report {
            workload: "put",
            endpoints: vec!["127.0.0.1:2379".into()],
            clients: 2,
            conns: 1,
            elapsed: Duration::from_secs(2),
            stats,
            not_served: None,
            extra: Map::new(),
        };
        let text = report.to_text();
        for needle in [
            "Summary:",
            "Total:\t2.0000 secs.",
            "Slowest:\t0.0100 secs.",
            "Fastest:\t0.0010 secs.",
            "Requests/sec:\t5.0000",
            "Response time histogram:",
            "Latency distribution:",
            "99.9% in 0.0100 secs.",
            "This run had errors: 1 of 11 requests failed",
            "etcdserver: too many requests",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let v = report.to_json();
        assert_eq!(v["requests"], 10);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["requests_per_sec"], 5.0);
        assert!(v["not_served"].is_null());
        assert!((v["latency_secs"]["p50"].as_f64().unwrap() - 0.005).abs() < 1e-4);
        assert!(v["latency_secs"]["p99.9"].is_f64());
    }

    #[test]
    fn not_served_summary() {
        let report = Report {
            workload: "watch",
            endpoints: vec![],
            clients: 1,
            conns: 1,
            elapsed: Duration::ZERO,
            stats: Stats::default(),
            not_served: Some("Watch".into()),
            extra: Map::new(),
        };
        assert!(report
            .to_text()
            .contains("does not serve the Watch service"));
        assert_eq!(report.to_json()["not_served"], "Watch");
        assert_eq!(report.requests_per_sec(), 0.0);
    }
}
