//! The fault-injecting proxy against real loopback sockets: an echo server
//! written here, or a bare listener whose accepted socket the test drives
//! itself when the two directions must be told apart. Every read has a
//! timeout, so no test can hang.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ironcd_tests::{Direction, Proxy, Stats};

/// Bound on every read, write, accept and stats wait: long enough never to
/// fail a correct proxy on a loaded machine, short enough to end a broken
/// test.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a test listens for bytes that must not arrive. A correct proxy
/// never sends them, so the window only bounds how hard the test looks.
const QUIET_WINDOW: Duration = Duration::from_millis(300);
const SEED: u64 = 0x1d_c0de;

/// Echoes every connection's bytes back until the client half-closes.
struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                thread::spawn(move || echo(stream));
            }
        });
        EchoServer {
            addr,
            stop,
            accept: Some(accept),
        }
    }
}

fn echo(mut stream: TcpStream) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut buffer = [0; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocked accept to see the stop.
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            accept.join().unwrap();
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// The next connection `listener` accepts, within [`IO_TIMEOUT`].
fn accept_within(listener: &TcpListener) -> TcpStream {
    let listener = listener.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(listener.accept());
    });
    let (stream, _) = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the proxy dialled the upstream")
        .unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A connection through a proxy with both ends in the test's hands.
struct Pair {
    client: TcpStream,
    server: TcpStream,
}

impl Pair {
    fn open(proxy: &Proxy, upstream: &TcpListener) -> Pair {
        let client = connect(proxy.addr());
        let server = accept_within(upstream);
        Pair { client, server }
    }

    /// The socket that writes `direction`'s bytes and the one that reads them.
    fn ends(&self, direction: Direction) -> (&TcpStream, &TcpStream) {
        match direction {
            Direction::ToUpstream => (&self.client, &self.server),
            Direction::ToClient => (&self.server, &self.client),
        }
    }
}

fn upstream_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Reproducible bytes that differ per `seed` (xorshift64).
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// FNV-1a, so a mismatch prints two numbers instead of megabytes.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn read_exactly(mut stream: &TcpStream, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    stream.read_exact(&mut bytes).unwrap();
    bytes
}

/// Writes `bytes` and reads the same number back.
fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    stream.write_all(bytes).unwrap();
    read_exactly(stream, bytes.len())
}

/// Asserts no byte arrives on `stream` within [`QUIET_WINDOW`].
fn assert_quiet(mut stream: &TcpStream) {
    stream.set_read_timeout(Some(QUIET_WINDOW)).unwrap();
    let mut byte = [0];
    match stream.read(&mut byte) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// Asserts `stream` was closed by the other side: end of stream or a
/// reset, not a timeout.
fn assert_closed(mut stream: &TcpStream) {
    let mut byte = [0];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected a closed connection, got {other:?}"),
    }
}

fn wait_for(proxy: &Proxy, what: &str, done: impl FnMut(&Stats) -> bool) -> Stats {
    proxy
        .wait_for_stats(IO_TIMEOUT, done)
        .unwrap_or_else(|last| panic!("{what}: stats stayed at {last:?}"))
}

#[test]
fn bytes_pass_unchanged_both_ways_through_a_healthy_proxy() {
    let echo = EchoServer::start();
    let proxy = Proxy::start("127.0.0.1:0", echo.addr, SEED).unwrap();
    let sent = pattern(1, 4 << 20);
    let mut client = connect(proxy.addr());
    let mut writer = client.try_clone().unwrap();
    let to_send = sent.clone();
    let writing = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    writing.join().unwrap();

    assert_eq!(received.len(), sent.len());
    assert_eq!(checksum(&received), checksum(&sent));
    assert!(received == sent);
    let len = sent.len() as u64;
    let stats = wait_for(&proxy, "all bytes counted", |s| {
        s.to_upstream.forwarded_bytes == len && s.to_client.forwarded_bytes == len
    });
    assert_eq!(stats.to_upstream.discarded_bytes, 0);
    assert_eq!(stats.to_client.discarded_bytes, 0);
    assert_eq!(stats.accepted_connections, 1);
    assert_eq!(stats.refused_connections, 0);
}

/// Blackholes `direction`: its bytes are discarded while the other
/// direction flows, and new bytes arrive once it is lifted.
fn blackhole_discards_one_direction(direction: Direction, other: Direction) {
    let (upstream, upstream_addr) = upstream_listener();
    let proxy = Proxy::start("127.0.0.1:0", upstream_addr, SEED).unwrap();
    let pair = Pair::open(&proxy, &upstream);
    let (mut sender, receiver) = pair.ends(direction);
    proxy.blackhole(direction);
    sender.write_all(b"lost").unwrap();
    // Waiting for the discard orders the lost bytes before the unblackhole.
    wait_for(&proxy, "the blackholed bytes discarded", |s| {
        s.direction(direction).discarded_bytes == 4
    });

    let (mut back, back_receiver) = pair.ends(other);
    back.write_all(b"reply").unwrap();
    assert_eq!(read_exactly(back_receiver, 5), b"reply");

    proxy.unblackhole(direction);
    sender.write_all(b"found").unwrap();
    // The stream keeps order, so the first bytes to arrive being the new
    // ones shows the discarded ones never arrive.
    assert_eq!(read_exactly(receiver, 5), b"found");
    // A pump counts a chunk after writing it, so the reader may be first.
    let stats = wait_for(&proxy, "both directions' bytes forwarded", |s| {
        s.direction(direction).forwarded_bytes == 5 && s.direction(other).forwarded_bytes == 5
    });
    assert_eq!(stats.direction(direction).discarded_bytes, 4);
    assert_eq!(stats.direction(other).discarded_bytes, 0);
}

