//! The accept loop, one for both listeners (the API and the admin one), each within its own
//! [`Limits`]: one task per connection, HTTP/1.1 over plain TCP or TLS, HTTP/2 prior knowledge
//! turned away with a GOAWAY, graceful shutdown, the deadlines for a request head, an idle
//! keep-alive connection and an answer the client does not take, and the connection cap with
//! its choice of whom to close ([`Connections`]). While the gateway drains
//! ([`crate::shutdown::Drain`]) every answer closes its connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, Response};
use axum::Router;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::{router, Gateway, Peer};
use crate::shutdown::{Drain, Signals};

mod connections;
mod fdlimit;
mod preface;
mod writes;

pub use connections::{Connections, Slot, Stage, StageCell};
pub use fdlimit::fit_to_fd_limit;
pub use preface::H2_GOAWAY;
use preface::{preface, refuse_http2, Opening, Rewound};
use writes::WatchedWrites;

/// How long a request head may take on the API listener, counted from the connection's start
/// or from the end of the previous response (hyper's own default, so it also closes idle
/// keep-alive connections).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listener allows its connections.
#[derive(Clone)]
pub struct Limits {
    /// Connections open at once; at the cap one is closed to make room
    /// (see [`connections::choose_victim`]).
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger: 431.
    pub max_header_bytes: usize,
    /// How long a request head may take, from the connection's start or the previous answer.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// How long a write of an answer may wait for the client to take a byte.
    pub write_timeout: Duration,
    /// How long requests in flight may take to finish once accepting has stopped
    /// (`--drain-timeout` on the API listener).
    pub drain: Duration,
    /// HTTPS with this acceptor, or plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A bound listener with its routes, its limits and its open connections.
pub struct Listener {
    tcp: TcpListener,
    app: Router,
    limits: Limits,
    conns: Arc<Connections>,
    /// Whether the gateway drains: answers then close their connections.
    drain: Arc<Drain>,
}

/// Serves the API until the first of `signals`, then drains (`--drain-delay`: still serving,
/// `/readyz` answering `draining`; a second signal ends the delay), stops accepting, finishes
/// the requests in flight (within `--drain-timeout`) and closes every upstream stream.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    signals: impl Signals,
) {
    let cfg = &gw.cfg;
    let limits = Limits {
        max_connections: cfg.max_connections,
        max_header_bytes: cfg.max_header_bytes,
        header_timeout: HEADER_READ_TIMEOUT,
        idle_timeout: cfg.keepalive_timeout,
        write_timeout: cfg.write_timeout,
        drain: cfg.drain_timeout,
        tls,
    };
    let drain = gw.drain.clone();
    let api = Listener::new("api", listener, router(gw.clone()), limits, drain.clone());
    let _ = gw.connections.set(api.connections());
    api.serve(drain.stop_accepting(signals, cfg.drain_delay))
        .await;
    gw.app.close_all().await;
    tracing::info!("all upstream streams closed");
}

impl Listener {
    /// `name` tells the listener apart in log lines and metrics; while `drain` says so, its
    /// answers close their connections.
    pub fn new(
        name: &'static str,
        tcp: TcpListener,
        app: Router,
        limits: Limits,
        drain: Arc<Drain>,
    ) -> Self {
        let conns = Connections::new(name, limits.max_connections);
        Listener {
            tcp,
            app,
            limits,
            conns,
            drain,
        }
    }

    /// Its open connections (for `xrg_http_connections`).
    pub fn connections(&self) -> Arc<Connections> {
        self.conns.clone()
    }

