//! The `ironcd` binary: etcd's flags in, a running member out. Everything
//! else lives in the library.

use std::process::ExitCode;

use ironcd_server::flags::{self, Action};

/// `ironcd snapshot restore FILE [etcd flags]`: see `ironcd_server::restore`.
fn restore(mut args: Vec<std::ffi::OsString>) -> ExitCode {
    let file = std::path::PathBuf::from(args.remove(3));
    args.drain(1..3);
    let cfg = match flags::parse_args(args).map(|p| p.action) {
        Ok(Action::Serve(cfg)) => *cfg,
        Ok(Action::PrintVersion(text) | Action::PrintHelp(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ironcd: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    ironcd_server::run::init_logging(cfg.log_level);
    match ironcd_server::restore::restore(&cfg, &file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironcd: snapshot restore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() >= 4 && args[1] == "snapshot" && args[2] == "restore" {
        return restore(args);
    }
    let parsed = match flags::parse_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("ironcd: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let notes = parsed.not_honoured_messages();
    let cfg = match parsed.action {
        Action::PrintVersion(text) | Action::PrintHelp(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Action::Serve(cfg) => *cfg,
    };
    ironcd_server::run::init_logging(cfg.log_level);
    for message in &notes {
        tracing::warn!("{message}");
    }
    for warning in &parsed.warnings {
        tracing::warn!("{warning}");
    }
    match ironcd_server::run::run_until_signal(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ironcd stopped");
            eprintln!("ironcd: {e}");
            ExitCode::FAILURE
        }
    }
}
