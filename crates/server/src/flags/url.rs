//! URLs as etcd's flags take them, parsed in this one place: a URL is
//! `scheme://host:port` with no path ([`parse_url`]); lists of them
//! ([`parse_url_list`]), `--initial-cluster`'s `name=url` pairs
//! ([`parse_initial_cluster`]), the member's URL flags checked as etcd's
//! `Config.Validate` does ([`MemberUrls`]), the schemes ironcd serves
//! ([`supported_scheme`]) and a member's peer URLs in `MemberAdd` and
//! `MemberUpdate` ([`is_peer_url`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::config::InitialMember;

use super::settings::Settings;
use super::FlagError;

/// A URL as etcd accepts it on its flags: `scheme://host:port`, no path.
#[derive(Debug, PartialEq, Eq)]
struct FlagUrl<'a> {
    /// Lowercase.
    scheme: String,
    /// Without brackets for IPv6.
    host: &'a str,
    authority: &'a str,
}

impl FlagUrl<'_> {
    fn canonical(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

fn parse_url(text: &str) -> Result<FlagUrl<'_>, String> {
    let scheme_error = || format!("URL scheme must be http, https, unix, or unixs: {text}");
    let (scheme, rest) = text.split_once("://").ok_or_else(scheme_error)?;
    let scheme = scheme.to_ascii_lowercase();
    if !["http", "https", "unix", "unixs"].contains(&scheme.as_str()) {
        return Err(scheme_error());
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_end < rest.len() {
        return Err(format!("URL must not contain a path: {text}"));
    }
    let host_port_error = || format!("URL address does not have the form \"host:port\": {text}");
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(host_port_error)?;
            (host, after.strip_prefix(':').ok_or_else(host_port_error)?)
        }
        None => rest.rsplit_once(':').ok_or_else(host_port_error)?,
    };
    if (host.contains(':') && !rest.starts_with('[')) || port.parse::<u16>().is_err() {
        return Err(host_port_error());
    }
    Ok(FlagUrl {
        scheme,
        host,
        authority: rest,
    })
}

/// True for a URL etcd accepts as a member's peer URL: `http(s)://host:port`
/// with no path (`MemberAdd`, `MemberUpdate`).
pub fn is_peer_url(text: &str) -> bool {
    parse_url(text).is_ok_and(|url| url.scheme == "http" || url.scheme == "https")
}

/// The `host:port` to bind for a listen URL (`http://host:port`; the only
/// scheme served so far).
pub fn listen_authority(text: &str) -> Result<String, String> {
    let url = parse_url(text)?;
    if url.scheme != "http" && url.scheme != "https" {
        return Err(format!(
            "unsupported URL {text:?} (only http:// and https:// are served)"
        ));
    }
    Ok(url.authority.to_string())
}

/// A comma-separated URL list, sorted and without duplicates, as etcd
/// stores it; an empty string is an empty list.
pub(super) fn parse_url_list(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let urls: BTreeSet<String> = text
        .split(',')
        .map(|url| parse_url(url.trim()).map(|url| url.canonical()))
        .collect::<Result<_, _>>()?;
    Ok(urls.into_iter().collect())
}

/// The member's URL flags, checked the way etcd's `Config.Validate` does.
pub(super) struct MemberUrls {
    pub(super) listen_client: Vec<String>,
    pub(super) advertise_client: Vec<String>,
    pub(super) listen_peer: Vec<String>,
    pub(super) initial_advertise_peer: Vec<String>,
    pub(super) listen_metrics: Vec<String>,
}

/// Whether a URL is bound to (needs an IP) or handed to others (needs a
/// host).
#[derive(Clone, Copy)]
enum UrlUse {
    Listen,
    Advertise,
}

impl MemberUrls {
    pub(super) fn from_settings(settings: &Settings) -> Result<Self, FlagError> {
        let list = |flag: &str, url_use| checked_urls(flag, settings.urls(flag), url_use);
        let urls = Self {
            listen_client: list("listen-client-urls", UrlUse::Listen)?,
            advertise_client: list("advertise-client-urls", UrlUse::Advertise)?,
            listen_peer: list("listen-peer-urls", UrlUse::Listen)?,
            initial_advertise_peer: list("initial-advertise-peer-urls", UrlUse::Advertise)?,
            listen_metrics: list("listen-metrics-urls", UrlUse::Listen)?,
        };
        // etcd drops its default advertised client URL once the listen URLs
        // are chosen, so that a member never advertises a URL it may not
        // serve.
        if settings.is_set("listen-client-urls") && !settings.is_set("advertise-client-urls") {
            return Err(FlagError::Invalid(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                    .to_string(),
            ));
        }
        Ok(urls)
    }
}

