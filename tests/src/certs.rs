//! Certificates generated while a test runs, never checked in: a CA, the
//! member and client certificates it issues, and the bad ones a TLS test
//! needs (expired, issued by an unrelated CA, revoked through a CRL), all
//! written as PEM files into a directory the test gives.
//!
//! Keys are ECDSA P-256. A member certificate names 127.0.0.1, ::1 and
//! localhost and serves both ways (ServerAuth and ClientAuth), as an etcd
//! member presents one certificate to clients and to the peers it dials.
//! Every certificate gets the next serial number of its [`Pki`], so a CRL
//! can name exactly the certificates it revokes.
//!
//! ```no_run
//! use ironcd_tests::Pki;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let pki = Pki::new(dir.path()).unwrap();
//! let member = pki.server("member").unwrap();
//! let revoked = pki.client("mallory").unwrap();
//! let crl = pki.crl("revoked", &[&revoked]).unwrap();
//! let flags = [
//!     format!("--cert-file={}", member.cert.display()),
//!     format!("--key-file={}", member.key.display()),
//!     format!("--trusted-ca-file={}", pki.ca_cert().display()),
//!     format!("--client-crl-file={}", crl.display()),
//! ];
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use crate::{Error, Result};

/// The common name of the CA every member and client trusts.
pub const CA_COMMON_NAME: &str = "ironcd-test-ca";
/// The common name of the unrelated CA that issues the "wrong CA" certificates.
pub const WRONG_CA_COMMON_NAME: &str = "ironcd-test-wrong-ca";
/// The names a member certificate is valid for: loopback, as the harness
/// runs every member there.
pub const MEMBER_SUBJECT_ALT_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];
/// How long the CAs are valid, from a day before they are made.
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long an issued certificate is valid, from a day before it is issued
/// (the day of slack absorbs clock differences between test and server).
const LEAF_VALIDITY_DAYS: i64 = 365;
/// How long a CRL says it is current.
const CRL_VALIDITY_DAYS: i64 = 30;

/// What an issued certificate may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A member's: ServerAuth and ClientAuth, valid for
    /// [`MEMBER_SUBJECT_ALT_NAMES`].
    Server,
    /// A client's: ClientAuth only, no subject alternative names.
    Client,
}

/// Whether an issued certificate is valid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From a day ago for [`LEAF_VALIDITY_DAYS`].
    Current,
    /// From two days ago until yesterday.
    Expired,
}

/// Which CA signs an issued certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issuer {
    /// The CA at [`Pki::ca_cert`], which the cluster trusts.
    Ca,
    /// The unrelated CA at [`Pki::wrong_ca_cert`], which nobody trusts.
    WrongCa,
}

/// What to issue: [`CertSpec::server`] or [`CertSpec::client`], changed as
/// the test needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    /// The files' stem: `{name}.pem` and `{name}-key.pem`. ASCII letters,
    /// digits, `.`, `_` and `-` only, and new in the directory.
    pub name: String,
    /// The subject's CN (etcd's user name for a client certificate).
    pub common_name: String,
    /// What it may be used for.
    pub usage: Usage,
    /// Whether it is valid now.
    pub validity: Validity,
    /// Who signs it.
    pub issuer: Issuer,
}

impl CertSpec {
    /// A current member certificate from the trusted CA, with CN `name`.
    pub fn server(name: &str) -> CertSpec {
        CertSpec {
            name: name.to_string(),
            common_name: name.to_string(),
            usage: Usage::Server,
            validity: Validity::Current,
            issuer: Issuer::Ca,
        }
    }

    /// A current client certificate from the trusted CA, with CN `name`.
    pub fn client(name: &str) -> CertSpec {
        CertSpec {
            usage: Usage::Client,
            ..CertSpec::server(name)
        }
    }
}

/// An issued certificate's files and serial number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PKCS#8 PEM.
    pub key: PathBuf,
    /// Its serial number, unique within its [`Pki`].
    pub serial: u64,
}

/// A CA: its certificate (also written to a file) and its signing key.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    path: PathBuf,
}

/// A test's public key infrastructure: the trusted CA, an unrelated one,
/// and everything they issue, as files in one directory.
pub struct Pki {
    dir: PathBuf,
    ca: Authority,
    wrong_ca: Authority,
    next_serial: AtomicU64,
    next_crl_number: AtomicU64,
}

