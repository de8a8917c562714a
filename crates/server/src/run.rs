//! Running as a process: logging, the runtime, signals.

use crate::config::ServerConfig;
use crate::error::Result;

/// Sets up logging as `cfg`'s `--logger`, `--log-outputs` and
/// `--log-level` ask (see [`crate::logging`]).
pub fn init_logging(cfg: &ServerConfig) -> Result<()> {
    crate::logging::init(cfg)
        .map_err(|e| crate::error::Error::Config(format!("--log-outputs: {e}")))
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
