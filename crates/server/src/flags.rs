//! etcd's server flags and `ETCD_*` environment variables, parsed into a
//! [`ServerConfig`].
//!
//! The syntax is Go's `flag` package, which etcd uses: `--flag=value`,
//! `--flag value`, one dash as well as two, bool flags set by their bare name
//! (a value only after `=`), `--` ends the flags, and any word that is not a
//! flag is an error. A flag not given on the command line is read from
//! `ETCD_<FLAG_IN_UPPER_SNAKE>`; giving both is an error, as in etcd.
//!
//! Every etcd 3.4 and 3.5 server flag is known, in one table ([`FLAGS`]). A
//! flag ironcd implements is mapped into [`ServerConfig`]; any other flag is
//! accepted, its value checked against its type, and reported in
//! [`Parsed::not_honoured`] when its value asks for behaviour ironcd lacks.
//! A few flags would make ironcd a different thing than asked for (a
//! discovery-bootstrapped member, a v2 proxy, a config file's settings): those
//! are refused instead.
//!
//! ```
//! use ironcd_server::flags::{parse_from, Action};
//!
//! let no_env: [(&str, &str); 0] = [];
//! let parsed = parse_from(["ironcd", "--name", "infra1"], no_env).unwrap();
//! let Action::Serve(config) = parsed.action else { panic!("not a server run") };
//! assert_eq!(config.data_dir.to_str(), Some("infra1.ironcd"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;

use crate::config::{
    AutoCompaction, ClusterState, InitialMember, LogLevel, ServerConfig,
    DEFAULT_QUOTA_BACKEND_BYTES, MAX_QUOTA_BACKEND_BYTES,
};

use crate::ETCD_API_VERSION;

/// The prefix of etcd's environment variables.
const ENV_PREFIX: &str = "ETCD_";

/// What the command line asks for, with everything worth telling the
/// operator about it.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// Run the server, or print a text and exit.
    pub action: Action,
    /// Flags given with a value ironcd does not act on yet, as `--name`, in
    /// table order. The server logs each (see
    /// [`Parsed::not_honoured_messages`]).
    pub not_honoured: Vec<String>,
    /// Other things to log at warn level: unrecognized `ETCD_*` variables,
    /// flags etcd itself ignores, a quota above the recommended maximum.
    pub warnings: Vec<String>,
}

/// The outcome of parsing.
#[derive(Clone, Debug)]
pub enum Action {
    /// Start the server with this configuration (already validated).
    Serve(Box<ServerConfig>),
    /// `--version`: print this to stdout and exit 0.
    PrintVersion(String),
    /// `-h` / `--help`: print this to stdout and exit 0.
    PrintHelp(String),
}

impl Parsed {
    /// One log line per entry of [`Parsed::not_honoured`].
    pub fn not_honoured_messages(&self) -> Vec<String> {
        self.not_honoured
            .iter()
            .map(|flag| format!("flag {flag} is accepted but not yet honoured by ironcd"))
            .collect()
    }
}

/// Why the command line or the environment was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// A flag etcd does not have.
    #[error("unknown flag: --{0}")]
    UnknownFlag(String),
    /// A flag that takes a value came last, without one.
    #[error("flag needs an argument: --{0}")]
    MissingValue(String),
    /// An argument starting with `-` that is not a flag (`---x`, `-=x`).
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    /// A word that is not a flag (etcd takes no positional arguments).
    #[error("{0:?} is not a valid flag")]
    NotAFlag(String),
    /// An argument or variable that is not UTF-8.
    #[error("{0:?} is not valid UTF-8")]
    NotUtf8(String),
    /// A value that does not parse as its flag's type or choices.
    #[error("invalid value {value:?} for {}: {reason}", origin(.flag, .env.as_deref()))]
    InvalidValue {
        /// The flag, without dashes.
        flag: String,
        /// The environment variable the value came from, if it did.
        env: Option<String>,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A flag given both on the command line and in the environment.
    #[error(
        "conflicting environment variable {0:?} is shadowed by corresponding command-line flag \
         (either unset environment variable or disable flag)"
    )]
    EnvConflict(String),
    /// A flag value ironcd refuses to run with (TLS, unix sockets,
    /// discovery, proxy mode, a config file).
    #[error("{0}")]
    Unsupported(String),
    /// Values that parse but do not fit together (etcd's wording).
    #[error("{0}")]
    Invalid(String),
    /// [`ServerConfig::validate`] refused the result.
    #[error(transparent)]
    Config(#[from] crate::Error),
}

impl FlagError {
    /// The exit status etcd uses: 2 when Go's flag package rejects the
    /// command line, 1 for everything found later.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::UnknownFlag(_)
            | Self::MissingValue(_)
            | Self::BadSyntax(_)
            | Self::InvalidValue { env: None, .. } => 2,
            _ => 1,
        }
    }
}

fn origin(flag: &str, env: Option<&str>) -> String {
    match env {
        Some(key) => key.to_string(),
        None => format!("flag --{flag}"),
    }
}

/// Parses `args` (starting with the program name) and the process's
/// `ETCD_*` variables.
pub fn parse_args<I, T>(args: I) -> Result<Parsed, FlagError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    parse_from(args, process_env()?)
}

/// Parses `args` (starting with the program name) with `env` standing in
/// for the process environment; variables without the `ETCD_` prefix are
/// ignored.
pub fn parse_from<I, T, E, K, V>(args: I, env: E) -> Result<Parsed, FlagError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
    E: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let args = utf8_args(args)?;
    let env: BTreeMap<String, String> = env
        .into_iter()
        .map(|(key, value)| (key.into(), value.into()))
        .filter(|(key, _)| key.starts_with(ENV_PREFIX))
        .collect();
    let mut settings = Settings::new();
    let mut notes = Notes::default();
    if parse_command_line(&args, &mut settings)? == CommandLine::Help {
        return Ok(notes.into_parsed(Action::PrintHelp(help_text())));
    }
    if settings.bool("version") {
        return Ok(notes.into_parsed(Action::PrintVersion(version_text())));
    }
    apply_env(&env, &mut settings, &mut notes)?;
    check_unimplemented(&settings, &mut notes)?;
    let config = build_config(&settings, &mut notes)?;
    config.validate()?;
    Ok(notes.into_parsed(Action::Serve(Box::new(config))))
}