#[test]
fn a_blackholed_upstream_direction_discards_while_replies_flow() {
    blackhole_discards_one_direction(Direction::ToUpstream, Direction::ToClient);
}

#[test]
fn a_blackholed_client_direction_discards_while_requests_flow() {
    blackhole_discards_one_direction(Direction::ToClient, Direction::ToUpstream);
}

/// Pauses `direction` while more than the socket buffers hold is written
/// into it: nothing arrives until the resume, then everything, in order.
fn pause_holds_bytes_until_resumed(direction: Direction) {
    let (upstream, upstream_addr) = upstream_listener();
    let proxy = Proxy::start("127.0.0.1:0", upstream_addr, SEED).unwrap();
    let pair = Pair::open(&proxy, &upstream);
    let (sender, receiver) = pair.ends(direction);
    proxy.pause(direction);
    let sent = pattern(2, 8 << 20);
    let mut writer = sender.try_clone().unwrap();
    let to_send = sent.clone();
    // Blocks once the buffers are full (the backpressure), until resumed.
    let writing = thread::spawn(move || writer.write_all(&to_send));

    assert_quiet(receiver);
    assert_eq!(proxy.stats().direction(direction).forwarded_bytes, 0);
    proxy.resume(direction);
    let received = read_exactly(receiver, sent.len());
    writing.join().unwrap().unwrap();
    assert_eq!(checksum(&received), checksum(&sent));
    assert!(received == sent);
    let stats = wait_for(&proxy, "all bytes forwarded", |s| {
        s.direction(direction).forwarded_bytes == sent.len() as u64
    });
    assert_eq!(stats.direction(direction).discarded_bytes, 0);
}

#[test]
fn a_paused_upstream_direction_holds_bytes_without_loss() {
    pause_holds_bytes_until_resumed(Direction::ToUpstream);
}

#[test]
fn a_paused_client_direction_holds_bytes_without_loss() {
    pause_holds_bytes_until_resumed(Direction::ToClient);
}

#[test]
fn delayed_chunks_arrive_in_order_and_no_earlier_than_base_minus_jitter() {
    const MESSAGES: u64 = 20;
    let (base, jitter) = (Duration::from_millis(150), Duration::from_millis(100));
    let (upstream, upstream_addr) = upstream_listener();
    let proxy = Proxy::start("127.0.0.1:0", upstream_addr, SEED).unwrap();
    let pair = Pair::open(&proxy, &upstream);
    proxy.delay(Direction::ToClient, base, jitter);
    let mut sender = pair.server.try_clone().unwrap();
    let sending = thread::spawn(move || {
        (0..MESSAGES)
            .map(|i| {
                let sent_at = Instant::now();
                sender.write_all(&i.to_be_bytes()).unwrap();
                sent_at
            })
            .collect::<Vec<_>>()
    });
    let mut arrivals = Vec::new();
    for i in 0..MESSAGES {
        let message = read_exactly(&pair.client, 8);
        arrivals.push(Instant::now());
        assert_eq!(
            u64::from_be_bytes(message.try_into().unwrap()),
            i,
            "out of order"
        );
    }
    let sent_at = sending.join().unwrap();
    for (i, (sent, arrived)) in sent_at.iter().zip(&arrivals).enumerate() {
        let took = arrived.duration_since(*sent);
        assert!(took >= base - jitter, "message {i} arrived after {took:?}");
    }

    proxy.undelay(Direction::ToClient);
    (&pair.server).write_all(b"prompt").unwrap();
    assert_eq!(read_exactly(&pair.client, 6), b"prompt");
    wait_for(&proxy, "all bytes forwarded", |s| {
        s.to_client.forwarded_bytes == MESSAGES * 8 + 6
    });
}

#[test]
fn drop_connections_closes_open_connections_and_new_ones_work() {
    let echo = EchoServer::start();
    let proxy = Proxy::start("127.0.0.1:0", echo.addr, SEED).unwrap();
    let mut first = connect(proxy.addr());
    let mut second = connect(proxy.addr());
    assert_eq!(round_trip(&mut first, b"one"), b"one");
    assert_eq!(round_trip(&mut second, b"two"), b"two");
    assert_eq!(proxy.stats().open_connections, 2);

    proxy.drop_connections();
    assert_closed(&first);
    assert_closed(&second);
    wait_for(&proxy, "the connections gone", |s| s.open_connections == 0);

    let mut third = connect(proxy.addr());
    assert_eq!(round_trip(&mut third, b"three"), b"three");
    assert_eq!(proxy.stats().accepted_connections, 3);
}

