//! Auto TLS: etcd's `transport.SelfCert`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{Error, Result, TlsInfo};

/// The certificate and key of auto TLS in `dir` (`cert.pem`, `key.pem`):
/// reused when both exist, else generated — self-signed, organisation
/// "etcd", valid from now for `validity_years` (etcd's
/// `--self-signed-cert-validity`, 1 by default), for each host of `hosts`
/// (`host:port` of the listen URLs) as an IP or DNS name, for server and
/// client authentication (a peer's certificate serves both ways). The
/// key is ECDSA P-384 (etcd uses P-521, which rustls cannot sign with).
/// The returned settings mark the certificate self-signed: dialers accept
/// the other side's without verifying it, as etcd does.
pub fn self_cert(dir: &Path, hosts: &[String], validity_years: u32) -> Result<TlsInfo> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let mut info = TlsInfo::new(&cert_path, &key_path);
    info.self_cert = true;
    if cert_path.exists() && key_path.exists() {
        return Ok(info);
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::SelfCert(format!("{what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create cert directory", &e))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .map_err(|e| fail("cannot generate ECDSA key", &e))?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years.max(1)));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    for host in hosts {
        let name = split_host(host);
        let san = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.to_string()
                    .try_into()
                    .map_err(|e| fail("cannot use the host name", &e))?,
            ),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail("cannot generate x509 certificate", &e))?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)
        .map_err(|e| fail("cannot write the cert file", &e))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| fail("cannot write the key file", &e))?;
    tracing::info!(path = %cert_path.display(), "created cert file");
    Ok(info)
}

/// The host of `host:port` (`[::1]:2380` → `::1`), or all of it.
fn split_host(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    }
}

/// Writes `bytes` through a temporary file made durable, then renamed into
/// place, so a crash leaves the whole file or none.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("fixtures/peer");
        let hosts = vec![
            "127.0.0.1:2380".to_string(),
            "[::1]:2380".into(),
            "node-a:2380".into(),
        ];
        let info = self_cert(&fixtures, &hosts, 1).unwrap();
        assert!(info.self_cert);
        let first = std::fs::read(&info.cert_file).unwrap();
        let mode = std::fs::metadata(&info.key_file).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let again = self_cert(&fixtures, &hosts, 1).unwrap();
        assert_eq!(std::fs::read(&again.cert_file).unwrap(), first, "reused");
        // Both configurations build from it.
        info.server_config().unwrap();
        info.client_config().unwrap();
    }

    #[test]
    fn hosts_split_from_ports() {
        assert_eq!(split_host("127.0.0.1:2380"), "127.0.0.1");
        assert_eq!(split_host("[::1]:2380"), "::1");
        assert_eq!(split_host("example.com"), "example.com");
    }
}