/// The `--version` text.
pub fn version_text() -> String {
    format!(
        "ironcd Version: {}\netcd API Version: {ETCD_API_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The `--help` text, generated from the flag table.
pub fn help_text() -> String {
    let mut text = String::from(
        "Usage:\n\n  ironcd [flags]\n    Start an ironcd (etcd-compatible) server.\n\n  \
         ironcd --version\n    Show the version of ironcd.\n\n  ironcd -h | --help\n    \
         Show this help.\n\nEvery flag may also be set as ETCD_<FLAG_IN_UPPER_SNAKE_CASE>.\n\n\
         Flags:\n",
    );
    for spec in FLAGS.iter().filter(|spec| spec.support != Support::Ignored) {
        let note = match spec.support {
            Support::Honoured | Support::Ignored => String::new(),
            Support::Refused => " [ironcd: refused unless left at the default]".to_string(),
            Support::AtDefault => " [ironcd: only the default is honoured]".to_string(),
            Support::Matches(fine) => format!(" [ironcd: honoured as {}]", fine.join(", ")),
        };
        text.push_str(&format!(
            "  --{} '{}'\n    {}{note}\n",
            spec.name, spec.default, spec.help
        ));
    }
    text
}

/// Warnings and not-honoured flags gathered while parsing.
#[derive(Default)]
struct Notes {
    not_honoured: Vec<String>,
    warnings: Vec<String>,
}

impl Notes {
    fn into_parsed(self, action: Action) -> Parsed {
        Parsed {
            action,
            not_honoured: self.not_honoured,
            warnings: self.warnings,
        }
    }

    fn not_honoured(&mut self, flag: &str) {
        let flag = format!("--{flag}");
        if !self.not_honoured.contains(&flag) {
            self.not_honoured.push(flag);
        }
    }
}

fn utf8_args<I, T>(args: I) -> Result<Vec<String>, FlagError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    args.into_iter()
        .skip(1)
        .map(|arg| {
            arg.into()
                .into_string()
                .map_err(|arg| FlagError::NotUtf8(arg.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The process's `ETCD_*` variables. A non-UTF-8 value is an error rather
/// than a silently mangled path.
fn process_env() -> Result<Vec<(String, String)>, FlagError> {
    let mut env = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str().filter(|key| key.starts_with(ENV_PREFIX)) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => env.push((key.to_string(), value)),
            Err(value) => {
                return Err(FlagError::NotUtf8(format!(
                    "{key}={}",
                    value.to_string_lossy()
                )))
            }
        }
    }
    Ok(env)
}

// ---------------------------------------------------------------------------
// The flag table.

/// How a flag's value is spelled (Go's flag types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
enum Support {
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
struct FlagSpec {
    name: &'static str,
    kind: Kind,
    /// etcd's default (3.5's where 3.4 differs), spelled as on the command
    /// line.
    default: &'static str,
    support: Support,
    help: &'static str,
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
static FLAGS: &[FlagSpec] = &[
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
    flag("max-concurrent-streams", K::Uint32, "4294967295", S::AtDefault, "Streams one client may open at once."),
    flag("enable-grpc-gateway", K::Bool, "true", S::AtDefault, "Serve the JSON gateway over HTTP."),
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
    flag("cert-file", K::Str, "", S::AtDefault, "Client TLS certificate."),
    flag("key-file", K::Str, "", S::AtDefault, "Client TLS key."),
    flag("client-cert-auth", K::Bool, "false", S::AtDefault, "Require client certificates."),
    flag("client-cert-file", K::Str, "", S::AtDefault, "Certificate to present as a client."),
    flag("client-key-file", K::Str, "", S::AtDefault, "Key to present as a client."),
    flag("client-crl-file", K::Str, "", S::AtDefault, "Client certificate revocation list."),
    flag("client-cert-allowed-hostname", K::Str, "", S::AtDefault, "Allowed SAN hostnames of clients."),
    flag("trusted-ca-file", K::Str, "", S::AtDefault, "CA for client certificates."),
    flag("auto-tls", K::Bool, "false", S::AtDefault, "Generate client TLS certificates."),
    flag("peer-cert-file", K::Str, "", S::AtDefault, "Peer TLS certificate."),
    flag("peer-key-file", K::Str, "", S::AtDefault, "Peer TLS key."),
    flag("peer-client-cert-auth", K::Bool, "false", S::AtDefault, "Require peer client certificates."),
    flag("peer-trusted-ca-file", K::Str, "", S::AtDefault, "CA for peer certificates."),
    flag("peer-cert-allowed-cn", K::Str, "", S::AtDefault, "Allowed CNs of peers."),
    flag("peer-cert-allowed-hostname", K::Str, "", S::AtDefault, "Allowed SAN hostnames of peers."),
    flag("peer-auto-tls", K::Bool, "false", S::AtDefault, "Generate peer TLS certificates."),
    flag("peer-client-cert-file", K::Str, "", S::AtDefault, "Certificate to present to peers."),
    flag("peer-client-key-file", K::Str, "", S::AtDefault, "Key to present to peers."),
    flag("self-signed-cert-validity", K::Uint, "1", S::AtDefault, "Years generated certificates are valid."),
    flag("peer-crl-file", K::Str, "", S::AtDefault, "Peer certificate revocation list."),
    flag("cipher-suites", K::Str, "", S::AtDefault, "TLS cipher suites."),
    flag("cors", K::Str, "*", S::AtDefault, "Allowed CORS origins."),
    flag("host-whitelist", K::Str, "*", S::AtDefault, "Allowed Host headers on plain HTTP."),
    flag("tls-min-version", K::Str, "TLS1.2", S::AtDefault, "Lowest TLS version."),
    flag("tls-max-version", K::Str, "", S::AtDefault, "Highest TLS version."),
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
    flag("logger", K::Choice(&["zap", "capnslog"]), "zap", S::Matches(&["zap", "capnslog"]), "Logger implementation."),
    flag("log-outputs", K::Str, "default", S::Matches(&["default", "stderr"]), "Where logs go."),
    flag("log-output", K::Str, "default", S::Matches(&["default", "stderr"]), "Old spelling of --log-outputs."),
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
    flag("experimental-enable-lease-checkpoint", K::Bool, "false", S::AtDefault, "Checkpoint lease TTLs to followers."),
    flag("experimental-enable-lease-checkpoint-persist", K::Bool, "false", S::AtDefault, "Persist lease checkpoints."),
    flag("experimental-compaction-batch-limit", K::Int, "1000", S::AtDefault, "Revisions deleted per compaction batch."),
    flag("experimental-compaction-sleep-interval", K::Duration, "10ms", S::AtDefault, "Pause between compaction batches."),
    flag("experimental-watch-progress-notify-interval", K::Duration, "10m", S::AtDefault, "Interval of watch progress notifications."),
    flag("experimental-downgrade-check-time", K::Duration, "5s", S::AtDefault, "Interval of downgrade checks."),
    flag("experimental-memory-mlock", K::Bool, "false", S::AtDefault, "Lock the backend in RAM."),
    flag("experimental-warning-apply-duration", K::Duration, "100ms", S::AtDefault, "Warn on applies slower than this."),
    flag("experimental-warning-unary-request-duration", K::Duration, "300ms", S::AtDefault, "Warn on requests slower than this."),
    flag("experimental-txn-mode-write-with-shared-buffer", K::Bool, "true", S::AtDefault, "Share the read buffer in write txns."),
    flag("experimental-bootstrap-defrag-threshold-megabytes", K::Uint, "0", S::AtDefault, "Defragment at boot above this much free space."),
    flag("experimental-stop-grpc-service-on-defrag", K::Bool, "false", S::AtDefault, "Stop serving during defragmentation."),
    flag("experimental-max-learners", K::Int, "1", S::AtDefault, "Most learners in the cluster."),
    flag("experimental-wait-cluster-ready-timeout", K::Duration, "5s", S::AtDefault, "Wait for the cluster at boot."),
    flag("experimental-snapshot-catchup-entries", K::Uint, "5000", S::AtDefault, "Entries kept after a snapshot for slow followers."),
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

fn spec_index(name: &str) -> Option<usize> {
    FLAGS.iter().position(|spec| spec.name == name)
}

fn env_key(name: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

impl FlagSpec {
    fn default_value(&self) -> Value {
        self.kind.parse(self.default).unwrap_or_else(|reason| {
            panic!(
                "flag table: default {:?} of --{}: {reason}",
                self.default, self.name
            )
        })
    }

    /// Whether `value` asks for nothing ironcd does not do.
    fn is_matched(&self, value: &Value) -> bool {
        let fine: &[&str] = match self.support {
            Support::Matches(fine) => fine,
            _ => &[self.default],
        };
        fine.iter()
            .any(|text| self.kind.parse(text).as_ref() == Ok(value))
    }
}

// ---------------------------------------------------------------------------
// Values.

/// A flag value, parsed by its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
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
    fn takes_no_value(self) -> bool {
        matches!(self, Kind::Bool | Kind::Ignored)
    }

    fn parse(self, text: &str) -> Result<Value, String> {
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

fn out_of_range() -> String {
    "value out of range".to_string()
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("expected a boolean (true or false)".to_string()),
    }
}

/// Go's `strconv.ParseUint(text, 0, 64)`: a base prefix (`0x`, `0o`, `0b`,
/// or a bare leading `0` for octal) and `_` between digits.
fn parse_go_uint(text: &str) -> Result<u64, String> {
    let syntax = || "expected an unsigned integer".to_string();
    let lower = text.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let prefixed = digits.len() < lower.len();
    let groups: Vec<&str> = digits.split('_').collect();
    let bad_group = |(i, group): (usize, &&str)| group.is_empty() && !(i == 0 && prefixed);
    if groups.iter().enumerate().any(bad_group) {
        return Err(syntax());
    }
    let digits: String = groups.concat();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(syntax());
    }
    u64::from_str_radix(&digits, radix).map_err(|_| out_of_range())
}

/// Go's `strconv.ParseInt(text, 0, 64)`.
fn parse_go_int(text: &str) -> Result<i64, String> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = parse_go_uint(magnitude).map_err(|reason| reason.replace("unsigned ", ""))?;
    let value = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    i64::try_from(value).map_err(|_| out_of_range())
}

/// Go's `time.ParseDuration`, in nanoseconds: a sign, then one or more
/// `<number><unit>` with units ns, us (µs), ms, s, m, h; `0` needs no unit.
fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || "expected a duration such as 1h30m, 90s or 500ms".to_string();
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after_int) = rest.split_at(int_end);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(frac) => {
                let end = frac
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(frac.len());
                frac.split_at(end)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_end = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_end);
        let unit_ns = duration_unit_ns(unit).ok_or_else(invalid)?;
        total_ns = total_ns
            .checked_add(number_times_unit(int_digits, frac_digits, unit_ns).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = after_unit;
    }
    let signed = if negative {
        -(total_ns as i128)
    } else {
        total_ns as i128
    };
    i64::try_from(signed).map_err(|_| out_of_range())
}

fn duration_unit_ns(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// `int.frac × unit`, truncated to whole nanoseconds; `None` on overflow.
fn number_times_unit(int_digits: &str, frac_digits: &str, unit_ns: u128) -> Option<u128> {
    let int: u128 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().ok()?
    };
    // Digits past the 18th cannot move a result in whole nanoseconds.
    let frac_digits = &frac_digits[..frac_digits.len().min(18)];
    let frac: u128 = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().ok()?
    };
    let scale = 10u128.pow(frac_digits.len() as u32);
    int.checked_mul(unit_ns)?
        .checked_add(frac * unit_ns / scale)
}

/// A URL as etcd accepts it on its flags: `scheme://host:port`, no path.
#[derive(Debug, PartialEq, Eq)]
struct FlagUrl<'a> {
    /// Lowercase.
    scheme: String,
    /// Without brackets for IPv6.
    host: &'a str,
    authority: &'a str,
}

impl FlagUrl<'_> {
    fn canonical(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

fn parse_url(text: &str) -> Result<FlagUrl<'_>, String> {
    let scheme_error = || format!("URL scheme must be http, https, unix, or unixs: {text}");
    let (scheme, rest) = text.split_once("://").ok_or_else(scheme_error)?;
    let scheme = scheme.to_ascii_lowercase();
    if !["http", "https", "unix", "unixs"].contains(&scheme.as_str()) {
        return Err(scheme_error());
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_end < rest.len() {
        return Err(format!("URL must not contain a path: {text}"));
    }
    let host_port_error = || format!("URL address does not have the form \"host:port\": {text}");
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(host_port_error)?;
            (host, after.strip_prefix(':').ok_or_else(host_port_error)?)
        }
        None => rest.rsplit_once(':').ok_or_else(host_port_error)?,
    };
    if (host.contains(':') && !rest.starts_with('[')) || port.parse::<u16>().is_err() {
        return Err(host_port_error());
    }
    Ok(FlagUrl {
        scheme,
        host,
        authority: rest,
    })
}

/// True for a URL etcd accepts as a member's peer URL: `http(s)://host:port`
/// with no path (`MemberAdd`, `MemberUpdate`).
pub fn is_peer_url(text: &str) -> bool {
    parse_url(text).is_ok_and(|url| url.scheme == "http" || url.scheme == "https")
}

/// A comma-separated URL list, sorted and without duplicates, as etcd
/// stores it; an empty string is an empty list.
fn parse_url_list(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let urls: BTreeSet<String> = text
        .split(',')
        .map(|url| parse_url(url.trim()).map(|url| url.canonical()))
        .collect::<Result<_, _>>()?;
    Ok(urls.into_iter().collect())
}

// ---------------------------------------------------------------------------
// Command line and environment.

/// The values given so far, one slot per row of [`FLAGS`].
struct Settings {
    given: Vec<Option<Value>>,
}

impl Settings {
    fn new() -> Self {
        Self {
            given: vec![None; FLAGS.len()],
        }
    }

    fn index(name: &str) -> usize {
        spec_index(name).unwrap_or_else(|| panic!("the flag table has no --{name}"))
    }

    fn is_set(&self, name: &str) -> bool {
        self.given[Self::index(name)].is_some()
    }

    /// The value given, else the default.
    fn value(&self, name: &str) -> Value {
        let index = Self::index(name);
        self.given[index]
            .clone()
            .unwrap_or_else(|| FLAGS[index].default_value())
    }

    fn bool(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(value) => value,
            other => panic!("--{name} is not a bool: {other:?}"),
        }
    }

    fn uint(&self, name: &str) -> u64 {
        match self.value(name) {
            Value::Uint(value) => value,
            other => panic!("--{name} is not a uint: {other:?}"),
        }
    }

    fn int(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Int(value) => value,
            other => panic!("--{name} is not an int: {other:?}"),
        }
    }

    fn string(&self, name: &str) -> String {
        match self.value(name) {
            Value::Str(value) => value,
            other => panic!("--{name} is not a string: {other:?}"),
        }
    }

    fn urls(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Value::Urls(value) => value,
            other => panic!("--{name} is not a URL list: {other:?}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum CommandLine {
    Flags,
    Help,
}

/// One command-line argument as Go's flag package sees it.
enum Token<'a> {
    /// Not a flag: etcd refuses it.
    Word,
    /// `--`: the end of the flags.
    End,
    Flag {
        name: &'a str,
        value: Option<&'a str>,
    },
}

