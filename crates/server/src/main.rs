//! The `ironcd` binary: etcd's flags in, a running member out. Everything
//! else lives in the library.

use std::process::ExitCode;

use ironcd_server::flags::{self, Action};

/// mimalloc instead of glibc's malloc: the applier allocates what the
/// runtime's threads free (watch events, responses), and glibc's arenas
/// then contend on their locks, a futex system call a time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    if let Err(e) = ironcd_server::run::init_logging(&cfg) {
        eprintln!("ironcd: {e}");
        return ExitCode::FAILURE;
    }
    match ironcd_server::restore::restore(&cfg, &file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironcd: snapshot restore: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A panic on any thread ends the process, as a Go panic ends etcd: a
/// member whose raft, apply or commit thread died must not go on serving
/// half alive. The default hook prints the message and location first.
fn abort_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        std::process::abort();
    }));
}

fn main() -> ExitCode {
    abort_on_panic();
    // Armed for the life of the process (see `ironcd_server::failpoint`).
    #[cfg(feature = "failpoints")]
    let _failpoints = match ironcd_server::failpoint::setup() {
        Ok(scenario) => scenario,
        Err(e) => {
            eprintln!("ironcd: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    if let Err(e) = ironcd_server::run::init_logging(&cfg) {
        eprintln!("ironcd: {e}");
        return ExitCode::FAILURE;
    }
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
