//! The `ironcd` binary: etcd's flags in, a running member out. Everything
//! else lives in the library.

use std::process::ExitCode;

use ironcd_server::flags::{self, Action};

fn main() -> ExitCode {
    let parsed = match flags::parse_args(std::env::args_os()) {
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
