//! The listener and the connection wrapper: reads go through the
//! [`Rewriter`], writes go straight to the socket.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::rewriter::Rewriter;

/// Size of the buffer each socket read goes into while frames are parsed.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A client listener whose connections go through [`AuthorityFixIo`], so
/// etcdctl 3.4's URL-valued `:authority` reaches h2 as a valid authority.
/// Accepted sockets get `TCP_NODELAY`.
pub struct AuthorityFixListener(pub TcpListener);

impl axum::serve::Listener for AuthorityFixListener {
    type Io = AuthorityFixIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        // A socket that refuses TCP_NODELAY still serves, only with Nagle's
        // delay on small replies: not a reason to drop the connection.
        let _ = stream.set_nodelay(true);
        (AuthorityFixIo::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose reads go through the `:authority` rewriter and whose
/// writes go straight to `inner`.
pub struct AuthorityFixIo<S> {
    inner: S,
    rewriter: Rewriter,
    scratch: Vec<u8>,
    eof: bool,
}

impl<S> AuthorityFixIo<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: Rewriter::new(),
            scratch: Vec::new(),
            eof: false,
        }
    }

    /// The wrapped connection (to read what its handshake established).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFixIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.rewriter.has_output() {
                this.rewriter.take_output(buf);
                return Poll::Ready(Ok(()));
            }
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(limit) = this.rewriter.direct_read_limit() {
                return this.poll_read_direct(cx, buf, limit);
            }
            if this.scratch.is_empty() {
                this.scratch = vec![0; READ_CHUNK_BYTES];
            }
            let mut chunk = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                this.eof = true;
                this.rewriter.finish();
            } else {
                this.rewriter.feed(chunk.filled());
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AuthorityFixIo<S> {
    /// Reads bytes the rewriter need not see (frame payloads, or everything
    /// once passing through) straight into the caller's buffer.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        limit: usize,
    ) -> Poll<io::Result<()>> {
        let dst = buf.initialize_unfilled_to(limit.min(buf.remaining()));
        let mut direct = ReadBuf::new(dst);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut direct))?;
        let n = direct.filled().len();
        if n == 0 {
            self.eof = true;
        }
        buf.advance(n);
        self.rewriter.consumed_directly(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFixIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{client_stream, rewrite_all};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn io_wrapper_reads_byte_by_byte() {
        let input = client_stream();
        let want = rewrite_all(&input, input.len());
        let (mut client, server) = tokio::io::duplex(1);
        let writer = tokio::spawn({
            let input = input.clone();
            async move {
                client.write_all(&input).await.unwrap();
                client.shutdown().await.unwrap();
                client
            }
        });
        let mut io = AuthorityFixIo::new(server);
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn io_wrapper_passes_http1_and_writes_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = AuthorityFixIo::new(server);
        let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut got = vec![0; request.len()];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got, request);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut reply = vec![0; 19];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, b"HTTP/1.1 200 OK\r\n\r\n");
    }
}