fn classify(arg: &str) -> Result<Token<'_>, FlagError> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Ok(Token::Word);
    }
    if arg == "--" {
        return Ok(Token::End);
    }
    let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Err(FlagError::BadSyntax(arg.to_string()));
    }
    Ok(match body.split_once('=') {
        Some((name, value)) => Token::Flag {
            name,
            value: Some(value),
        },
        None => Token::Flag {
            name: body,
            value: None,
        },
    })
}

/// Reads the flags in order, checking each value as Go does when it is
/// set: the first bad argument is the error, and `-h` stops parsing.
fn parse_command_line(args: &[String], settings: &mut Settings) -> Result<CommandLine, FlagError> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, value) = match classify(arg)? {
            Token::Word => return Err(FlagError::NotAFlag(arg.clone())),
            Token::End => break,
            Token::Flag { name, value } => (name, value),
        };
        if name == "h" || name == "help" {
            return Ok(CommandLine::Help);
        }
        let index = spec_index(name).ok_or_else(|| FlagError::UnknownFlag(name.to_string()))?;
        let spec = &FLAGS[index];
        let text = match value {
            Some(value) => value,
            None if spec.kind.takes_no_value() => "true",
            None => rest
                .next()
                .ok_or_else(|| FlagError::MissingValue(name.to_string()))?,
        };
        let parsed = spec
            .kind
            .parse(text)
            .map_err(|reason| FlagError::InvalidValue {
                flag: name.to_string(),
                env: None,
                value: text.to_string(),
                reason,
            })?;
        settings.given[index] = Some(parsed);
    }
    match rest.next() {
        Some(word) => Err(FlagError::NotAFlag(word.clone())),
        None => Ok(CommandLine::Flags),
    }
}

