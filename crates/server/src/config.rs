//! The server's configuration: etcd's flags, already parsed and checked.
//! `flags.rs` builds it from the command line and `ETCD_*` variables; tests
//! build it directly.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// etcd's default client URL.
pub const DEFAULT_CLIENT_URL: &str = "http://localhost:2379";
/// etcd's default peer URL.
pub const DEFAULT_PEER_URL: &str = "http://localhost:2380";
/// etcd's default `--quota-backend-bytes` (0 on the flag means this): 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 << 30;
/// etcd's largest recommended quota: 8 GiB (larger values are warned about).
pub const MAX_QUOTA_BACKEND_BYTES: u64 = 8 << 30;
/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: u64 = 128;
/// etcd's default `--snapshot-count`.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// etcd's default `--experimental-snapshot-catchup-entries`.
pub const DEFAULT_SNAPSHOT_CATCHUP_ENTRIES: u64 = 5_000;
/// Room above the quota in the largest snapshot a member accepts from a
/// peer: the quota counts the backend's (compressed) bytes on disk, while
/// the snapshot stream carries keys and values as they are, with a few
/// bytes of framing each.
pub const SNAPSHOT_HEADROOM_BYTES: u64 = 64 << 20;

/// The largest snapshot a member accepts from a peer, from its quota:
/// twice the quota (the stream is uncompressed) plus
/// [`SNAPSHOT_HEADROOM_BYTES`]. A leader's data can only exceed its own
/// quota by the writes NOSPACE lets through, so this refuses nothing real
/// while bounding what a peer may make this member write to disk.
pub fn snapshot_limit_bytes(quota_backend_bytes: u64) -> u64 {
    quota_backend_bytes
        .saturating_mul(2)
        .saturating_add(SNAPSHOT_HEADROOM_BYTES)
}
/// etcd's default `--heartbeat-interval`, ms.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// etcd's default `--election-timeout`, ms.
pub const DEFAULT_ELECTION_MS: u64 = 1000;

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a running cluster this member was added to.
    Existing,
}

/// `--auto-compaction-mode` with its `--auto-compaction-retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Disabled (retention 0).
    Off,
    /// Keep history for this long (ms); compacts every retention period
    /// (etcd: every hour at most, one tenth of the retention when longer).
    Periodic {
        /// Retention, in milliseconds.
        retention_ms: u64,
    },
    /// Keep this many revisions; checked every 5 minutes.
    Revision {
        /// Revisions to keep.
        retention: u64,
    },
}

/// `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// debug
    Debug,
    /// info (etcd's default)
    Info,
    /// warn
    Warn,
    /// error, panic and fatal
    Error,
}

/// `--logger`: how log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logger {
    /// One JSON object a line, as etcd's zap logger writes them (`level`,
    /// `ts`, `caller`, `msg`, then the fields); etcd's default.
    Zap,
    /// etcd 3.4's older logger: human-readable text lines.
    Capnslog,
}

/// One `name=peer-url` pair of `--initial-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// Its peer URLs (a name may be given several times).
    pub peer_urls: Vec<String>,
}

/// One side's TLS flags (`--cert-file` … for clients, `--peer-cert-file`
/// … for peers), as given; [`crate::tls`] turns them into settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--cert-file` / `--peer-cert-file`.
    pub cert_file: String,
    /// `--key-file` / `--peer-key-file`.
    pub key_file: String,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`.
    pub trusted_ca_file: String,
    /// `--client-cert-auth` / `--peer-client-cert-auth`.
    pub client_cert_auth: bool,
    /// `--client-crl-file` / `--peer-crl-file`.
    pub crl_file: String,
    /// `--peer-cert-allowed-cn` (peers only).
    pub allowed_cn: String,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`.
    pub allowed_hostname: String,
    /// `--auto-tls` / `--peer-auto-tls`.
    pub auto_tls: bool,
    /// `--peer-client-cert-file`: presented when dialing peers instead of
    /// the serving certificate (peers only).
    pub client_cert_file: String,
    /// `--peer-client-key-file`.
    pub client_key_file: String,
}

impl TlsFlags {
    /// No certificate given and none to generate: the side is plain.
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_empty() && self.key_file.is_empty() && !self.auto_tls
    }
}

