//! ironcd-tls: TLS for ironcd's listeners and peer dials, configured the
//! way etcd's TLS flags configure etcd (`pkg/transport`'s `TLSInfo`).
//!
//! * [`TlsInfo`]: one side's settings (client or peer): certificate and
//!   key files, the trusted CA, client certificate authentication, the
//!   CRL, the allowed client CN or hostname, cipher suites and versions.
//!   [`TlsInfo::server_config`] and [`TlsInfo::client_config`] turn them
//!   into rustls configurations as etcd builds its `tls.Config`s.
//! * [`self_cert`]: auto TLS, a self-signed certificate generated into the
//!   data directory once and reused; peers using one accept each other's
//!   without verification, as etcd's auto TLS does.
//! * [`Acceptor`] / [`Incoming`]: accepted TCP connections through the
//!   TLS handshake, each under a timeout and in a task of its own (a
//!   client that never finishes its handshake holds nothing but its own
//!   task, and only until the timeout); plain and TLS on one port when the
//!   listener serves both schemes; handshake failures logged once per
//!   remote address.
//! * [`Dialer`]: tonic channels to `http://` and `https://` URLs.
//!
//! Certificates are read from disk at each handshake when their files
//! changed (etcd reads them at every handshake), so a certificate replaced
//! on disk serves new connections without a restart.
//!
//! The crate depends on no ironcd crate.

mod accept;
mod client;
mod files;
mod info;
mod selfcert;
mod server;

pub use accept::{Acceptor, Conn, Incoming, Mode, HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES};
pub use client::Dialer;
pub use info::{TlsInfo, TlsVersion};
pub use selfcert::self_cert;

/// What went wrong configuring TLS; the message is what the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate, key or CRL file could not be read or parsed.
    #[error("{0}")]
    Files(String),
    /// The settings do not make a valid configuration.
    #[error("{0}")]
    Config(String),
    /// Generating a self-signed certificate failed.
    #[error("{0}")]
    SelfCert(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// The crypto provider every configuration uses (ring), with the cipher
/// suites `info` allows.
fn provider(info: &TlsInfo) -> Result<std::sync::Arc<rustls::crypto::CryptoProvider>> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !info.cipher_suites.is_empty() {
        provider.cipher_suites = info::cipher_suites(&info.cipher_suites)?;
    }
    Ok(std::sync::Arc::new(provider))
}