impl Pki {
    /// Makes both CAs and writes their certificates to `dir` (which must
    /// exist) as `ca.pem` and `wrong-ca.pem`.
    pub fn new(dir: &Path) -> Result<Pki> {
        let next_serial = AtomicU64::new(1);
        let ca = Authority::new(dir, "ca", CA_COMMON_NAME, &next_serial)?;
        let wrong_ca = Authority::new(dir, "wrong-ca", WRONG_CA_COMMON_NAME, &next_serial)?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
            wrong_ca,
            next_serial,
            next_crl_number: AtomicU64::new(1),
        })
    }

    /// The directory the files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trusted CA's certificate (`--trusted-ca-file`, `--cacert`).
    pub fn ca_cert(&self) -> &Path {
        &self.ca.path
    }

    /// The unrelated CA's certificate.
    pub fn wrong_ca_cert(&self) -> &Path {
        &self.wrong_ca.path
    }

    /// [`CertSpec::server`]: a member certificate with CN `name`.
    pub fn server(&self, name: &str) -> Result<CertFiles> {
        self.issue(&CertSpec::server(name))
    }

    /// [`CertSpec::client`]: a client certificate with CN `name`.
    pub fn client(&self, name: &str) -> Result<CertFiles> {
        self.issue(&CertSpec::client(name))
    }

    /// A client certificate with CN `name` that expired yesterday.
    pub fn expired_client(&self, name: &str) -> Result<CertFiles> {
        self.issue(&CertSpec {
            validity: Validity::Expired,
            ..CertSpec::client(name)
        })
    }

    /// A client certificate with CN `name` from the unrelated CA.
    pub fn wrong_ca_client(&self, name: &str) -> Result<CertFiles> {
        self.issue(&CertSpec {
            issuer: Issuer::WrongCa,
            ..CertSpec::client(name)
        })
    }

    /// Issues `spec`, writing `{name}.pem` and `{name}-key.pem`.
    pub fn issue(&self, spec: &CertSpec) -> Result<CertFiles> {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(certificate_error(
            &format!("generate a key for {}", spec.name),
        ))?;
        let issuer = match spec.issuer {
            Issuer::Ca => &self.ca,
            Issuer::WrongCa => &self.wrong_ca,
        };
        let cert = leaf_params(spec, serial)
            .signed_by(&key, &issuer.cert, &issuer.key)
            .map_err(certificate_error(&format!("sign {}", spec.name)))?;
        let files = CertFiles {
            cert: file_path(&self.dir, &spec.name, ".pem")?,
            key: file_path(&self.dir, &spec.name, "-key.pem")?,
            serial,
        };
        write_new(&files.cert, &cert.pem())?;
        write_new(&files.key, &key.serialize_pem())?;
        Ok(files)
    }

    /// Writes `{name}-crl.pem`, a CRL signed by the trusted CA that revokes
    /// the certificates in `revoked` (by serial number); returns its path
    /// (etcd's `--client-crl-file`, `--peer-crl-file`).
    pub fn crl(&self, name: &str, revoked: &[&CertFiles]) -> Result<PathBuf> {
        let now = OffsetDateTime::now_utc();
        let crl_number = self.next_crl_number.fetch_add(1, Ordering::Relaxed);
        let params = CertificateRevocationListParams {
            this_update: now - Duration::days(1),
            next_update: now + Duration::days(CRL_VALIDITY_DAYS),
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|files| RevokedCertParams {
                    serial_number: SerialNumber::from(files.serial),
                    revocation_time: now - Duration::hours(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.ca.cert, &self.ca.key)
            .map_err(certificate_error(&format!("sign CRL {name}")))?;
        let pem = crl
            .pem()
            .map_err(certificate_error(&format!("encode CRL {name}")))?;
        let path = file_path(&self.dir, name, "-crl.pem")?;
        write_new(&path, &pem)?;
        Ok(path)
    }
}

impl Authority {
    /// A self-signed CA with CN `common_name`, written to `{name}.pem`.
    fn new(dir: &Path, name: &str, common_name: &str, serials: &AtomicU64) -> Result<Authority> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(certificate_error(&format!("generate a key for {name}")))?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_only(common_name);
        params.serial_number = Some(SerialNumber::from(serials.fetch_add(1, Ordering::Relaxed)));
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(certificate_error(&format!("self-sign {name}")))?;
        let path = file_path(dir, name, ".pem")?;
        write_new(&path, &cert.pem())?;
        Ok(Authority { cert, key, path })
    }
}

