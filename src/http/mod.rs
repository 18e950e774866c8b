//! The HTTP surface: `POST` and `GET /rest/adhoc/{jid}`, Basic authentication against the
//! XMPP server (with the failed-login throttle), content negotiation, limits (body size,
//! requests in flight, request timeout); the accept loop and connection limits are in [`listener`].

pub mod auth;
pub mod error;
pub mod listener;
pub mod negotiate;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Extension, Router};
use tokio::sync::Semaphore;

use crate::adhoc::{self, Memory, Target};
use crate::config::Config;
use crate::rest::{self, Format};
use crate::upstream::{AdminSession, SessionPool};
use error::{content_type, ApiError};
use throttle::LoginThrottle;

pub use listener::serve;

/// Everything a request handler needs, shared by all of them.
pub struct Gateway {
    cfg: Config,
    pool: SessionPool,
    memory: Memory,
    throttle: LoginThrottle,
    in_flight: Arc<Semaphore>,
}

/// The peer of the connection a request came on.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

impl Gateway {
    pub fn new(cfg: Config, pool: SessionPool) -> Self {
        Self {
            throttle: LoginThrottle::new(cfg.throttle),
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight)),
            memory: Memory::new(cfg.command_idle),
            pool,
            cfg,
        }
    }
}

/// The routes.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/rest/adhoc/{jid}",
            post(post_command)
                .get(get_commands)
                .fallback(method_not_allowed),
        )
        .fallback(any(not_found))
        .with_state(gw)
}

/// The response format for a request, from its query, `Accept` and `Content-Type`.
fn response_format(query: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    let type_param = query_param(query, "type");
    let h = |name| headers.get(name).and_then(|v| v.to_str().ok());
    negotiate::response_format(
        type_param.as_deref(),
        h(header::ACCEPT),
        h(header::CONTENT_TYPE),
    )
    .map_err(|e| ApiError::new(StatusCode::NOT_ACCEPTABLE, "not-acceptable", e.0))
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// The format for an error body when negotiation itself failed: what the body spoke, else XML.
fn fallback_format(headers: &HeaderMap) -> Format {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    negotiate::body_format(ct).unwrap_or(Format::Xml)
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1]).zip(hex(bytes[i + 2])),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some((hi, lo)), _) => {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /rest/adhoc/{jid}`: run one command.
async fn post_command(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = match response_format(query.as_deref(), &headers) {
        Ok(f) => f,
        Err(e) => return e.into_response_in(fallback_format(&headers)),
    };
    let started = Instant::now();
    let result = handle_post(&gw, peer, path, query.as_deref(), &headers, body, format).await;
    finish("POST", started, format, result)
}

async fn handle_post(
    gw: &Gateway,
    peer: Peer,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    format: Format,
) -> Result<Response, ApiError> {
    let keep = match query_param(query, "keep").as_deref() {
        None | Some("0" | "false") => false,
        Some("" | "1" | "true") => true,
        Some(_) => return Err(ApiError::bad_request("keep takes 1 or 0")),
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body_format = negotiate::body_format(ct).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send Content-Type: application/xml, text/xml or application/json",
        )
    })?;
    // Admission in order: the body under its own deadline, then credentials, then a place in
    // flight, so that a client that never finishes its body holds no place.
    let body = read_body(body, headers, gw.cfg.max_body, gw.cfg.body_timeout).await?;
    let creds = auth::credentials(headers, gw.cfg.domain.as_deref())?;
    let _permit = admit(gw)?;
    let request = rest::decode_request(body_format, &body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let target = target(path, &gw.cfg.aliases)?;
    let work = async {
        let session = authenticate(gw, peer, headers, &creds).await?;
        let call = adhoc::Call {
            session: &session,
            account: &creds.account,
            target: &target,
            keep,
        };
        Ok::<_, ApiError>(adhoc::run(&call, &request, &gw.memory).await?)
    };
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
    let format = match response_format(query.as_deref(), &headers) {
        Ok(f) => f,
        Err(e) => return e.into_response_in(fallback_format(&headers)),
    };
    let started = Instant::now();
    let result = handle_get(&gw, peer, path, &headers, format).await;
    finish("GET", started, format, result)
}

async fn handle_get(
    gw: &Gateway,
    peer: Peer,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: &HeaderMap,
    format: Format,
) -> Result<Response, ApiError> {
    let creds = auth::credentials(headers, gw.cfg.domain.as_deref())?;
    let _permit = admit(gw)?;
    let target = target(path, &gw.cfg.aliases)?;
    let work = async {
        let session = authenticate(gw, peer, headers, &creds).await?;
        Ok::<_, ApiError>(adhoc::list_commands(&session, &target).await?)
    };
    let items = timed(gw.cfg.request_timeout, work).await?;
    Ok(document(format, rest::encode_items(format, &items)))
}

/// A place among the requests in flight, or 503 at the limit.
fn admit(gw: &Gateway) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    gw.in_flight.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the gateway is at its limit of requests in flight",
        )
    })
}

fn finish(
    method: &str,
    started: Instant,
    format: Format,
    r: Result<Response, ApiError>,
) -> Response {
    let resp = r.unwrap_or_else(|e| e.into_response_in(format));
    tracing::info!(
        method,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

fn document(format: Format, body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type(format));
    resp
}

async fn timed<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("no answer from the XMPP server within {limit:?}"),
        ))
    })
}

fn target(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    aliases: &[String],
) -> Result<Target, ApiError> {
    let Path(jid) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Target::resolve(&jid, aliases)?)
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body exceeds {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!("the request body did not arrive within {deadline:?}"),
            )
        })?;
    read.map_err(|e| {
        let length_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if length_limit {
            too_large()
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })
}

/// A session for these credentials: the warm one when they match it, else a fresh login,
/// within the failed-login budgets.
async fn authenticate(
    gw: &Gateway,
    peer: Peer,
    headers: &HeaderMap,
    creds: &auth::Credentials,
) -> Result<Arc<AdminSession>, ApiError> {
    let addr = auth::client_addr(peer.0, headers, &gw.cfg.trusted_proxies);
    gw.throttle
        .check_pair(&creds.account, addr)
        .map_err(ApiError::throttled)?;
    if let Some(s) = gw.pool.warm(&creds.account, &creds.password) {
        return Ok(s);
    }
    gw.throttle
        .check_login(&creds.account, addr)
        .map_err(ApiError::throttled)?;
    match gw.pool.login(&creds.account, &creds.password).await {
        Ok(s) => {
            gw.throttle.succeeded(&creds.account, addr);
            Ok(s)
        }
        Err(e) => {
            if matches!(e, crate::upstream::UpstreamError::AuthFailed(_)) {
                tracing::info!(account = %creds.account, %addr, "login refused");
                gw.throttle.failed(&creds.account, addr);
            } else {
                tracing::warn!(account = %creds.account, error = %e, "login failed");
            }
            Err(e.into())
        }
    }
}

async fn method_not_allowed(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let format =
        response_format(uri.query(), &headers).unwrap_or_else(|_| fallback_format(&headers));
    let mut resp = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed here: use GET or POST"),
    )
    .into_response_in(format);
    resp.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
    resp
}

async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    let format =
        response_format(uri.query(), &headers).unwrap_or_else(|_| fallback_format(&headers));
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint: use /rest/adhoc/{jid}",
    )
    .into_response_in(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("application%2Fjson"), "application/json");
        assert_eq!(percent_decode("a+b%"), "a b%");
    }
}
