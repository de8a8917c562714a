//! The proxy's threads: one accepts; per connection one supervisor dials
//! the upstream and waits for four pumps, a reader and a writer for each
//! direction. The reader applies the faults to what it read and queues it
//! with its delivery time; the writer delivers the queue in order.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::delay::{Chunk, Jitter, Payload};
use super::shared::{Reservation, Shared};
use super::{Direction, CONNECT_TIMEOUT, READ_BUFFER_BYTES};

/// Stack of every proxy thread: they hold a few locals only (the read
/// buffer is on the heap), and a proxy may run thousands of them.
const THREAD_STACK_BYTES: usize = 256 * 1024;
/// Pause after a failed accept. Some failures persist for a while (out of
/// file descriptors) and have no event to wait for; retrying at once would
/// spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Spawns a named thread counted by [`Shared::wait_threads_ended`]; the
/// count is taken before the spawn so a stop cannot see a false zero.
pub(super) fn spawn_counted(
    shared: &Arc<Shared>,
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    let live = shared.thread_started();
    thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK_BYTES)
        .spawn(move || {
            let _live = live;
            body();
        })
}

/// Accepts until the proxy stops; connection ids are the accept order.
pub(super) fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    let mut next_id = 0;
    for incoming in listener.incoming() {
        if shared.is_stopping() {
            return;
        }
        match incoming {
            Ok(client) => {
                admit(shared, client, next_id);
                next_id += 1;
            }
            Err(_) => thread::sleep(ACCEPT_ERROR_BACKOFF),
        }
    }
}

fn admit(shared: &Arc<Shared>, client: TcpStream, id: u64) {
    shared.record(|stats| stats.accepted_connections += 1);
    if shared.refusing() || shared.reserve() != Reservation::Reserved {
        refuse(shared, &client);
        return;
    }
    let supervising = Arc::clone(shared);
    let spawned = spawn_counted(shared, format!("proxy-conn-{id}"), move || {
        supervise(&supervising, id, client)
    });
    if let Err(e) = spawned {
        // The closure, and the client socket in it, is dropped: closed.
        eprintln!("proxy: cannot spawn a thread for connection {id}: {e}");
        shared.release(id);
        shared.record(|stats| stats.refused_connections += 1);
    }
}

fn refuse(shared: &Shared, client: &TcpStream) {
    let _ = client.shutdown(Shutdown::Both);
    shared.record(|stats| stats.refused_connections += 1);
}

/// Gives a connection's slot back however its supervisor ends.
struct Slot<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.shared.release(self.id);
    }
}

fn supervise(shared: &Arc<Shared>, id: u64, client: TcpStream) {
    let _slot = Slot { shared, id };
    let upstream = match TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) {
        Ok(upstream) => upstream,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            shared.record(|stats| stats.upstream_connect_failures += 1);
            return;
        }
    };
    let conn = match Conn::new(id, client, upstream) {
        Ok(conn) => Arc::new(conn),
        Err(e) => {
            eprintln!("proxy: cannot set up connection {id}'s sockets: {e}");
            return;
        }
    };
    if !shared.register(&conn) {
        conn.close();
        return;
    }
    for pump in spawn_pumps(shared, &conn) {
        // A pump that panicked closed the connection on its way out.
        let _ = pump.join();
    }
}

fn spawn_pumps(shared: &Arc<Shared>, conn: &Arc<Conn>) -> Vec<JoinHandle<()>> {
    let mut pumps = Vec::with_capacity(4);
    for direction in Direction::ALL {
        for (role, pump) in [("read", read_loop as Pump), ("write", write_loop as Pump)] {
            let (pumping, on) = (Arc::clone(shared), Arc::clone(conn));
            let name = format!("proxy-conn-{}-{}-{role}", conn.id, direction.name());
            let spawned = spawn_counted(shared, name, move || {
                let _close = CloseOnPanic {
                    shared: &pumping,
                    conn: &on,
                };
                pump(&pumping, &on, direction);
            });
            match spawned {
                Ok(handle) => pumps.push(handle),
                Err(e) => {
                    // Half a connection is worse than none: end the pumps
                    // already running.
                    eprintln!("proxy: cannot spawn connection {}'s pumps: {e}", conn.id);
                    shared.close(conn);
                    return pumps;
                }
            }
        }
    }
    pumps
}