/// The parameters of an end-entity certificate as `spec` asks.
fn leaf_params(spec: &CertSpec, serial: u64) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name_only(&spec.common_name);
    params.serial_number = Some(SerialNumber::from(serial));
    (params.not_before, params.not_after) = match spec.validity {
        Validity::Current => (
            now - Duration::days(1),
            now + Duration::days(LEAF_VALIDITY_DAYS),
        ),
        Validity::Expired => (now - Duration::days(2), now - Duration::days(1)),
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    match spec.usage {
        Usage::Server => {
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.subject_alt_names = member_subject_alt_names();
        }
        Usage::Client => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    params
}

fn member_subject_alt_names() -> Vec<SanType> {
    MEMBER_SUBJECT_ALT_NAMES
        .iter()
        .map(|name| match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.to_string()
                    .try_into()
                    .expect("a constant DNS name is an IA5 string"),
            ),
        })
        .collect()
}

fn common_name_only(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// `dir/{name}{suffix}`, with `name` checked to be a plain file stem.
fn file_path(dir: &Path, name: &str, suffix: &str) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain {
        return Err(Error::Io {
            what: format!("name a certificate file {name:?}"),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "use ASCII letters, digits, '.', '_' and '-', not starting with '.'",
            ),
        });
    }
    Ok(dir.join(format!("{name}{suffix}")))
}

