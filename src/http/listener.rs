//! The accept loop: one task per connection, HTTP/1.1 over plain TCP or TLS, HTTP/2 prior
//! knowledge turned away with a GOAWAY, graceful shutdown, and the connection cap with its
//! choice of whom to close ([`Connections`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use axum::Router;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{router, Gateway, Peer};
mod connections;
pub use connections::{fit_to_fd_limit, Connections, Slot, Stage, StageCell};

/// How long a request head may take, counted from the connection's start or from the end of
/// the previous response (hyper's own default, so it also closes idle keep-alive connections).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The answer to it: an empty SETTINGS frame (the server preface), then GOAWAY with last
/// stream 0 and HTTP_1_1_REQUIRED (0xd), with a reason as debug data.
pub const H2_GOAWAY: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\
\x00\x00\x1c\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0dHTTP/1.1 is required";

/// Serves until `shutdown` resolves, then finishes the requests in flight and closes every
/// upstream stream.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = router(gw.clone());
    let conns = Connections::new(gw.cfg.max_connections);
    let reaper = tokio::spawn(conns.clone().reap_idle(gw.cfg.keepalive_timeout));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Connections not yet handed to hyper (TLS handshake, preface) end on this at shutdown.
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(gw.cfg.max_header_bytes)
        .max_buf_size(gw.cfg.max_header_bytes.max(8192));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: wait for descriptors to come back, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some((slot, evicted)) = conns.admit() else {
            continue; // dropping `tcp` closes it: every connection is mid-request
        };
        let _ = tcp.set_nodelay(true);
        let svc = Tracked {
            app: app.clone(),
            peer: Peer(peer),
            stage: slot.stage(),
        };
        let conn = Connection {
            builder: builder.clone(),
            svc,
            watcher: graceful.watcher(),
            closing: closing.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = conn.run(tcp, tls) => {}
                _ = evicted => tracing::debug!(%peer, "connection closed to make room"),
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    reaper.abort();
    // Requests in flight finish (bounded by the request timeout), idle connections close.
    let grace = gw.cfg.request_timeout + Duration::from_secs(2);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
    gw.pool.close_all().await;
    tracing::info!("all upstream streams closed");
}

/// One accepted connection, before its first byte.
struct Connection {
    builder: hyper::server::conn::http1::Builder,
    svc: Tracked,
    watcher: hyper_util::server::graceful::Watcher,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, tcp: tokio::net::TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let mut closing = self.closing.clone();
        let stopped = async move {
            let _ = closing.wait_for(|c| *c).await;
        };
        // Boxed apart: a TLS stream's state is ~11 KB, which a plain connection (the common
        // idle keep-alive one) would otherwise carry in its future too.
        let opening: Pin<Box<dyn Future<Output = ()> + Send>> = match tls {
            None => Box::pin(self.http(tcp)),
            Some(acceptor) => Box::pin(async move {
                let handshake =
                    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                if let Ok(Ok(stream)) = handshake {
                    self.http(stream).await;
                }
            }),
        };
        tokio::select! {
            _ = opening => {}
            _ = stopped => {}
        }
    }

    async fn http<IO>(self, mut io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let opened = tokio::time::timeout(HEADER_READ_TIMEOUT, preface(&mut io)).await;
        match opened {
            Ok(Ok(Opening::Http1(prefix))) => {
                let io = Rewound { prefix, at: 0, io };
                let conn = self.builder.serve_connection(TokioIo::new(io), self.svc);
                // From here on graceful shutdown is hyper's: the request in progress ends.
                let _ = self.watcher.watch(conn).await;
            }
            Ok(Ok(Opening::Http2)) => refuse_http2(io).await,
            Ok(Ok(Opening::Closed)) | Ok(Err(_)) | Err(_) => {}
        }
    }
}

/// How a connection opened.
#[derive(Debug, PartialEq, Eq)]
enum Opening {
    /// Anything but the HTTP/2 preface: the bytes read so far, for hyper to read again.
    Http1(Vec<u8>),
    /// The whole HTTP/2 connection preface.
    Http2,
    /// End of stream before the first byte that tells them apart.
    Closed,
}

