//! The HTTP surface, and only HTTP: the routes, admission (the cross-site check and CORS
//! first, in [`site`]; then body size and deadline, credentials read from the headers, places
//! in flight, the request deadline: [`admit`]), content negotiation, every status ([`error`]);
//! the accept loop and connection limits are in [`listener`]. Everything below HTTP is the
//! application's ([`crate::app`]): this module names no XMPP type, namespace or node
//! (`src/architecture_tests.rs` holds it to that).

mod admit;
mod audit;
pub mod auth;
mod body;
mod console;
pub mod error;
pub mod forward;
pub mod listener;
pub mod negotiate;
pub mod observe;
mod openapi;
pub mod query;
mod resources;
pub mod site;
mod stream;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{any, delete, get, post, put};
use axum::{Extension, Router};
use tokio::sync::Semaphore;

use crate::app::{App, Failure, Route};
use crate::config::Config;
use crate::rest::{self, Format};
use admit::admit;
use error::{document, ApiError};
use observe::{get_only, healthz, readyz};
use query::{parse_query, QueryParams};

pub use listener::serve;

/// Everything a request handler needs, shared by all of them: the application below HTTP,
/// and what only HTTP knows (its limits, the places in flight, the listener's connections).
pub struct Gateway {
    cfg: Config,
    app: Arc<App>,
    in_flight: Arc<Semaphore>,
    /// The main listener's connections, once it serves (for `xrg_http_connections`).
    connections: std::sync::OnceLock<Arc<listener::Connections>>,
    /// Sends a request to the replica its sessionid names (with `--replica-name`).
    forwarder: Option<forward::Forwarder>,
    /// The forward tags accepted lately: a forward is taken once.
    seen_forwards: forward::SeenTags,
    /// Whether the gateway drains (`/readyz` says `draining`, answers close their
    /// connections): begun by the API listener's first signal, read by both listeners.
    drain: Arc<crate::shutdown::Drain>,
}

/// The peer of the connection a request came on.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// What every handler of a resource needs from its request besides the path and the body:
/// the gateway, the peer, the raw query and the headers.
struct Incoming {
    gw: Arc<Gateway>,
    peer: Peer,
    query: Option<String>,
    headers: HeaderMap,
}

impl Incoming {
    fn into_parts(self) -> (Arc<Gateway>, Peer, Option<String>, HeaderMap) {
        (self.gw, self.peer, self.query, self.headers)
    }
}

impl axum::extract::FromRequestParts<Arc<Gateway>> for Incoming {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        // The listener puts the peer on every connection's requests.
        let peer = parts.extensions.get::<Peer>().copied().ok_or_else(|| {
            ApiError::internal("the connection's peer is unknown").into_response_in(Format::Xml)
        })?;
        Ok(Incoming {
            gw: gw.clone(),
            peer,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
        })
    }
}

impl Gateway {
    pub fn new(cfg: Config, app: Arc<App>) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight)),
            forwarder: forward::Forwarder::new(cfg.replica.as_ref()),
            app,
            cfg,
            connections: Default::default(),
            drain: Default::default(),
            seen_forwards: Default::default(),
        }
    }
}

