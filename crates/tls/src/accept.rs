//! Accepting connections: the TLS handshake of each in a task of its own,
//! under a timeout; plain and TLS told apart by the first byte when a
//! listener serves both.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// How long a connection may take from accept to a finished handshake
/// (and, on a listener serving both schemes, to its first byte). A client
/// that opens a socket and sends nothing is closed after it.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress on one listener at most; beyond, accepting
/// waits (the kernel's backlog holds the rest).
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Handshaken connections waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// Remote addresses whose failed handshake has been logged. When the set
/// is full it is emptied, so memory stays bounded and a new failure from
/// an address already seen is logged again.
const MAX_LOGGED_ADDRESSES: usize = 4096;

/// The first byte of a TLS record carrying a handshake (ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Which schemes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `http://` only.
    Plain,
    /// `https://` only.
    Tls,
    /// Both on one port (etcd does so when a host appears with both
    /// schemes), told apart by the first byte the client sends.
    Both,
}

/// Turns accepted TCP connections into [`Conn`]s.
pub struct Acceptor {
    mode: Mode,
    config: Option<Arc<ServerConfig>>,
    timeout: Duration,
    /// What the listener serves, for log lines (`client`, `peer`).
    label: &'static str,
    logged: Mutex<HashSet<IpAddr>>,
}

impl Acceptor {
    /// An acceptor for `mode`; `config` is required unless it is plain.
    pub fn new(
        label: &'static str,
        mode: Mode,
        config: Option<Arc<ServerConfig>>,
        timeout: Duration,
    ) -> Acceptor {
        assert!(
            mode == Mode::Plain || config.is_some(),
            "a TLS listener needs a server configuration"
        );
        Acceptor {
            mode,
            config,
            timeout,
            label,
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// Takes one accepted connection through its handshake. `None` when
    /// it failed or timed out (logged once per remote address).
    pub async fn accept(&self, tcp: TcpStream, addr: SocketAddr) -> Option<Conn> {
        let _ = tcp.set_nodelay(true);
        match tokio::time::timeout(self.timeout, self.handshake(tcp)).await {
            Ok(Ok(conn)) => Some(conn),
            Ok(Err(err)) => {
                self.log_failure(addr, &err.to_string());
                None
            }
            Err(_) => {
                self.log_failure(
                    addr,
                    &format!("handshake not finished within {:?}", self.timeout),
                );
                None
            }
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> io::Result<Conn> {
        let tls = match self.mode {
            Mode::Plain => false,
            Mode::Tls => true,
            Mode::Both => {
                let mut first = [0u8; 1];
                let n = tcp.peek(&mut first).await?;
                n == 1 && first[0] == TLS_HANDSHAKE_RECORD
            }
        };
        let Some(config) = self.config.clone().filter(|_| tls) else {
            return Ok(Conn::Plain(tcp));
        };
        let stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        Ok(Conn::Tls(Box::new(stream)))
    }

    fn log_failure(&self, addr: SocketAddr, err: &str) {
        let mut logged = self.logged.lock();
        if logged.len() >= MAX_LOGGED_ADDRESSES {
            logged.clear();
        }
        if logged.insert(addr.ip()) {
            tracing::warn!(
                listener = self.label,
                remote_addr = %addr,
                error = %err,
                "rejected connection (further failures from this address are not logged)"
            );
        } else {
            tracing::debug!(listener = self.label, remote_addr = %addr, error = %err, "rejected connection");
        }
    }
}

/// An accepted connection, after its handshake.
pub enum Conn {
    /// In the clear.
    Plain(TcpStream),
    /// Over TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    /// The common name of the client certificate the handshake verified
    /// (client certificates are only taken when verified), if any.
    pub fn client_name(&self) -> Option<String> {
        let Conn::Tls(stream) = self else {
            return None;
        };
        let (_, session) = stream.get_ref();
        let leaf = session.peer_certificates()?.first()?;
        crate::server::common_name(leaf)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A listener's handshaken connections: a task accepts and starts each
/// handshake in a task of its own (at most [`MAX_PENDING_HANDSHAKES`] at
/// once), so a slow handshake never holds up the next client.
pub struct Incoming {
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Incoming {
    /// Starts accepting on `listener`. Must run inside a tokio runtime.
    pub fn new(listener: TcpListener, acceptor: Acceptor) -> io::Result<Incoming> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = Arc::new(acceptor);
        let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = pending.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of descriptors, or a connection reset before
                        // it was taken: wait a little rather than spin.
                        tracing::debug!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let conn = acceptor.accept(tcp, addr).await;
                    drop(permit);
                    if let Some(conn) = conn {
                        let _ = tx.send((conn, addr)).await;
                    }
                });
            }
        });
        Ok(Incoming { ready, local, task })
    }

    /// The next handshaken connection; `None` once accepting stopped.
    pub async fn next(&mut self) -> Option<(Conn, SocketAddr)> {
        self.ready.recv().await
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}
