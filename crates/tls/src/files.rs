//! Certificates, keys, CAs and CRLs read from PEM files; a certificate
//! that is read again when its files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use crate::{Error, Result};

fn files_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Files(format!("{what} {}: {e}", path.display()))
}

/// The certificates in a PEM file, leaf first.
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| files_error("reading certificates from", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| files_error("parsing certificates in", path, e))?;
    if certs.is_empty() {
        return Err(files_error("reading", path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| files_error("reading the key in", path, e))
}

/// The trust roots of a CA file, or the system's when none is given.
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let path = ca_file.unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    if ca_file.is_none() && !path.exists() {
        return Ok(roots);
    }
    for cert in certs(path)? {
        roots
            .add(cert)
            .map_err(|e| files_error("adding a CA certificate from", path, e))?;
    }
    Ok(roots)
}

/// Debian's bundle of the system's trusted CAs (Go's crypto/x509 reads the
/// same file), used when no CA file is given.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The CRLs in a file, PEM or DER.
pub(crate) fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| files_error("reading the CRL", path, e))?;
    if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| files_error("parsing the CRL", path, e))
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// A certificate and key loaded for signing with `provider`.
pub(crate) fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>> {
    let chain = certs(cert_file)?;
    let key = provider
        .key_provider
        .load_private_key(key(key_file)?)
        .map_err(|e| files_error("loading the key in", key_file, e))?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

/// What identifies a file's version cheaply: its modification time and
/// length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A certificate and key read again whenever either file changes on disk,
/// checked at every handshake (a `stat` of each). A file that fails to
/// load keeps the last good pair in service, with a warning: a
/// certificate being replaced is briefly missing or half written.
pub(crate) struct ReloadingKey {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: Mutex<(Stamp, Stamp, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for ReloadingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingKey")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl ReloadingKey {
    /// Loads the pair now; an error here is a configuration error.
    pub(crate) fn new(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<ReloadingKey> {
        let stamps = (stamp(cert_file), stamp(key_file));
        let key = certified_key(cert_file, key_file, &provider)?;
        Ok(ReloadingKey {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            provider,
            current: Mutex::new((stamps.0, stamps.1, key)),
        })
    }

    /// The pair as the files hold it now.
    pub(crate) fn get(&self) -> Arc<CertifiedKey> {
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        let mut current = self.current.lock();
        if (current.0, current.1) != stamps {
            match certified_key(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert_file = %self.cert_file.display(), "loaded a changed certificate");
                    *current = (stamps.0, stamps.1, key);
                }
                Err(err) => {
                    // Tried again when the files change again, not at
                    // every handshake.
                    (current.0, current.1) = stamps;
                    tracing::warn!(%err, "keeping the previous certificate: the changed files do not load");
                }
            }
        }
        current.2.clone()
    }
}
