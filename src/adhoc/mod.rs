//! From the REST document to XEP-0050 commands and back. The registry (`registry`) sends a
//! request to the handler registered for its node (`end_user_session` is the first), else to
//! the generic path (`generic`), which runs any command; `stages` keeps multi-stage commands
//! open for clients that ask. Everything talks to the XMPP server through one seam,
//! [`stream::CommandStream`], which the pool's session implements and the tests fake.
//! `xep0050` holds the wire types, `form` the filling and checking of forms, `reply` the
//! mapping of an answer to the document, `target` the URL's JID.

pub mod address;
pub mod condition;
pub mod end_user_session;
#[cfg(test)]
mod fake;
pub mod form;
pub mod generic;
pub mod outcome;
pub mod registry;
mod reply;
pub mod stages;
pub mod stream;
pub mod target;
pub mod wire;
pub mod xep0050;
pub mod xep0133;

use std::sync::Arc;

use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::stanza_error::StanzaError;

use crate::upstream::session::own::OwnStreams;
use crate::upstream::UpstreamError;
pub use condition::{DefinedCondition, ErrorType};
pub use outcome::{Answered, Outcome};
pub use registry::{Commands, Handler};
pub use stream::CommandStream;
pub use target::Target;
use xep0050::Command;

pub use xep0133::{
    ADD_USER, ANNOUNCE, CHANGE_USER_PASSWORD, DELETE_USER, END_USER_SESSION, GET_USER_LASTLOGIN,
    USER_STATS,
};

/// Why a command could not be answered with a document.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// The gateway could not talk to the server.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The server answered with an IQ error.
    #[error(
        "the server answered {} ({type_})",
        condition::condition_name(condition)
    )]
    Xmpp {
        type_: ErrorType,
        condition: DefinedCondition,
        text: Option<String>,
    },
    /// The target does not offer this node to the account (`service-unavailable` or
    /// `feature-not-implemented` for a node it does not list).
    #[error("no such command: {node}")]
    NodeNotOffered {
        node: String,
        condition: DefinedCondition,
        text: Option<String>,
    },
    /// A client field does not fit the command's form.
    #[error(transparent)]
    Field(#[from] form::FieldError),
    /// The request itself is wrong (no node, bad action, …).
    #[error("{0}")]
    BadRequest(String),
    /// A `sessionid` that is unknown, expired, or not this account's.
    #[error("no such command session")]
    UnknownSession,
    /// The account holds as many open command sessions as it may.
    #[error("too many open command sessions (at most {0} per account)")]
    TooManyStages(usize),
    /// The gateway's own rules refuse this node for this caller (nothing was sent).
    #[error("{0}")]
    Refused(String),
    /// The command completed but said it failed (`<note type='error'>`): its text, and the
    /// condition the server's words stand for where its table knows them
    /// ([`outcome::said`]), so that a refusal said in words reads like the IQ error another
    /// server gives for it.
    #[error("{text}")]
    Failed {
        text: String,
        says: Option<DefinedCondition>,
    },
    /// The server's answer is not a command.
    #[error("unexpected answer from the server: {0}")]
    Malformed(String),
}

impl From<StanzaError> for CommandError {
    fn from(e: StanzaError) -> Self {
        CommandError::Xmpp {
            type_: e.type_,
            condition: e.defined_condition,
            text: e.texts.into_values().next().filter(|t| !t.is_empty()),
        }
    }
}

/// One request's context: who asks, on which stream, about what.
pub struct Call<'a> {
    pub stream: &'a Arc<dyn CommandStream>,
    /// The authenticated account.
    pub account: &'a BareJid,
    pub target: &'a Target,
    /// `?keep=1`: a command left executing stays open for the client (multi-stage).
    pub keep: bool,
    /// JIDs a JID-list field may carry.
    pub max_jids: usize,
    /// The caller's rules: may it run this node? Asked by the dispatcher for every command
    /// before anything is sent, a kept session's node included.
    pub guard: &'a Guard<'a>,
    /// The gateway's own streams (this process's, and any replica's under the replica key):
    /// end-user-session never ends them.
    pub own: &'a OwnStreams,
}

/// A check of a node against the caller's rules (`Err` is refused, nothing sent).
pub type Guard<'a> = dyn Fn(&str) -> Result<(), CommandError> + Sync + 'a;

/// The guard of a caller without rules.
pub fn unguarded(_: &str) -> Result<(), CommandError> {
    Ok(())
}

/// Cancels an upstream command session without waiting for it: nothing is left open, and
/// the client's answer does not wait on it. The task ends within 10 s whatever the server does.
fn cancel_in_background(stream: &Arc<dyn CommandStream>, to: &Jid, node: &str, sessionid: &str) {
    let (stream, to) = (stream.clone(), to.clone());
    let cmd = Command::step(node, "cancel", sessionid, None);
    tokio::spawn(async move {
        let cancel = stream::run_one(stream.as_ref(), &to, cmd);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), cancel).await;
    });
}

#[cfg(test)]
mod tests {
    use super::condition::condition_name;
    use super::*;

    #[test]
    fn conditions_are_named_as_in_xmpp() {
        let e = StanzaError::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            "en",
            "",
        );
        match CommandError::from(e) {
            CommandError::Xmpp {
                type_,
                condition,
                text,
            } => {
                assert_eq!(
                    (type_, condition),
                    (ErrorType::Cancel, DefinedCondition::ServiceUnavailable)
                );
                assert_eq!(text, None);
            }
            other => panic!("{other:?}"),
        }
        let gone = DefinedCondition::Gone { new_address: None };
        let e = StanzaError::new(ErrorType::Modify, gone, "en", "moved");
        match CommandError::from(e) {
            CommandError::Xmpp {
                condition, text, ..
            } => {
                assert_eq!(condition_name(&condition), "gone");
                assert_eq!(text.as_deref(), Some("moved"));
            }
            other => panic!("{other:?}"),
        }
    }
}