/// The routes.
pub fn router(gw: Arc<Gateway>) -> Router {
    // The console's static files (`--console on`) are no API: merged here rather than listed
    // as `.route`s below, which src/http/openapi.rs ties to docs/openapi.json.
    let console = if gw.cfg.console {
        console::routes()
    } else {
        Router::new()
    };
    Router::new()
        .route(
            "/rest/adhoc/{jid}",
            post(post_command)
                .get(get_commands)
                .fallback(method_not_allowed),
        )
        .route(
            "/rest/stream/",
            post(stream::post_stream).fallback(method_not_allowed_post),
        )
        .route(
            "/rest/stream",
            post(stream::post_stream).fallback(method_not_allowed_post),
        )
        .route(
            "/rest/stream/{*to_jid}",
            post(stream::post_stream_to).fallback(method_not_allowed_post),
        )
        .route(
            "/openapi.json",
            get(openapi::document).fallback(openapi::other_method),
        )
        .route(
            "/rest/sessions/{jid}",
            get(resources::get_sessions)
                .delete(resources::delete_sessions)
                .fallback(|m, u, h| resources::refuse("GET, DELETE", m, u, h)),
        )
        .route(
            "/rest/sessions/{jid}/{resource}",
            delete(resources::delete_session)
                .fallback(|m, u, h| resources::refuse("DELETE", m, u, h)),
        )
        .route(
            "/rest/users/{jid}",
            post(resources::post_user)
                .delete(resources::delete_user)
                .fallback(|m, u, h| resources::refuse("POST, DELETE", m, u, h)),
        )
        .route(
            "/rest/users/{jid}/password",
            put(resources::put_password).fallback(|m, u, h| resources::refuse("PUT", m, u, h)),
        )
        .route(
            "/rest/announce/{domain}",
            post(resources::post_announce).fallback(|m, u, h| resources::refuse("POST", m, u, h)),
        )
        .route("/healthz", get(healthz).fallback(get_only))
        .route("/readyz", get(readyz).fallback(get_only))
        .fallback(any(not_found))
        .merge(console)
        // Read from the bottom up, the order in which a request meets them: its audit line
        // and id, then the cross-site check (and CORS), before any handler reads a byte.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(site::Sites::new(&gw.cfg)),
            site::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gw.clone(),
            audit::layer,
        ))
        .with_state(gw)
}

/// Whether `path` is one of the API's (`/rest`, `/rest/...`): what the audit line and the
/// cross-site check cover.
fn is_rest(path: &str) -> bool {
    path == "/rest" || path.starts_with("/rest/")
}

/// The response format for a request, from its query, `Accept` and `Content-Type`.
fn response_format(query: &QueryParams, headers: &HeaderMap) -> Result<Format, ApiError> {
    let h = |name| headers.get(name).and_then(|v| v.to_str().ok());
    negotiate::response_format(
        query.type_.as_deref(),
        h(header::ACCEPT),
        h(header::CONTENT_TYPE),
    )
    .map_err(|e| ApiError::not_acceptable(e.0))
}

/// The format for an error body when negotiation itself failed: what the body spoke, else XML.
fn fallback_format(headers: &HeaderMap) -> Format {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    negotiate::body_format(ct).unwrap_or(Format::Xml)
}

/// The format of an answer to a request that reached no handler: as negotiated when it can
/// be, else the body's.
fn format_of(uri: &Uri, headers: &HeaderMap) -> Format {
    parse_query(uri.query().unwrap_or_default())
        .ok()
        .and_then(|q| response_format(&q, headers).ok())
        .unwrap_or_else(|| fallback_format(headers))
}

/// `POST /rest/adhoc/{jid}`: run one command. The request is taken whole so that its headers
/// are moved out, not cloned as the `HeaderMap` extractor would.
async fn post_command(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let incoming = (peer, parts.method, target);
    answer(query.as_deref(), &headers, |format, q| {
        handle_post(&gw, incoming, path, q, &headers, body, format)
    })
    .await
}

