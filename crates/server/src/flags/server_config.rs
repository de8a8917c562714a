//! [`ServerConfig`] built from the settings: the flags ironcd honours, and
//! the few that need reading together (`--data-dir` from `--name`,
//! `--auto-compaction-retention` in `--auto-compaction-mode`, `--debug`
//! over `--log-level`).

use crate::config::{
    AutoCompaction, ClusterState, InitialMember, LogLevel, Logger, ServerConfig, TlsFlags,
    DEFAULT_QUOTA_BACKEND_BYTES, MAX_QUOTA_BACKEND_BYTES,
};

use super::go::parse_go_duration;
use super::settings::Settings;
use super::url::{parse_initial_cluster, MemberUrls};
use super::{FlagError, Notes};

pub(super) fn build_config(
    settings: &Settings,
    notes: &mut Notes,
) -> Result<ServerConfig, FlagError> {
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
        snapshot_catchup_entries: settings.uint("experimental-snapshot-catchup-entries"),
        heartbeat_ms: settings.uint("heartbeat-interval"),
        election_ms: settings.uint("election-timeout"),
        quota_backend_bytes: quota_backend_bytes(settings, notes),
        max_request_bytes: settings.uint("max-request-bytes"),
        max_txn_ops: settings.uint("max-txn-ops"),
        max_concurrent_streams: u32::try_from(settings.uint("max-concurrent-streams"))
            .unwrap_or(u32::MAX),
        auto_compaction: auto_compaction(settings)?,
        force_new_cluster: settings.bool("force-new-cluster"),
        log_level: log_level(settings),
        logger: match settings.string("logger").as_str() {
            "capnslog" => Logger::Capnslog,
            _ => Logger::Zap,
        },
        log_outputs: log_outputs(settings)?,
        enable_grpc_gateway: settings.bool("enable-grpc-gateway"),
        client_tls: TlsFlags {
            cert_file: settings.string("cert-file"),
            key_file: settings.string("key-file"),
            trusted_ca_file: settings.string("trusted-ca-file"),
            client_cert_auth: settings.bool("client-cert-auth"),
            crl_file: settings.string("client-crl-file"),
            allowed_cn: String::new(),
            allowed_hostname: settings.string("client-cert-allowed-hostname"),
            auto_tls: settings.bool("auto-tls"),
            client_cert_file: String::new(),
            client_key_file: String::new(),
        },
        peer_tls: TlsFlags {
            cert_file: settings.string("peer-cert-file"),
            key_file: settings.string("peer-key-file"),
            trusted_ca_file: settings.string("peer-trusted-ca-file"),
            client_cert_auth: settings.bool("peer-client-cert-auth"),
            crl_file: settings.string("peer-crl-file"),
            allowed_cn: settings.string("peer-cert-allowed-cn"),
            allowed_hostname: settings.string("peer-cert-allowed-hostname"),
            auto_tls: settings.bool("peer-auto-tls"),
            client_cert_file: settings.string("peer-client-cert-file"),
            client_key_file: settings.string("peer-client-key-file"),
        },
        self_signed_cert_validity: u32::try_from(settings.uint("self-signed-cert-validity"))
            .unwrap_or(u32::MAX),
        cipher_suites: settings
            .string("cipher-suites")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        tls_min_version: settings.string("tls-min-version"),
        tls_max_version: settings.string("tls-max-version"),
        watch_progress_notify_interval_ms: u64::try_from(
            settings.duration_ns("experimental-watch-progress-notify-interval") / 1_000_000,
        )
        .ok()
        .filter(|&ms| ms > 0)
        .ok_or_else(|| {
            FlagError::Invalid(
                "--experimental-watch-progress-notify-interval must be positive".into(),
            )
        })?,
        lease_checkpoint: settings.bool("experimental-enable-lease-checkpoint"),
        lease_checkpoint_interval_ms: u64::try_from(
            settings.duration_ns("experimental-lease-checkpoint-interval") / 1_000_000,
        )
        .ok()
        .filter(|&ms| ms >= 1000)
        .ok_or_else(|| {
            FlagError::Invalid(
                "--experimental-lease-checkpoint-interval must be at least 1s".into(),
            )
        })?,
    })
}

/// `--initial-cluster`, or, when not given, this member alone at its
/// advertised peer URLs (etcd's default, built from `--name`).
pub(super) fn initial_cluster(
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

/// 0 means etcd's default; a negative quota, which etcd reads as "no
/// quota", is not honoured: ironcd keeps the default.
pub(super) fn quota_backend_bytes(settings: &Settings, notes: &mut Notes) -> u64 {
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
pub(super) fn auto_compaction(settings: &Settings) -> Result<AutoCompaction, FlagError> {
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

/// `--log-outputs` (or its old spelling `--log-output` when only that is
/// given), comma-separated. As in etcd, `default` cannot be one of many.
pub(super) fn log_outputs(settings: &Settings) -> Result<Vec<String>, FlagError> {
    let flag = if !settings.is_set("log-outputs") && settings.is_set("log-output") {
        "log-output"
    } else {
        "log-outputs"
    };
    let text = settings.string(flag);
    let mut outputs: Vec<String> = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if outputs.is_empty() {
        outputs.push("default".into());
    }
    if outputs.len() > 1 && outputs.iter().any(|o| o == "default") {
        return Err(FlagError::InvalidValue {
            flag: flag.to_string(),
            env: None,
            value: text,
            reason: "multi logoutput for \"default\" is not supported yet".to_string(),
        });
    }
    Ok(outputs)
}

/// `--log-level`, overridden by the older `--debug` as in etcd.
pub(super) fn log_level(settings: &Settings) -> LogLevel {
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
    use crate::config::{
        DEFAULT_CLIENT_URL, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_PEER_URL,
    };

    use super::*;
    use crate::flags::testkit::*;
    use crate::flags::FlagError;

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
    fn logger_and_log_outputs() {
        let config = serve(&[]);
        assert_eq!(
            (config.logger, config.log_outputs),
            (Logger::Zap, vec!["default".to_string()])
        );
        let config = serve(&["--logger=capnslog", "--log-outputs=stdout,/tmp/a.log"]);
        assert_eq!(config.logger, Logger::Capnslog);
        assert_eq!(config.log_outputs, ["stdout", "/tmp/a.log"]);
        assert_eq!(serve(&["--log-output=stderr"]).log_outputs, ["stderr"]);
        assert!(serve(&[]).enable_grpc_gateway);
        assert!(!serve(&["--enable-grpc-gateway=false"]).enable_grpc_gateway);
        assert_eq!(
            serve(&["--log-output=stderr", "--log-outputs=stdout"]).log_outputs,
            ["stdout"]
        );
        let e = error(&["--log-outputs=default,stderr"]);
        assert!(
            e.contains("multi logoutput for \"default\" is not supported yet"),
            "{e}"
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
}