#[test]
fn refused_connections_close_at_once_until_refusal_is_lifted() {
    let echo = EchoServer::start();
    let proxy = Proxy::start("127.0.0.1:0", echo.addr, SEED).unwrap();
    let mut open = connect(proxy.addr());
    assert_eq!(round_trip(&mut open, b"before"), b"before");

    proxy.refuse(true);
    let refused = connect(proxy.addr());
    assert_closed(&refused);
    wait_for(&proxy, "the refusal counted", |s| {
        s.refused_connections == 1
    });
    // Refusal is about new connections only.
    assert_eq!(round_trip(&mut open, b"during"), b"during");

    proxy.refuse(false);
    let mut after = connect(proxy.addr());
    assert_eq!(round_trip(&mut after, b"after"), b"after");
    let stats = proxy.stats();
    assert_eq!(stats.accepted_connections, 3);
    assert_eq!(stats.refused_connections, 1);
}

#[test]
fn heal_clears_every_fault() {
    let echo = EchoServer::start();
    let proxy = Proxy::start("127.0.0.1:0", echo.addr, SEED).unwrap();
    for direction in Direction::ALL {
        proxy.blackhole(direction);
        proxy.pause(direction);
        proxy.delay(direction, Duration::from_secs(3600), Duration::ZERO);
    }
    proxy.refuse(true);
    proxy.heal();
    let mut client = connect(proxy.addr());
    assert_eq!(round_trip(&mut client, b"healed"), b"healed");
}

#[test]
fn a_handle_sets_faults_from_another_thread() {
    let (upstream, upstream_addr) = upstream_listener();
    let proxy = Proxy::start("127.0.0.1:0", upstream_addr, SEED).unwrap();
    let pair = Pair::open(&proxy, &upstream);
    let handle = proxy.handle();
    assert_eq!(handle.upstream(), upstream_addr);
    thread::spawn(move || handle.blackhole(Direction::ToUpstream))
        .join()
        .unwrap();
    (&pair.client).write_all(b"gone").unwrap();
    wait_for(&proxy, "the bytes discarded", |s| {
        s.to_upstream.discarded_bytes == 4
    });
}

#[test]
fn fifty_connections_echo_concurrently() {
    const CONNECTIONS: u64 = 50;
    const BYTES: usize = 256 * 1024;
    let echo = EchoServer::start();
    let proxy = Proxy::start("127.0.0.1:0", echo.addr, SEED).unwrap();
    thread::scope(|scope| {
        for i in 0..CONNECTIONS {
            let addr = proxy.addr();
            scope.spawn(move || {
                let sent = pattern(100 + i, BYTES);
                let client = connect(addr);
                let mut writer = client.try_clone().unwrap();
                let writing = thread::spawn({
                    let sent = sent.clone();
                    move || writer.write_all(&sent)
                });
                let received = read_exactly(&client, BYTES);
                writing.join().unwrap().unwrap();
                assert_eq!(checksum(&received), checksum(&sent), "connection {i}");
                client.shutdown(Shutdown::Write).unwrap();
                assert_closed(&client);
            });
        }
    });
    let total = CONNECTIONS * BYTES as u64;
    let stats = wait_for(&proxy, "every connection done", |s| {
        s.open_connections == 0 && s.to_client.forwarded_bytes == total
    });
    assert_eq!(stats.accepted_connections, CONNECTIONS);
    assert_eq!(stats.to_upstream.forwarded_bytes, total);
}

#[test]
fn an_unreachable_upstream_closes_the_client() {
    let (listener, upstream_addr) = upstream_listener();
    drop(listener);
    let proxy = Proxy::start("127.0.0.1:0", upstream_addr, SEED).unwrap();
    let client = connect(proxy.addr());
    assert_closed(&client);
    wait_for(&proxy, "the failure counted", |s| {
        s.upstream_connect_failures == 1
    });
}

#[test]
fn dropping_the_proxy_closes_its_port_and_its_connections() {
    let echo = EchoServer::start();
    let proxy = Proxy::start("127.0.0.1:0", echo.addr, SEED).unwrap();
    let addr = proxy.addr();
    let mut client = connect(addr);
    assert_eq!(round_trip(&mut client, b"alive"), b"alive");
    // A paused direction holds a pump in a wait the drop must end too.
    proxy.pause(Direction::ToUpstream);
    (&client).write_all(b"held").unwrap();

    // Drop returns once the listener and every pump have ended (or after
    // STOP_TIMEOUT at most), so the port is closed when it returns.
    drop(proxy);
    let error = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    assert_closed(&client);
}