/// Writes a file that must not exist yet: two certificates given one name
/// are a test's mistake, not something to overwrite silently.
fn write_new(path: &Path, contents: &str) -> Result<()> {
    let io = |source| Error::Io {
        what: format!("write {}", path.display()),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn certificate_error(what: &str) -> impl FnOnce(rcgen::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Certificate { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;
    use x509_parser::parse_x509_crl;
    use x509_parser::pem::Pem;

    /// The one PEM block in `path`, with its label.
    fn read_pem(path: &Path) -> Pem {
        let bytes = std::fs::read(path).unwrap();
        let mut blocks = Pem::iter_from_buffer(&bytes);
        let pem = blocks.next().expect("a PEM block").expect("valid PEM");
        assert!(blocks.next().is_none(), "one block in {}", path.display());
        pem
    }

    fn with_cert<T>(path: &Path, check: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
        let pem = read_pem(path);
        assert_eq!(pem.label, "CERTIFICATE");
        check(&pem.parse_x509().expect("a parsable certificate"))
    }

    fn common_name(cert: &X509Certificate<'_>) -> String {
        let mut names = cert.subject().iter_common_name();
        names.next().unwrap().as_str().unwrap().to_string()
    }

    /// Whether `cert`'s signature verifies with `ca_path`'s public key.
    fn signed_by(cert: &Path, ca_path: &Path) -> bool {
        with_cert(ca_path, |ca| {
            with_cert(cert, |cert| {
                cert.verify_signature(Some(ca.public_key())).is_ok()
            })
        })
    }

    fn pki() -> (tempfile::TempDir, Pki) {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path()).unwrap();
        (dir, pki)
    }

    #[test]
    fn the_ca_is_a_self_signed_ca() {
        let (_dir, pki) = pki();
        assert_eq!(pki.ca_cert(), pki.dir().join("ca.pem"));
        with_cert(pki.ca_cert(), |ca| {
            assert_eq!(common_name(ca), CA_COMMON_NAME);
            assert_eq!(ca.subject(), ca.issuer());
            assert!(ca.is_ca());
            assert!(ca.validity().is_valid());
        });
        assert!(signed_by(pki.ca_cert(), pki.ca_cert()));
        with_cert(pki.wrong_ca_cert(), |ca| {
            assert_eq!(common_name(ca), WRONG_CA_COMMON_NAME);
        });
    }

    #[test]
    fn a_server_certificate_names_loopback_and_serves_both_ways() {
        let (_dir, pki) = pki();
        let member = pki.server("member").unwrap();
        assert_eq!(member.cert, pki.dir().join("member.pem"));
        assert_eq!(member.key, pki.dir().join("member-key.pem"));
        assert_eq!(read_pem(&member.key).label, "PRIVATE KEY");
        assert!(signed_by(&member.cert, pki.ca_cert()));
        with_cert(&member.cert, |cert| {
            assert_eq!(common_name(cert), "member");
            assert!(!cert.is_ca());
            assert!(cert.validity().is_valid());
            let usage = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(usage.server_auth && usage.client_auth, "{usage:?}");
            let names: Vec<String> = cert
                .subject_alternative_name()
                .unwrap()
                .unwrap()
                .value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).map(std::net::IpAddr::from),
                        _ => <[u8; 16]>::try_from(*bytes).map(std::net::IpAddr::from),
                    }
                    .unwrap()
                    .to_string(),
                    GeneralName::DNSName(dns) => dns.to_string(),
                    other => panic!("unexpected name {other:?}"),
                })
                .collect();
            assert_eq!(names, MEMBER_SUBJECT_ALT_NAMES);
            assert_eq!(cert.raw_serial(), [u8::try_from(member.serial).unwrap()]);
        });
    }

    #[test]
    fn a_client_certificate_is_for_client_auth_only() {
        let (_dir, pki) = pki();
        let client = pki.client("root").unwrap();
        assert!(signed_by(&client.cert, pki.ca_cert()));
        with_cert(&client.cert, |cert| {
            assert_eq!(common_name(cert), "root");
            let usage = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(usage.client_auth && !usage.server_auth, "{usage:?}");
            assert!(cert.subject_alternative_name().unwrap().is_none());
        });
    }

    #[test]
    fn the_bad_certificates_are_bad_in_one_way_each() {
        let (_dir, pki) = pki();
        let expired = pki.expired_client("late").unwrap();
        assert!(signed_by(&expired.cert, pki.ca_cert()));
        with_cert(&expired.cert, |cert| {
            assert!(cert.validity().not_after < x509_parser::time::ASN1Time::now());
            assert!(!cert.validity().is_valid());
        });
        let stranger = pki.wrong_ca_client("stranger").unwrap();
        assert!(!signed_by(&stranger.cert, pki.ca_cert()));
        assert!(signed_by(&stranger.cert, pki.wrong_ca_cert()));
        with_cert(&stranger.cert, |cert| {
            assert!(cert.validity().is_valid());
            assert_eq!(
                cert.issuer().iter_common_name().next().unwrap().as_str(),
                Ok(WRONG_CA_COMMON_NAME)
            );
        });
    }

    #[test]
    fn serials_are_distinct() {
        let (_dir, pki) = pki();
        let serials = [
            pki.server("a").unwrap().serial,
            pki.client("b").unwrap().serial,
            pki.expired_client("c").unwrap().serial,
            pki.wrong_ca_client("d").unwrap().serial,
        ];
        let distinct: std::collections::BTreeSet<u64> = serials.iter().copied().collect();
        assert_eq!(distinct.len(), serials.len(), "{serials:?}");
    }

    #[test]
    fn a_crl_lists_exactly_the_revoked_serials_and_is_signed_by_the_ca() {
        let (_dir, pki) = pki();
        let kept = pki.client("kept").unwrap();
        let revoked = pki.client("revoked").unwrap();
        let crl_path = pki.crl("revocations", &[&revoked]).unwrap();
        assert_eq!(crl_path, pki.dir().join("revocations-crl.pem"));
        let pem = read_pem(&crl_path);
        assert_eq!(pem.label, "X509 CRL");
        let (rest, crl) = parse_x509_crl(&pem.contents).unwrap();
        assert!(rest.is_empty());
        let serials: Vec<&[u8]> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial())
            .collect();
        assert_eq!(serials, [[u8::try_from(revoked.serial).unwrap()]]);
        assert_ne!(kept.serial, revoked.serial);
        with_cert(pki.ca_cert(), |ca| {
            assert_eq!(crl.issuer(), ca.subject());
            assert!(crl.verify_signature(ca.public_key()).is_ok());
        });
    }

    #[test]
    fn a_name_is_used_once_and_must_be_a_plain_file_stem() {
        let (_dir, pki) = pki();
        pki.client("twice").unwrap();
        let again = pki.client("twice").unwrap_err().to_string();
        assert!(again.contains("twice.pem"), "{again}");
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(pki.client(bad).is_err(), "{bad:?}");
        }
        assert!(pki.server("ca").is_err(), "ca.pem is the CA's");
    }
}
