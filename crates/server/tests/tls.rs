//! TLS as etcd serves it: etcd 3.4 and ironcd given the same certificates
//! (made by the test) and flags, driven by the same etcdctl runs, must
//! accept and refuse the same clients; clusters with peer TLS (given
//! certificates and auto TLS) form, survive SIGKILL, and take a joiner by
//! snapshot over TLS.

use std::io::Read;
use std::net::TcpStream;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use ironcd_tests::{etcdctl_with_flags, ironcd, CertFiles, Cluster, Opts, Pki, Scheme, Server};

/// etcdctl's own timeouts in these runs: a refused handshake fails fast.
const ETCDCTL_TIMEOUTS: [&str; 2] = ["--dial-timeout=2s", "--command-timeout=4s"];
/// The server's handshake timeout (`ironcd_tls::HANDSHAKE_TIMEOUT`), and
/// the most the test waits past it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_SLACK: Duration = Duration::from_secs(10);
/// How long a member may take to catch up.
const CATCH_UP: Duration = Duration::from_secs(60);

struct Certs {
    _dir: tempfile::TempDir,
    pki: Pki,
    member: CertFiles,
    client: CertFiles,
    expired: CertFiles,
    stranger: CertFiles,
    revoked: CertFiles,
    crl: std::path::PathBuf,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let client = pki.client("client").unwrap();
    let expired = pki.expired_client("expired").unwrap();
    let stranger = pki.wrong_ca_client("stranger").unwrap();
    let revoked = pki.client("revoked").unwrap();
    let crl = pki.crl("revocations", &[&revoked]).unwrap();
    Certs {
        _dir: dir,
        pki,
        member,
        client,
        expired,
        stranger,
        revoked,
        crl,
    }
}

/// How etcdctl dials: flags, and whether the endpoint is given as an
/// `https://` URL (etcdctl then sends that URL as the HTTP/2 authority,
/// which ironcd repairs behind TLS too) or as `host:port`.
struct Dial {
    name: &'static str,
    flags: Vec<String>,
    url: bool,
}

fn dial(name: &'static str, flags: Vec<String>, url: bool) -> Dial {
    Dial { name, flags, url }
}

fn cacert(c: &Certs) -> String {
    format!("--cacert={}", c.pki.ca_cert().display())
}

fn cert_key(files: &CertFiles) -> [String; 2] {
    [
        format!("--cert={}", files.cert.display()),
        format!("--key={}", files.key.display()),
    ]
}

fn skip_verify() -> [String; 2] {
    [
        "--insecure-transport=false".into(),
        "--insecure-skip-tls-verify".into(),
    ]
}

fn concat<const N: usize>(parts: [&[String]; N]) -> Vec<String> {
    parts.iter().flat_map(|p| p.iter().cloned()).collect()
}

/// A one-member cluster of `server` with https client URLs and
/// `server_flags`; each of `dials` runs `put`: which succeed, by name.
fn outcomes(server: Server, server_flags: &[String], dials: &[Dial]) -> Vec<(&'static str, bool)> {
    let opts = Opts {
        client_scheme: Scheme::Https,
        extra_args: server_flags.to_vec(),
        ..Opts::default()
    };
    let cluster = Cluster::start(server, 1, opts);
    dials
        .iter()
        .map(|d| {
            let endpoint = if d.url {
                cluster.endpoint(0)
            } else {
                cluster.host_port(0)
            };
            let flags = concat([&ETCDCTL_TIMEOUTS.map(String::from), &d.flags]);
            let out = etcdctl_with_flags(&[endpoint], &flags, &["put", "tls-key", d.name], None);
            (d.name, out.status.success())
        })
        .collect()
}

/// Runs `outcomes` on etcd and ironcd at once; both must give `want`.
fn same_as_etcd(server_flags: &[String], dials: &[Dial], want: &[(&str, bool)]) {
    let (etcd, ours) = thread::scope(|s| {
        let etcd = s.spawn(|| outcomes(Server::etcd(), server_flags, dials));
        let ours = s.spawn(|| outcomes(ironcd!(), server_flags, dials));
        (etcd.join().unwrap(), ours.join().unwrap())
    });
    assert_eq!(ours, etcd, "ironcd (left) and etcd (right) differ");
    assert_eq!(
        ours, want,
        "both servers agree, but not with what etcd's docs say"
    );
}