/// Fills flags not given on the command line from `ETCD_*` variables, as
/// etcd's `SetFlagsFromEnv` does: empty values are skipped, a variable for
/// a flag also given on the command line is an error, and variables that
/// match no flag are warned about.
fn apply_env(
    env: &BTreeMap<String, String>,
    settings: &mut Settings,
    notes: &mut Notes,
) -> Result<(), FlagError> {
    let mut used = BTreeSet::new();
    for (index, spec) in FLAGS.iter().enumerate() {
        let key = env_key(spec.name);
        let Some(text) = env.get(&key) else { continue };
        if settings.given[index].is_some() {
            return Err(FlagError::EnvConflict(key));
        }
        if text.is_empty() || spec.name == "version" {
            continue;
        }
        let value = spec
            .kind
            .parse(text)
            .map_err(|reason| FlagError::InvalidValue {
                flag: spec.name.to_string(),
                env: Some(key.clone()),
                value: text.clone(),
                reason,
            })?;
        settings.given[index] = Some(value);
        used.insert(key);
    }
    for (key, text) in env {
        if used.contains(key) || key == "ETCD_UNSUPPORTED_ARCH" {
            continue;
        }
        notes
            .warnings
            .push(if key == "ETCD_VERSION" && !text.is_empty() {
                format!("cannot set special environment variable {key}; ignoring it")
            } else if text.is_empty() {
                format!("ignoring empty environment variable {key}")
            } else {
                format!("unrecognized environment variable {key}")
            });
    }
    Ok(())
}

/// Sorts the flags ironcd does not implement: fine at these values,
/// reported as not honoured, ignored (as etcd does), or refused.
fn check_unimplemented(settings: &Settings, notes: &mut Notes) -> Result<(), FlagError> {
    for (spec, given) in FLAGS.iter().zip(&settings.given) {
        let Some(value) = given else { continue };
        match spec.support {
            Support::Honoured => {}
            Support::Ignored => notes.warnings.push(format!(
                "flag --{} is ignored (etcd ignores it too)",
                spec.name
            )),
            Support::AtDefault | Support::Matches(_) if !spec.is_matched(value) => {
                notes.not_honoured(spec.name)
            }
            Support::AtDefault | Support::Matches(_) => {}
            Support::Refused if !spec.is_matched(value) => {
                return Err(FlagError::Unsupported(format!(
                    "--{}={value} is not supported by ironcd",
                    spec.name
                )))
            }
            Support::Refused => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Building the configuration.

fn build_config(settings: &Settings, notes: &mut Notes) -> Result<ServerConfig, FlagError> {
    let name = settings.string("name");
    let data_dir = match settings.string("data-dir") {
        dir if dir.is_empty() => format!("{name}.ironcd"),
        dir => dir,
    };
    let urls = MemberUrls::from_settings(settings)?;
    let initial_cluster = initial_cluster(settings, &name, &urls.initial_advertise_peer)?;
    let initial_cluster_state = match settings.string("initial-cluster-state").as_str() {
        "existing" => ClusterState::Existing,
        _ => ClusterState::New,
    };
    Ok(ServerConfig {
        name,
        data_dir: data_dir.into(),
        listen_client_urls: urls.listen_client,
        advertise_client_urls: urls.advertise_client,
        listen_peer_urls: urls.listen_peer,
        initial_advertise_peer_urls: urls.initial_advertise_peer,
        listen_metrics_urls: urls.listen_metrics,
        initial_cluster,
        initial_cluster_state,
        initial_cluster_token: settings.string("initial-cluster-token"),
        snapshot_count: settings.uint("snapshot-count"),
        heartbeat_ms: settings.uint("heartbeat-interval"),
        election_ms: settings.uint("election-timeout"),
        quota_backend_bytes: quota_backend_bytes(settings, notes),
        max_request_bytes: settings.uint("max-request-bytes"),
        max_txn_ops: settings.uint("max-txn-ops"),
        auto_compaction: auto_compaction(settings)?,
        force_new_cluster: settings.bool("force-new-cluster"),
        log_level: log_level(settings),
    })
}

/// The member's URL flags, checked the way etcd's `Config.Validate` does.
struct MemberUrls {
    listen_client: Vec<String>,
    advertise_client: Vec<String>,
    listen_peer: Vec<String>,
    initial_advertise_peer: Vec<String>,
    listen_metrics: Vec<String>,
}

/// Whether a URL is bound to (needs an IP) or handed to others (needs a
/// host).
#[derive(Clone, Copy)]
enum UrlUse {
    Listen,
    Advertise,
}

impl MemberUrls {
    fn from_settings(settings: &Settings) -> Result<Self, FlagError> {
        let list = |flag: &str, url_use| checked_urls(flag, settings.urls(flag), url_use);
        let urls = Self {
            listen_client: list("listen-client-urls", UrlUse::Listen)?,
            advertise_client: list("advertise-client-urls", UrlUse::Advertise)?,
            listen_peer: list("listen-peer-urls", UrlUse::Listen)?,
            initial_advertise_peer: list("initial-advertise-peer-urls", UrlUse::Advertise)?,
            listen_metrics: list("listen-metrics-urls", UrlUse::Listen)?,
        };
        // etcd drops its default advertised client URL once the listen URLs
        // are chosen, so that a member never advertises a URL it may not
        // serve.
        if settings.is_set("listen-client-urls") && !settings.is_set("advertise-client-urls") {
            return Err(FlagError::Invalid(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                    .to_string(),
            ));
        }
        Ok(urls)
    }
}

fn checked_urls(flag: &str, urls: Vec<String>, url_use: UrlUse) -> Result<Vec<String>, FlagError> {
    for url in &urls {
        let parsed = parse_url(url).expect("URL lists are checked when set");
        supported_scheme(flag, url, &parsed.scheme)?;
        match url_use {
            UrlUse::Listen
                if parsed.host != "localhost" && parsed.host.parse::<IpAddr>().is_err() =>
            {
                return Err(FlagError::Invalid(format!(
                    "--{flag}: expected IP in URL for binding ({url})"
                )));
            }
            UrlUse::Advertise if parsed.host.is_empty() => {
                return Err(FlagError::Invalid(format!(
                    "--{flag} {:?} must be \"host:port\" (unexpected empty host ({url}))",
                    urls.join(",")
                )));
            }
            _ => {}
        }
    }
    Ok(urls)
}

/// ironcd serves plain HTTP/2 over TCP only, for now.
fn supported_scheme(flag: &str, url: &str, scheme: &str) -> Result<(), FlagError> {
    match scheme {
        "http" => Ok(()),
        "https" | "unixs" => Err(FlagError::Unsupported(format!(
            "TLS is not yet supported by ironcd: --{flag} has {url}"
        ))),
        _ => Err(FlagError::Unsupported(format!(
            "unix sockets are not yet supported by ironcd: --{flag} has {url}"
        ))),
    }
}

/// `--initial-cluster`, or, when not given, this member alone at its
/// advertised peer URLs (etcd's default, built from `--name`).
fn initial_cluster(
    settings: &Settings,
    name: &str,
    advertise_peer_urls: &[String],
) -> Result<Vec<InitialMember>, FlagError> {
    if !settings.is_set("initial-cluster") {
        return Ok(vec![InitialMember {
            name: name.to_string(),
            peer_urls: advertise_peer_urls.to_vec(),
        }]);
    }
    parse_initial_cluster(&settings.string("initial-cluster"))
}

/// `name=url,name=url,…`; a name may repeat to give a member several URLs.
/// Members keep their first-appearance order, each member's URLs are
/// sorted.
fn parse_initial_cluster(text: &str) -> Result<Vec<InitialMember>, FlagError> {
    let invalid = |reason: String| FlagError::InvalidValue {
        flag: "initial-cluster".to_string(),
        env: None,
        value: text.to_string(),
        reason,
    };
    let mut members: Vec<InitialMember> = Vec::new();
    for entry in text.split(',').filter(|entry| !entry.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| invalid(format!("{entry:?} is not of the form name=peer-url")))?;
        let parsed = parse_url(url.trim()).map_err(invalid)?;
        let url = parsed.canonical();
        supported_scheme("initial-cluster", &url, &parsed.scheme)?;
        match members.iter_mut().find(|member| member.name == name) {
            Some(member) => member.peer_urls.push(url),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url],
            }),
        }
    }
    for member in &mut members {
        member.peer_urls.sort();
        member.peer_urls.dedup();
    }
    Ok(members)
}

