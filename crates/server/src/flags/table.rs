//! The flag table: every etcd 3.4 and 3.5 server flag, its Go type, etcd's
//! default and what ironcd does with it; and [`Value`], a flag's value
//! parsed by its [`Kind`].

use std::fmt;

use super::go::{out_of_range, parse_go_bool, parse_go_duration, parse_go_int, parse_go_uint};
use super::url::parse_url_list;
use super::ENV_PREFIX;

/// How a flag's value is spelled (Go's flag types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Go `bool`: `--x`, `--x=true`, `--x=0`, … (never `--x false`).
    Bool,
    /// Go `uint`/`uint64`: decimal, `0x`, `0o`, `0b` or leading-`0` octal.
    Uint,
    /// A `uint32`.
    Uint32,
    /// Go `int`/`int64`.
    Int,
    /// A Go duration: `1h30m`, `90s`, `1.5h`, `0`.
    Duration,
    /// Any string.
    Str,
    /// A comma-separated list of `scheme://host:port` URLs; empty is none.
    Urls,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A flag etcd accepts and ignores: takes an optional `=value`.
    Ignored,
}

/// What ironcd does with a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Support {
    /// Mapped into [`ServerConfig`].
    Honoured,
    /// ironcd behaves as etcd does at the default value; any other value is
    /// reported as not honoured.
    AtDefault,
    /// ironcd behaves as etcd does with any of these values; others are
    /// reported as not honoured.
    Matches(&'static [&'static str]),
    /// Only the default is accepted: ignoring another value would run a
    /// server other than the one asked for.
    Refused,
    /// etcd ignores the flag too (pre-v3 leftovers).
    Ignored,
}

/// One row of [`FLAGS`].
#[derive(Debug)]
pub(super) struct FlagSpec {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// etcd's default (3.5's where 3.4 differs), spelled as on the command
    /// line.
    pub(super) default: &'static str,
    pub(super) support: Support,
    pub(super) help: &'static str,
}

const fn flag(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    support: Support,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        default,
        support,
        help,
    }
}

use Kind as K;
use Support as S;

const V2_STAGES: &[&str] = &["not-yet", "write-only", "write-only-drop-data", "gone"];
const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "panic", "fatal"];
const LOG_ROTATION: &str =
    r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#;

