//! A loopback TCP proxy that injects network faults, for robustness tests.
//! It is modelled on etcd's `pkg/proxy`, which etcd's robustness suite puts
//! in front of members to blackhole, delay and drop traffic per direction.
//!
//! A [`Proxy`] listens on a loopback port. Every connection it accepts gets
//! a connection of its own to the upstream, and bytes are pumped both ways:
//! [`Direction::ToUpstream`] carries what the dialling side writes (etcd's
//! "tx", from the client's view), [`Direction::ToClient`] what the upstream
//! answers ("rx"). Faults are set per direction while the proxy runs, from
//! any thread, on the proxy itself or on a [`ProxyHandle`] (which a
//! [`Proxy`] dereferences to); each takes effect for the next byte read.
//!
//! # Faults
//!
//! - [`blackhole`](ProxyHandle::blackhole): bytes are read and thrown away
//!   (counted in [`DirectionStats::discarded_bytes`]); the connection stays
//!   up and the sender's writes succeed. A peer sees silence: raft misses
//!   heartbeats and appends, so a blackholed leader loses its followers and
//!   a blackholed follower campaigns. Because bytes vanish from the middle
//!   of a stream, the receiver's framing is broken once traffic flows again:
//!   HTTP/2 (gRPC) reads garbage, fails the connection with a protocol error
//!   and the peer has to reconnect. That is the point: a real partition
//!   loses packets mid-stream too. End of stream (FIN) still passes.
//! - [`pause`](ProxyHandle::pause): the proxy stops reading (at most one
//!   chunk already read is held back) and holds whatever is waiting in its
//!   delay queue, so TCP backpressure builds up to the sender's socket
//!   buffers and then blocks its writes. Nothing is lost:
//!   [`resume`](ProxyHandle::resume) delivers everything in order. A peer
//!   sees a stalled link or a stopped process: HTTP/2 flow-control windows
//!   fill, a sender's bounded transport queue fills and drops (raft
//!   resends), and after the resume a burst arrives.
//! - [`delay`](ProxyHandle::delay): every chunk is delivered `base ±
//!   uniform(jitter)` after it was read (never below zero), order preserved:
//!   a chunk never overtakes an earlier one, so a chunk queued behind a
//!   later-due one waits for it. The chunks waiting are bounded by
//!   [`DELAY_QUEUE_CAPACITY_BYTES`] per connection and direction; when full
//!   the proxy stops reading (backpressure, as above). A peer sees a slow
//!   link: a delay near the election timeout makes followers campaign.
//!   [`undelay`](ProxyHandle::undelay) delays new chunks no more; chunks
//!   already waiting keep their delivery times.
//! - [`drop_connections`](ProxyHandle::drop_connections): both sockets of
//!   every open connection are shut down (a FIN each way, or a reset where
//!   data was unread); a peer sees end of stream or a reset and reconnects.
//! - [`refuse`](ProxyHandle::refuse)`(true)`: new connections are accepted
//!   and closed at once, so a dial succeeds and its first read sees end of
//!   stream: a gRPC channel reports the peer unavailable and backs off.
//! - [`heal`](ProxyHandle::heal): every fault above is cleared.
//!
//! [`Stats`] count the bytes forwarded and discarded per direction and the
//! connections accepted, refused and open;
//! [`wait_for_stats`](ProxyHandle::wait_for_stats) waits for a condition on
//! them, so tests await what the proxy did instead of sleeping. The `seed`
//! given to [`Proxy::start`] drives the delay jitter: each connection and
//! direction draws from its own generator, derived from the seed and the
//! connection's accept order, so a seed repeats the same delays (for reads
//! chunked the same way).
//!
//! # In a cluster test
//!
//! Put a proxy in front of each member's peer listener: the member listens
//! on its real peer port (`--listen-peer-urls`) and advertises the proxy
//! (`--initial-advertise-peer-urls`, and its entry in every member's
//! `--initial-cluster`), so the other members dial it through the proxy.
//! What each direction carries then depends on the peer transport:
//!
//! - ironcd (`proto/peer.proto`): a sender dials the recipient and writes
//!   raft messages into a client stream (and snapshots into `Snapshot`
//!   calls), so [`Direction::ToUpstream`] of member B's proxy carries every
//!   raft message to B and [`Direction::ToClient`] B's HTTP/2 acks, settings
//!   and window updates. Blackholing `ToUpstream` of B's proxy makes B deaf
//!   while the others still hear B (a one-way partition).
//! - etcd (rafthttp): member A reads B's messages from a stream A dialled
//!   to B, so B's messages to A travel `ToClient` of B's proxy; A's
//!   messages to B travel on the stream B dialled to A (`ToClient` of A's
//!   proxy) or as pipeline posts (`ToUpstream` of B's proxy).
//!
//! Either way, blackholing both directions of B's proxy cuts B off from
//! every other member. A proxy in front of a client URL works the same way
//! for client traffic (a client dials the proxy's address). The bytes are
//! passed through untouched, so TLS connections work through a proxy.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use ironcd_tests::{free_ports, Direction, Proxy};
//!
//! // The member would listen on `peer` and advertise the proxy's address.
//! let peer: SocketAddr = ([127, 0, 0, 1], free_ports(1)[0]).into();
//! let proxy = Proxy::start("127.0.0.1:0", peer, 42).unwrap();
//! let _advertise = format!("--initial-advertise-peer-urls=http://{}", proxy.addr());
//!
//! // Cut the member off, then let it back with a slow link.
//! proxy.blackhole(Direction::ToUpstream);
//! proxy.blackhole(Direction::ToClient);
//! proxy.heal();
//! proxy.delay(Direction::ToUpstream, Duration::from_millis(50), Duration::from_millis(10));
//! assert_eq!(proxy.stats().accepted_connections, 0);
//! ```
//!
//! Dropping a [`Proxy`] closes its listener and every connection and waits
//! (at most [`STOP_TIMEOUT`]) for all its threads to end.