/// 0 means etcd's default; a negative quota, which etcd reads as "no
/// quota", is not honoured: ironcd keeps the default.
fn quota_backend_bytes(settings: &Settings, notes: &mut Notes) -> u64 {
    let quota = settings.int("quota-backend-bytes");
    if quota < 0 {
        notes.not_honoured("quota-backend-bytes");
    }
    let quota = u64::try_from(quota).ok().filter(|&quota| quota > 0);
    let quota = quota.unwrap_or(DEFAULT_QUOTA_BACKEND_BYTES);
    if quota > MAX_QUOTA_BACKEND_BYTES {
        notes.warnings.push(format!(
            "--quota-backend-bytes={quota} exceeds the maximum recommended quota of \
             {MAX_QUOTA_BACKEND_BYTES} bytes"
        ));
    }
    quota
}

/// `--auto-compaction-retention` read in `--auto-compaction-mode`: in
/// periodic mode a Go duration or a bare number of hours, in revision mode
/// a number of revisions. Zero is off.
fn auto_compaction(settings: &Settings) -> Result<AutoCompaction, FlagError> {
    let text = settings.string("auto-compaction-retention");
    let invalid = |reason: &str| FlagError::InvalidValue {
        flag: "auto-compaction-retention".to_string(),
        env: None,
        value: text.clone(),
        reason: reason.to_string(),
    };
    let revision_mode = settings.string("auto-compaction-mode") == "revision";
    match text.parse::<u64>() {
        Ok(0) => Ok(AutoCompaction::Off),
        Ok(retention) if revision_mode => Ok(AutoCompaction::Revision { retention }),
        Ok(hours) => hours
            .checked_mul(3_600_000)
            .map(|retention_ms| AutoCompaction::Periodic { retention_ms })
            .ok_or_else(|| invalid("value out of range")),
        Err(_) if revision_mode => Err(invalid("revision mode needs a number of revisions")),
        Err(_) => {
            let ns = parse_go_duration(&text).map_err(|reason| invalid(&reason))?;
            match u64::try_from(ns / 1_000_000) {
                _ if ns == 0 => Ok(AutoCompaction::Off),
                Ok(0) => Err(invalid("a retention must be at least 1ms")),
                Ok(retention_ms) => Ok(AutoCompaction::Periodic { retention_ms }),
                Err(_) => Err(invalid("a retention must not be negative")),
            }
        }
    }
}

