//! ironcd-h2-authority: a listener wrapper that lets the `h2` crate accept
//! the `:authority` etcdctl 3.4 sends.
//!
//! grpc-go's clientv3 in etcd 3.4 (etcd issue #13192) sends the whole
//! endpoint URL, `http://127.0.0.1:2379`, as the HTTP/2 `:authority`. etcd's
//! Go server takes it; `h2` resets the stream as a "malformed authority".
//! [`AuthorityFixListener`] wraps every accepted connection in
//! [`AuthorityFixIo`], which rewrites that value in the client→server byte
//! stream, before h2 sees it, into a valid authority of the same length:
//!
//! ```text
//! http://127.0.0.1:2379    →  http::@127.0.0.1:2379    (userinfo "http::")
//! https://h:2379/          →  https:::@h:2379          (trailing '/' becomes ':')
//! ```
//!
//! The length must not change: HPACK (RFC 7541) charges every dynamic-table
//! entry `name + value + 32` bytes, so the client's encoder table and h2's
//! decoder table only stay in step if each value keeps its length. The
//! rewriter mirrors the table (names and sizes only) to recognise later
//! references to an `:authority` entry; indexed references need no rewrite
//! because the decoder's copy already holds the rewritten value.
//!
//! Anything that does not start with the HTTP/2 connection preface
//! (HTTP/1.1 `/health`) and anything that fails to parse passes through
//! untouched for the rest of the connection, so h2 reports its own error.
//! Writes are never touched.
//!
//! The crate depends on no ironcd crate: only on tokio (the IO traits and
//! the TCP listener) and axum (its `serve::Listener` trait).
//!
//! ```no_run
//! use ironcd_h2_authority::AuthorityFixListener;
//!
//! async fn serve(router: axum::Router) -> std::io::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:2379").await?;
//!     axum::serve(AuthorityFixListener(listener), router).await
//! }
//! ```
//!
//! Any `AsyncRead + AsyncWrite` can be wrapped; a stream that is not HTTP/2
//! comes out as it went in:
//!
//! ```
//! use ironcd_h2_authority::AuthorityFixIo;
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let request: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n";
//! let mut io = AuthorityFixIo::new(request);
//! let mut seen = Vec::new();
//! io.read_to_end(&mut seen).await?;
//! assert_eq!(seen, request);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! * `io`: the listener and the connection wrapper.
//! * `rewriter`: the client→server stream parser (preface, frames, pass
//!   through).
//! * `frame`: HTTP/2 frame headers, header blocks split over HEADERS and
//!   CONTINUATION frames, and writing them back.
//! * `block`: one header block walked and rewritten; the authority repair.
//! * `hpack`: HPACK integers, string literals and the mirrored dynamic
//!   table.
//! * `huffman`: HPACK's static Huffman code.

mod block;
mod frame;
mod hpack;
mod huffman;
mod io;
mod rewriter;
#[cfg(test)]
mod testkit;

pub use io::{AuthorityFixIo, AuthorityFixListener};

/// Raised on any input the rewriter cannot follow; the connection then
/// passes through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

type Parse<T> = std::result::Result<T, Malformed>;
