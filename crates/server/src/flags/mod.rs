//! etcd's server flags and `ETCD_*` environment variables, parsed into a
//! [`ServerConfig`].
//!
//! The syntax is Go's `flag` package, which etcd uses: `--flag=value`,
//! `--flag value`, one dash as well as two, bool flags set by their bare name
//! (a value only after `=`), `--` ends the flags, and any word that is not a
//! flag is an error. A flag not given on the command line is read from
//! `ETCD_<FLAG_IN_UPPER_SNAKE>`; giving both is an error, as in etcd.
//!
//! Every etcd 3.4 and 3.5 server flag is known, in one table (`table.rs`). A
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
//!
//! The module by concept: `go` (Go's flag syntax and value types), `table`
//! (the flag table and parsed values), `settings` (what the command line
//! and the environment set), `server_config` (building [`ServerConfig`]),
//! `url` (every URL the flags and the Cluster API take, parsed in one
//! place).

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::config::ServerConfig;
use crate::ETCD_API_VERSION;

mod go;
mod server_config;
mod settings;
mod table;
#[cfg(test)]
mod testkit;
mod url;

pub use url::{is_peer_url, listen_authority};

use go::{parse_command_line, CommandLine};
use server_config::build_config;
use settings::{apply_env, check_unimplemented, Settings};
use table::{Support, FLAGS};

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

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;

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
}
