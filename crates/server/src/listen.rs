//! Listeners: accepted connections through TLS when the URL is
//! `https://` (both schemes on one port when a host is given with both),
//! then through the `:authority` repair, into axum; the verified client
//! certificate's common name reaches every request as a
//! [`VerifiedClientName`].

use std::net::SocketAddr;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::serve::IncomingStream;
use ironcd_api::VerifiedClientName;
use ironcd_h2_authority::AuthorityFixIo;
use ironcd_tls::{Acceptor, Conn, Incoming, Mode, TlsInfo, HANDSHAKE_TIMEOUT};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// Who is on the other end of a connection: the verified client
/// certificate's common name, if the handshake verified one.
#[derive(Clone, Debug)]
struct ClientIdentity(Option<String>);

impl Connected<IncomingStream<'_, ServeListener>> for ClientIdentity {
    fn connect_info(stream: IncomingStream<'_, ServeListener>) -> Self {
        ClientIdentity(stream.io().get_ref().client_name())
    }
}

async fn name_the_client(
    ConnectInfo(identity): ConnectInfo<ClientIdentity>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(name) = identity.0 {
        request.extensions_mut().insert(VerifiedClientName(name));
    }
    next.run(request).await
}

/// Serves `router` on `listener` until `stop` turns true.
pub fn serve(
    listener: ServeListener,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let router = router.layer(axum::middleware::from_fn(name_the_client));
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let service = router.into_make_service_with_connect_info::<ClientIdentity>();
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "listener stopped");
        }
    })
}