/// Reads only as far as needed to tell HTTP/2 prior knowledge from HTTP/1.1: an HTTP/1.1
/// request differs from the preface by its first bytes (`GET`, `POST`: the second byte).
async fn preface<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<Opening> {
    let mut buf = [0u8; 24];
    let mut n = 0;
    loop {
        let read = io.read(&mut buf[n..]).await?;
        if read == 0 {
            return Ok(Opening::Closed);
        }
        n += read;
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Opening::Http1(buf[..n].to_vec()));
        }
        if n == H2_PREFACE.len() {
            return Ok(Opening::Http2);
        }
    }
}

/// SETTINGS and GOAWAY (HTTP_1_1_REQUIRED), then a clean close: the client's further bytes
/// are read and dropped for a moment, because closing with unread data would send a reset
/// that can destroy the GOAWAY before the client reads it.
async fn refuse_http2<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) {
    if io.write_all(H2_GOAWAY).await.is_err() || io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: an array here would make every connection's future 4 KB larger.
        let mut sink = vec![0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// A stream whose first bytes, read already to look for the HTTP/2 preface, are read again.
struct Rewound<IO> {
    prefix: Vec<u8>,
    at: usize,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewound<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewound<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The router for one connection: adds the [`Peer`] and moves the connection's [`Stage`] as a
/// request arrives, is worked on and is answered.
#[derive(Clone)]
struct Tracked {
    app: Router,
    peer: Peer,
    stage: Arc<StageCell>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(self.peer);
        let stage = self.stage.clone();
        if body.is_end_stream() {
            stage.set(Stage::Working);
        } else {
            stage.set(Stage::Receiving);
        }
        let body = Body::new(Watched {
            inner: body,
            stage: Some(stage.clone()),
            ends: Stage::Working,
        });
        let app = self.app.clone();
        Box::pin(async move {
            let resp = app.oneshot(Request::from_parts(parts, body)).await?;
            Ok(resp.map(|inner| {
                Body::new(Watched {
                    inner,
                    stage: Some(stage),
                    ends: Stage::Idle,
                })
            }))
        })
    }
}

/// A body that moves its connection to `ends` once it has been read to its end or dropped:
/// a request body to [`Stage::Working`] (it has arrived), a response body to
/// [`Stage::Idle`] (it has been written).
struct Watched<B> {
    inner: B,
    stage: Option<Arc<StageCell>>,
    ends: Stage,
}

impl<B> Watched<B> {
    fn ended(&mut self) {
        if let Some(stage) = self.stage.take() {
            match self.ends {
                // Only a request still arriving: never undo the answer's Idle.
                Stage::Working => stage.advance(Stage::Receiving, Stage::Working),
                other => stage.set(other),
            }
        }
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        self.ended();
    }
}

impl<B> http_body::Body for Watched<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let done = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if done {
            self.ended();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_http2_preface_is_told_apart_from_http1_by_what_arrived_first() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(
            preface(&mut server).await.unwrap(),
            Opening::Http1(b"POST / HTTP/1.1\r\n".to_vec())
        );
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(H2_PREFACE).await.unwrap();
        assert_eq!(preface(&mut server).await.unwrap(), Opening::Http2);
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PRI").await.unwrap();
        drop(client);
        assert_eq!(preface(&mut server).await.unwrap(), Opening::Closed);
    }

    #[tokio::test]
    async fn the_bytes_read_for_the_preface_are_read_again() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"ST / HTTP/1.1").await.unwrap();
        drop(client);
        let mut io = Rewound {
            prefix: b"PO".to_vec(),
            at: 0,
            io: server,
        };
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"POST / HTTP/1.1");
    }

    #[test]
    fn the_goaway_frame_says_http_1_1_required() {
        // SETTINGS: empty, type 4, stream 0.
        assert_eq!(&H2_GOAWAY[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let goaway = &H2_GOAWAY[9..];
        let len = u32::from_be_bytes([0, goaway[0], goaway[1], goaway[2]]) as usize;
        assert_eq!(len, goaway.len() - 9);
        assert_eq!(goaway[3], 7, "frame type GOAWAY");
        assert_eq!(&goaway[5..9], &[0, 0, 0, 0], "stream 0");
        assert_eq!(&goaway[9..13], &[0, 0, 0, 0], "last stream id");
        assert_eq!(&goaway[13..17], &[0, 0, 0, 0x0d], "HTTP_1_1_REQUIRED");
    }
}
