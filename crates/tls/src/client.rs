//! The dialing side: etcd's `TLSInfo.ClientConfig`, and tonic channels to
//! `http://` and `https://` URLs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::files;
use crate::{Error, Result, TlsInfo};

impl TlsInfo {
    /// The rustls configuration for dialing the other side: its
    /// certificate verified against the trusted CA (the system's without
    /// one), or not at all for auto TLS's self-signed certificates, as
    /// etcd does; this side's certificate presented when the server asks.
    /// The files are read now: build one per dial to follow changes.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        self.validate()?;
        let provider = crate::provider(self)?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions())
            .map_err(|e| Error::Config(format!("TLS versions: {e}")))?;
        let builder = if self.self_cert {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider.clone())))
        } else {
            builder.with_root_certificates(files::roots(self.trusted_ca_file.as_deref())?)
        };
        let chain = files::certs(&self.cert_file)?;
        let key = files::key(&self.key_file)?;
        let mut config = builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::Files(format!("{}: {e}", self.key_file.display())))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Accepts any server certificate (Go's `InsecureSkipVerify`, which etcd
/// sets for auto TLS), but still checks the handshake's signatures with it.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens tonic channels to peer (or client) URLs: `http://` in the clear,
/// `https://` with this side's [`TlsInfo`].
#[derive(Clone, Debug, Default)]
pub struct Dialer {
    tls: Option<Arc<TlsInfo>>,
}

impl Dialer {
    /// Dials `https://` URLs with `tls`; without it they are refused.
    pub fn new(tls: Option<TlsInfo>) -> Dialer {
        Dialer {
            tls: tls.map(Arc::new),
        }
    }

    /// Whether `https://` URLs can be dialed.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A channel to `url`, with `configure` applied to its endpoint
    /// (timeouts, keepalive). TLS settings are read from disk here.
    pub async fn connect(
        &self,
        url: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> std::result::Result<Channel, String> {
        let Some(rest) = url.strip_prefix("https://") else {
            let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| e.to_string())?;
            return configure(endpoint)
                .connect()
                .await
                .map_err(|e| e.to_string());
        };
        let Some(tls) = &self.tls else {
            return Err(format!(
                "{url} is https, but no TLS certificate is configured for dialing it"
            ));
        };
        let config = tls.client_config().map_err(|e| e.to_string())?;
        // tonic speaks HTTP/2 over whatever the connector returns; the
        // connector does TLS, so the endpoint itself is plain.
        let endpoint =
            Endpoint::from_shared(format!("http://{rest}")).map_err(|e| e.to_string())?;
        configure(endpoint)
            .connect_with_connector(TlsConnector { config })
            .await
            .map_err(|e| format!("{e}: {}", source_chain(&e)))
    }
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = Vec::new();
    let mut next = e.source();
    while let Some(s) = next {
        out.push(s.to_string());
        next = s.source();
    }
    out.join(": ")
}

/// TCP, then a TLS handshake naming the URI's host.
#[derive(Clone)]
struct TlsConnector {
    config: Arc<ClientConfig>,
}

type Connected = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tonic::codegen::Service<Uri> for TlsConnector {
    type Response = Connected;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Connected>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move {
            let invalid = |what: &str| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string())
            };
            let host = uri.host().ok_or_else(|| invalid("a URL without a host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())
                .map_err(|_| invalid("a host that is not a valid TLS server name"))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}
