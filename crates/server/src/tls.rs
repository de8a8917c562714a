//! The member's TLS: etcd's TLS flags turned into settings for each side
//! (auto TLS generated under the data directory), the listeners' schemes,
//! and how peers are dialed.

use std::collections::BTreeMap;
use std::path::Path;

use ironcd_tls::{Dialer, Mode, TlsInfo, TlsVersion};

use crate::config::{ServerConfig, TlsFlags};
use crate::error::{Error, Result};

/// Both sides' settings; `None` for a side that runs in the clear.
pub struct Tls {
    /// What client and metrics listeners serve `https://` with.
    pub client: Option<TlsInfo>,
    /// What the peer listeners serve `https://` with.
    pub peer: Option<TlsInfo>,
    /// How this member dials its peers (and the leader, for forwarded
    /// requests).
    pub peer_dialer: Dialer,
}

fn config_error(e: ironcd_tls::Error) -> Error {
    Error::Config(e.to_string())
}

/// The `host:port` of each listen URL.
fn hosts(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| crate::start::host_port(u).ok())
        .collect()
}

/// One side's settings from its flags and the shared ones.
fn side(
    cfg: &ServerConfig,
    flags: &TlsFlags,
    which: &str,
    listen_urls: &[String],
) -> Result<Option<TlsInfo>> {
    let mut info = if !flags.cert_file.is_empty() || !flags.key_file.is_empty() {
        if flags.auto_tls {
            tracing::warn!("ignoring {which} auto TLS since certs given");
        }
        TlsInfo::new(&flags.cert_file, &flags.key_file)
    } else if flags.auto_tls {
        let dir = cfg.data_dir.join("fixtures").join(which);
        ironcd_tls::self_cert(&dir, &hosts(listen_urls), cfg.self_signed_cert_validity)
            .map_err(config_error)?
    } else {
        return Ok(None);
    };
    let path = |s: &str| (!s.is_empty()).then(|| Path::new(s).to_path_buf());
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    info.trusted_ca_file = path(&flags.trusted_ca_file);
    info.client_cert_auth = flags.client_cert_auth;
    info.crl_file = path(&flags.crl_file);
    info.allowed_cn = text(&flags.allowed_cn);
    info.allowed_hostname = text(&flags.allowed_hostname);
    info.cipher_suites = cfg.cipher_suites.clone();
    info.min_version =
        TlsVersion::parse("tls-min-version", &cfg.tls_min_version).map_err(config_error)?;
    info.max_version = match cfg.tls_max_version.as_str() {
        "" => TlsVersion::Tls13,
        v => TlsVersion::parse("tls-max-version", v).map_err(config_error)?,
    };
    info.validate().map_err(config_error)?;
    tracing::info!(
        side = which,
        cert_file = %info.cert_file.display(),
        trusted_ca_file = ?info.trusted_ca_file,
        client_cert_auth = info.client_cert_auth,
        auto_tls = info.self_cert,
        "starting with {which} TLS"
    );
    Ok(Some(info))
}

/// etcd's warnings for `http://` URLs on a side that has TLS settings:
/// those URLs serve in the clear and ask for no client certificate.
fn warn_plain_urls(which: &str, flags: &TlsFlags, urls: &[String]) {
    for url in urls.iter().filter(|u| u.starts_with("http://")) {
        if !flags.cert_file.is_empty() || !flags.key_file.is_empty() {
            tracing::warn!(url = %url, "scheme is HTTP while key and cert files are present; ignoring key and cert files for this {which} URL");
        }
        if flags.client_cert_auth {
            tracing::warn!(url = %url, "scheme is HTTP while {which} client cert auth is enabled; ignoring client cert auth for this URL");
        }
    }
}

/// Reads the flags into both sides' settings, generating auto TLS
/// certificates when asked and missing.
pub fn resolve(cfg: &ServerConfig) -> Result<Tls> {
    warn_plain_urls("client", &cfg.client_tls, &cfg.listen_client_urls);
    warn_plain_urls("peer", &cfg.peer_tls, &cfg.listen_peer_urls);
    let client = side(cfg, &cfg.client_tls, "client", &cfg.listen_client_urls)?;
    let peer = side(cfg, &cfg.peer_tls, "peer", &cfg.listen_peer_urls)?;
    // Dialing presents `--peer-client-cert-file` when given, else the
    // serving certificate.
    let dialing = peer.clone().map(|mut info| {
        let flags = &cfg.peer_tls;
        if !flags.client_cert_file.is_empty() && !flags.client_key_file.is_empty() {
            info.cert_file = flags.client_cert_file.clone().into();
            info.key_file = flags.client_key_file.clone().into();
        }
        info
    });
    Ok(Tls {
        client,
        peer,
        peer_dialer: Dialer::new(dialing),
    })
}

/// The addresses to bind for `urls`, each with the schemes it serves: a
/// host given with both `http://` and `https://` is one listener serving
/// both, as etcd's is.
pub fn listeners(urls: &[String]) -> Result<Vec<(String, Mode)>> {
    let mut by_addr: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut order = Vec::new();
    for url in urls {
        let addr = crate::start::host_port(url)?;
        let entry = by_addr.entry(addr.clone()).or_insert_with(|| {
            order.push(addr.clone());
            (false, false)
        });
        if url.starts_with("https://") {
            entry.1 = true;
        } else {
            entry.0 = true;
        }
    }
    Ok(order
        .into_iter()
        .map(|addr| {
            let mode = match by_addr[&addr] {
                (true, true) => Mode::Both,
                (false, true) => Mode::Tls,
                _ => Mode::Plain,
            };
            (addr, mode)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_listener_per_address_serving_its_schemes() {
        let urls = vec![
            "http://127.0.0.1:2379".to_string(),
            "https://127.0.0.1:2379".into(),
            "https://127.0.0.1:2479".into(),
            "http://127.0.0.1:2579".into(),
        ];
        assert_eq!(
            listeners(&urls).unwrap(),
            vec![
                ("127.0.0.1:2379".to_string(), Mode::Both),
                ("127.0.0.1:2479".to_string(), Mode::Tls),
                ("127.0.0.1:2579".to_string(), Mode::Plain),
            ]
        );
    }

    #[test]
    fn auto_tls_generates_into_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            listen_peer_urls: vec!["https://127.0.0.1:2380".into()],
            ..ServerConfig::default()
        };
        cfg.peer_tls.auto_tls = true;
        let tls = resolve(&cfg).unwrap();
        assert!(tls.client.is_none());
        let peer = tls.peer.unwrap();
        assert!(peer.self_cert);
        assert_eq!(peer.cert_file, dir.path().join("fixtures/peer/cert.pem"));
        assert!(peer.cert_file.exists());
        assert!(tls.peer_dialer.has_tls());
    }

    #[test]
    fn versions_and_suites_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        cfg.client_tls.auto_tls = true;
        cfg.tls_min_version = "TLS1.3".into();
        cfg.tls_max_version = "TLS1.2".into();
        assert!(resolve(&cfg).is_err());
        cfg.tls_max_version = String::new();
        cfg.cipher_suites = vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()];
        let err = resolve(&cfg).err().unwrap().to_string();
        assert!(err.contains("only TLS1.3"), "{err}");
    }
}