async fn handle_post(
    gw: &Gateway,
    (peer, method, target): (Peer, Method, String),
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: QueryParams,
    headers: &HeaderMap,
    body: Body,
    format: Format,
) -> Result<Response, ApiError> {
    let keep = match query.keep.as_deref() {
        None | Some("0" | "false") => false,
        Some("" | "1" | "true") => true,
        Some(_) => return Err(ApiError::bad_request("keep takes 1 or 0")),
    };
    // Admission in order: the body under its own deadline, then credentials, then a place in
    // flight, so that a client that never finishes its body holds no place.
    let (limit, deadline) = (gw.cfg.max_body, gw.cfg.body_timeout);
    let (body_format, body) =
        body::read_document(body, headers, query.type_.as_deref(), limit, deadline).await?;
    // Another replica's forward, proved by its header, vouches for the client's address.
    let now = forward::unix_now();
    let forwarded = match forward::check(
        gw.cfg.replica.as_ref(),
        &gw.seen_forwards,
        headers,
        method.as_str(),
        &target,
        &body,
        now,
    ) {
        forward::Check::Absent => None,
        forward::Check::Refused => {
            crate::metrics::forwarded(crate::metrics::Forward::ReceivedRefused);
            return Err(ApiError::forbidden(
                "a request between replicas that does not verify (unknown replica, a time \
                 outside the window, or a bad signature)",
            ));
        }
        forward::Check::Accepted(f) => {
            crate::metrics::forwarded(crate::metrics::Forward::ReceivedAccepted);
            crate::audit::note_forwarded_from(&f.from, &f.client);
            Some(f)
        }
    };
    let addr = match &forwarded {
        Some(f) => f.client,
        None => auth::client_addr(peer.0, headers, &gw.cfg.trusted_proxies),
    };
    let admitted = admit::admit_from(gw, addr, headers, &query)?;
    let request = rest::decode_request(body_format, &body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Path(jid) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match gw.app.route(&request)? {
        Route::Here => {}
        // A forwarded request is never forwarded again: no loop, no chain.
        Route::Replica(_) if forwarded.is_some() => return Err(Failure::UnknownSession.into()),
        Route::Replica(replica) => {
            let Some(forwarder) = &gw.forwarder else {
                return Err(Failure::UnknownSession.into());
            };
            let out = forward::Outgoing {
                method: &method,
                target: &target,
                headers,
                body,
                client: addr,
            };
            let limit = gw.cfg.request_timeout;
            let relayed = tokio::time::timeout(limit, forwarder.send(&replica, out))
                .await
                .unwrap_or_else(|_| Err(forward::too_late(&replica, limit)));
            drop(admitted);
            return relayed;
        }
    }
    let work = gw.app.run(&admitted.caller, &jid, &request, keep);
    let doc = timed(gw.cfg.request_timeout, work).await?;
    Ok(document(format, rest::encode_response(format, &doc)))
}

/// `GET /rest/adhoc/{jid}`: the commands the target offers to the account.
async fn get_commands(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(query.as_deref(), &headers, |format, q| {
        handle_get(&gw, peer, path, q, &headers, format)
    })
    .await
}

async fn handle_get(
    gw: &Gateway,
    peer: Peer,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: QueryParams,
    headers: &HeaderMap,
    format: Format,
) -> Result<Response, ApiError> {
    crate::audit::note_action("list");
    let admitted = admit(gw, peer, headers, &query)?;
    let Path(jid) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let items = timed(gw.cfg.request_timeout, gw.app.list(&admitted.caller, &jid)).await?;
    Ok(document(format, rest::encode_items(format, &items)))
}

/// Negotiates the format, runs `handle` in it, and answers its error in the same format (the
/// audit layer logs the request).
async fn answer<F>(
    query: Option<&str>,
    headers: &HeaderMap,
    handle: impl FnOnce(Format, QueryParams) -> F,
) -> Response
where
    F: std::future::Future<Output = Result<Response, ApiError>>,
{
    let query = match parse_query(query.unwrap_or_default()) {
        Ok(q) => q,
        Err(e) => {
            let e = ApiError::bad_request(format!("the query string: {e}"));
            return e.into_response_in(fallback_format(headers));
        }
    };
    let format = match response_format(&query, headers) {
        Ok(f) => f,
        Err(e) => return e.into_response_in(fallback_format(headers)),
    };
    handle(format, query)
        .await
        .unwrap_or_else(|e| e.into_response_in(format))
}

/// `work` within `limit`, else 504. Not an `async fn`: one of those would hold `work` twice
/// (as its argument and inside the timeout), and a request's future is copied as it moves.
fn timed<T, E: Into<ApiError>>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> impl std::future::Future<Output = Result<T, ApiError>> {
    use futures_util::FutureExt;
    tokio::time::timeout(limit, work).map(move |r| match r {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ApiError::timeout(limit)),
    })
}

async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let format = format_of(&uri, &headers);
    ApiError::method_not_allowed(method.as_str(), "GET, POST").into_response_in(format)
}

async fn method_not_allowed_post(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let format = format_of(&uri, &headers);
    ApiError::method_not_allowed(method.as_str(), "POST").into_response_in(format)
}

async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    let format = format_of(&uri, &headers);
    ApiError::not_found().into_response_in(format)
}