/// Every etcd 3.4 and 3.5 server flag, in etcd's help order.
#[rustfmt::skip]
pub(super) static FLAGS: &[FlagSpec] = &[
    // Member.
    flag("name", K::Str, "default", S::Honoured, "Human-readable name of this member."),
    flag("data-dir", K::Str, "", S::Honoured, "Data directory (default '${name}.ironcd')."),
    flag("wal-dir", K::Str, "", S::AtDefault, "Separate WAL directory."),
    flag("snapshot-count", K::Uint, "100000", S::Honoured, "Applied entries between snapshots."),
    flag("heartbeat-interval", K::Uint, "100", S::Honoured, "Heartbeat interval, in ms."),
    flag("election-timeout", K::Uint, "1000", S::Honoured, "Election timeout, in ms."),
    flag("initial-election-tick-advance", K::Bool, "true", S::AtDefault, "Fast-forward election ticks at boot."),
    flag("listen-peer-urls", K::Urls, "http://localhost:2380", S::Honoured, "URLs to listen on for peers."),
    flag("listen-client-urls", K::Urls, "http://localhost:2379", S::Honoured, "URLs to listen on for clients."),
    flag("listen-client-http-urls", K::Urls, "", S::AtDefault, "URLs to serve client HTTP (not gRPC) on."),
    flag("max-snapshots", K::Uint, "5", S::AtDefault, "Snapshot files to keep (0 = all)."),
    flag("max-wals", K::Uint, "5", S::AtDefault, "WAL files to keep (0 = all)."),
    flag("quota-backend-bytes", K::Int, "0", S::Honoured, "Backend size that raises NOSPACE (0 = 2 GiB)."),
    flag("backend-batch-interval", K::Duration, "0s", S::AtDefault, "Longest time before a backend commit."),
    flag("backend-batch-limit", K::Int, "0", S::AtDefault, "Most operations before a backend commit."),
    flag("max-txn-ops", K::Uint, "128", S::Honoured, "Most operations in one transaction."),
    flag("max-request-bytes", K::Uint, "1572864", S::Honoured, "Largest client request, in bytes."),
    flag("max-concurrent-streams", K::Uint32, "4294967295", S::Honoured, "Streams one client may open at once."),
    flag("enable-grpc-gateway", K::Bool, "true", S::Honoured, "Serve the JSON gateway over HTTP."),
    flag("grpc-keepalive-min-time", K::Duration, "5s", S::AtDefault, "Shortest client ping interval allowed."),
    flag("grpc-keepalive-interval", K::Duration, "2h", S::AtDefault, "Server-to-client ping interval (0 = off)."),
    flag("grpc-keepalive-timeout", K::Duration, "20s", S::AtDefault, "Wait for a ping answer (0 = off)."),
    flag("socket-reuse-port", K::Bool, "false", S::AtDefault, "Set SO_REUSEPORT on listeners."),
    flag("socket-reuse-address", K::Bool, "false", S::AtDefault, "Set SO_REUSEADDR on listeners."),
    flag("raft-read-timeout", K::Duration, "5s", S::AtDefault, "Read timeout on peer connections."),
    flag("raft-write-timeout", K::Duration, "5s", S::AtDefault, "Write timeout on peer connections."),
    // Clustering.
    flag("initial-advertise-peer-urls", K::Urls, "http://localhost:2380", S::Honoured, "Peer URLs announced to the cluster."),
    flag("initial-cluster", K::Str, "default=http://localhost:2380", S::Honoured, "name=peer-url,… of the bootstrap members."),
    flag("initial-cluster-state", K::Choice(&["new", "existing"]), "new", S::Honoured, "'new' to bootstrap, 'existing' to join."),
    flag("initial-cluster-token", K::Str, "etcd-cluster", S::Honoured, "Token that tells clusters apart at bootstrap."),
    flag("advertise-client-urls", K::Urls, "http://localhost:2379", S::Honoured, "Client URLs announced to the cluster."),
    flag("discovery", K::Str, "", S::Refused, "Discovery service URL."),
    flag("discovery-fallback", K::Choice(&["exit", "proxy"]), "proxy", S::Matches(&["exit", "proxy"]), "What to do when discovery fails."),
    flag("discovery-proxy", K::Str, "", S::AtDefault, "HTTP proxy for the discovery service."),
    flag("discovery-srv", K::Str, "", S::Refused, "DNS SRV domain to bootstrap from."),
    flag("discovery-srv-name", K::Str, "", S::Refused, "Suffix of the DNS SRV name."),
    flag("strict-reconfig-check", K::Bool, "true", S::AtDefault, "Refuse membership changes that lose quorum."),
    flag("pre-vote", K::Bool, "true", S::AtDefault, "Raft pre-vote (ironcd always pre-votes)."),
    flag("auto-compaction-retention", K::Str, "0", S::Honoured, "History to keep: a duration (bare number = hours) or revisions; 0 = off."),
    flag("auto-compaction-mode", K::Choice(&["periodic", "revision"]), "periodic", S::Honoured, "How to read the retention: 'periodic' or 'revision'."),
    flag("enable-v2", K::Bool, "false", S::AtDefault, "Serve the v2 API."),
    flag("v2-deprecation", K::Choice(V2_STAGES), "not-yet", S::Matches(V2_STAGES), "v2 store deprecation stage (ironcd has no v2 store)."),
    flag("experimental-enable-v2v3", K::Str, "", S::AtDefault, "Serve v2 through v3 under this prefix."),
    // Security.
    flag("cert-file", K::Str, "", S::Honoured, "Client TLS certificate."),
    flag("key-file", K::Str, "", S::Honoured, "Client TLS key."),
    flag("client-cert-auth", K::Bool, "false", S::Honoured, "Require client certificates."),
    flag("client-cert-file", K::Str, "", S::AtDefault, "Certificate to present as a client."),
    flag("client-key-file", K::Str, "", S::AtDefault, "Key to present as a client."),
    flag("client-crl-file", K::Str, "", S::Honoured, "Client certificate revocation list."),
    flag("client-cert-allowed-hostname", K::Str, "", S::Honoured, "Allowed SAN hostnames of clients."),
    flag("trusted-ca-file", K::Str, "", S::Honoured, "CA for client certificates."),
    flag("auto-tls", K::Bool, "false", S::Honoured, "Generate client TLS certificates."),
    flag("peer-cert-file", K::Str, "", S::Honoured, "Peer TLS certificate."),
    flag("peer-key-file", K::Str, "", S::Honoured, "Peer TLS key."),
    flag("peer-client-cert-auth", K::Bool, "false", S::Honoured, "Require peer client certificates."),
    flag("peer-trusted-ca-file", K::Str, "", S::Honoured, "CA for peer certificates."),
    flag("peer-cert-allowed-cn", K::Str, "", S::Honoured, "Allowed CNs of peers."),
    flag("peer-cert-allowed-hostname", K::Str, "", S::Honoured, "Allowed SAN hostnames of peers."),
    flag("peer-auto-tls", K::Bool, "false", S::Honoured, "Generate peer TLS certificates."),
    flag("peer-client-cert-file", K::Str, "", S::Honoured, "Certificate to present to peers."),
    flag("peer-client-key-file", K::Str, "", S::Honoured, "Key to present to peers."),
    flag("self-signed-cert-validity", K::Uint, "1", S::Honoured, "Years generated certificates are valid."),
    flag("peer-crl-file", K::Str, "", S::Honoured, "Peer certificate revocation list."),
    flag("cipher-suites", K::Str, "", S::Honoured, "TLS cipher suites."),
    flag("cors", K::Str, "*", S::AtDefault, "Allowed CORS origins."),
    flag("host-whitelist", K::Str, "*", S::AtDefault, "Allowed Host headers on plain HTTP."),
    flag("tls-min-version", K::Str, "TLS1.2", S::Honoured, "Lowest TLS version."),
    flag("tls-max-version", K::Str, "", S::Honoured, "Highest TLS version."),
    flag("experimental-peer-skip-client-san-verification", K::Bool, "false", S::AtDefault, "Skip SAN checks of peer client certificates."),
    // Auth.
    flag("auth-token", K::Str, "simple", S::AtDefault, "Auth token type and options."),
    flag("bcrypt-cost", K::Uint, "10", S::AtDefault, "bcrypt cost of password hashes."),
    flag("auth-token-ttl", K::Uint, "300", S::AtDefault, "Lifetime of a simple token, in seconds."),
    // Profiling and monitoring.
    flag("enable-pprof", K::Bool, "false", S::AtDefault, "Serve profiling data."),
    flag("metrics", K::Choice(&["basic", "extensive"]), "basic", S::AtDefault, "Metrics detail: 'basic' or 'extensive'."),
    flag("listen-metrics-urls", K::Urls, "", S::Honoured, "Extra URLs serving /metrics and /health."),
    // Logging.
    flag("logger", K::Choice(&["zap", "capnslog"]), "zap", S::Honoured, "Logger implementation: zap (JSON lines) or capnslog (text lines)."),
    flag("log-outputs", K::Str, "default", S::Honoured, "Where logs go: default, stderr, stdout or file paths, comma-separated."),
    flag("log-output", K::Str, "default", S::Honoured, "Old spelling of --log-outputs."),
    flag("log-level", K::Choice(LOG_LEVELS), "info", S::Honoured, "debug, info, warn, error, panic or fatal."),
    flag("debug", K::Bool, "false", S::Honoured, "Old spelling of --log-level=debug."),
    flag("log-package-levels", K::Str, "", S::AtDefault, "Per-package log levels."),
    flag("enable-log-rotation", K::Bool, "false", S::AtDefault, "Rotate the log file."),
    flag("log-rotation-config-json", K::Str, LOG_ROTATION, S::AtDefault, "Log rotation settings."),
    flag("experimental-enable-distributed-tracing", K::Bool, "false", S::AtDefault, "Export traces."),
    flag("experimental-distributed-tracing-address", K::Str, "localhost:4317", S::AtDefault, "Trace collector address."),
    flag("experimental-distributed-tracing-service-name", K::Str, "etcd", S::AtDefault, "Trace service name."),
    flag("experimental-distributed-tracing-instance-id", K::Str, "", S::AtDefault, "Trace instance id."),
    flag("experimental-distributed-tracing-sampling-rate", K::Int, "0", S::AtDefault, "Sampled spans per million."),
    // v2 proxy.
    flag("proxy", K::Choice(&["off", "readonly", "on"]), "off", S::Refused, "Run as a v2 proxy: 'off', 'readonly' or 'on'."),
    flag("proxy-failure-wait", K::Uint, "5000", S::AtDefault, "Proxy: ms an endpoint stays failed."),
    flag("proxy-refresh-interval", K::Uint, "30000", S::AtDefault, "Proxy: ms between endpoint refreshes."),
    flag("proxy-dial-timeout", K::Uint, "1000", S::AtDefault, "Proxy: dial timeout, ms."),
    flag("proxy-write-timeout", K::Uint, "5000", S::AtDefault, "Proxy: write timeout, ms."),
    flag("proxy-read-timeout", K::Uint, "0", S::AtDefault, "Proxy: read timeout, ms."),
    // Experimental.
    flag("experimental-initial-corrupt-check", K::Bool, "false", S::AtDefault, "Check for corruption before serving."),
    flag("experimental-corrupt-check-time", K::Duration, "0s", S::AtDefault, "Interval of cluster corruption checks."),
    flag("experimental-compact-hash-check-enabled", K::Bool, "false", S::AtDefault, "Leader compares compaction hashes."),
    flag("experimental-compact-hash-check-time", K::Duration, "1m", S::AtDefault, "Interval of compaction hash checks."),
    flag("experimental-enable-lease-checkpoint", K::Bool, "false", S::Honoured, "Checkpoint lease TTLs to followers."),
    flag("experimental-enable-lease-checkpoint-persist", K::Bool, "false", S::AtDefault, "Persist lease checkpoints (ironcd always persists them)."),
    flag("experimental-lease-checkpoint-interval", K::Duration, "5m", S::Honoured, "Interval of lease checkpoints."),
    flag("experimental-compaction-batch-limit", K::Int, "1000", S::AtDefault, "Revisions deleted per compaction batch."),
    flag("experimental-compaction-sleep-interval", K::Duration, "10ms", S::AtDefault, "Pause between compaction batches."),
    flag("experimental-watch-progress-notify-interval", K::Duration, "10m", S::Honoured, "Interval of watch progress notifications."),
    flag("experimental-downgrade-check-time", K::Duration, "5s", S::AtDefault, "Interval of downgrade checks."),
    flag("experimental-memory-mlock", K::Bool, "false", S::AtDefault, "Lock the backend in RAM."),
    flag("experimental-warning-apply-duration", K::Duration, "100ms", S::AtDefault, "Warn on applies slower than this."),
    flag("experimental-warning-unary-request-duration", K::Duration, "300ms", S::AtDefault, "Warn on requests slower than this."),
    flag("experimental-txn-mode-write-with-shared-buffer", K::Bool, "true", S::AtDefault, "Share the read buffer in write txns."),
    flag("experimental-bootstrap-defrag-threshold-megabytes", K::Uint, "0", S::AtDefault, "Defragment at boot above this much free space."),
    flag("experimental-stop-grpc-service-on-defrag", K::Bool, "false", S::AtDefault, "Stop serving during defragmentation."),
    flag("experimental-max-learners", K::Int, "1", S::AtDefault, "Most learners in the cluster."),
    flag("experimental-wait-cluster-ready-timeout", K::Duration, "5s", S::AtDefault, "Wait for the cluster at boot."),
    flag("experimental-snapshot-catchup-entries", K::Uint, "5000", S::Honoured, "Entries kept after a snapshot for slow followers."),
    flag("experimental-backend-bbolt-freelist-type", K::Str, "map", S::Matches(&["map", "array"]), "bbolt freelist type (no bbolt in ironcd)."),
    // Unsafe.
    flag("force-new-cluster", K::Bool, "false", S::Honoured, "Restart as a one-member cluster."),
    flag("unsafe-no-fsync", K::Bool, "false", S::AtDefault, "Skip fsync (ironcd always syncs)."),
    // Process.
    flag("config-file", K::Str, "", S::Refused, "Server configuration file."),
    flag("version", K::Bool, "false", S::Honoured, "Print the version and exit."),
    // Leftovers from before v3 that etcd accepts and ignores.
    flag("cluster-active-size", K::Ignored, "", S::Ignored, ""),
    flag("cluster-remove-delay", K::Ignored, "", S::Ignored, ""),
    flag("cluster-sync-interval", K::Ignored, "", S::Ignored, ""),
    flag("config", K::Ignored, "", S::Ignored, ""),
    flag("force", K::Ignored, "", S::Ignored, ""),
    flag("max-result-buffer", K::Ignored, "", S::Ignored, ""),
    flag("max-retry-attempts", K::Ignored, "", S::Ignored, ""),
    flag("peer-heartbeat-interval", K::Ignored, "", S::Ignored, ""),
    flag("peer-election-timeout", K::Ignored, "", S::Ignored, ""),
    flag("retry-interval", K::Ignored, "", S::Ignored, ""),
    flag("snapshot", K::Ignored, "", S::Ignored, ""),
    flag("v", K::Ignored, "", S::Ignored, ""),
    flag("vv", K::Ignored, "", S::Ignored, ""),
];

