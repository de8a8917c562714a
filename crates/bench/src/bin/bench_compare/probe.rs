//! "Does this member serve?": one linearizable read through the real
//! `etcd-client` crate, on a fresh connection each time.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Client, ConnectOptions};

/// Bound on the TCP connect and on the gRPC channel's connect.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Bound on one probe's read once the port accepts connections. A member
/// that accepts but does not serve yet answers the pending read as soon as
/// it serves, so this is generous rather than short.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The key read; its absence is a successful read.
const PROBE_KEY: &str = "bench-compare/probe";

/// Runs probes on a single-threaded runtime of its own, so the rest of
/// bench-compare stays synchronous.
pub struct Probe {
    runtime: tokio::runtime::Runtime,
}

impl Probe {
    /// A probe with its own runtime.
    pub fn new() -> Result<Probe> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build the probe's tokio runtime")?;
        Ok(Probe { runtime })
    }

    /// One linearizable get of a missing key from `address` (`host:port`).
    pub fn linearizable_get(&self, address: &str) -> Result<()> {
        let socket: SocketAddr = address
            .parse()
            .with_context(|| format!("parse {address}"))?;
        // A gRPC channel to a port nobody listens on retries with back-off
        // instead of failing, which would blur the restart figure; a plain
        // TCP connect fails at once.
        TcpStream::connect_timeout(&socket, CONNECT_TIMEOUT)
            .with_context(|| format!("connect to {address}"))?;
        let url = format!("http://{address}");
        self.runtime.block_on(async {
            let options = ConnectOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_timeout(REQUEST_TIMEOUT);
            let read = async {
                let mut client = Client::connect([url.as_str()], Some(options)).await?;
                client.get(PROBE_KEY, None).await?;
                Ok::<(), etcd_client::Error>(())
            };
            tokio::time::timeout(REQUEST_TIMEOUT, read)
                .await
                .with_context(|| format!("read from {address} timed out"))?
                .with_context(|| format!("read from {address}"))
        })
    }
}
