//! `POST /rest/stream/`: one serialized stanza (Tigase's endpoint). HTTP's part: the body is
//! XML whatever the client calls it, under the same limits and admission as every route; the
//! stanza, its rules and its answer are the application's (`app::stanza`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
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
        handle(&gw, peer, q, &headers, body)
    })
    .await
}

async fn handle(
    gw: &Gateway,
    peer: Peer,
    query: QueryParams,
    headers: &HeaderMap,
    body: Body,
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
    let work = gw.app.relay(&admitted.caller, &body);
    Ok(match timed(gw.cfg.request_timeout, work).await? {
        Relayed::Sent => error::accepted(),
        Relayed::Answer { stanza, failure } => {
            let failure = failure.map(ApiError::from);
            error::stanza(failure.as_ref(), stanza)
        }
    })
}