pub(super) fn spec_index(name: &str) -> Option<usize> {
    FLAGS.iter().position(|spec| spec.name == name)
}

pub(super) fn env_key(name: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

impl FlagSpec {
    pub(super) fn default_value(&self) -> Value {
        self.kind.parse(self.default).unwrap_or_else(|reason| {
            panic!(
                "flag table: default {:?} of --{}: {reason}",
                self.default, self.name
            )
        })
    }

    /// Whether `value` asks for nothing ironcd does not do.
    pub(super) fn is_matched(&self, value: &Value) -> bool {
        let fine: &[&str] = match self.support {
            Support::Matches(fine) => fine,
            _ => &[self.default],
        };
        fine.iter()
            .any(|text| self.kind.parse(text).as_ref() == Ok(value))
    }
}

/// A flag value, parsed by its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Bool(bool),
    Uint(u64),
    Int(i64),
    DurationNs(i64),
    Str(String),
    /// Canonical URLs, sorted and unique (etcd keeps them in a set).
    Urls(Vec<String>),
    Ignored,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(value) => write!(f, "{value}"),
            Value::Uint(value) => write!(f, "{value}"),
            Value::Int(value) => write!(f, "{value}"),
            Value::DurationNs(ns) => write!(f, "{ns}ns"),
            Value::Str(value) => f.write_str(value),
            Value::Urls(urls) => f.write_str(&urls.join(",")),
            Value::Ignored => Ok(()),
        }
    }
}

