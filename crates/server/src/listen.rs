//! Listeners: accepted connections through TLS when the URL is
//! `https://` (both schemes on one port when a host is given with both),
//! then through the `:authority` repair and the gathering of writes
//! ([`CoalesceIo`]), into hyper's HTTP/1 and HTTP/2
//! server (with etcd's stream limit, [`ConnLimits`]) and the axum router;
//! the verified client certificate's common name reaches every request as
//! a [`VerifiedClientName`].

use std::net::SocketAddr;

use hyper::body::Incoming as Body;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ironcd_api::VerifiedClientName;
use ironcd_h2_authority::AuthorityFixIo;
use ironcd_tls::{Acceptor, Conn, Incoming, Mode, TlsInfo, HANDSHAKE_TIMEOUT};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::coalesce::CoalesceIo;
use crate::error::{Error, Result};

/// An axum listener over handshaken connections.
pub struct ServeListener {
    incoming: Incoming,
}

impl ServeListener {
    /// Binds `addr` and serves `mode` on it; `tls` is required unless the
    /// mode is plain. `label` names the listener in log lines.
    pub async fn bind(
        label: &'static str,
        addr: &str,
        mode: Mode,
        tls: Option<&TlsInfo>,
    ) -> Result<ServeListener> {
        let config = match (mode, tls) {
            (Mode::Plain, _) => None,
            (_, Some(info)) => Some(
                info.server_config()
                    .map_err(|e| Error::Config(e.to_string()))?,
            ),
            (_, None) => {
                return Err(Error::Config(format!(
                    "cannot listen on TLS for {addr}: KeyFile and CertFile are not presented"
                )))
            }
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("listen tcp {addr}: {e}")))?;
        let acceptor = Acceptor::new(label, mode, config, HANDSHAKE_TIMEOUT);
        Ok(ServeListener {
            incoming: Incoming::new(listener, acceptor)?,
        })
    }
}

impl axum::serve::Listener for ServeListener {
    type Io = AuthorityFixIo<Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.next().await {
            Some((conn, addr)) => (AuthorityFixIo::new(conn), addr),
            // The accept task ended (the listener is being dropped): no
            // more connections come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.incoming.local_addr())
    }
}

/// What each accepted connection may do.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// HTTP/2 streams open at once on one connection
    /// (`--max-concurrent-streams`). hyper's own default is 200, which
    /// would hang a client multiplexing more watches than that over one
    /// connection (as Kubernetes' API server does); etcd sets no limit.
    pub max_concurrent_streams: u32,
}

/// Serves `router` on `listener` until `stop` turns true; then stops
/// accepting, asks every connection to finish (HTTP/2 GOAWAY) and waits for
/// them.
pub fn serve(
    mut listener: ServeListener,
    router: axum::Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http2()
            .max_concurrent_streams(limits.max_concurrent_streams);
        let graceful = GracefulShutdown::new();
        loop {
            let (io, _addr) = tokio::select! {
                accepted = axum::serve::Listener::accept(&mut listener) => accepted,
                _ = stop.wait_for(|s| *s) => break,
            };
            // Every request carries the connection's verified client name,
            // if it has one: it comes from the handshake only, never from
            // the request.
            let name = io.get_ref().client_name();
            let router = TowerToHyperService::new(router.clone());
            let service = hyper::service::service_fn(move |mut request: Request<Body>| {
                if let Some(name) = &name {
                    request
                        .extensions_mut()
                        .insert(VerifiedClientName(name.clone()));
                }
                hyper::service::Service::call(&router, request)
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(CoalesceIo::new(io)), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::trace!(error = %e, "connection ended");
                }
            });
        }
        graceful.shutdown().await;
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::routing::get;
    use axum::Extension;
    use ironcd_tests::Pki;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn whoami(name: Option<Extension<VerifiedClientName>>) -> String {
        name.map(|Extension(VerifiedClientName(n))| n)
            .unwrap_or_else(|| "nobody".into())
    }

    /// `GET path` over HTTP/1.1 on `addr`, through TLS when `tls` is given
    /// (presenting `tls`'s client certificate); the response's body.
    async fn get_over(
        addr: SocketAddr,
        path: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> String {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        match tls {
            Some(config) => {
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let mut s = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .unwrap();
                s.write_all(request.as_bytes()).await.unwrap();
                s.read_to_string(&mut response).await.unwrap();
            }
            None => {
                let mut s = tcp;
                s.write_all(request.as_bytes()).await.unwrap();
                s.read_to_string(&mut response).await.unwrap();
            }
        }
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_behind_tls_and_the_verified_client_name_in_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path()).unwrap();
        let member = pki.server("member").unwrap();
        let alice = pki.client("alice").unwrap();
        let mut info = TlsInfo::new(&member.cert, &member.key);
        info.trusted_ca_file = Some(pki.ca_cert().to_path_buf());
        info.client_cert_auth = true;
        let listener = ServeListener::bind("test", "127.0.0.1:0", Mode::Both, Some(&info))
            .await
            .unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let task = serve(
            listener,
            axum::Router::new().route("/whoami", get(whoami)),
            ConnLimits {
                max_concurrent_streams: u32::MAX,
            },
            stop,
        );

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(pki.ca_cert()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let chain: Vec<_> = CertificateDer::pem_file_iter(&alice.cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(&alice.key).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        assert_eq!(
            get_over(addr, "/whoami", Some(Arc::new(config))).await,
            "alice"
        );
        // The same port in the clear: no certificate, no name.
        assert_eq!(get_over(addr, "/whoami", None).await, "nobody");
        let _ = stop_tx.send(true);
        task.abort();
    }
}
