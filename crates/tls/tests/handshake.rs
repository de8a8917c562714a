//! The acceptor and the configurations in process, with certificates made
//! for the test: what a handshake accepts, what it refuses, the timeout,
//! both schemes on one port, and certificates replaced on disk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironcd_tests::certs::{CertFiles, Pki};
use ironcd_tls::{Acceptor, Conn, Incoming, Mode, TlsInfo, TlsVersion};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a connection the server should hand over.
const HANDED_OVER: Duration = Duration::from_secs(5);

struct Server {
    incoming: Incoming,
    addr: SocketAddr,
}

async fn serve(mode: Mode, info: &TlsInfo, timeout: Duration) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = info.server_config().unwrap();
    let acceptor = Acceptor::new("test", mode, Some(config), timeout);
    let incoming = Incoming::new(listener, acceptor).unwrap();
    let addr = incoming.local_addr();
    Server { incoming, addr }
}

impl Server {
    /// The next connection the server hands over, if one comes in time.
    async fn next(&mut self, within: Duration) -> Option<Conn> {
        tokio::time::timeout(within, self.incoming.next())
            .await
            .ok()
            .flatten()
            .map(|(conn, _)| conn)
    }
}

fn member_info(pki: &Pki, member: &CertFiles) -> TlsInfo {
    let mut info = TlsInfo::new(&member.cert, &member.key);
    info.trusted_ca_file = Some(pki.ca_cert().to_path_buf());
    info
}

