//! Every failure becomes one [`ApiError`], and the contract's status table lives here alone:
//! no other module names a status.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::{condition_name, DefinedCondition, ErrorType, Failure};
use crate::rest::{self, ErrorBody, Format};

/// An error answer: status, condition word, optional text and field, and the headers some
/// statuses need.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub condition: String,
    pub text: Option<String>,
    pub field: Option<String>,
    pub retry_after: Option<Duration>,
    /// The methods a 405 names in `Allow`.
    pub allow: Option<&'static str>,
    /// A 401 for a token: `WWW-Authenticate: Bearer error="invalid_token"` beside Basic's.
    pub bearer_challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, condition: &str, text: impl Into<String>) -> Self {
        Self {
            status,
            condition: condition.to_string(),
            text: Some(text.into()).filter(|t: &String| !t.is_empty()),
            field: None,
            retry_after: None,
            allow: None,
            bearer_challenge: false,
        }
    }

    /// 401 for an unknown, revoked or expired token, or a required api-key missing.
    pub fn invalid_token(text: impl Into<String>) -> Self {
        let mut e = Self::unauthorized(text);
        e.bearer_challenge = true;
        e
    }

    /// 403: the gateway's own rules refuse, before anything is sent upstream.
    pub fn forbidden(text: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", text)
    }

    /// 403: a web page of another site (`Origin`, `Sec-Fetch-Site`), refused before its
    /// credentials or its body are read.
    pub fn cross_site() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "cross-site-request",
            "requests from web pages of other sites are refused (Origin, Sec-Fetch-Site); the \
             gateway's operator may allow a site's origin with --cors-origin",
        )
    }

    /// 429: a token's request rate is exceeded.
    pub fn rate_limited(wait: Duration) -> Self {
        let text = "the token's request rate is exceeded; try again later";
        Self::too_many(text, wait)
    }

    /// 429: the account's `--stream-rate` is exceeded.
    pub fn stream_rate(wait: Duration) -> Self {
        let text = "this account's stanza rate (--stream-rate) is exceeded; try again later";
        Self::too_many(text, wait)
    }

    /// 500: the gateway itself is wrong (never a client's or the server's doing).
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-server-error",
            text,
        )
    }

    /// 429, to be tried again after `wait`.
    fn too_many(text: &str, wait: Duration) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", text).retry_after(wait)
    }

    /// The answer asks the client to wait `wait` (`Retry-After`).
    fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// 404: no such route.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such endpoint: use /rest/adhoc/{jid}",
        )
    }

    /// 405, naming the methods that are allowed.
    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("{method} is not allowed here: use {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// 406: the client asked for a format the gateway does not speak.
    pub fn not_acceptable(text: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "not-acceptable", text)
    }

    /// 408: the body did not arrive in time.
    pub fn request_timeout(deadline: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!("the request body did not arrive within {deadline:?}"),
        )
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the body exceeds {limit} bytes"),
        )
    }

    /// 415: a body neither XML nor JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send Content-Type: application/xml, text/xml or application/json",
        )
    }

    /// 501: something of HTTP the gateway does not implement (a transfer coding).
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not-implemented", text)
    }

    /// 504: no answer from the server in time.
    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("no answer from the XMPP server within {limit:?}"),
        )
    }

    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", text)
    }

    pub fn unauthorized(text: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", text)
    }

    /// 503 at a concurrency limit, with a short `Retry-After`.
    pub fn overloaded(text: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", text)
            .retry_after(Duration::from_secs(1))
    }

    /// 401 for an account whose domain the XMPP server does not serve.
    fn unknown_domain(domain: &str) -> Self {
        Self::unauthorized(format!(
            "the XMPP server behind this gateway does not serve the domain {domain}: the user \
             name must be an account of a domain it serves"
        ))
    }

    /// 503 from `GET /readyz`: the XMPP server did not answer the readiness probe.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream-unavailable",
            reason,
        )
        .retry_after(crate::app::READINESS_FRESH_FOR)
    }

    /// 503 from `GET /readyz` once the gateway drains (SIGTERM): take it out of rotation. No
    /// `Retry-After`: it is on its way out.
    pub fn draining() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the gateway is shutting down: it serves what still arrives until it stops \
             accepting (--drain-delay)",
        )
    }

    pub fn throttled(retry_after: Duration) -> Self {
        Self::too_many("too many failed logins; try again later", retry_after)
    }

    /// The response, its body in `format`.
    pub fn into_response_in(self, format: Format) -> Response {
        let body = rest::encode_error(
            format,
            &ErrorBody {
                status: self.status.as_u16(),
                condition: self.condition.clone(),
                text: self.text,
                field: self.field,
            },
        );
        let mut resp = (self.status, body).into_response();
        resp.extensions_mut()
            .insert(super::audit::Condition(self.condition));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, content_type(format));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"xmpp-rest-gateway\", charset=\"UTF-8\""),
            );
            if self.bearer_challenge {
                h.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"xmpp-rest-gateway\", error=\"invalid_token\"",
                    ),
                );
            }
        }
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(wait) = self.retry_after {
            // Rounded up, so a client that honours it is never refused again for it.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

/// A 200 answer carrying a document in `format`.
pub fn document(format: Format, body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type(format));
    resp
}