mod conn;
mod delay;
mod pump;
mod shared;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::ops::Deref;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Error, Result};
use shared::{Closing, Shared};

/// Most connections a proxy carries at once; connections beyond are
/// accepted and closed at once (counted as refused).
pub const MAX_CONNECTIONS: usize = 1024;
/// Bytes a connection holds per direction while they wait out a
/// [`delay`](ProxyHandle::delay); when full the proxy stops reading.
pub const DELAY_QUEUE_CAPACITY_BYTES: u64 = 1 << 20;
/// Largest chunk read from a socket at once, in bytes: the unit that is
/// delayed, held or discarded.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// How long dialling the upstream may take before the accepted connection
/// is closed (counted in [`Stats::upstream_connect_failures`]).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a [`Proxy`] waits for its threads to end; longer than
/// [`CONNECT_TIMEOUT`], which a connection being set up may still be in.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which way bytes travel through a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that dialled the proxy to the upstream (etcd's "tx").
    ToUpstream,
    /// From the upstream back to the side that dialled (etcd's "rx").
    ToClient,
}

impl Direction {
    /// Both directions.
    pub const ALL: [Direction; 2] = [Direction::ToUpstream, Direction::ToClient];

    /// The direction's slot in per-direction arrays.
    fn index(self) -> usize {
        match self {
            Direction::ToUpstream => 0,
            Direction::ToClient => 1,
        }
    }

    /// A short name for thread names.
    fn name(self) -> &'static str {
        match self {
            Direction::ToUpstream => "to-upstream",
            Direction::ToClient => "to-client",
        }
    }
}

/// What one direction of a proxy has carried, over all its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Bytes written to the receiving side.
    pub forwarded_bytes: u64,
    /// Bytes read and thrown away while the direction was blackholed.
    pub discarded_bytes: u64,
}

/// What a proxy has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted by the listener, including refused ones.
    pub accepted_connections: u64,
    /// Connections closed at once: while [`refuse`](ProxyHandle::refuse)
    /// was set, or beyond [`MAX_CONNECTIONS`].
    pub refused_connections: u64,
    /// Connections closed because the upstream could not be dialled.
    pub upstream_connect_failures: u64,
    /// Connections currently proxied (upstream dialled, not yet closed).
    pub open_connections: u64,
    /// Client to upstream.
    pub to_upstream: DirectionStats,
    /// Upstream to client.
    pub to_client: DirectionStats,
}

impl Stats {
    /// The counts of one direction.
    pub fn direction(&self, direction: Direction) -> DirectionStats {
        match direction {
            Direction::ToUpstream => self.to_upstream,
            Direction::ToClient => self.to_client,
        }
    }