    /// Accepts until `shutdown` resolves, then lets the requests in flight finish (within
    /// [`Limits::drain`]) and closes idle connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Listener {
            tcp: listener,
            app,
            limits,
            conns,
            drain,
        } = self;
        let reaper = tokio::spawn(
            conns
                .clone()
                .reap(limits.idle_timeout, limits.write_timeout),
        );
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        // Connections not yet handed to hyper (TLS handshake, preface) end on this at shutdown.
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_header_size(limits.max_header_bytes)
            // A head must fit the buffer; beyond it hyper's default lets one grow to ~400 KB.
            .max_buf_size(limits.max_header_bytes.max(8192));
        tokio::pin!(shutdown);
        let mut last_accept_warning: Option<Instant> = None;
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and the like: wait for descriptors to come back, never spin,
                        // and say so at most every 10 s.
                        if last_accept_warning
                            .is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10))
                        {
                            tracing::warn!(error = %e, "accept failed");
                            last_accept_warning = Some(Instant::now());
                        }
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
            let tcp = WatchedWrites::new(tcp, slot.stage());
            let svc = Tracked {
                app: app.clone(),
                peer: Peer(peer),
                stage: slot.stage(),
                drain: drain.clone(),
                listener: conns.listener(),
            };
            let conn = Connection {
                builder: builder.clone(),
                header_timeout: limits.header_timeout,
                svc,
                watcher: graceful.watcher(),
                closing: closing.clone(),
                _slot: slot,
                evicted,
            };
            // One spawn per kind of stream: a TLS stream's state (~11 KB) stays out of the
            // futures of plain connections, the common idle keep-alive ones.
            match &limits.tls {
                None => tokio::spawn(conn.http(tcp)),
                Some(acceptor) => tokio::spawn(conn.https(acceptor.clone(), tcp)),
            };
        }
        drop(listener);
        let _ = closing_tx.send(true);
        // Requests in flight finish (within `drain`), idle connections close; the deadlines
        // still run meanwhile, so a client that does not read its answer cannot hold the
        // drain to its end.
        if tokio::time::timeout(limits.drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                listener = conns.listener(),
                "some connections did not finish in time"
            );
        }
        reaper.abort();
    }
}

/// One accepted connection, before its first byte.
struct Connection {
    builder: hyper::server::conn::http1::Builder,
    /// The listener's deadline for a request head, here for the first bytes' check.
    header_timeout: Duration,
    svc: Tracked,
    watcher: hyper_util::server::graceful::Watcher,
    /// Ends the connection at shutdown until hyper has it (hyper then shuts it down itself).
    closing: tokio::sync::watch::Receiver<bool>,
    /// Its place under the cap, held as long as the connection is.
    _slot: Slot,
    /// Fires when the connection is chosen to make room for another, or is past a deadline
    /// (idle, or an answer the client does not take).
    evicted: oneshot::Receiver<()>,
}

impl Connection {
    async fn https(mut self, acceptor: tokio_rustls::TlsAcceptor, tcp: WatchedWrites<TcpStream>) {
        let handshake = tokio::select! {
            h = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => h,
            _ = self.closing.wait_for(|c| *c) => return,
            _ = &mut self.evicted => return,
        };
        if let Ok(Ok(stream)) = handshake {
            self.http(stream).await;
        }
    }

    // The hyper connection is created and awaited in this one function (not passed in as an
    // argument), so that its state is stored once in the task, not twice.
    async fn http<IO>(mut self, mut io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let opened = tokio::select! {
            o = tokio::time::timeout(self.header_timeout, preface(&mut io)) => o,
            _ = self.closing.wait_for(|c| *c) => return,
            _ = &mut self.evicted => return,
        };
        match opened {
            Ok(Ok(Opening::Http1(prefix))) => {
                let io = TokioIo::new(Rewound::new(prefix, io));
                // From here on graceful shutdown is hyper's: the request in progress ends.
                let conn = self
                    .watcher
                    .watch(self.builder.serve_connection(io, self.svc));
                tokio::select! {
                    _ = conn => {}
                    _ = &mut self.evicted => tracing::debug!("connection closed by the cap or a deadline"),
                }
            }
            Ok(Ok(Opening::Http2)) => refuse_http2(io).await,
            Ok(Ok(Opening::Closed)) | Ok(Err(_)) | Err(_) => {}
        }
    }
}

/// The router for one connection: adds the [`Peer`], moves the connection's [`Stage`] as a
/// request arrives, is worked on and is answered, and while the gateway drains closes the
/// connection with its answer (`Connection: close`, which hyper honours).
#[derive(Clone)]
struct Tracked {
    app: Router,
    peer: Peer,
    stage: Arc<StageCell>,
    drain: Arc<Drain>,
    /// The listener's name, for the metrics.
    listener: &'static str,
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
        let (drain, listener) = (self.drain.clone(), self.listener);
        Box::pin(async move {
            let mut resp = app.oneshot(Request::from_parts(parts, body)).await?;
            // Asked as the answer leaves, so a request that came before the drain began and
            // is answered during it closes its connection too.
            if drain.is_draining() {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                crate::metrics::draining_answer(listener);
            }
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
mod tests;