fn checked_urls(flag: &str, urls: Vec<String>, url_use: UrlUse) -> Result<Vec<String>, FlagError> {
    for url in &urls {
        let parsed = parse_url(url).expect("URL lists are checked when set");
        supported_scheme(flag, url, &parsed.scheme)?;
        match url_use {
            UrlUse::Listen
                if parsed.host != "localhost" && parsed.host.parse::<IpAddr>().is_err() =>
            {
                return Err(FlagError::Invalid(format!(
                    "--{flag}: expected IP in URL for binding ({url})"
                )));
            }
            UrlUse::Advertise if parsed.host.is_empty() => {
                return Err(FlagError::Invalid(format!(
                    "--{flag} {:?} must be \"host:port\" (unexpected empty host ({url}))",
                    urls.join(",")
                )));
            }
            _ => {}
        }
    }
    Ok(urls)
}

/// ironcd serves HTTP/2 over TCP, plain or TLS; not over unix sockets.
fn supported_scheme(flag: &str, url: &str, scheme: &str) -> Result<(), FlagError> {
    match scheme {
        "http" | "https" => Ok(()),
        _ => Err(FlagError::Unsupported(format!(
            "unix sockets are not yet supported by ironcd: --{flag} has {url}"
        ))),
    }
}

/// `name=url,name=url,…`; a name may repeat to give a member several URLs.
/// Members keep their first-appearance order, each member's URLs are
/// sorted.
pub(super) fn parse_initial_cluster(text: &str) -> Result<Vec<InitialMember>, FlagError> {
    let invalid = |reason: String| FlagError::InvalidValue {
        flag: "initial-cluster".to_string(),
        env: None,
        value: text.to_string(),
        reason,
    };
    let mut members: Vec<InitialMember> = Vec::new();
    for entry in text.split(',').filter(|entry| !entry.is_empty()) {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| invalid(format!("{entry:?} is not of the form name=peer-url")))?;
        let parsed = parse_url(url.trim()).map_err(invalid)?;
        let url = parsed.canonical();
        supported_scheme("initial-cluster", &url, &parsed.scheme)?;
        match members.iter_mut().find(|member| member.name == name) {
            Some(member) => member.peer_urls.push(url),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url],
            }),
        }
    }
    for member in &mut members {
        member.peer_urls.sort();
        member.peer_urls.dedup();
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::testkit::*;

    #[test]
    fn url_lists() {
        let config = serve(&[
            "--listen-client-urls=http://10.0.0.1:2379, http://127.0.0.1:2379,http://10.0.0.1:2379",
            "--advertise-client-urls=http://infra1.example.com:2379",
            "--listen-peer-urls=http://[::1]:2380,HTTP://0.0.0.0:2380",
            "--initial-advertise-peer-urls=http://10.0.0.1:2380",
            "--listen-metrics-urls=http://localhost:2381",
        ]);
        // Sorted and unique, as etcd keeps them.
        assert_eq!(
            config.listen_client_urls,
            ["http://10.0.0.1:2379", "http://127.0.0.1:2379"]
        );
        assert_eq!(
            config.advertise_client_urls,
            ["http://infra1.example.com:2379"]
        );
        assert_eq!(
            config.listen_peer_urls,
            ["http://0.0.0.0:2380", "http://[::1]:2380"]
        );
        assert_eq!(config.listen_metrics_urls, ["http://localhost:2381"]);
        // The default initial cluster follows the advertised peer URLs.
        assert_eq!(
            members(&config),
            [("default".into(), vec!["http://10.0.0.1:2380".into()])]
        );
    }

    #[test]
    fn url_errors() {
        let client = "--advertise-client-urls=http://10.0.0.1:2379";
        let cases: &[(&[&str], &str)] = &[
            (&["--listen-client-urls=unixs://localhost:2379", client], "unix sockets are not yet supported by ironcd: --listen-client-urls has unixs://localhost:2379"),
            (&["--listen-metrics-urls=unix://localhost:0"], "unix sockets are not yet supported"),
            (&["--listen-peer-urls=http://infra1.example.com:2380"], "--listen-peer-urls: expected IP in URL for binding (http://infra1.example.com:2380)"),
            (&["--listen-client-urls=http://:2379", client], "expected IP in URL for binding"),
            (&["--initial-advertise-peer-urls=http://:2380"], "must be \"host:port\" (unexpected empty host"),
            (&["--listen-client-urls=http://10.0.0.1:2379"], "--advertise-client-urls is required when --listen-client-urls is set explicitly"),
            (&["--listen-client-urls="], "--advertise-client-urls is required"),
            (&["--listen-client-urls=", "--advertise-client-urls="], "URL lists must not be empty"),
        ];
        for (args, want) in cases {
            let e = error(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn initial_cluster() {
        let config = serve(&[
            "--name=infra2",
            "--initial-advertise-peer-urls=http://10.0.0.2:2380",
            "--initial-cluster=infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380,\
             infra1=http://10.0.1.1:2380,infra3=http://10.0.0.3:2380,infra1=http://10.0.0.1:2380",
        ]);
        let want = [
            (
                "infra1",
                vec!["http://10.0.0.1:2380", "http://10.0.1.1:2380"],
            ),
            ("infra2", vec!["http://10.0.0.2:2380"]),
            ("infra3", vec!["http://10.0.0.3:2380"]),
        ];
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(name, urls)| {
                (
                    name.to_string(),
                    urls.iter().map(|u| u.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(members(&config), want);

        let cases: &[(&[&str], &str)] = &[
            (
                &["--initial-cluster=default"],
                r#""default" is not of the form name=peer-url"#,
            ),
            (
                &["--initial-cluster=default=localhost:2380"],
                "URL scheme must be",
            ),
            (
                &["--initial-cluster=default=unixs://10.0.0.1:2380"],
                "unix sockets are not yet supported",
            ),
            (
                &["--initial-cluster=infra1=http://10.0.0.1:2380"],
                r#"couldn't find local name "default""#,
            ),
        ];
        for (args, want) in cases {
            let e = error(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
        // Joining an existing cluster does not need this member listed.
        let config = serve(&[
            "--initial-cluster-state=existing",
            "--initial-cluster=infra1=http://10.0.0.1:2380",
        ]);
        assert_eq!(members(&config).len(), 1);
    }

    #[test]
    fn bad_urls_name_flag_and_value() {
        let cases: &[(&str, &str)] = &[
            (
                "--listen-peer-urls=localhost:2380",
                "URL scheme must be http, https",
            ),
            (
                "--listen-peer-urls=http://127.0.0.1",
                r#"does not have the form "host:port""#,
            ),
            (
                "--listen-peer-urls=http://127.0.0.1:2380/",
                "URL must not contain a path",
            ),
            (
                "--listen-peer-urls=http://127.0.0.1:port",
                r#"does not have the form "host:port""#,
            ),
            (
                "--listen-peer-urls=http://::1:2380",
                r#"does not have the form "host:port""#,
            ),
        ];
        for (arg, reason) in cases {
            assert_invalid_value(arg, reason);
        }
    }

    #[test]
    fn one_parser_for_every_url() {
        let url = parse_url("HTTPS://[fe80::1]:2380").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.host, url.authority),
            ("https", "fe80::1", "[fe80::1]:2380")
        );
        assert_eq!(url.canonical(), "https://[fe80::1]:2380");
        assert_eq!(parse_url("unixs://h:1").unwrap().scheme, "unixs");
        for bad in [
            "h:1",
            "ftp://h:1",
            "http://h",
            "http://h:1/",
            "http://h:1?x",
            "http://[::1:1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        // MemberAdd and MemberUpdate take http and https peer URLs only.
        assert!(is_peer_url("http://10.0.0.1:2380"));
        assert!(is_peer_url("https://[::1]:2380"));
        assert!(!is_peer_url("unix://h:2380"));
        assert!(!is_peer_url("http://10.0.0.1:2380/peer"));
        assert_eq!(
            parse_url_list("http://b:1,http://a:1, http://b:1"),
            Ok(vec!["http://a:1".to_string(), "http://b:1".to_string()])
        );
        assert_eq!(parse_url_list(""), Ok(Vec::new()));
        let members = parse_initial_cluster("a=http://h:2,b=http://h:3,a=http://h:1").unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].peer_urls, ["http://h:1", "http://h:2"]);
        // What a listener binds.
        assert_eq!(
            listen_authority("http://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379"
        );
        assert_eq!(listen_authority("http://[::1]:2379").unwrap(), "[::1]:2379");
        assert_eq!(
            listen_authority("https://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379"
        );
        assert!(listen_authority("unix://127.0.0.1:2379").is_err());
        assert!(listen_authority("http://127.0.0.1").is_err());
    }
}