/// A client presenting `cert` (if any), trusting the test CA, offering
/// `versions`.
fn client(
    pki: &Pki,
    cert: Option<&CertFiles>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.ca_cert()).unwrap();
    for c in rustls_pemfile_certs(&ca) {
        roots.add(c).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let config = match cert {
        Some(files) => {
            use rustls::pki_types::pem::PemObject;
            let chain = rustls_pemfile_certs(&std::fs::read(&files.cert).unwrap());
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&files.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Dials `addr` with `config`, writes a line and reads the echo: whether
/// the whole exchange worked.
async fn exchange(addr: SocketAddr, config: Arc<ClientConfig>) -> bool {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"ping\n").await?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await?;
        Ok::<bool, std::io::Error>(&buf == b"ping\n")
    };
    tokio::time::timeout(HANDED_OVER, attempt)
        .await
        .map(|r| r.unwrap_or(false))
        .unwrap_or(false)
}

/// Echoes one 5-byte line on `conn`.
fn echo(mut conn: Conn) {
    tokio::spawn(async move {
        let mut buf = [0u8; 5];
        if conn.read_exact(&mut buf).await.is_ok() {
            let _ = conn.write_all(&buf).await;
            let _ = conn.flush().await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_names_the_verified_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let alice = pki.client("alice").unwrap();
    let mut info = member_info(&pki, &member);
    info.client_cert_auth = true;
    let mut server = serve(Mode::Tls, &info, Duration::from_secs(10)).await;
    let dial = tokio::spawn(exchange(
        server.addr,
        client(&pki, Some(&alice), &[&rustls::version::TLS13]),
    ));
    let conn = server
        .next(HANDED_OVER)
        .await
        .expect("the handshake is handed over");
    assert_eq!(conn.client_name().as_deref(), Some("alice"));
    echo(conn);
    assert!(dial.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_never_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let good = pki.client("good").unwrap();
    let expired = pki.expired_client("expired").unwrap();
    let stranger = pki.wrong_ca_client("stranger").unwrap();
    let revoked = pki.client("revoked").unwrap();
    let crl = pki.crl("crl", &[&revoked]).unwrap();
    let both = &[&rustls::version::TLS12, &rustls::version::TLS13][..];

    let mut info = member_info(&pki, &member);
    info.client_cert_auth = true;
    info.crl_file = Some(crl);
    let mut server = serve(Mode::Tls, &info, Duration::from_secs(10)).await;
    let cases: [(&str, Arc<ClientConfig>); 4] = [
        ("no client certificate", client(&pki, None, both)),
        ("an expired certificate", client(&pki, Some(&expired), both)),
        (
            "a certificate of another CA",
            client(&pki, Some(&stranger), both),
        ),
        ("a revoked certificate", client(&pki, Some(&revoked), both)),
    ];
    for (what, config) in cases {
        assert!(!exchange(server.addr, config).await, "{what} is refused");
        assert!(
            server.next(Duration::from_millis(200)).await.is_none(),
            "{what}"
        );
    }
    // The good one still passes, on the same listener.
    let dial = tokio::spawn(exchange(server.addr, client(&pki, Some(&good), both)));
    echo(
        server
            .next(HANDED_OVER)
            .await
            .expect("a good client is served"),
    );
    assert!(dial.await.unwrap());

    // Only the allowed CN; only TLS 1.3.
    let mut info = member_info(&pki, &member);
    info.allowed_cn = Some("good".into());
    info.min_version = TlsVersion::Tls13;
    let mut server = serve(Mode::Tls, &info, Duration::from_secs(10)).await;
    let other = pki.client("other").unwrap();
    assert!(
        !exchange(server.addr, client(&pki, Some(&other), both)).await,
        "a CN not allowed"
    );
    assert!(
        !exchange(
            server.addr,
            client(&pki, Some(&good), &[&rustls::version::TLS12])
        )
        .await,
        "TLS 1.2 below the minimum"
    );
    assert!(server.next(Duration::from_millis(200)).await.is_none());
    let dial = tokio::spawn(exchange(server.addr, client(&pki, Some(&good), both)));
    echo(
        server
            .next(HANDED_OVER)
            .await
            .expect("the allowed CN over 1.3 is served"),
    );
    assert!(dial.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let timeout = Duration::from_millis(800);
    let mut server = serve(Mode::Tls, &member_info(&pki, &member), timeout).await;
    let alice = pki.client("alice").unwrap();
    // Opens a socket and sends nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    // Others are served meanwhile, at once.
    let dial = tokio::spawn(exchange(
        server.addr,
        client(&pki, Some(&alice), &[&rustls::version::TLS13]),
    ));
    echo(
        server
            .next(timeout / 2)
            .await
            .expect("served before the silent one times out"),
    );
    assert!(dial.await.unwrap());
    // The silent one is closed once the timeout passes, not before.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(HANDED_OVER, silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    assert!(
        opened.elapsed() >= timeout,
        "closed after {:?}",
        opened.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_schemes_share_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let member = pki.server("member").unwrap();
    let alice = pki.client("alice").unwrap();
    let mut server = serve(
        Mode::Both,
        &member_info(&pki, &member),
        Duration::from_secs(10),
    )
    .await;
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain.write_all(b"ping\n").await.unwrap();
    let conn = server
        .next(HANDED_OVER)
        .await
        .expect("plain is handed over");
    assert!(matches!(conn, Conn::Plain(_)));
    echo(conn);
    let mut buf = [0u8; 5];
    plain.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping\n");
    let dial = tokio::spawn(exchange(
        server.addr,
        client(&pki, Some(&alice), &[&rustls::version::TLS13]),
    ));
    let conn = server.next(HANDED_OVER).await.expect("TLS is handed over");
    assert!(matches!(conn, Conn::Tls(_)));
    echo(conn);
    assert!(dial.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_serves_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path()).unwrap();
    let first = pki.server("first").unwrap();
    let second = pki.server("second").unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let (cert, key) = (served.join("cert.pem"), served.join("key.pem"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let mut info = TlsInfo::new(&cert, &key);
    info.trusted_ca_file = None;
    let mut server = serve(Mode::Tls, &info, Duration::from_secs(10)).await;

    let presented = |server_addr: SocketAddr| {
        let config = client(&pki, None, &[&rustls::version::TLS13]);
        async move {
            let tcp = TcpStream::connect(server_addr).await.unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .unwrap();
            let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
            leaf.as_ref().to_vec()
        }
    };
    let der = |path: &std::path::Path| {
        rustls_pemfile_certs(&std::fs::read(path).unwrap())[0]
            .as_ref()
            .to_vec()
    };
    let dial = tokio::spawn(presented(server.addr));
    let _kept = server.next(HANDED_OVER).await.unwrap();
    assert_eq!(dial.await.unwrap(), der(&first.cert));
    // Replaced (a new file renamed over the old, as tools do).
    std::fs::copy(&second.cert, served.join("cert.new")).unwrap();
    std::fs::copy(&second.key, served.join("key.new")).unwrap();
    std::fs::rename(served.join("key.new"), &key).unwrap();
    std::fs::rename(served.join("cert.new"), &cert).unwrap();
    let dial = tokio::spawn(presented(server.addr));
    let _kept = server.next(HANDED_OVER).await.unwrap();
    assert_eq!(dial.await.unwrap(), der(&second.cert));
}
