//! `POST /rest/stream/` and `POST /rest/stream/{to_jid}`: one serialized stanza (Tigase's
//! endpoint; with a JID in the path, the stanza goes to it). HTTP's part: the body is XML
//! whatever the client calls it, under the same limits and admission as every route; the
//! stanza, its rules and its answer are the application's (`app::stanza`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::Extension;

use super::error::{self, ApiError};
use super::query::QueryParams;
use super::{admit, answer, body, negotiate, timed, Gateway, Peer};
use crate::app::stanza::Relayed;
use crate::rest::Format;

/// `POST /rest/stream/`.
pub(super) async fn post_stream(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(query.as_deref(), &headers, |_, q| {
        handle(&gw, peer, q, &headers, body, None)
    })
    .await
}

/// `POST /rest/stream/{to_jid}`: the stanza's `to` is the path's JID (Tigase's rule).
pub(super) async fn post_stream_to(
    State(gw): State<Arc<Gateway>>,
    Extension(peer): Extension<Peer>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let headers = &headers;
    answer(query.as_deref(), headers, |_, q| async move {
        let Path(to) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
        handle(&gw, peer, q, headers, body, Some(&to)).await
    })
    .await
}

async fn handle(
    gw: &Gateway,
    peer: Peer,
    query: QueryParams,
    headers: &HeaderMap,
    body: Body,
    to: Option<&str>,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = negotiate::request_format(query.type_.as_deref(), ct)
        .map_err(|e| ApiError::not_acceptable(e.0))?;
    if format != Some(Format::Xml) {
        // A stanza is XML whatever the client calls it; a JSON body is not one.
        return Err(ApiError::unsupported_media_type());
    }
    let body = body::read(body, headers, gw.cfg.max_body, gw.cfg.body_timeout).await?;
    let admitted = admit(gw, peer, headers, &query)?;
    let work = gw.app.relay(&admitted.caller, &body, to);
    Ok(match timed(gw.cfg.request_timeout, work).await? {
        Relayed::Sent => error::accepted(),
        Relayed::Answer { stanza, failure } => {
            let failure = failure.map(ApiError::from);
            error::stanza(failure.as_ref(), stanza)
        }
    })
}
