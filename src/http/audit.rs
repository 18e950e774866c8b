//! The layer over every route that gives each `/rest/*` request its `X-Request-Id` (the
//! client's when sane, else a new one), a `request` span carrying it (so every line logged
//! while the request is handled names it), and exactly one audit line ([`crate::audit`]),
//! whichever way the request ends: an answer from a handler, a refusal before one (405, 404,
//! limits), or the request abandoned first (written as 499). A head hyper refuses (431) never
//! reaches the router, so it has no line. The same end counts the request in the metrics.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::{auth, Gateway, Peer};
use crate::audit::{self, Record};
use crate::metrics;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The condition of an error answer, put on the response by [`super::error::ApiError`] for
/// the audit line.
#[derive(Debug, Clone)]
pub struct Condition(pub String);

/// nginx's "client closed request": the request was dropped before its answer was ready.
const ABANDONED: u16 = 499;

pub(super) async fn layer(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !super::is_rest(path) {
        return next.run(req).await;
    }
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| audit::sane_request_id(v.as_bytes()))
        .map_or_else(audit::new_request_id, str::to_string);
    let client = req
        .extensions()
        .get::<Peer>()
        .map(|p| auth::client_addr(p.0, req.headers(), &gw.cfg.trusted_proxies).to_string())
        .unwrap_or_default();
    let record = Record::new(
        id.clone(),
        client,
        url_jid(path).to_string(),
        req.method().as_str(),
    );
    let record = Arc::new(Mutex::new(record));
    let mut pending = Pending(Some(record.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = audit::scope(record, next.run(req)).instrument(span).await;
    let condition = resp.extensions_mut().remove::<Condition>();
    // The audit line is never dropped: while stderr is slow and the log's queue full, the
    // answer waits here (the runtime does not), and the line goes out the moment there is room.
    crate::logging::room().await;
    if let Some(record) = pending.0.take() {
        let condition = condition.as_ref().map_or("", |c| c.0.as_str());
        finish(&record, resp.status().as_u16(), condition);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    // An answer of the API may hold what an account may see (the console shows it): no cache
    // keeps it.
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// The request's record until its line is written; dropped unwritten (hyper dropped the
/// request: its connection was closed to make room, or cut at shutdown), it writes the line
/// itself.
struct Pending(Option<Arc<Mutex<Record>>>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(record) = self.0.take() {
            finish(&record, ABANDONED, "connection-closed");
        }
    }
}

/// The request's end: its audit line, and its count and duration in the metrics (by status
/// and the bounded `node` label); a 429, whichever budget or rate refused it, is throttled.
fn finish(record: &Mutex<Record>, status: u16, condition: &str) {
    let record = record.lock().unwrap_or_else(PoisonError::into_inner);
    record.emit(status, condition);
    let node = match record.node.as_str() {
        "" => metrics::NO_NODE,
        node => metrics::node_label(node),
    };
    metrics::request(status, node, record.started.elapsed());
    if status == 429 {
        metrics::throttled();
    }
}

/// The JID in a `/rest/*` URL, as written: `/rest/adhoc/{jid}`, `/rest/sessions/{jid}` (and
/// `/{resource}`), `/rest/users/{jid}` (and `/password`), `/rest/announce/{domain}`.
fn url_jid(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/rest/") else {
        return "";
    };
    let (kind, rest) = rest.split_once('/').unwrap_or((rest, ""));
    match kind {
        "adhoc" | "sessions" | "announce" => rest,
        "users" => rest.strip_suffix("/password").unwrap_or(rest),
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::url_jid;

    #[test]
    fn the_url_jid_is_the_path_segment_as_written() {
        assert_eq!(
            url_jid("/rest/adhoc/sess-man@example.org"),
            "sess-man@example.org"
        );
        assert_eq!(url_jid("/rest/sessions/a@x/phone"), "a@x/phone");
        assert_eq!(url_jid("/rest/users/a@x/password"), "a@x");
        assert_eq!(url_jid("/rest/users/a%40x"), "a%40x");
        assert_eq!(url_jid("/rest/announce/example.org"), "example.org");
        assert_eq!(url_jid("/rest/stream/"), "");
        assert_eq!(url_jid("/rest/nothing/a@x"), "");
        assert_eq!(url_jid("/rest"), "");
    }
}