#[test]
fn a_server_certificate_alone() {
    let c = certs();
    let flags = [
        format!("--cert-file={}", c.member.cert.display()),
        format!("--key-file={}", c.member.key.display()),
    ];
    let dials = [
        dial("cacert", vec![cacert(&c)], false),
        dial(
            "cacert-and-cert",
            concat([&[cacert(&c)], &cert_key(&c.client)]),
            false,
        ),
        dial("skip-verify", skip_verify().to_vec(), false),
        dial("https-url-cacert", vec![cacert(&c)], true),
        dial("https-url-no-ca", vec![], true),
        dial("plaintext", vec![], false),
    ];
    same_as_etcd(
        &flags,
        &dials,
        &[
            ("cacert", true),
            ("cacert-and-cert", true),
            ("skip-verify", true),
            ("https-url-cacert", true),
            ("https-url-no-ca", false),
            ("plaintext", false),
        ],
    );
}

#[test]
fn client_certificates_required_and_revocable() {
    let c = certs();
    let flags = [
        format!("--cert-file={}", c.member.cert.display()),
        format!("--key-file={}", c.member.key.display()),
        format!("--trusted-ca-file={}", c.pki.ca_cert().display()),
        "--client-cert-auth".to_string(),
        format!("--client-crl-file={}", c.crl.display()),
    ];
    let with = |files: &CertFiles| concat([&[cacert(&c)], &cert_key(files)]);
    let dials = [
        dial("no-client-cert", vec![cacert(&c)], false),
        dial("client-cert", with(&c.client), false),
        dial("client-cert-https-url", with(&c.client), true),
        dial(
            "skip-verify-with-cert",
            concat([&skip_verify(), &cert_key(&c.client)]),
            false,
        ),
        dial("expired", with(&c.expired), false),
        dial("other-ca", with(&c.stranger), false),
        dial("revoked", with(&c.revoked), false),
    ];
    same_as_etcd(
        &flags,
        &dials,
        &[
            ("no-client-cert", false),
            ("client-cert", true),
            ("client-cert-https-url", true),
            ("skip-verify-with-cert", true),
            ("expired", false),
            ("other-ca", false),
            ("revoked", false),
        ],
    );
}