/// 202 with no body: a stanza written to the server, which sends nothing back for it.
pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// An answer stanza as the body (`application/xml`): 200 for a result, else the status of
/// `error`, the contract's status for the stanza's error.
pub fn stanza(error: Option<&ApiError>, body: Vec<u8>) -> Response {
    let status = error.map_or(StatusCode::OK, |e| e.status);
    let mut resp = (status, body).into_response();
    if let Some(e) = error {
        resp.extensions_mut()
            .insert(super::audit::Condition(e.condition.clone()));
    }
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type(Format::Xml));
    resp
}

/// 201 with a document: a resource created.
pub fn created(format: Format, body: Vec<u8>) -> Response {
    (StatusCode::CREATED, document(format, body)).into_response()
}

/// 204 without a body: done.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The `Content-Type` of a body in `format`.
pub fn content_type(format: Format) -> HeaderValue {
    HeaderValue::from_static(match format {
        Format::Xml => "application/xml",
        Format::Json => "application/json",
    })
}

impl From<Failure> for ApiError {
    fn from(e: Failure) -> Self {
        match e {
            Failure::BadRequest(t) => Self::bad_request(t),
            Failure::BadField { field, text } => {
                let mut e = Self::bad_request(text);
                e.field = Some(field);
                e
            }
            Failure::Unauthorized(t) => Self::unauthorized(t),
            Failure::UnknownDomain(domain) => Self::unknown_domain(&domain),
            Failure::InvalidToken(t) => Self::invalid_token(t),
            Failure::Forbidden(t) => Self::forbidden(t),
            Failure::RateLimited(wait) => Self::rate_limited(wait),
            Failure::StreamRate(wait) => Self::stream_rate(wait),
            Failure::Throttled(wait) => Self::throttled(wait),
            Failure::AccountBusy => Self::overloaded(
                "this account has as many requests in flight as it may; retry shortly",
            ),
            Failure::StanzaTooLarge { size, max } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!(
                    "the stanza would be {size} bytes as written (after escaping), over the \
                     gateway's limit of {max} (--max-stanza-bytes); nothing was sent"
                ),
            ),
            Failure::Upstream(t) => Self::new(StatusCode::BAD_GATEWAY, "upstream-unavailable", t),
            Failure::Xmpp {
                type_,
                condition,
                text,
            } => {
                let status = status_for(type_, &condition);
                let mut e = Self::new(status, condition_name(&condition), text.unwrap_or_default());
                e.text = e.text.or_else(|| Some(default_text(status).into()));
                e
            }
            Failure::NodeNotOffered {
                node,
                condition,
                text,
            } => Self::new(
                StatusCode::NOT_FOUND,
                condition_name(&condition),
                text.unwrap_or_else(|| {
                    format!("the target offers no command {node:?} to this account")
                }),
            ),
            Failure::UnknownSession => Self::new(
                StatusCode::NOT_FOUND,
                "item-not-found",
                "no such command session (unknown, expired, or not this account's)",
            ),
            Failure::TooManyStages(n) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "resource-constraint",
                format!("too many open command sessions (at most {n} per account)"),
            ),
            Failure::Failed(t) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "command-failed", t),
            Failure::Malformed(t) => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream-error",
                format!("unexpected answer from the XMPP server: {t}"),
            ),
            Failure::NotReady(reason) => Self::not_ready(reason),
        }
    }
}

/// The contract's table for an upstream IQ error; unlisted conditions go by their type.
fn status_for(type_: ErrorType, condition: &DefinedCondition) -> StatusCode {
    use DefinedCondition as C;
    match condition {
        C::BadRequest | C::JidMalformed | C::NotAcceptable => StatusCode::BAD_REQUEST,
        C::Forbidden | C::NotAllowed | C::NotAuthorized => StatusCode::FORBIDDEN,
        C::ItemNotFound => StatusCode::NOT_FOUND,
        C::Conflict => StatusCode::CONFLICT,
        C::InternalServerError | C::RemoteServerNotFound | C::ServiceUnavailable => {
            StatusCode::BAD_GATEWAY
        }
        C::ResourceConstraint => StatusCode::SERVICE_UNAVAILABLE,
        C::RemoteServerTimeout => StatusCode::GATEWAY_TIMEOUT,
        _ => match type_ {
            ErrorType::Auth => StatusCode::FORBIDDEN,
            ErrorType::Wait => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

fn default_text(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("error")
}

#[cfg(test)]
mod tests;
