//! What operators watch: `GET /healthz` (the process serves) and `GET /readyz` (the XMPP
//! server answers a stream) on both listeners, `GET /metrics` on the admin listener only, and
//! the admin listener itself. Health checks and scrapes need no credentials, take no place in
//! flight and are not counted: each `/rest/*` request is counted where its audit line is
//! written (`http::audit`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
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
    match gw.app.ready().await {
        Ok(()) => plain("ready\n"),
        Err(failure) => ApiError::from(failure).into_response_in(format_of(&uri, &headers)),
    }
}

/// `GET /metrics` (admin listener only): every metric in the OpenMetrics text format.
async fn scrape(State(gw): State<Arc<Gateway>>) -> Response {
    let text = metrics::render(metrics::Gauges {
        warm_sessions: gw.app.warm_sessions(),
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
