//! Fewer, larger socket writes: a connection's writes are gathered and go
//! to the socket when hyper flushes, and a flush first lets the
//! connection's task yield once, so that the responses other tasks are
//! about to hand the same connection (a revision's events fanned out to
//! many watch streams, say) leave in the same system call; it yields
//! again while those tasks keep adding bytes, up to [`MAX_FLUSH_YIELDS`]
//! times. gRPC-Go's writer, which etcd serves with, yields the same way
//! before a small flush.
//!
//! On loopback a write also runs the receiver's TCP stack and wakes the
//! reader, so each write saved is CPU saved on both ends. The gathered
//! bytes are bounded by [`COALESCE_MAX_BYTES`]; past it a write goes out
//! at once.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes one connection gathers before it writes them out.
pub const COALESCE_MAX_BYTES: usize = 64 * 1024;

/// How often one flush may yield while other tasks keep adding bytes to
/// the connection; it stops yielding as soon as a yield brought none.
pub const MAX_FLUSH_YIELDS: u32 = 4;

/// An IO whose writes are gathered until a flush (see the module doc).
pub struct CoalesceIo<T> {
    inner: T,
    /// Bytes accepted but not yet written; `buf[written..]` is left.
    buf: Vec<u8>,
    written: usize,
    /// How often the flush under way has yielded, and how many bytes
    /// were gathered at its last yield.
    yields: u32,
    at_yield: usize,
}

impl<T> CoalesceIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        CoalesceIo {
            inner,
            buf: Vec::new(),
            written: 0,
            yields: 0,
            at_yield: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> CoalesceIo<T> {
    /// Writes out every gathered byte.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        // A connection that was busy once must not keep its peak buffer.
        if self.buf.capacity() > COALESCE_MAX_BYTES {
            self.buf.shrink_to(COALESCE_MAX_BYTES);
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: drains first when they would not
    /// fit. False when `len` alone is past the bound (write it through).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.buf.len() + len > COALESCE_MAX_BYTES {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(len <= COALESCE_MAX_BYTES))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalesceIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_room(cx, data.len()))? {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = data.iter().map(|s| s.len()).sum();
        if !ready!(this.poll_room(cx, len))? {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, data);
        }
        for slice in data {
            this.buf.extend_from_slice(slice);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.written < this.buf.len() {
            let growing = this.yields == 0 || this.buf.len() > this.at_yield;
            if growing && this.yields < MAX_FLUSH_YIELDS {
                // Let the tasks already woken add their bytes first: the
                // self-wake puts this task behind them in the run queue.
                this.yields += 1;
                this.at_yield = this.buf.len();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_drain(cx))?;
        }
        this.yields = 0;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalesceIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Records each write it takes; takes at most `per_write` bytes each.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        per_write: Option<usize>,
        flushes: usize,
        shut: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.per_write.unwrap_or(data.len()).min(data.len());
            let this = self.get_mut();
            this.writes.push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    /// Flushes `io`; how many polls that took.
    async fn flush_counting_polls(io: &mut CoalesceIo<Recorder>) -> usize {
        let mut polls = 0;
        poll_fn(|cx| {
            polls += 1;
            Pin::new(&mut *io).poll_flush(cx)
        })
        .await
        .unwrap();
        polls
    }

    fn all(r: &Recorder) -> Vec<u8> {
        r.writes.concat()
    }

    #[tokio::test]
    async fn writes_before_a_flush_leave_in_one_write_after_one_yield() {
        let mut io = CoalesceIo::new(Recorder::default());
        io.write_all(b"one ").await.unwrap();
        io.write_all(b"two ").await.unwrap();
        let bufs = [IoSlice::new(b"three "), IoSlice::new(b"four")];
        let n = poll_fn(|cx| Pin::new(&mut io).poll_write_vectored(cx, &bufs))
            .await
            .unwrap();
        assert_eq!(n, 10, "a vectored write is taken whole");
        assert!(
            io.inner.writes.is_empty(),
            "nothing written before the flush"
        );

        // The first poll of a flush yields (and wakes itself); nothing came
        // meanwhile, so the next writes.
        assert_eq!(
            flush_counting_polls(&mut io).await,
            2,
            "one yield, then the write"
        );
        assert_eq!(io.inner.writes.len(), 1, "one write for four");
        assert_eq!(all(&io.inner), b"one two three four");
        assert_eq!(io.inner.flushes, 1);

        // A flush with nothing gathered neither yields nor writes.
        let polls = flush_counting_polls(&mut io).await;
        assert_eq!((polls, io.inner.writes.len()), (1, 1));
    }

    #[test]
    fn a_flush_yields_while_bytes_keep_coming_and_no_more_than_its_bound() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut io = CoalesceIo::new(Recorder::default());
        let write = |io: &mut CoalesceIo<Recorder>, cx: &mut Context<'_>| {
            assert!(Pin::new(io).poll_write(cx, b"x").is_ready());
        };
        write(&mut io, &mut cx);
        for _ in 0..MAX_FLUSH_YIELDS {
            assert!(Pin::new(&mut io).poll_flush(&mut cx).is_pending());
            // Another task adds bytes while this one is yielded.
            write(&mut io, &mut cx);
        }
        assert!(
            Pin::new(&mut io).poll_flush(&mut cx).is_ready(),
            "the bound reached, the flush writes"
        );
        assert_eq!(
            io.inner.writes,
            vec![b"x".repeat(MAX_FLUSH_YIELDS as usize + 1)]
        );
    }

    #[tokio::test]
    async fn short_writes_are_resumed_and_the_bound_is_kept() {
        let mut io = CoalesceIo::new(Recorder {
            per_write: Some(1000),
            ..Recorder::default()
        });
        let expected: Vec<u8> = (0..3 * COALESCE_MAX_BYTES + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        for chunk in expected.chunks(7000) {
            io.write_all(chunk).await.unwrap();
            assert!(
                io.buf.len() <= COALESCE_MAX_BYTES,
                "gathered bytes stay bounded"
            );
        }
        // A write larger than the bound goes straight through.
        let big = vec![9u8; COALESCE_MAX_BYTES + 1];
        io.write_all(&big).await.unwrap();
        io.flush().await.unwrap();
        let mut want = expected.clone();
        want.extend_from_slice(&big);
        assert_eq!(all(&io.inner), want, "every byte once, in order");
        assert!(io.inner.writes.iter().all(|w| w.len() <= 1000));

        io.write_all(b"tail").await.unwrap();
        io.shutdown().await.unwrap();
        assert!(io.inner.shut);
        assert!(
            all(&io.inner).ends_with(b"tail"),
            "shutdown writes what is left"
        );
    }
}