    fn direction_mut(&mut self, direction: Direction) -> &mut DirectionStats {
        match direction {
            Direction::ToUpstream => &mut self.to_upstream,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

/// Sets a running proxy's faults and reads its stats, from any thread.
/// Cheap to clone; once the [`Proxy`] is dropped its methods change nothing
/// that matters (no connection is left).
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl ProxyHandle {
    /// Reads and discards the bytes travelling `direction`, keeping the
    /// connections up.
    pub fn blackhole(&self, direction: Direction) {
        self.shared
            .update(direction, |faults| faults.blackholed = true);
    }

    /// Forwards `direction`'s bytes again (those discarded stay lost).
    pub fn unblackhole(&self, direction: Direction) {
        self.shared
            .update(direction, |faults| faults.blackholed = false);
    }

    /// Stops reading and delivering `direction`'s bytes, losing none.
    pub fn pause(&self, direction: Direction) {
        self.shared.update(direction, |faults| faults.paused = true);
    }

    /// Reads and delivers `direction`'s bytes again, the held ones first.
    pub fn resume(&self, direction: Direction) {
        self.shared
            .update(direction, |faults| faults.paused = false);
    }

    /// Delivers each chunk read from now on `base ± uniform(jitter)` after
    /// it was read (at least zero), in order.
    pub fn delay(&self, direction: Direction, base: Duration, jitter: Duration) {
        let delay = shared::Delay { base, jitter };
        self.shared
            .update(direction, |faults| faults.delay = Some(delay));
    }

    /// Stops delaying chunks read from now on; waiting ones keep their
    /// delivery times.
    pub fn undelay(&self, direction: Direction) {
        self.shared.update(direction, |faults| faults.delay = None);
    }

    /// Shuts down both sockets of every open connection.
    pub fn drop_connections(&self) {
        self.shared.close_all(Closing::Connections);
    }

    /// While `refuse` is set, accepts new connections and closes them at
    /// once (open ones are untouched).
    pub fn refuse(&self, refuse: bool) {
        self.shared.set_refuse(refuse);
    }

    /// Clears every fault: blackholes, pauses, delays and refusal.
    pub fn heal(&self) {
        self.shared.heal();
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Waits until `done` holds for the stats (checked now and after each
    /// change), at most `timeout`: `Ok` with the stats it held for, or `Err`
    /// with the last ones seen.
    pub fn wait_for_stats(
        &self,
        timeout: Duration,
        done: impl FnMut(&Stats) -> bool,
    ) -> std::result::Result<Stats, Stats> {
        self.shared.wait_for_stats(timeout, done)
    }

    /// The address every accepted connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

/// A running proxy: its listener, its threads and, through
/// [`Deref`], its [`ProxyHandle`]. Dropping it stops everything.
pub struct Proxy {
    handle: ProxyHandle,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks a free port) and forwards every
    /// connection to `upstream`; `seed` drives the delay jitter.
    pub fn start(listen: impl ToSocketAddrs, upstream: SocketAddr, seed: u64) -> Result<Proxy> {
        let listener = TcpListener::bind(listen).map_err(io("bind the proxy's listener"))?;
        let addr = listener
            .local_addr()
            .map_err(io("read the proxy's listening address"))?;
        let shared = Arc::new(Shared::new(upstream, seed, MAX_CONNECTIONS));
        let accepting = Arc::clone(&shared);
        let accept = pump::spawn_counted(
            &shared,
            format!("proxy-{}-accept", addr.port()),
            move || pump::accept_loop(&accepting, listener),
        )
        .map_err(io("spawn the proxy's accept thread"))?;
        Ok(Proxy {
            handle: ProxyHandle { shared },
            addr,
            accept: Some(accept),
        })
    }

    /// The address the proxy listens on (dial this instead of the upstream).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for other threads, valid as long as anyone holds it.
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }
}

impl Deref for Proxy {
    type Target = ProxyHandle;

    fn deref(&self) -> &ProxyHandle {
        &self.handle
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.handle.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        shared.close_all(Closing::Stop);
        // The accept thread blocks in accept(); one connection wakes it to
        // see the stop. If the dial fails the listener is gone already.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), CONNECT_TIMEOUT);
        if shared.wait_threads_ended(STOP_TIMEOUT) {
            if let Some(accept) = self.accept.take() {
                let _ = accept.join();
            }
        } else {
            // Panicking in drop would abort a test that is unwinding; the
            // leftover threads hold only sockets that are shut down.
            eprintln!(
                "proxy {}: threads still running {STOP_TIMEOUT:?} after stop",
                self.addr
            );
        }
    }
}

/// Where to dial the listener at `addr` (an unspecified address listens on
/// loopback too).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}
