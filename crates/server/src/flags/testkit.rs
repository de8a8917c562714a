//! What the flag tests share: parsing with a stand-in environment, and
//! reading the outcome.

use super::{parse_from, Action, FlagError, Parsed};
use crate::config::ServerConfig;

pub(super) const NO_ENV: [(&str, &str); 0] = [];

pub(super) fn parse(args: &[&str]) -> Result<Parsed, FlagError> {
    parse_with_env(args, &NO_ENV)
}

pub(super) fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, FlagError> {
    let argv = std::iter::once("ironcd").chain(args.iter().copied());
    parse_from(argv, env.iter().copied())
}

pub(super) fn config_from(parsed: &Parsed) -> &ServerConfig {
    match &parsed.action {
        Action::Serve(config) => config,
        other => panic!("expected a server run, got {other:?}"),
    }
}

pub(super) fn serve(args: &[&str]) -> ServerConfig {
    let parsed = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    config_from(&parsed).clone()
}

pub(super) fn error(args: &[&str]) -> String {
    match parse(args) {
        Ok(parsed) => panic!("{args:?} parsed: {parsed:?}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn members(config: &ServerConfig) -> Vec<(String, Vec<String>)> {
    let members = config.initial_cluster.iter();
    members
        .map(|m| (m.name.clone(), m.peer_urls.clone()))
        .collect()
}

/// `arg` (`--flag=value`) is refused by its flag's type, and the error
/// names the flag and the value.
pub(super) fn assert_invalid_value(arg: &str, reason: &str) {
    let e = error(&[arg]);
    let (flag, value) = arg.trim_start_matches('-').split_once('=').unwrap();
    let head = format!("invalid value {value:?} for flag --{flag}: ");
    assert!(e.starts_with(&head) && e.contains(reason), "{arg}: {e}");
}
