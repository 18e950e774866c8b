//! The REST resources beside `/rest/adhoc` (`/rest/sessions`, `/rest/users`,
//! `/rest/announce`): each request becomes one XEP-0133 command, run through the same
//! dispatcher as a command document (end-user-session's own handler included), under the same
//! admission and the same rules: a token must be allowed the very node run, at the account's
//! domain. Bodies and shapes are in `rest::resources`.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::error::{accepted, created, document, no_content, ApiError};
use super::query::QueryParams;
use super::{admit, answer, body, format_of, timed, Gateway, Incoming};
use crate::app::resources::{self as app};
use crate::audit;
use crate::rest::resources::{self as shapes, Resource};
use crate::rest::Format;

type JidPath = Result<Path<String>, PathRejection>;
type FullPath = Result<Path<(String, String)>, PathRejection>;

/// `GET /rest/sessions/{bare-jid}`: the account's online resources (user-stats).
pub(super) async fn get_sessions(incoming: Incoming, path: JidPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |format, q| async move {
        audit::note_action("list");
        let account = account(path)?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.sessions(&admitted.caller, &account);
        Ok(encoded(format, &timed(gw.cfg.request_timeout, work).await?))
    })
    .await
}

/// `DELETE /rest/sessions/{bare-jid}`: ends every session of the account.
pub(super) async fn delete_sessions(incoming: Incoming, path: JidPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |format, q| async move {
        audit::note_action("end");
        let account = account(path)?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.end_sessions(&admitted.caller, &account, &account);
        Ok(encoded(format, &timed(gw.cfg.request_timeout, work).await?))
    })
    .await
}

/// `DELETE /rest/sessions/{bare-jid}/{resource}`: ends one session.
pub(super) async fn delete_session(incoming: Incoming, path: FullPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |format, q| async move {
        audit::note_action("end");
        let Path((bare, resource)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let account = account(Ok(Path(bare)))?;
        let full = app::session(&account, &resource)?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.end_sessions(&admitted.caller, &account, &full);
        Ok(encoded(format, &timed(gw.cfg.request_timeout, work).await?))
    })
    .await
}

/// `POST /rest/users/{jid}` with a password: creates the account (201), 409 when it exists.
pub(super) async fn post_user(incoming: Incoming, path: JidPath, body: Body) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |format, q| async move {
        audit::note_action("create");
        let account = account(path)?;
        let password = password(&gw, &q, headers, body).await?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.create_user(&admitted.caller, &account, &password);
        let user = timed(gw.cfg.request_timeout, work).await?;
        Ok(created(format, shapes::encode(format, &user)))
    })
    .await
}

/// `DELETE /rest/users/{jid}`: 204, or 404 for an account the server does not know.
pub(super) async fn delete_user(incoming: Incoming, path: JidPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |_, q| async move {
        audit::note_action("delete");
        let account = account(path)?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.delete_user(&admitted.caller, &account);
        timed(gw.cfg.request_timeout, work).await?;
        Ok(no_content())
    })
    .await
}

/// `PUT /rest/users/{jid}/password` with the new password: 204, 404 when absent.
pub(super) async fn put_password(incoming: Incoming, path: JidPath, body: Body) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |_, q| async move {
        audit::note_action("set-password");
        let account = account(path)?;
        let password = password(&gw, &q, headers, body).await?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.set_password(&admitted.caller, &account, &password);
        timed(gw.cfg.request_timeout, work).await?;
        Ok(no_content())
    })
    .await
}

/// `POST /rest/announce/{domain}` with a body and a subject: 202 once the server took it.
pub(super) async fn post_announce(incoming: Incoming, path: JidPath, body: Body) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(query.as_deref(), headers, |_, q| async move {
        audit::note_action("announce");
        let Path(domain) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let domain = app::domain(&domain)?;
        let (format, bytes) = read_body(&gw, &q, headers, body).await?;
        let message = shapes::decode_announcement(format, &bytes)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let admitted = admit(&gw, peer, headers, &q)?;
        let work = gw.app.announce(&admitted.caller, &domain, &message);
        timed(gw.cfg.request_timeout, work).await?;
        Ok(accepted())
    })
    .await
}

/// 405 naming the methods a resource allows.
pub(super) async fn refuse(
    allow: &'static str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    ApiError::method_not_allowed(method.as_str(), allow).into_response_in(format_of(&uri, &headers))
}

/// The URL's account: a bare JID with a localpart.
fn account(path: JidPath) -> Result<String, ApiError> {
    let Path(written) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(app::account(&written)?)
}

/// The body (under the same deadline and limit as a command document) and its format.
async fn read_body(
    gw: &Gateway,
    q: &QueryParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Format, axum::body::Bytes), ApiError> {
    let (limit, deadline) = (gw.cfg.max_body, gw.cfg.body_timeout);
    body::read_document(body, headers, q.type_.as_deref(), limit, deadline).await
}

async fn password(
    gw: &Gateway,
    q: &QueryParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<String, ApiError> {
    let (format, bytes) = read_body(gw, q, headers, body).await?;
    shapes::decode_password(format, &bytes).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn encoded(format: Format, doc: &Resource) -> Response {
    document(format, shapes::encode(format, doc))
}
