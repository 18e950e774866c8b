//! Why a use case did not succeed, as one enum the HTTP side maps to statuses (`http/error.rs`
//! holds the contract's table). Every kind of failure below `app` (the policy's refusals, the
//! upstream's and the access budgets' errors, the commands' errors) becomes one of these here,
//! so `http` never names a type of theirs.

use std::time::Duration;

pub use crate::adhoc::condition::{condition_name, DefinedCondition, ErrorType};
use crate::adhoc::CommandError;
use crate::policy::Refusal;
use crate::upstream::{AccessError, UpstreamError};

/// A use case's failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// The request is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// A client field does not fit the command's form (400 naming the field).
    #[error("{text}")]
    BadField { field: String, text: String },
    /// No usable credentials, or the server refused them (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The account's domain is not served by the XMPP server (401).
    #[error("the XMPP server does not serve the domain {0}")]
    UnknownDomain(String),
    /// An unknown, revoked or expired token, or a required api-key missing (401, Bearer).
    #[error("{0}")]
    InvalidToken(String),
    /// The gateway's own rules refuse (403); nothing was sent.
    #[error("{0}")]
    Forbidden(String),
    /// A token's request rate is exceeded (429).
    #[error("the token's request rate is exceeded")]
    RateLimited(Duration),
    /// The account's `--stream-rate` is exceeded (429).
    #[error("the account's stanza rate is exceeded")]
    StreamRate(Duration),
    /// The failed-login budgets refuse (429).
    #[error("too many failed logins")]
    Throttled(Duration),
    /// The account has as many requests in flight as it may (503).
    #[error("the account is busy")]
    AccountBusy,
    /// The stanza the request makes is larger, as written, than `--max-stanza-bytes` (413);
    /// nothing was sent.
    #[error("the stanza is {size} bytes as written, over the limit of {max}")]
    StanzaTooLarge { size: usize, max: usize },
    /// The gateway could not talk to the XMPP server (502).
    #[error("{0}")]
    Upstream(String),
    /// The server answered something that is not what was asked for (502).
    #[error("unexpected answer from the XMPP server: {0}")]
    Malformed(String),
    /// The server answered with an IQ error.
    #[error("the server answered {}", condition_name(condition))]
    Xmpp {
        type_: ErrorType,
        condition: DefinedCondition,
        text: Option<String>,
    },
    /// The target does not offer this node to the account.
    #[error("no such command: {node}")]
    NodeNotOffered {
        node: String,
        condition: DefinedCondition,
        text: Option<String>,
    },
    /// A `sessionid` that is unknown, expired, or not this account's.
    #[error("no such command session")]
    UnknownSession,
    /// The account holds as many open command sessions as it may.
    #[error("too many open command sessions (at most {0} per account)")]
    TooManyStages(usize),
    /// The command completed but said it failed (`<note type='error'>`, 422).
    #[error("{0}")]
    Failed(String),
    /// The XMPP server did not answer the readiness probe.
    #[error("{0}")]
    NotReady(String),
}

impl Failure {
    /// A refusal the server said (in an IQ error or in words its table knows), as the IQ error
    /// ejabberd gives for it, so both servers' refusals read alike.
    pub(crate) fn refused(condition: DefinedCondition, text: String) -> Self {
        Failure::Xmpp {
            type_: ErrorType::Cancel,
            condition,
            text: Some(text).filter(|t| !t.is_empty()),
        }
    }
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::AuthFailed(_) => {
                Failure::Unauthorized("the XMPP server refused these credentials".into())
            }
            UpstreamError::HostUnknown(domain) => Failure::UnknownDomain(domain),
            UpstreamError::Throttled(wait) => Failure::Throttled(wait),
            UpstreamError::TooLarge { size, max } => Failure::StanzaTooLarge { size, max },
            other => Failure::Upstream(other.to_string()),
        }
    }
}

impl From<AccessError> for Failure {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Throttled(wait) => Failure::Throttled(wait),
            AccessError::Refused => {
                Failure::Unauthorized("the XMPP server refused these credentials".into())
            }
            AccessError::UnknownDomain(domain) => Failure::UnknownDomain(domain),
            AccessError::AccountBusy => Failure::AccountBusy,
            AccessError::Upstream(u) => u.into(),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InvalidToken(t) => Failure::InvalidToken(t),
            Refusal::Forbidden(t) => Failure::Forbidden(t),
            Refusal::RateLimited(wait) => Failure::RateLimited(wait),
        }
    }
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Upstream(u) => u.into(),
            CommandError::Xmpp {
                type_,
                condition,
                text,
            } => Failure::Xmpp {
                type_,
                condition,
                text,
            },
            CommandError::NodeNotOffered {
                node,
                condition,
                text,
            } => Failure::NodeNotOffered {
                node,
                condition,
                text,
            },
            CommandError::Field(f) => Failure::BadField {
                field: f.field,
                text: f.text,
            },
            CommandError::BadRequest(t) => Failure::BadRequest(t),
            CommandError::Refused(t) => Failure::Forbidden(t),
            CommandError::UnknownSession => Failure::UnknownSession,
            CommandError::TooManyStages(n) => Failure::TooManyStages(n),
            CommandError::Failed { text, .. } => Failure::Failed(text),
            CommandError::Malformed(t) => Failure::Malformed(t),
        }
    }
}
