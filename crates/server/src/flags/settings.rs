//! The values the command line and the `ETCD_*` variables give, one slot
//! per flag, and the sorting of flags ironcd does not implement.

use std::collections::{BTreeMap, BTreeSet};

use super::table::{env_key, spec_index, Support, Value, FLAGS};
use super::{FlagError, Notes};

/// The values given so far, one slot per row of [`FLAGS`].
pub(super) struct Settings {
    pub(super) given: Vec<Option<Value>>,
}

impl Settings {
    pub(super) fn new() -> Self {
        Self {
            given: vec![None; FLAGS.len()],
        }
    }

    pub(super) fn index(name: &str) -> usize {
        spec_index(name).unwrap_or_else(|| panic!("the flag table has no --{name}"))
    }

    pub(super) fn is_set(&self, name: &str) -> bool {
        self.given[Self::index(name)].is_some()
    }

    /// The value given, else the default.
    pub(super) fn value(&self, name: &str) -> Value {
        let index = Self::index(name);
        self.given[index]
            .clone()
            .unwrap_or_else(|| FLAGS[index].default_value())
    }

    pub(super) fn bool(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(value) => value,
            other => panic!("--{name} is not a bool: {other:?}"),
        }
    }

    pub(super) fn uint(&self, name: &str) -> u64 {
        match self.value(name) {
            Value::Uint(value) => value,
            other => panic!("--{name} is not a uint: {other:?}"),
        }
    }

    pub(super) fn int(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Int(value) => value,
            other => panic!("--{name} is not an int: {other:?}"),
        }
    }

    pub(super) fn duration_ns(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::DurationNs(value) => value,
            other => panic!("--{name} is not a duration: {other:?}"),
        }
    }

    pub(super) fn string(&self, name: &str) -> String {
        match self.value(name) {
            Value::Str(value) => value,
            other => panic!("--{name} is not a string: {other:?}"),
        }
    }

    pub(super) fn urls(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Value::Urls(value) => value,
            other => panic!("--{name} is not a URL list: {other:?}"),
        }
    }
}

/// Fills flags not given on the command line from `ETCD_*` variables, as
/// etcd's `SetFlagsFromEnv` does: empty values are skipped, a variable for
/// a flag also given on the command line is an error, and variables that
/// match no flag are warned about.
pub(super) fn apply_env(
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
pub(super) fn check_unimplemented(settings: &Settings, notes: &mut Notes) -> Result<(), FlagError> {
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

#[cfg(test)]
mod tests {
    use crate::config::{AutoCompaction, ClusterState, DEFAULT_QUOTA_BACKEND_BYTES};

    use crate::flags::testkit::*;
    use crate::flags::{Action, FlagError};

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
    fn not_honoured_flags() {
        let parsed = parse(&[
            "--max-wals=10",
            "--max-snapshots=5",                // the default: fine
            "--pre-vote=false",                 // ironcd always pre-votes
            "--pre-vote",                       // … so true is fine, but false came first
            "--enable-v2=false",                // fine
            "--strict-reconfig-check",          // fine
            "--logger=capnslog",                // honoured
            "--log-outputs=stderr",             // honoured
            "--enable-grpc-gateway",            // honoured
            "--grpc-keepalive-interval=2h0m0s", // the default, spelled differently
            "--cert-file=/etc/ssl/server.pem",  // honoured (TLS)
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
}
