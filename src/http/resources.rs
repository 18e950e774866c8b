//! The REST resources beside `/rest/adhoc` (`/rest/sessions`, `/rest/users`,
//! `/rest/announce`): each request becomes one XEP-0133 command, run through the same
//! dispatcher as a command document (end-user-session's own handler included), under the same
//! admission and the same rules: a token must be allowed the very node run, at the account's
//! domain. Bodies and shapes are in `rest::resources`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use super::caller::{self, Caller};
use super::error::{accepted, created, document, no_content, ApiError};
use super::query::QueryParams;
use super::{admit, answer, body, format_of, timed, Gateway, Incoming, Peer};
use crate::adhoc::{self, address, CommandError, CommandStream, Target};
use crate::adhoc::{END_USER_SESSION, USER_STATS};
use crate::rest::resources::{self as shapes, Resource};
use crate::rest::{CommandRequest, CommandResponse, FieldValue, Format, RequestField};

const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
const DELETE_USER: &str = "http://jabber.org/protocol/admin#delete-user";
const CHANGE_PASSWORD: &str = "http://jabber.org/protocol/admin#change-user-password";
const ANNOUNCE: &str = "http://jabber.org/protocol/admin#announce";

/// Prosody completes these commands with an error (or info) note instead of an IQ error.
const PROSODY_EXISTS: &str = "already exists";
const PROSODY_NO_USER: &str = "does not exist";
const PROSODY_NOT_DELETED: &str = "could not be deleted";

type JidPath = Result<Path<String>, PathRejection>;
type FullPath = Result<Path<(String, String)>, PathRejection>;

/// `GET /rest/sessions/{bare-jid}`: the account's online resources (user-stats).
pub(super) async fn get_sessions(incoming: Incoming, path: JidPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer("GET", query.as_deref(), headers, |format, q| async move {
        let account = account(path)?;
        let fields = vec![single("accountjid", &account)];
        let doc = run(&gw, peer, headers, &q, &account, USER_STATS, vec![fields])
            .await
            .map_err(|e| failed_as(e, PROSODY_NO_USER, "item-not-found"))?;
        let listed = shapes::sessions(&account, shapes::online_resources(&doc));
        Ok(encoded(format, &listed))
    })
    .await
}

/// `DELETE /rest/sessions/{bare-jid}`: ends every session of the account.
pub(super) async fn delete_sessions(incoming: Incoming, path: JidPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(
        "DELETE",
        query.as_deref(),
        headers,
        |format, q| async move {
            let account = account(path)?;
            end_sessions(&gw, peer, headers, &q, format, &account, &account).await
        },
    )
    .await
}

/// `DELETE /rest/sessions/{bare-jid}/{resource}`: ends one session.
pub(super) async fn delete_session(incoming: Incoming, path: FullPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer(
        "DELETE",
        query.as_deref(),
        headers,
        |format, q| async move {
            let Path((bare, resource)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
            let account = account(Ok(Path(bare)))?;
            let full = format!("{account}/{resource}");
            let valid = address::parse_jid(&full).is_some_and(|j| j.resource().is_some());
            if !valid {
                return Err(ApiError::bad_request(format!(
                    "{resource:?} is not a resource"
                )));
            }
            end_sessions(&gw, peer, headers, &q, format, &account, &full).await
        },
    )
    .await
}

/// end-user-session through its handler, which learns what is online and reports only the
/// sessions it really ended.
async fn end_sessions(
    gw: &Gateway,
    peer: Peer,
    headers: &HeaderMap,
    q: &QueryParams,
    format: Format,
    account: &str,
    jid: &str,
) -> Result<Response, ApiError> {
    let fields = vec![multi("accountjids", jid)];
    let doc = run(
        gw,
        peer,
        headers,
        q,
        account,
        END_USER_SESSION,
        vec![fields],
    )
    .await?;
    Ok(encoded(
        format,
        &shapes::ended(account, shapes::ended_sessions(&doc)),
    ))
}

/// `POST /rest/users/{jid}` with a password: creates the account (201), 409 when it exists.
pub(super) async fn post_user(incoming: Incoming, path: JidPath, body: Body) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer("POST", query.as_deref(), headers, |format, q| async move {
        let account = account(path)?;
        let password = password(&gw, &q, headers, body).await?;
        let fields = vec![
            single("accountjid", &account),
            single("password", &password),
            single("password-verify", &password),
        ];
        run(&gw, peer, headers, &q, &account, ADD_USER, vec![fields])
            .await
            .map_err(|e| failed_as(e, PROSODY_EXISTS, "conflict"))?;
        Ok(created(
            format,
            shapes::encode(format, &shapes::user(&account)),
        ))
    })
    .await
}

/// `DELETE /rest/users/{jid}`: 204, or 404 for an account the server does not know.
pub(super) async fn delete_user(incoming: Incoming, path: JidPath) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer("DELETE", query.as_deref(), headers, |_, q| async move {
        let account = account(path)?;
        let fields = vec![multi("accountjids", &account)];
        let doc = run(&gw, peer, headers, &q, &account, DELETE_USER, vec![fields]).await?;
        // Prosody completes with an info note naming what it could not delete.
        match doc.note.filter(|n| n.value.contains(PROSODY_NOT_DELETED)) {
            Some(n) => Err(as_condition("item-not-found", n.value)),
            None => Ok(no_content()),
        }
    })
    .await
}