impl Kind {
    /// Bool-like flags take a value only after `=`.
    pub(super) fn takes_no_value(self) -> bool {
        matches!(self, Kind::Bool | Kind::Ignored)
    }

    pub(super) fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            Kind::Bool => parse_go_bool(text).map(Value::Bool),
            Kind::Uint => parse_go_uint(text).map(Value::Uint),
            Kind::Uint32 => parse_go_uint(text)
                .and_then(|n| {
                    if n > u64::from(u32::MAX) {
                        Err(out_of_range())
                    } else {
                        Ok(n)
                    }
                })
                .map(Value::Uint),
            Kind::Int => parse_go_int(text).map(Value::Int),
            Kind::Duration => parse_go_duration(text).map(Value::DurationNs),
            Kind::Str => Ok(Value::Str(text.to_string())),
            Kind::Urls => parse_url_list(text).map(Value::Urls),
            Kind::Choice(choices) if choices.contains(&text) => Ok(Value::Str(text.to_string())),
            Kind::Choice(choices) => Err(format!("valid values are {choices:?}")),
            Kind::Ignored => Ok(Value::Ignored),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::flags::testkit::*;

    #[test]
    fn flag_table_is_consistent() {
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for spec in FLAGS {
            assert!(names.insert(spec.name), "--{} twice", spec.name);
            assert!(
                keys.insert(env_key(spec.name)),
                "{} twice",
                env_key(spec.name)
            );
            assert!(!spec.name.starts_with('-') && !spec.name.contains('='));
            let default = spec.default_value();
            if spec.support != Support::Honoured {
                assert!(spec.is_matched(&default), "--{}", spec.name);
            }
            if let Support::Matches(fine) = spec.support {
                for text in fine {
                    assert!(spec.kind.parse(text).is_ok(), "--{}: {text:?}", spec.name);
                }
            }
            assert_eq!(spec.kind == Kind::Ignored, spec.support == Support::Ignored);
            assert!(
                spec.support == Support::Ignored || !spec.help.is_empty(),
                "--{}",
                spec.name
            );
        }
        assert_eq!(
            env_key("initial-cluster-token"),
            "ETCD_INITIAL_CLUSTER_TOKEN"
        );
    }