#[test]
fn auto_tls_generates_a_self_signed_certificate() {
    let c = certs();
    let dials = [
        dial("skip-verify", skip_verify().to_vec(), false),
        dial("cacert", vec![cacert(&c)], false),
        dial("plaintext", vec![], false),
    ];
    same_as_etcd(
        &["--auto-tls".to_string()],
        &dials,
        &[
            ("skip-verify", true),
            ("cacert", false),
            ("plaintext", false),
        ],
    );
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn eventually(cluster: &Cluster, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + CATCH_UP;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            cluster.all_log_tails(30)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The number of keys under `prefix` member `endpoint` serves locally.
fn count(cluster: &Cluster, endpoint: String, prefix: &str) -> Option<u64> {
    let out = cluster.etcdctl(
        &[endpoint],
        &[
            "get",
            "--prefix",
            prefix,
            "--consistency=s",
            "--keys-only",
            "-w",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(json["count"].as_u64().unwrap_or(0))
}

/// Puts `tls/{i}` for each `i` through `endpoints`; a failure shows the
/// members' logs.
fn put_range(cluster: &Cluster, endpoints: &[String], keys: std::ops::Range<u32>) {
    for i in keys {
        let out = cluster.etcdctl(endpoints, &["put", &format!("tls/{i}"), "v"]);
        assert!(
            out.status.success(),
            "put tls/{i}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            cluster.all_log_tails(40)
        );
    }
}

#[test]
fn a_mutual_tls_cluster_survives_sigkill_and_takes_a_joiner_by_snapshot() {
    let c = certs();
    let mut opts = Opts::tls(&c.pki, &c.member, &c.client);
    // Snapshots often and little log kept behind them: the joiner can
    // only catch up from a snapshot, streamed over peer TLS.
    opts.extra_args.extend([
        // Every member's certificate has CN "member".
        "--peer-cert-allowed-cn=member".to_string(),
        "--snapshot-count=20".to_string(),
        "--experimental-snapshot-catchup-entries=5".to_string(),
    ]);
    let mut cluster = Cluster::start(ironcd!(), 3, opts);
    let leader = cluster.wait_for_leader();
    let all: Vec<String> = (0..3).map(|i| cluster.host_port(i)).collect();
    put_range(&cluster, &all, 0..40);
    // The leader, killed: the others elect one over peer TLS and go on.
    cluster.kill(leader);
    cluster.wait_for_leader();
    let live: Vec<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| cluster.host_port(i))
        .collect();
    put_range(&cluster, &live, 40..80);
    cluster.restart(leader);
    eventually(&cluster, "the restarted member to hold every key", || {
        count(&cluster, cluster.host_port(leader), "tls/") == Some(80)
    });

    let extra: Vec<&str> = cluster
        .opts()
        .extra_args
        .iter()
        .map(String::as_str)
        .collect();
    let joiner = cluster.join("m4", true, &extra);
    eventually(&cluster, "the joiner to hold every key", || {
        count(&cluster, joiner.host_port.clone(), "tls/") == Some(80)
    });
    assert!(
        joiner
            .log_tail(2000)
            .contains("restored the backend from a snapshot"),
        "the joiner caught up by snapshot:\n{}",
        joiner.log_tail(50)
    );
}

#[test]
fn peer_auto_tls_clusters_form_as_etcds_do() {
    thread::scope(|s| {
        for server in [Server::etcd(), ironcd!()] {
            s.spawn(move || {
                let opts = Opts {
                    peer_scheme: Scheme::Https,
                    extra_args: vec!["--peer-auto-tls".to_string()],
                    ..Opts::default()
                };
                let cluster = Cluster::start(server.clone(), 3, opts);
                cluster.wait_for_leader();
                ok(
                    cluster.etcdctl(&[cluster.host_port(0)], &["put", "k", "over-peer-tls"]),
                    "put",
                );
                for i in 0..3 {
                    let out = cluster
                        .etcdctl(&[cluster.host_port(i)], &["get", "k", "--print-value-only"]);
                    assert_eq!(
                        ok(out, "get").trim(),
                        "over-peer-tls",
                        "{} member {i}",
                        server.name()
                    );
                }
                let fixture = cluster.data_dir(0).join("fixtures/peer/cert.pem");
                assert!(fixture.exists(), "{}: {}", server.name(), fixture.display());
            });
        }
    });
}

/// `GET path` over HTTPS (HTTP/1.1) to `host_port`, trusting `ca`: the
/// status line and the body.
fn https_get(host_port: &str, ca: &std::path::Path, path: &str) -> (String, String) {
    use rustls::pki_types::pem::PemObject;
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(host_port).unwrap();
    tcp.set_read_timeout(Some(CATCH_UP)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    // A peer that closes without close_notify ends the read with an
    // error after the whole response arrived.
    let _ = tls.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn http_endpoints_and_metrics_listeners_serve_over_tls() {
    let c = certs();
    let metrics_port = ironcd_tests::free_ports(1)[0];
    let opts = Opts {
        client_scheme: Scheme::Https,
        extra_args: vec![
            format!("--cert-file={}", c.member.cert.display()),
            format!("--key-file={}", c.member.key.display()),
            format!("--listen-metrics-urls=https://127.0.0.1:{metrics_port}"),
        ],
        etcdctl_args: vec![cacert(&c)],
        ..Opts::default()
    };
    let cluster = Cluster::start(ironcd!(), 1, opts);
    let ca = c.pki.ca_cert();
    let (status, body) = https_get(&cluster.host_port(0), ca, "/health");
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains(r#""health":"true""#), "{body}");
    let (status, body) = https_get(&cluster.host_port(0), ca, "/version");
    assert!(
        status.contains(" 200 ") && body.contains("etcdserver"),
        "{status} {body}"
    );
    let metrics = format!("127.0.0.1:{metrics_port}");
    let (status, body) = https_get(&metrics, ca, "/metrics");
    assert!(
        status.contains(" 200 ") && body.contains("etcd_server_has_leader 1"),
        "{status} {body}"
    );
}

#[test]
fn a_client_that_never_handshakes_is_cut_off_while_others_are_served() {
    let c = certs();
    let mut opts = Opts {
        client_scheme: Scheme::Https,
        extra_args: vec![
            format!("--cert-file={}", c.member.cert.display()),
            format!("--key-file={}", c.member.key.display()),
        ],
        ..Opts::default()
    };
    opts.etcdctl_args = vec![cacert(&c)];
    let cluster = Cluster::start(ironcd!(), 1, opts);
    let mut silent = TcpStream::connect(cluster.host_port(0)).unwrap();
    let opened = Instant::now();
    ok(
        cluster.etcdctl(&[cluster.host_port(0)], &["put", "k", "v"]),
        "served meanwhile",
    );
    silent
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT + HANDSHAKE_SLACK))
        .unwrap();
    let mut buf = [0u8; 1];
    let read = silent.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "closed by the server: {read:?}"
    );
    let waited = opened.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT,
        "closed after {waited:?}, before the timeout"
    );
    assert!(
        waited < HANDSHAKE_TIMEOUT + HANDSHAKE_SLACK,
        "not closed within {waited:?}"
    );
}
