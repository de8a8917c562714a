//! Running as a process: logging, the runtime, signals.

use crate::config::{LogLevel, ServerConfig};
use crate::error::Result;

/// Sends `tracing` output to stderr at `level` (`RUST_LOG` overrides),
/// where tools that start etcd look for its startup lines.
pub fn init_logging(level: LogLevel) {
    let default = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},raft=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Starts the member and serves until SIGTERM or SIGINT, then shuts down
/// cleanly.
pub fn run_until_signal(cfg: ServerConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ironcd")
        .build()?;
    runtime.block_on(async move {
        // Before the member starts, so a test can arm points it reaches
        // while starting.
        #[cfg(feature = "failpoints")]
        crate::failpoint::serve_http().await?;
        let running = crate::start::start(cfg).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "received signal; shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "received signal; shutting down"),
        }
        running.stop().await;
        tracing::info!("stopped");
        Ok(())
    })
}