/// `PUT /rest/users/{jid}/password` with the new password: 204, 404 when absent.
pub(super) async fn put_password(incoming: Incoming, path: JidPath, body: Body) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer("PUT", query.as_deref(), headers, |_, q| async move {
        let account = account(path)?;
        let password = password(&gw, &q, headers, body).await?;
        let fields = vec![
            single("accountjid", &account),
            single("password", &password),
        ];
        run(
            &gw,
            peer,
            headers,
            &q,
            &account,
            CHANGE_PASSWORD,
            vec![fields],
        )
        .await
        .map_err(|e| failed_as(e, PROSODY_NO_USER, "item-not-found"))?;
        Ok(no_content())
    })
    .await
}

/// `POST /rest/announce/{domain}` with a body and a subject: 202 once the server took it.
pub(super) async fn post_announce(incoming: Incoming, path: JidPath, body: Body) -> Response {
    let (gw, peer, query, headers) = incoming.into_parts();
    let headers = &headers;
    answer("POST", query.as_deref(), headers, |_, q| async move {
        let Path(domain) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
        if !address::valid_domain(&domain) {
            return Err(ApiError::bad_request(format!("{domain:?} is not a domain")));
        }
        let body = read_body(&gw, &q, headers, body).await?;
        let (format, bytes) = body;
        let message = shapes::decode_announcement(format, &bytes)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = |body_var: &str| {
            let mut fields = vec![multi(body_var, &message.body)];
            fields.extend(message.subject.as_deref().map(|s| single("subject", s)));
            fields
        };
        // XEP-0133 and Prosody name the body `announcement`, ejabberd `body`.
        let attempts = vec![fields("announcement"), fields("body")];
        run(&gw, peer, headers, &q, &domain, ANNOUNCE, attempts).await?;
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
    match address::parse_jid(&written) {
        Some(j) if j.node().is_some() && j.resource().is_none() => Ok(j.to_string()),
        _ => Err(ApiError::bad_request(format!(
            "{written:?} is not an account's bare JID"
        ))),
    }
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

/// Runs `node` at the domain of `addressed`, admitted as `/rest/adhoc` is. `attempts` are
/// field sets tried in order while the command's form refuses a field (the servers name some
/// fields differently), all under one admission.
async fn run(
    gw: &Gateway,
    peer: Peer,
    headers: &HeaderMap,
    q: &QueryParams,
    addressed: &str,
    node: &str,
    attempts: Vec<Vec<RequestField>>,
) -> Result<CommandResponse, ApiError> {
    super::observe::note_node(Some(node));
    let caller = Caller::admit(gw, peer, headers, q.api_key.as_deref())?;
    let _permit = admit(gw)?;
    let domain = addressed.rsplit('@').next().unwrap_or(addressed);
    let target = Target::resolve(domain, &gw.cfg.aliases)?;
    let requests: Vec<CommandRequest> = attempts
        .into_iter()
        .map(|fields| CommandRequest {
            node: Some(node.into()),
            fields,
            ..CommandRequest::default()
        })
        .collect();
    let mut domains: Vec<String> = Vec::new();
    for request in &requests {
        for d in caller::target_domains(&target, request) {
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
    }
    let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
    let guard = |node: &str| caller.may_run(gw, node, &domains);
    guard(node)?;
    let work = async {
        let admitted = caller.stream(gw).await?;
        let stream: Arc<dyn CommandStream> = admitted.session.clone();
        let call = adhoc::Call {
            stream: &stream,
            account: &caller.account,
            target: &target,
            keep: false,
            max_jids: gw.cfg.max_jids,
            guard: &guard,
        };
        let mut answer = Err(CommandError::BadRequest("nothing to run".into()));
        for request in &requests {
            answer = gw.commands.run(&call, request).await;
            if !matches!(answer, Err(CommandError::Field(_))) {
                break;
            }
        }
        Ok::<_, ApiError>(answer?)
    };
    let doc = timed(gw.cfg.request_timeout, work).await?;
    let ignored = doc
        .note
        .as_ref()
        .is_some_and(|n| n.value.contains("these fields were ignored"));
    if doc.status.is_some() || ignored {
        // Still executing (a form again), canceled, or completed without taking the fields:
        // nothing was done, whatever a success status would say.
        let e = CommandError::Malformed(format!("{node} did not complete"));
        return Err(e.into());
    }
    Ok(doc)
}

/// A command that completed with an error note saying `says` (Prosody's way) answers as the
/// IQ error ejabberd gives for the same case, so both servers' refusals read alike.
fn failed_as(e: ApiError, says: &str, condition: &str) -> ApiError {
    let failed = e.condition == "command-failed";
    match e.text {
        Some(t) if failed && t.contains(says) => as_condition(condition, t),
        _ => e,
    }
}

fn as_condition(condition: &str, text: String) -> ApiError {
    ApiError::from(CommandError::Xmpp {
        type_: "cancel".into(),
        condition: condition.into(),
        text: Some(text),
    })
}

fn encoded(format: Format, doc: &Resource) -> Response {
    document(format, shapes::encode(format, doc))
}

fn single(var: &str, value: &str) -> RequestField {
    RequestField {
        var: var.into(),
        value: Some(FieldValue::Single(value.into())),
    }
}

fn multi(var: &str, value: &str) -> RequestField {
    RequestField {
        var: var.into(),
        value: Some(FieldValue::List(vec![value.into()])),
    }
}
