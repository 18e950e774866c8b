//! What operators watch: `GET /healthz` (the process serves) and `GET /readyz` (the XMPP
//! server answers a stream) on both listeners, `GET /metrics` on the admin listener only, and
//! the one hook that counts every `/rest/*` request. Health checks and scrapes need no
//! credentials, take no place in flight and are not counted.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::error::ApiError;
use super::{format_of, not_found, Gateway};
use crate::metrics;

/// Connections the admin listener serves at once; more are closed on arrival.
const ADMIN_CONNECTIONS: usize = 64;
/// How long an admin request head may take (and an idle keep-alive connection stay open).
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

tokio::task_local! {
    /// The `node` label of the request the task is answering, set by the handler once it
    /// knows the command.
    static NODE: Cell<&'static str>;
}

/// Records the command node of the request being answered (if it names one), for its
/// `node` label.
pub(super) fn note_node(node: Option<&str>) {
    if let Some(node) = node {
        let _ = NODE.try_with(|n| n.set(metrics::node_label(node)));
    }
}

/// The router's one metrics hook: counts each `/rest/*` request once, by its status and
/// node, with its duration, whichever handler (or refusal) answered it.
pub(super) async fn count_rest(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/rest/") {
        return next.run(req).await;
    }
    let started = Instant::now();
    let (resp, node) = NODE
        .scope(Cell::new(metrics::NO_NODE), async {
            let resp = next.run(req).await;
            (resp, NODE.with(Cell::get))
        })
        .await;
    metrics::request(resp.status().as_u16(), node, started.elapsed());
    resp
}

/// `GET /healthz`: 200 while the process serves.
pub(super) async fn healthz() -> Response {
    plain("ok\n")
}

/// `GET /readyz`: 200 when the XMPP server answered a stream within the last few seconds,
/// else 503 with the reason.
pub(super) async fn readyz(
    State(gw): State<Arc<Gateway>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let domain = gw.cfg.domain.as_deref();
    match gw.readiness.check(|| gw.access.probe(domain)).await {
        Ok(()) => plain("ready\n"),
        Err(reason) => ApiError::not_ready(reason).into_response_in(format_of(&uri, &headers)),
    }
}

/// `GET /metrics` (admin listener only): every metric in the OpenMetrics text format.
async fn scrape(State(gw): State<Arc<Gateway>>) -> Response {
    let text = metrics::render(metrics::Gauges {
        warm_sessions: gw.access.warm_sessions(),
        requests_in_flight: gw
            .cfg
            .max_in_flight
            .saturating_sub(gw.in_flight.available_permits()),
        http_connections: gw.connections.get().map(|c| c.open()).unwrap_or(0),
    });
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
}

/// Any method but GET (and HEAD) on a health or metrics path.
pub(super) async fn get_only(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    ApiError::method_not_allowed(method.as_str(), "GET").into_response_in(format_of(&uri, &headers))
}

fn plain(text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// The admin listener's routes: health, readiness and metrics, nothing else.
pub fn admin_router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz).fallback(get_only))
        .route("/readyz", get(readyz).fallback(get_only))
        .route("/metrics", get(scrape).fallback(get_only))
        .fallback(any(not_found))
        .with_state(gw)
}

/// Serves the admin routes on `listener` until the task is dropped (which drops its
/// connections too). Plain HTTP/1.1: it is meant for loopback or a monitoring network.
pub async fn serve_admin(gw: Arc<Gateway>, listener: TcpListener) {
    let app = admin_router(gw);
    let places = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
    let mut conns = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ADMIN_HEADER_TIMEOUT)
        .max_buf_size(16 * 1024);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // Out of descriptors: the main listener says so; wait, never spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let Ok(place) = places.clone().try_acquire_owned() else {
            continue; // dropping `tcp` closes it
        };
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move { app.oneshot(req.map(Body::new)).await }
        });
        let conn = builder.serve_connection(TokioIo::new(tcp), svc);
        conns.spawn(async move {
            let _ = conn.await;
            drop(place);
        });
    }
}