type Pump = fn(&Shared, &Conn, Direction);

/// Closes the connection when its pump panics, so the other three do not
/// wait forever for it.
struct CloseOnPanic<'a> {
    shared: &'a Shared,
    conn: &'a Conn,
}

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.shared.close(self.conn);
        }
    }
}

/// Reads `direction`'s source and queues each chunk, as the faults say.
fn read_loop(shared: &Shared, conn: &Conn, direction: Direction) {
    let stream = direction.index() as u64;
    let mut jitter = Jitter::for_stream(shared.seed, conn.id, stream);
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    loop {
        let read = match read_chunk(conn.source(direction), &mut buffer, conn) {
            Ok(Some(read)) => read,
            Ok(None) => return,
            Err(_) => return shared.close(conn),
        };
        // Faults are looked at after the read, so bytes sent after a fault
        // was set never slip past it; a pause holds this chunk (and stops
        // further reads) until resumed.
        let Some(faults) = shared.wait_released(direction, conn) else {
            return;
        };
        if read > 0 && faults.blackholed {
            shared.record_bytes(direction, 0, read as u64);
            continue;
        }
        let delay = faults
            .delay
            .map_or(Duration::ZERO, |d| jitter.delay(d.base, d.jitter));
        let payload = match read {
            0 => Payload::End,
            n => Payload::Bytes(buffer[..n].to_vec()),
        };
        let chunk = Chunk {
            due: Instant::now() + delay,
            payload,
        };
        if !conn.queue(direction).push(chunk, conn.closed_flag()) || read == 0 {
            return;
        }
    }
}

/// One read, retried over the socket's poll timeouts: `Some(0)` at end of
/// stream, `None` once the connection was closed.
fn read_chunk(mut source: &TcpStream, buffer: &mut [u8], conn: &Conn) -> io::Result<Option<usize>> {
    loop {
        if conn.is_closed() {
            return Ok(None);
        }
        match source.read(buffer) {
            Ok(0) if conn.is_closed() => return Ok(None),
            Ok(read) => return Ok(Some(read)),
            Err(e) if is_retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Delivers `direction`'s queue in order, each chunk once due.
fn write_loop(shared: &Shared, conn: &Conn, direction: Direction) {
    let destination = conn.destination(direction);
    while let Some(chunk) = conn.queue(direction).pop_due(conn.closed_flag()) {
        // A pause holds what is queued too, not only what is yet unread.
        if shared.wait_released(direction, conn).is_none() {
            return;
        }
        match chunk.payload {
            Payload::End => {
                // Passes the source's end of stream on; the other direction
                // carries on until its own end.
                let _ = destination.shutdown(Shutdown::Write);
                return;
            }
            Payload::Bytes(bytes) => match write_fully(destination, &bytes, conn) {
                Ok(true) => shared.record_bytes(direction, bytes.len() as u64, 0),
                Ok(false) => return,
                Err(_) => return shared.close(conn),
            },
        }
    }
}

/// Writes all of `bytes`, retried over the socket's poll timeouts (a timed
/// out write wrote nothing; a partial one says how much); false once the
/// connection was closed.
fn write_fully(mut destination: &TcpStream, mut bytes: &[u8], conn: &Conn) -> io::Result<bool> {
    while !bytes.is_empty() {
        if conn.is_closed() {
            return Ok(false);
        }
        match destination.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = &bytes[written..],
            Err(e) if is_retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A socket timeout (`WouldBlock` on Unix, `TimedOut` on Windows) or a
/// signal: nothing happened, try again.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
