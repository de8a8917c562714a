//! One proxied connection: the client's socket, the upstream's, and a
//! delay queue per direction.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::delay::DelayChannel;
use super::{Direction, DELAY_QUEUE_CAPACITY_BYTES};

/// How long a pump blocks in one read or write before it looks at its
/// connection's closed flag again. Closing shuts the sockets down, which
/// wakes blocked calls at once; this bounds the wait should it not.
const SOCKET_POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(super) struct Conn {
    /// The accept order: names the threads and seeds the jitter.
    pub(super) id: u64,
    client: TcpStream,
    upstream: TcpStream,
    closed: AtomicBool,
    queues: [DelayChannel; 2],
}

impl Conn {
    pub(super) fn new(id: u64, client: TcpStream, upstream: TcpStream) -> io::Result<Self> {
        for socket in [&client, &upstream] {
            // The proxy forwards what it read at once; Nagle's algorithm
            // would add latency the test did not ask for.
            socket.set_nodelay(true)?;
            socket.set_read_timeout(Some(SOCKET_POLL))?;
            socket.set_write_timeout(Some(SOCKET_POLL))?;
        }
        Ok(Conn {
            id,
            client,
            upstream,
            closed: AtomicBool::new(false),
            queues: [
                DelayChannel::new(DELAY_QUEUE_CAPACITY_BYTES),
                DelayChannel::new(DELAY_QUEUE_CAPACITY_BYTES),
            ],
        })
    }

    /// The socket `direction`'s bytes are read from.
    pub(super) fn source(&self, direction: Direction) -> &TcpStream {
        match direction {
            Direction::ToUpstream => &self.client,
            Direction::ToClient => &self.upstream,
        }
    }

    /// The socket `direction`'s bytes are written to.
    pub(super) fn destination(&self, direction: Direction) -> &TcpStream {
        match direction {
            Direction::ToUpstream => &self.upstream,
            Direction::ToClient => &self.client,
        }
    }

    pub(super) fn queue(&self, direction: Direction) -> &DelayChannel {
        &self.queues[direction.index()]
    }

    pub(super) fn closed_flag(&self) -> &AtomicBool {
        &self.closed
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Shuts both sockets down (both peers see end of stream, or a reset
    /// where data was unread) and wakes the delay queues' waiters. The
    /// file descriptors close when the last pump lets go of the connection.
    /// Waiters on the proxy's faults are woken by
    /// [`Shared::close`](super::shared::Shared::close).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Errors mean the socket is shut down or reset already.
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
        for queue in &self.queues {
            queue.wake();
        }
    }
}
