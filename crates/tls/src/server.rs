//! The server side: etcd's `TLSInfo.ServerConfig`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::files::{self, ReloadingKey};
use crate::{Error, Result, TlsInfo};

/// Serves the certificate as its files hold it at each handshake.
#[derive(Debug)]
struct Resolver(ReloadingKey);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }
}

impl TlsInfo {
    /// The rustls configuration a listener serves with. As etcd's: client
    /// certificates are required and verified when a trusted CA is given
    /// or `client_cert_auth` is on (against the system's CAs without a CA
    /// file); a CRL refuses the certificates it lists; an allowed CN or
    /// hostname is checked on the verified certificate; ALPN offers `h2`
    /// (and `http/1.1`, for `/health` and `/metrics` over TLS).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        self.validate()?;
        let provider = crate::provider(self)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions())
            .map_err(|e| Error::Config(format!("TLS versions: {e}")))?;
        let builder = if self.trusted_ca_file.is_some() || self.client_cert_auth {
            let roots = files::roots(self.trusted_ca_file.as_deref())?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if let Some(crl) = &self.crl_file {
                // As etcd checks: the serial of the client's own
                // certificate against the list; a CA the list does not
                // cover is not a reason to refuse.
                verifier = verifier
                    .with_crls(files::crls(crl)?)
                    .only_check_end_entity_revocation()
                    .allow_unknown_revocation_status();
            }
            let verifier = verifier
                .build()
                .map_err(|e| Error::Config(format!("client certificate verification: {e}")))?;
            let verifier: Arc<dyn ClientCertVerifier> =
                if self.allowed_cn.is_some() || self.allowed_hostname.is_some() {
                    Arc::new(Allowed {
                        inner: verifier,
                        cn: self.allowed_cn.clone(),
                        hostname: self.allowed_hostname.clone(),
                    })
                } else {
                    verifier
                };
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let resolver = ReloadingKey::new(&self.cert_file, &self.key_file, provider)?;
        let mut config = builder.with_cert_resolver(Arc::new(Resolver(resolver)));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// etcd's `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`: a
/// client certificate that verifies must also carry the allowed common
/// name, or be valid for the allowed host.
#[derive(Debug)]
struct Allowed {
    inner: Arc<dyn ClientCertVerifier>,
    cn: Option<String>,
    hostname: Option<String>,
}

/// The subject common name of a DER certificate.
pub(crate) fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

impl ClientCertVerifier for Allowed {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let allowed = if let Some(cn) = &self.cn {
            common_name(end_entity).as_deref() == Some(cn.as_str())
        } else if let Some(host) = &self.hostname {
            let name = ServerName::try_from(host.as_str())
                .map_err(|_| rustls::Error::General(format!("allowed hostname {host:?}")))?;
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, &name).is_ok()
        } else {
            true
        };
        if allowed {
            Ok(verified)
        } else {
            Err(rustls::Error::General(
                "client certificate authentication failed".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
