//! What operators watch: `GET /healthz` (the process serves) and `GET /readyz` (the XMPP
//! server answers a stream) on both listeners, `GET /metrics` on the admin listener only, and
//! the admin listener itself. Health checks and scrapes need no credentials, take no place in
//! flight and are not counted: each `/rest/*` request is counted where its audit line is
//! written (`http::audit`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio::net::TcpListener;

use super::error::ApiError;
use super::listener::{Limits, Listener};
use super::{format_of, not_found, Gateway};
use crate::config::Config;
use crate::metrics;

/// Connections the admin listener keeps open at once.
pub const ADMIN_CONNECTIONS: usize = 64;
/// Largest admin request head.
const ADMIN_HEADER_BYTES: usize = 16 * 1024;
/// How long an admin request head may take, and an idle keep-alive connection stay open.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long admin requests may take to finish once the API has drained at shutdown: a health
/// check or a scrape takes milliseconds; what still runs is cut as the process ends.
const ADMIN_DRAIN: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 while the process serves.
pub(super) async fn healthz() -> Response {
    plain("ok\n")
}

/// `GET /readyz`: 200 when an entry of the upstream list answered a stream within the last
/// few seconds (`ready`, then a line for each entry that did not: `down LABEL: REASON`), else
/// 503 with the reason.
pub(super) async fn readyz(
    State(gw): State<Arc<Gateway>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match gw.app.ready().await {
        Ok(ready) if ready.down.is_empty() => plain("ready\n"),
        Ok(ready) => {
            let mut text = String::from("ready\n");
            for (upstream, reason) in &ready.down {
                // One line each, whatever a reason holds.
                let reason: String = reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                text.push_str(&format!("down {upstream}: {reason}\n"));
            }
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
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

/// Serves the admin routes on `listener` until `shutdown` resolves, on the same accept loop as
/// the API within [`admin_limits`]. Plain HTTP/1.1: it is meant for loopback or a monitoring
/// network.
pub async fn serve_admin(
    gw: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = admin_limits(&gw.cfg);
    Listener::new("admin", listener, admin_router(gw), limits)
        .serve(shutdown)
        .await;
}

/// The admin listener's limits: a small cap (a scraper and a few probes need a handful of
/// connections; at the cap the oldest stalled, idle or unread one makes room, as on the API
/// listener), short deadlines for a head and between requests (monitoring clients send their
/// request at once), the API's `--write-timeout`, and a short drain at shutdown.
pub fn admin_limits(cfg: &Config) -> Limits {
    Limits {
        max_connections: ADMIN_CONNECTIONS,
        max_header_bytes: ADMIN_HEADER_BYTES,
        header_timeout: ADMIN_HEADER_TIMEOUT,
        idle_timeout: ADMIN_HEADER_TIMEOUT,
        write_timeout: cfg.write_timeout,
        drain: ADMIN_DRAIN,
        tls: None,
    }
}