    #[test]
    fn every_unimplemented_flag_is_accepted_at_its_default() {
        for spec in FLAGS
            .iter()
            .filter(|spec| spec.support != Support::Honoured)
        {
            let arg = format!("--{}={}", spec.name, spec.default);
            let parsed = parse(&[&arg]).unwrap_or_else(|e| panic!("{arg}: {e}"));
            assert!(
                parsed.not_honoured.is_empty(),
                "{arg}: {:?}",
                parsed.not_honoured
            );
        }
    }

    #[test]
    fn bad_values_name_flag_and_value() {
        let cases: &[(&str, &str)] = &[
            ("--snapshot-count=ten", "expected an unsigned integer"),
            ("--snapshot-count=-1", "expected an unsigned integer"),
            ("--heartbeat-interval=1.5", "expected an unsigned integer"),
            ("--quota-backend-bytes=2GiB", "expected an integer"),
            (
                "--max-request-bytes=99999999999999999999",
                "value out of range",
            ),
            ("--max-concurrent-streams=4294967296", "value out of range"),
            ("--grpc-keepalive-timeout=5", "expected a duration"),
            (
                "--initial-cluster-state=old",
                r#"valid values are ["new", "existing"]"#,
            ),
            ("--log-level=verbose", "valid values are"),
            ("--auto-compaction-mode=daily", "valid values are"),
        ];
        for (arg, reason) in cases {
            assert_invalid_value(arg, reason);
        }
    }
}