/// `--log-level`, overridden by the older `--debug` as in etcd.
fn log_level(settings: &Settings) -> LogLevel {
    if settings.bool("debug") {
        return LogLevel::Debug;
    }
    match settings.string("log-level").as_str() {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        DEFAULT_CLIENT_URL, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_PEER_URL,
    };

    const NO_ENV: [(&str, &str); 0] = [];

    fn parse(args: &[&str]) -> Result<Parsed, FlagError> {
        parse_with_env(args, &NO_ENV)
    }

    fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, FlagError> {
        let argv = std::iter::once("ironcd").chain(args.iter().copied());
        parse_from(argv, env.iter().copied())
    }

    fn config_from(parsed: &Parsed) -> &ServerConfig {
        match &parsed.action {
            Action::Serve(config) => config,
            other => panic!("expected a server run, got {other:?}"),
        }
    }

    fn serve(args: &[&str]) -> ServerConfig {
        let parsed = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        config_from(&parsed).clone()
    }

    fn error(args: &[&str]) -> String {
        match parse(args) {
            Ok(parsed) => panic!("{args:?} parsed: {parsed:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn members(config: &ServerConfig) -> Vec<(String, Vec<String>)> {
        let members = config.initial_cluster.iter();
        members
            .map(|m| (m.name.clone(), m.peer_urls.clone()))
            .collect()
    }

    #[test]
    fn defaults_are_etcds() {
        let config = serve(&[]);
        assert_eq!(config.name, "default");
        assert_eq!(config.data_dir.to_str(), Some("default.ironcd"));
        assert_eq!(config.listen_client_urls, ["http://localhost:2379"]);
        assert_eq!(config.advertise_client_urls, ["http://localhost:2379"]);
        assert_eq!(config.listen_peer_urls, ["http://localhost:2380"]);
        assert_eq!(
            config.initial_advertise_peer_urls,
            ["http://localhost:2380"]
        );
        assert!(config.listen_metrics_urls.is_empty());
        assert_eq!(
            members(&config),
            [("default".into(), vec![DEFAULT_PEER_URL.into()])]
        );
        assert_eq!(config.initial_cluster_state, ClusterState::New);
        assert_eq!(config.initial_cluster_token, "etcd-cluster");
        assert_eq!(config.quota_backend_bytes, 2 << 30);
        assert_eq!(config.max_request_bytes, 1536 * 1024);
        assert_eq!(config.max_txn_ops, 128);
        assert_eq!(config.snapshot_count, 100_000);
        assert_eq!(config.heartbeat_ms, 100);
        assert_eq!(config.election_ms, 1000);
        assert_eq!(config.auto_compaction, AutoCompaction::Off);
        assert!(!config.force_new_cluster);
        assert_eq!(config.log_level, LogLevel::Info);
        // The same as the hand-written default.
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", ServerConfig::default())
        );
        assert_eq!(DEFAULT_CLIENT_URL, "http://localhost:2379");
        assert_eq!(DEFAULT_MAX_REQUEST_BYTES, 1_572_864);
        assert_eq!(DEFAULT_MAX_TXN_OPS, 128);
        let parsed = parse(&[]).unwrap();
        assert!(parsed.not_honoured.is_empty() && parsed.warnings.is_empty());
    }

    #[test]
    fn value_syntaxes() {
        let cases: &[&[&str]] = &[
            &["--name", "infra1"],
            &["--name=infra1"],
            &["-name", "infra1"],
            &["-name=infra1"],
            &["--name", "x", "--name", "infra1"], // the last one wins, as in Go
            &["--name", "infra1", "--"],
        ];
        for args in cases {
            let config = serve(args);
            assert_eq!(config.name, "infra1", "{args:?}");
            assert_eq!(config.data_dir.to_str(), Some("infra1.ironcd"), "{args:?}");
            assert_eq!(
                members(&config),
                [("infra1".into(), vec![DEFAULT_PEER_URL.into()])]
            );
        }
        // A value is taken even when it looks like a flag, as Go does.
        assert_eq!(
            serve(&["--initial-cluster-token", "-x-"]).initial_cluster_token,
            "-x-"
        );
        assert_eq!(
            serve(&["--initial-cluster-token="]).initial_cluster_token,
            ""
        );
    }

    #[test]
    fn bool_syntaxes() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["--force-new-cluster"], true),
            (&["-force-new-cluster"], true),
            (&["--force-new-cluster=true"], true),
            (&["--force-new-cluster=false"], false),
            (&["--force-new-cluster=1"], true),
            (&["--force-new-cluster=F"], false),
            (&["--force-new-cluster=TRUE"], true),
        ];
        for (args, want) in cases {
            assert_eq!(serve(args).force_new_cluster, *want, "{args:?}");
        }
        // Go never takes a bool's value from the next argument.
        assert_eq!(
            error(&["--force-new-cluster", "false"]),
            r#""false" is not a valid flag"#
        );
        let e = error(&["--force-new-cluster=yes"]);
        assert!(
            e.starts_with(r#"invalid value "yes" for flag --force-new-cluster"#),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["--foo"], "unknown flag: --foo"),
            (&["-foo=1"], "unknown flag: --foo"),
            (&["--name"], "flag needs an argument: --name"),
            (&["---name", "x"], "bad flag syntax: ---name"),
            (&["-=x"], "bad flag syntax: -=x"),
            (&["infra1"], r#""infra1" is not a valid flag"#),
            (&["-"], r#""-" is not a valid flag"#),
            (&["--", "--name", "x"], r#""--name" is not a valid flag"#),
            (
                &["--snapshot-count", "x", "--foo"],
                "invalid value \"x\" for flag --snapshot-count",
            ),
        ];
        for (args, want) in cases {
            let e = error(args);
            assert!(e.starts_with(want), "{args:?}: {e}");
        }
        assert_eq!(parse(&["--foo"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--proxy=on"]).unwrap_err().exit_code(), 1);
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
            (
                "--listen-peer-urls=localhost:2380",
                "URL scheme must be http, https",
            ),
            (
                "--listen-peer-urls=http://127.0.0.1",
                r#"does not have the form "host:port""#,
            ),
            (
                "--listen-peer-urls=http://127.0.0.1:2380/",
                "URL must not contain a path",
            ),
            (
                "--listen-peer-urls=http://127.0.0.1:port",
                r#"does not have the form "host:port""#,
            ),
            (
                "--listen-peer-urls=http://::1:2380",
                r#"does not have the form "host:port""#,
            ),
        ];
        for (arg, reason) in cases {
            let e = error(&[arg]);
            let (flag, value) = arg.trim_start_matches('-').split_once('=').unwrap();
            let head = format!("invalid value {value:?} for flag --{flag}: ");
            assert!(e.starts_with(&head) && e.contains(reason), "{arg}: {e}");
        }
    }

    #[test]
    fn invalid_initial_cluster_state() {
        let e = parse(&["--initial-cluster-state", "joining"]).unwrap_err();
        assert!(
            matches!(&e, FlagError::InvalidValue { flag, value, env: None, .. }
                if flag == "initial-cluster-state" && value == "joining"),
            "{e:?}"
        );
        let config = serve(&["--initial-cluster-state", "existing"]);
        assert_eq!(config.initial_cluster_state, ClusterState::Existing);
    }

    #[test]
    fn env_fills_flags_not_on_the_command_line() {
        let env = [
            ("ETCD_NAME", "infra2"),
            ("ETCD_INITIAL_CLUSTER_STATE", "existing"),
            ("ETCD_FORCE_NEW_CLUSTER", "true"),
            ("ETCD_AUTO_COMPACTION_RETENTION", "1h30m"),
            ("ETCD_MAX_WALS", "7"),
            ("ETCD_DATA_DIR", ""),
            ("ETCD_NOT_A_FLAG", "1"),
            ("ETCDCTL_API", "3"),
            ("PATH", "/bin"),
        ];
        let parsed = parse_with_env(&["--snapshot-count", "10"], &env).unwrap();
        let config = config_from(&parsed);
        assert_eq!(config.name, "infra2");
        assert_eq!(config.data_dir.to_str(), Some("infra2.ironcd"));
        assert_eq!(config.snapshot_count, 10);
        assert_eq!(config.initial_cluster_state, ClusterState::Existing);
        assert!(config.force_new_cluster);
        let retention_ms = 90 * 60 * 1000;
        assert_eq!(
            config.auto_compaction,
            AutoCompaction::Periodic { retention_ms }
        );
        assert_eq!(parsed.not_honoured, ["--max-wals"]);
        assert_eq!(
            parsed.warnings,
            [
                "ignoring empty environment variable ETCD_DATA_DIR",
                "unrecognized environment variable ETCD_NOT_A_FLAG",
            ]
        );
    }

    #[test]
    fn command_line_and_env_for_one_flag_conflict_as_in_etcd() {
        let e = parse_with_env(&["--name", "a"], &[("ETCD_NAME", "b")]).unwrap_err();
        assert!(
            matches!(&e, FlagError::EnvConflict(key) if key == "ETCD_NAME"),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .contains("shadowed by corresponding command-line flag"));
        // etcd counts a variable as set even when empty.
        let e = parse_with_env(&["-name=a"], &[("ETCD_NAME", "")]).unwrap_err();
        assert!(matches!(e, FlagError::EnvConflict(_)));
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let e = parse_with_env(&[], &[("ETCD_SNAPSHOT_COUNT", "many")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(r#"invalid value "many" for ETCD_SNAPSHOT_COUNT: "#),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
        let parsed = parse_with_env(&[], &[("ETCD_VERSION", "true")]).unwrap();
        assert!(matches!(parsed.action, Action::Serve(_)));
        assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
        assert!(parsed.warnings[0].contains("special environment variable ETCD_VERSION"));
    }

    #[test]
    fn go_durations() {
        let s = 1_000_000_000i64;
        let cases: &[(&str, Result<i64, ()>)] = &[
            ("0", Ok(0)),
            ("1h", Ok(3600 * s)),
            ("30m", Ok(1800 * s)),
            ("90s", Ok(90 * s)),
            ("1h30m", Ok(5400 * s)),
            ("1.5h", Ok(5400 * s)),
            ("500ms", Ok(s / 2)),
            ("2us", Ok(2000)),
            ("2µs", Ok(2000)),
            ("7ns", Ok(7)),
            (".5s", Ok(s / 2)),
            ("-1m", Ok(-60 * s)),
            ("+1s", Ok(s)),
            ("0s", Ok(0)),
            ("2", Err(())),
            ("", Err(())),
            ("h", Err(())),
            ("1d", Err(())),
            ("1h-30m", Err(())),
            ("3000000h", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text).map_err(|_| ()), *want, "{text:?}");
        }
    }

    #[test]
    fn go_integers() {
        let cases: &[(&str, Result<u64, ()>)] = &[
            ("0", Ok(0)),
            ("128", Ok(128)),
            ("0x80", Ok(128)),
            ("0X80", Ok(128)),
            ("0o200", Ok(128)),
            ("0200", Ok(128)),
            ("0b10000000", Ok(128)),
            ("1_000", Ok(1000)),
            ("0x_80", Ok(128)),
            ("18446744073709551615", Ok(u64::MAX)),
            ("18446744073709551616", Err(())),
            ("", Err(())),
            ("+1", Err(())),
            ("1_", Err(())),
            ("1__0", Err(())),
            ("_1", Err(())),
            ("0x", Err(())),
            ("08", Err(())),
            ("1e3", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_uint(text).map_err(|_| ()), *want, "{text:?}");
        }
        assert_eq!(parse_go_int("-0x10"), Ok(-16));
        assert_eq!(parse_go_int("+5"), Ok(5));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert!(parse_go_int("9223372036854775808").is_err());
    }

    #[test]
    fn auto_compaction_retention() {
        let periodic = |retention_ms| Ok(AutoCompaction::Periodic { retention_ms });
        let revision = |retention| Ok(AutoCompaction::Revision { retention });
        let cases: &[(&[&str], Result<AutoCompaction, ()>)] = &[
            (&[], Ok(AutoCompaction::Off)),
            (&["--auto-compaction-retention=0"], Ok(AutoCompaction::Off)),
            (&["--auto-compaction-retention=0s"], Ok(AutoCompaction::Off)),
            (&["--auto-compaction-retention=2"], periodic(2 * 3_600_000)),
            (&["--auto-compaction-retention=1h"], periodic(3_600_000)),
            (&["--auto-compaction-retention=30m"], periodic(1_800_000)),
            (&["--auto-compaction-retention=90s"], periodic(90_000)),
            (&["--auto-compaction-retention=1h30m"], periodic(5_400_000)),
            (
                &[
                    "--auto-compaction-retention=5m",
                    "--auto-compaction-mode=periodic",
                ],
                periodic(300_000),
            ),
            (
                &[
                    "--auto-compaction-mode=revision",
                    "--auto-compaction-retention=1000",
                ],
                revision(1000),
            ),
            (
                &[
                    "--auto-compaction-mode=revision",
                    "--auto-compaction-retention=0",
                ],
                Ok(AutoCompaction::Off),
            ),
            (
                &["--auto-compaction-mode=revision"],
                Ok(AutoCompaction::Off),
            ),
            (
                &[
                    "--auto-compaction-mode=revision",
                    "--auto-compaction-retention=1h",
                ],
                Err(()),
            ),
            (&["--auto-compaction-retention=-1h"], Err(())),
            (&["--auto-compaction-retention=10us"], Err(())),
            (&["--auto-compaction-retention=soon"], Err(())),
        ];
        for (args, want) in cases {
            let got = parse(args).map(|parsed| config_from(&parsed).auto_compaction);
            assert_eq!(got.map_err(|_| ()), *want, "{args:?}");
        }
        let e = error(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1h",
        ]);
        assert!(
            e.contains("--auto-compaction-retention") && e.contains("revisions"),
            "{e}"
        );
    }

    #[test]
    fn not_honoured_flags() {
        let parsed = parse(&[
            "--max-wals=10",
            "--max-snapshots=5",                // the default: fine
            "--pre-vote=false",                 // ironcd always pre-votes
            "--pre-vote",                       // … so true is fine, but false came first
            "--enable-v2=false",                // fine
            "--strict-reconfig-check",          // fine
            "--logger=capnslog",                // fine
            "--log-outputs=stderr",             // fine
            "--enable-grpc-gateway",            // fine
            "--grpc-keepalive-interval=2h0m0s", // the default, spelled differently
            "--cert-file=/etc/ssl/server.pem",
            "--experimental-initial-corrupt-check",
            "--unsafe-no-fsync=true",
            "--max-wals=0x10", // reported once
            "--quota-backend-bytes=-1",
            "--v",
        ])
        .unwrap();
        assert_eq!(
            parsed.not_honoured,
            [
                "--max-wals",
                "--cert-file",
                "--experimental-initial-corrupt-check",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
            ]
        );
        assert_eq!(
            config_from(&parsed).quota_backend_bytes,
            DEFAULT_QUOTA_BACKEND_BYTES
        );
        assert_eq!(
            parsed.warnings,
            ["flag --v is ignored (etcd ignores it too)"]
        );
        assert_eq!(
            parsed.not_honoured_messages()[0],
            "flag --max-wals is accepted but not yet honoured by ironcd"
        );
        let parsed = parse(&["--pre-vote=false"]).unwrap();
        assert_eq!(parsed.not_honoured, ["--pre-vote"]);
    }

    #[test]
    fn refused_flags() {
        let cases: &[&[&str]] = &[
            &["--discovery=https://discovery.etcd.io/abc"],
            &["--discovery-srv=example.com"],
            &["--proxy=on"],
            &["--proxy", "readonly"],
            &["--config-file=/etc/etcd.yaml"],
        ];
        for args in cases {
            let e = parse(args).unwrap_err();
            assert!(matches!(e, FlagError::Unsupported(_)), "{args:?}: {e:?}");
            assert!(e.to_string().ends_with("is not supported by ironcd"), "{e}");
        }
        let e = parse_with_env(&[], &[("ETCD_CONFIG_FILE", "/etc/etcd.yaml")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--config-file=/etc/etcd.yaml is not supported by ironcd"
        );
        // At their defaults they are fine.
        serve(&["--proxy=off", "--discovery=", "--config-file="]);
    }

    #[test]
    fn url_lists() {
        let config = serve(&[
            "--listen-client-urls=http://10.0.0.1:2379, http://127.0.0.1:2379,http://10.0.0.1:2379",
            "--advertise-client-urls=http://infra1.example.com:2379",
            "--listen-peer-urls=http://[::1]:2380,HTTP://0.0.0.0:2380",
            "--initial-advertise-peer-urls=http://10.0.0.1:2380",
            "--listen-metrics-urls=http://localhost:2381",
        ]);
        // Sorted and unique, as etcd keeps them.
        assert_eq!(
            config.listen_client_urls,
            ["http://10.0.0.1:2379", "http://127.0.0.1:2379"]
        );
        assert_eq!(
            config.advertise_client_urls,
            ["http://infra1.example.com:2379"]
        );
        assert_eq!(
            config.listen_peer_urls,
            ["http://0.0.0.0:2380", "http://[::1]:2380"]
        );
        assert_eq!(config.listen_metrics_urls, ["http://localhost:2381"]);
        // The default initial cluster follows the advertised peer URLs.
        assert_eq!(
            members(&config),
            [("default".into(), vec!["http://10.0.0.1:2380".into()])]
        );
    }

    #[test]
    fn url_errors() {
        let client = "--advertise-client-urls=http://10.0.0.1:2379";
        let cases: &[(&[&str], &str)] = &[
            (&["--listen-client-urls=https://127.0.0.1:2379", client], "TLS is not yet supported by ironcd: --listen-client-urls has https://127.0.0.1:2379"),
            (&["--initial-advertise-peer-urls=https://10.0.0.1:2380"], "TLS is not yet supported"),
            (&["--listen-metrics-urls=unix://localhost:0"], "unix sockets are not yet supported"),
            (&["--listen-peer-urls=http://infra1.example.com:2380"], "--listen-peer-urls: expected IP in URL for binding (http://infra1.example.com:2380)"),
            (&["--listen-client-urls=http://:2379", client], "expected IP in URL for binding"),
            (&["--initial-advertise-peer-urls=http://:2380"], "must be \"host:port\" (unexpected empty host"),
            (&["--listen-client-urls=http://10.0.0.1:2379"], "--advertise-client-urls is required when --listen-client-urls is set explicitly"),
            (&["--listen-client-urls="], "--advertise-client-urls is required"),
            (&["--listen-client-urls=", "--advertise-client-urls="], "URL lists must not be empty"),
        ];
        for (args, want) in cases {
            let e = error(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn initial_cluster() {
        let config = serve(&[
            "--name=infra2",
            "--initial-advertise-peer-urls=http://10.0.0.2:2380",
            "--initial-cluster=infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380,\
             infra1=http://10.0.1.1:2380,infra3=http://10.0.0.3:2380,infra1=http://10.0.0.1:2380",
        ]);
        let want = [
            (
                "infra1",
                vec!["http://10.0.0.1:2380", "http://10.0.1.1:2380"],
            ),
            ("infra2", vec!["http://10.0.0.2:2380"]),
            ("infra3", vec!["http://10.0.0.3:2380"]),
        ];
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(name, urls)| {
                (
                    name.to_string(),
                    urls.iter().map(|u| u.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(members(&config), want);

        let cases: &[(&[&str], &str)] = &[
            (
                &["--initial-cluster=default"],
                r#""default" is not of the form name=peer-url"#,
            ),
            (
                &["--initial-cluster=default=localhost:2380"],
                "URL scheme must be",
            ),
            (
                &["--initial-cluster=default=https://10.0.0.1:2380"],
                "TLS is not yet supported",
            ),
            (
                &["--initial-cluster=infra1=http://10.0.0.1:2380"],
                r#"couldn't find local name "default""#,
            ),
        ];
        for (args, want) in cases {
            let e = error(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
        // Joining an existing cluster does not need this member listed.
        let config = serve(&[
            "--initial-cluster-state=existing",
            "--initial-cluster=infra1=http://10.0.0.1:2380",
        ]);
        assert_eq!(members(&config).len(), 1);
    }

    #[test]
    fn honoured_numbers_and_levels() {
        let config = serve(&[
            "--snapshot-count=5000",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--quota-backend-bytes=0",
            "--max-request-bytes=10485760",
            "--max-txn-ops=1024",
            "--initial-cluster-token=tok",
            "--data-dir=/var/lib/ironcd",
        ]);
        assert_eq!(config.snapshot_count, 5000);
        assert_eq!((config.heartbeat_ms, config.election_ms), (50, 500));
        assert_eq!(config.quota_backend_bytes, DEFAULT_QUOTA_BACKEND_BYTES);
        assert_eq!(config.max_request_bytes, 10 << 20);
        assert_eq!(config.max_txn_ops, 1024);
        assert_eq!(config.initial_cluster_token, "tok");
        assert_eq!(config.data_dir.to_str(), Some("/var/lib/ironcd"));
        assert_eq!(
            serve(&["--quota-backend-bytes=4096"]).quota_backend_bytes,
            4096
        );
        let parsed = parse(&["--quota-backend-bytes=17179869184"]).unwrap();
        assert!(parsed.warnings[0].contains("exceeds the maximum recommended quota"));

        let levels = [
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("panic", LogLevel::Error),
            ("fatal", LogLevel::Error),
        ];
        for (text, level) in levels {
            assert_eq!(serve(&["--log-level", text]).log_level, level, "{text}");
        }
        assert_eq!(
            serve(&["--debug", "--log-level=warn"]).log_level,
            LogLevel::Debug
        );
    }

    #[test]
    fn validate_errors_are_returned() {
        let e = parse(&["--heartbeat-interval=300"]).unwrap_err();
        assert!(matches!(e, FlagError::Config(_)), "{e:?}");
        assert!(e
            .to_string()
            .contains("should be at least as 5 times as --heartbeat-interval"));
        assert!(error(&["--name="]).contains("--name must not be empty"));
    }

    #[test]
    fn version_and_help() {
        let parsed = parse(&["--version"]).unwrap();
        let Action::PrintVersion(text) = parsed.action else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            text,
            format!(
                "ironcd Version: {}\netcd API Version: 3.5\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        // As in etcd, the version is printed before the environment is read
        // and before the values are checked together.
        let parsed = parse_with_env(&["-version", "--election-timeout=1"], &[("ETCD_X", "")]);
        assert!(matches!(parsed.unwrap().action, Action::PrintVersion(_)));
        assert!(matches!(
            serve(&["--version=false"]).name.as_str(),
            "default"
        ));

        for args in [
            &["-h"][..],
            &["--help"],
            &["-help"],
            &["--name", "x", "--help", "--foo"],
        ] {
            let parsed = parse(args).unwrap();
            let Action::PrintHelp(text) = parsed.action else {
                panic!("{args:?}")
            };
            assert!(text.contains("  --name 'default'\n"), "{text}");
            assert!(text.contains("  --max-wals '5'\n"));
            assert!(!text.contains("--cluster-active-size"));
        }
        // Go reports an earlier bad flag before reaching the help flag.
        assert_eq!(error(&["--foo", "--help"]), "unknown flag: --foo");
    }

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
}