/// Everything the server needs to start, in etcd's terms.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `--name` (default `default`).
    pub name: String,
    /// `--data-dir` (default `${name}.ironcd`; etcd uses `${name}.etcd`).
    pub data_dir: PathBuf,
    /// `--listen-client-urls`.
    pub listen_client_urls: Vec<String>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<String>,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<String>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<String>,
    /// `--listen-metrics-urls` (extra HTTP listeners for /metrics and
    /// /health).
    pub listen_metrics_urls: Vec<String>,
    /// `--initial-cluster` (default `default=http://localhost:2380`).
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-state`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token` (default `etcd-cluster`).
    pub initial_cluster_token: String,
    /// `--snapshot-count`: applied entries between snapshots.
    pub snapshot_count: u64,
    /// `--experimental-snapshot-catchup-entries`: entries kept behind a
    /// snapshot so a slow follower catches up without one.
    pub snapshot_catchup_entries: u64,
    /// `--heartbeat-interval`, ms (raft's tick).
    pub heartbeat_ms: u64,
    /// `--election-timeout`, ms (a multiple of the heartbeat, ≥ 5×).
    pub election_ms: u64,
    /// `--quota-backend-bytes` (0 on the flag = the default); NOSPACE is
    /// raised when the backend grows past it.
    pub quota_backend_bytes: u64,
    /// `--max-request-bytes`.
    pub max_request_bytes: u64,
    /// `--max-txn-ops`.
    pub max_txn_ops: u64,
    /// `--max-concurrent-streams`: HTTP/2 streams one client connection
    /// may have open at once (etcd: no limit, as grpc-go's default).
    pub max_concurrent_streams: u32,
    /// `--auto-compaction-mode` / `--auto-compaction-retention`.
    pub auto_compaction: AutoCompaction,
    /// `--force-new-cluster`: restart as a one-member cluster.
    pub force_new_cluster: bool,
    /// `--log-level`.
    pub log_level: LogLevel,
    /// `--logger`.
    pub logger: Logger,
    /// `--enable-grpc-gateway`: serve the HTTP+JSON gateway on the client
    /// URLs.
    pub enable_grpc_gateway: bool,
    /// `--log-outputs`: `default` or `stderr`, `stdout`, file paths
    /// (appended to); `/dev/null` discards everything.
    pub log_outputs: Vec<String>,
    /// Client TLS flags.
    pub client_tls: TlsFlags,
    /// Peer TLS flags.
    pub peer_tls: TlsFlags,
    /// `--self-signed-cert-validity`, in years (auto TLS).
    pub self_signed_cert_validity: u32,
    /// `--cipher-suites` (Go's names), both sides.
    pub cipher_suites: Vec<String>,
    /// `--tls-min-version`.
    pub tls_min_version: String,
    /// `--tls-max-version` (empty: the highest there is).
    pub tls_max_version: String,
    /// `--experimental-watch-progress-notify-interval`, ms.
    pub watch_progress_notify_interval_ms: u64,
    /// `--experimental-enable-lease-checkpoint`: the leader checkpoints
    /// long leases' remaining TTLs through raft.
    pub lease_checkpoint: bool,
    /// `--experimental-lease-checkpoint-interval`, ms.
    pub lease_checkpoint_interval_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            data_dir: PathBuf::from("default.ironcd"),
            listen_client_urls: vec![DEFAULT_CLIENT_URL.into()],
            advertise_client_urls: vec![DEFAULT_CLIENT_URL.into()],
            listen_peer_urls: vec![DEFAULT_PEER_URL.into()],
            initial_advertise_peer_urls: vec![DEFAULT_PEER_URL.into()],
            listen_metrics_urls: Vec::new(),
            initial_cluster: vec![InitialMember {
                name: "default".into(),
                peer_urls: vec![DEFAULT_PEER_URL.into()],
            }],
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".into(),
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            snapshot_catchup_entries: DEFAULT_SNAPSHOT_CATCHUP_ENTRIES,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_ms: DEFAULT_ELECTION_MS,
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            max_concurrent_streams: u32::MAX,
            auto_compaction: AutoCompaction::Off,
            force_new_cluster: false,
            log_level: LogLevel::Info,
            logger: Logger::Zap,
            enable_grpc_gateway: true,
            log_outputs: vec!["default".into()],
            client_tls: TlsFlags::default(),
            peer_tls: TlsFlags::default(),
            self_signed_cert_validity: 1,
            cipher_suites: Vec::new(),
            tls_min_version: "TLS1.2".into(),
            tls_max_version: String::new(),
            watch_progress_notify_interval_ms: 10 * 60 * 1000,
            lease_checkpoint: false,
            lease_checkpoint_interval_ms: 5 * 60 * 1000,
        }
    }
}

impl ServerConfig {
    /// Checks the combination of values once, at startup, with etcd's
    /// rules and wording where etcd has them.
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_ms == 0 {
            return Err(Error::Config("--heartbeat-interval must be > 0".into()));
        }
        if self.election_ms < 5 * self.heartbeat_ms {
            return Err(Error::Config(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_ms, self.heartbeat_ms
            )));
        }
        if self.election_ms > 50_000 {
            return Err(Error::Config(format!(
                "--election-timeout[{}ms] is too long, and should be set less than 50000ms",
                self.election_ms
            )));
        }
        if self.snapshot_count == 0 {
            return Err(Error::Config("--snapshot-count must be > 0".into()));
        }
        if self.max_request_bytes == 0 || self.max_txn_ops == 0 {
            return Err(Error::Config(
                "--max-request-bytes and --max-txn-ops must be > 0".into(),
            ));
        }
        if self.name.is_empty() {
            return Err(Error::Config("--name must not be empty".into()));
        }
        for list in [
            &self.listen_client_urls,
            &self.advertise_client_urls,
            &self.listen_peer_urls,
            &self.initial_advertise_peer_urls,
        ] {
            if list.is_empty() {
                return Err(Error::Config("URL lists must not be empty".into()));
            }
        }
        for url in &self.listen_client_urls {
            if url.starts_with("https://") && self.client_tls.is_empty() {
                return Err(Error::Config(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme"
                )));
            }
        }
        for url in &self.listen_peer_urls {
            if url.starts_with("https://") && self.peer_tls.is_empty() {
                return Err(Error::Config(format!(
                    "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                    url.trim_start_matches("https://")
                )));
            }
        }
        for url in &self.listen_metrics_urls {
            if url.starts_with("https://") && self.client_tls.is_empty() {
                return Err(Error::Config(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for metrics url {url} with HTTPS scheme"
                )));
            }
        }
        if self.initial_cluster_state == ClusterState::New
            && !self.initial_cluster.iter().any(|m| m.name == self.name)
        {
            return Err(Error::Config(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        Ok(())
    }

    /// The member directory, `<data-dir>/member`.
    pub fn member_dir(&self) -> PathBuf {
        self.data_dir.join("member")
    }
}
