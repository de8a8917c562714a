//! The command line: etcd `benchmark`'s global options, then one workload.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `ironcd-bench [GLOBAL OPTIONS] <WORKLOAD> [WORKLOAD OPTIONS]`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ironcd-bench",
    version,
    about = "Load generator for any etcd v3 endpoint (ironcd or etcd)",
    after_help = "Runs until --total requests are done, or for --duration. \
                  A summary like etcd's benchmark is printed; --json prints one JSON object instead."
)]
pub struct Cli {
    /// Options every workload shares.
    #[command(flatten)]
    pub global: Global,
    /// What to run.
    #[command(subcommand)]
    pub workload: Workload,
}

/// Options shared by every workload (etcd benchmark's global flags).
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Client URLs or host:port pairs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// gRPC connections; clients share them round-robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub conns: u64,
    /// Concurrent clients (each has one request in flight).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Requests to send in all (default 10000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Run for this long instead of a number of requests: `10s`, `500ms`, `2m` or seconds.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second across all clients; 0 is unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Bytes in each key (the key prefix included).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Bytes in each value.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Distinct keys the workload touches.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space_size: u64,
    /// Walk the key space in order instead of choosing keys at random.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Read consistency: `l` linearizable, `s` serializable.
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Every key starts with this (range-prefix and watch use it as their prefix).
    #[arg(long, default_value = "")]
    pub key_prefix: String,
    /// Print one JSON object instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

/// Range consistency, as etcd's benchmark spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable (the default).
    L,
    /// Serializable: answered from the member's local state.
    S,
}

/// One workload and its own options.
#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Put values to keys of the key space.
    Put,
    /// Get one key of the key space at a time (the key space is written first, untimed).
    Range,
    /// Range over the key prefix with a limit (the key space is written first, untimed).
    RangePrefix {
        /// Keys returned by each range at most.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// A transaction: compare the key's version, then put it.
    TxnPut,
    /// A mix of read-only and put transactions (the key space is written first, untimed).
    TxnMixed {
        /// Read transactions per write transaction.
        #[arg(long, default_value_t = 1.0)]
        rw_ratio: f64,
    },
    /// Watchers on the key prefix while --clients writers put: events/s delivered and
    /// put→event latency. --total counts puts.
    Watch {
        /// Watchers, each on its own watch stream.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        watchers: u64,
    },
    /// Create watches on historical revisions and wait for their first event: the watch
    /// creation rate (the key space is written first, untimed).
    WatchGet,
    /// Keep-alives on one lease per client, over keep-alive streams.
    LeaseKeepalive {
        /// TTL of the leases, in seconds.
        #[arg(long, default_value_t = 60)]
        ttl: i64,
    },
    /// Grant a lease, put keys attached to it, revoke it.
    LeaseGrantRevoke {
        /// Keys attached to each lease.
        #[arg(long, default_value_t = 1)]
        keys_per_lease: u64,
        /// TTL of the leases, in seconds.
        #[arg(long, default_value_t = 60)]
        ttl: i64,
    },
    /// Put --total distinct keys in order (for memory and restart measurements).
    Fill,
}

impl Workload {
    /// The workload's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range => "range",
            Workload::RangePrefix { .. } => "range-prefix",
            Workload::TxnPut => "txn-put",
            Workload::TxnMixed { .. } => "txn-mixed",
            Workload::Watch { .. } => "watch",
            Workload::WatchGet => "watch-get",
            Workload::LeaseKeepalive { .. } => "lease-keepalive",
            Workload::LeaseGrantRevoke { .. } => "lease-grant-revoke",
            Workload::Fill => "fill",
        }
    }
}

/// Requests when neither --total nor --duration is given (etcd's default).
pub const DEFAULT_TOTAL: u64 = 10_000;

/// `10s`, `500ms`, `2m`, `1.5` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 10s, 500ms, 2m"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("invalid duration {text:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn globals_then_workload() {
        let cli = Cli::try_parse_from([
            "ironcd-bench",
            "--endpoints",
            "a:1,b:2",
            "--clients",
            "256",
            "--conns",
            "16",
            "--duration",
            "3s",
            "--consistency",
            "s",
            "range-prefix",
            "--limit",
            "7",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, ["a:1", "b:2"]);
        assert_eq!((cli.global.clients, cli.global.conns), (256, 16));
        assert_eq!(cli.global.duration, Some(Duration::from_secs(3)));
        assert_eq!(cli.global.consistency, Consistency::S);
        assert!(matches!(cli.workload, Workload::RangePrefix { limit: 7 }));
    }

    #[test]
    fn refused_options() {
        for args in [
            &["ironcd-bench", "--total", "5", "--duration", "1s", "put"][..],
            &["ironcd-bench", "--consistency", "x", "put"],
            &["ironcd-bench", "--clients", "0", "put"],
            &["ironcd-bench", "nope"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
