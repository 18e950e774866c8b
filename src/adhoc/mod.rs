//! From the REST document to XEP-0050 command IQs and back. The generic path (`generic`) runs
//! any command; `end_user_session` keeps the seed's promise for that one command apart from
//! it. `xep0050` holds the wire types, `form` the filling and checking of forms.

pub mod address;
pub mod end_user_session;
pub mod form;
pub mod generic;
pub mod stages;
pub mod xep0050;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_xmpp::parsers::disco::{DiscoItemsQuery, DiscoItemsResult};
use tokio_xmpp::parsers::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::stanza_error::StanzaError;

use crate::rest::{self, CommandRequest, CommandResponse};
use crate::upstream::{AdminSession, IqKind, IqReply, UpstreamError};
use xep0050::{CommandReply, CommandRequestIq, Form, Status, NS_COMMANDS};

/// The node of XEP-0133's end-user-session.
pub const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";
/// The node of XEP-0133's user-stats.
pub const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";

/// Why a command could not be answered with a document.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// The gateway could not talk to the server.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The server answered with an IQ error.
    #[error("the server answered {condition} ({type_})")]
    Xmpp {
        type_: String,
        condition: String,
        text: Option<String>,
    },
    /// The target does not offer this node to the account (`service-unavailable` or
    /// `feature-not-implemented` for a node it does not list).
    #[error("no such command: {node}")]
    NodeNotOffered {
        node: String,
        condition: String,
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
    /// The command completed but said it failed (`<note type='error'>`).
    #[error("{0}")]
    Failed(String),
    /// The server's answer is not a command.
    #[error("unexpected answer from the server: {0}")]
    Malformed(String),
}

impl From<StanzaError> for CommandError {
    fn from(e: StanzaError) -> Self {
        CommandError::Xmpp {
            type_: kebab(&format!("{:?}", e.type_)),
            condition: kebab(&format!("{:?}", e.defined_condition)),
            text: e.texts.into_values().next().filter(|t| !t.is_empty()),
        }
    }
}

/// `ServiceUnavailable` -> `service-unavailable`, `Gone { .. }` -> `gone`.
fn kebab(debug: &str) -> String {
    let name = debug.split([' ', '{', '(']).next().unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// What a request addresses: the JID the client wrote, and where the IQs go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `{jid}` of the URL, as written (echoed back in `jid`).
    pub written: String,
    /// Where the IQs are sent: the domain for an alias such as `sess-man@domain`.
    pub to: Jid,
}

impl Target {
    /// Resolves the URL's `{jid}`: a bare JID or a domain; a resource or anything malformed is
    /// a bad request. Localparts in `aliases` stand for the domain itself.
    pub fn resolve(written: &str, aliases: &[String]) -> Result<Self, CommandError> {
        let bad = || CommandError::BadRequest(format!("{written:?} is not a bare JID or domain"));
        let jid = address::parse_jid(written).ok_or_else(bad)?;
        let bare = match jid.try_into_full() {
            Ok(_) => return Err(bad()),
            Err(bare) => bare,
        };
        let to = match bare.node() {
            Some(n) if aliases.iter().any(|a| a.as_str() == n.as_str()) => {
                Jid::from(BareJid::from_parts(None, bare.domain()))
            }
            _ => Jid::from(bare),
        };
        Ok(Self {
            written: written.to_string(),
            to,
        })
    }
}

/// What the gateway keeps across requests: forms learnt, sessions it ended lately, and the
/// command sessions clients keep open.
pub struct Memory {
    pub forms: FormMemory,
    pub kicks: end_user_session::RecentKicks,
    pub stages: stages::Stages,
}

impl Memory {
    /// `command_idle`: how long a kept command session may sit unused.
    pub fn new(command_idle: std::time::Duration) -> Self {
        Self {
            forms: FormMemory::default(),
            kicks: end_user_session::RecentKicks::default(),
            stages: stages::Stages::new(command_idle),
        }
    }
}

/// One request's context: who asks, on which stream, about what.
pub struct Call<'a> {
    pub session: &'a Arc<AdminSession>,
    /// The authenticated account.
    pub account: &'a BareJid,
    pub target: &'a Target,
    /// `?keep=1`: a command left executing stays open for the client (multi-stage).
    pub keep: bool,
    /// JIDs a JID-list field may carry.
    pub max_jids: usize,
}

/// Forms learnt from servers, so that a later request for the same stream, target and node
/// goes in one round trip. A new stream has a new JID, so what an old one learnt is never used
/// again; the map is bounded and simply cleared when full.
#[derive(Default)]
pub struct FormMemory {
    forms: Mutex<HashMap<(FullJid, Jid, String), Arc<Form>>>,
}

const FORM_MEMORY_LIMIT: usize = 4096;

impl FormMemory {
    fn get(&self, stream: &FullJid, to: &Jid, node: &str) -> Option<Arc<Form>> {
        let forms = self.forms.lock().ok()?;
        forms
            .get(&(stream.clone(), to.clone(), node.to_string()))
            .cloned()
    }

    fn put(&self, stream: &FullJid, to: &Jid, node: &str, form: Form) {
        if let Ok(mut forms) = self.forms.lock() {
            if forms.len() >= FORM_MEMORY_LIMIT {
                forms.clear();
            }
            forms.insert(
                (stream.clone(), to.clone(), node.to_string()),
                Arc::new(form),
            );
        }
    }

    fn forget(&self, stream: &FullJid, to: &Jid, node: &str) {
        if let Ok(mut forms) = self.forms.lock() {
            forms.remove(&(stream.clone(), to.clone(), node.to_string()));
        }
    }
}

/// Runs the command a client asked for.
pub async fn run(
    call: &Call<'_>,
    req: &CommandRequest,
    memory: &Memory,
) -> Result<CommandResponse, CommandError> {
    if req.sessionid.as_deref().is_some_and(|s| !s.is_empty()) {
        return memory.stages.resume(call, req).await;
    }
    let node = req
        .node
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CommandError::BadRequest("the command has no node".into()))?;
    if req
        .action
        .as_deref()
        .is_some_and(|a| !a.is_empty() && a != "execute")
    {
        return Err(CommandError::BadRequest(
            "an action other than execute needs the sessionid of a kept command".into(),
        ));
    }
    let result = if node == END_USER_SESSION && !req.fields.is_empty() && !call.keep {
        end_user_session::run(call, req, &memory.kicks).await
    } else {
        generic::run(call, node, req, memory).await
    };
    match result {
        Err(CommandError::Xmpp {
            condition, text, ..
        }) if matches!(
            condition.as_str(),
            "service-unavailable" | "feature-not-implemented"
        ) && !is_listed(call.session, call.target, node).await =>
        {
            Err(CommandError::NodeNotOffered {
                node: node.to_string(),
                condition,
                text,
            })
        }
        other => other,
    }
}

/// The commands `target` lists for the account (disco#items on the commands node).
pub async fn list_commands(
    session: &AdminSession,
    target: &Target,
) -> Result<Vec<rest::CommandItem>, CommandError> {
    let query = DiscoItemsQuery {
        node: Some(NS_COMMANDS.to_string()),
        rsm: None,
    };
    match session
        .iq(target.to.clone(), IqKind::Get, query.into())
        .await?
    {
        IqReply::Result(Some(payload)) => {
            let items = DiscoItemsResult::try_from(payload)
                .map_err(|e| CommandError::Malformed(format!("disco#items: {e}")))?;
            Ok(items
                .items
                .into_iter()
                .map(|i| rest::CommandItem {
                    jid: target.written.clone(),
                    node: i.node.unwrap_or_default(),
                    name: i.name,
                })
                .collect())
        }
        IqReply::Result(None) => Ok(Vec::new()),
        IqReply::Error(e) => Err((*e).into()),
    }
}

/// Whether `node` is among the target's listed commands (errors count as not listed).
async fn is_listed(session: &AdminSession, target: &Target, node: &str) -> bool {
    list_commands(session, target)
        .await
        .map(|items| items.iter().any(|i| i.node == node))
        .unwrap_or(false)
}

/// Sends one `<command/>` and reads the answer; an IQ error becomes [`CommandError::Xmpp`].
async fn send(
    session: &AdminSession,
    to: &Jid,
    cmd: CommandRequestIq<'_>,
) -> Result<CommandReply, CommandError> {
    command_reply(session.iq(to.clone(), IqKind::Set, cmd.to_element()).await)
}

/// Reads the answer to a `<command/>` IQ.
fn command_reply(reply: Result<IqReply, UpstreamError>) -> Result<CommandReply, CommandError> {
    match reply? {
        IqReply::Result(Some(payload)) => CommandReply::parse(&payload)
            .ok_or_else(|| CommandError::Malformed(format!("<{}/>", payload.name()))),
        IqReply::Result(None) => Err(CommandError::Malformed("an empty result".into())),
        IqReply::Error(e) => Err((*e).into()),
    }
}

/// Cancels an upstream command session without waiting for it: nothing is left open, and
/// the client's answer does not wait on it.
fn cancel_in_background(session: &Arc<AdminSession>, to: &Jid, node: &str, sessionid: &str) {
    let (session, to, node, sid) = (
        session.clone(),
        to.clone(),
        node.to_string(),
        sessionid.to_string(),
    );
    tokio::spawn(async move {
        let cmd = CommandRequestIq {
            node: &node,
            action: Some("cancel"),
            sessionid: Some(&sid),
            form: None,
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), send(&session, &to, cmd))
            .await;
    });
}

/// The REST document for a server's answer, as the contract maps it.
fn to_response(target: &Target, reply: &CommandReply) -> Result<CommandResponse, CommandError> {
    let note = merge_notes(reply);
    if reply.status == Status::Completed {
        if let Some(n) = note.as_ref().filter(|n| n.type_ == "error") {
            return Err(CommandError::Failed(n.value.clone()));
        }
    }
    let form = reply.form.as_ref();
    Ok(CommandResponse {
        jid: target.written.clone(),
        node: reply.node.clone(),
        status: (reply.status != Status::Completed).then(|| reply.status.as_str().to_string()),
        sessionid: None,
        actions: Vec::new(),
        fields: form
            .map(|f| f.fields.iter().map(to_rest_field).collect())
            .unwrap_or_default(),
        title: form.and_then(|f| f.title.clone()),
        instructions: form.and_then(|f| f.instructions.clone()),
        note,
        reported: form.and_then(to_reported),
    })
}

fn to_rest_field(f: &xep0050::Field) -> rest::ResponseField {
    rest::ResponseField {
        var: f.var.clone().unwrap_or_default(),
        label: f.label.clone(),
        type_: f.type_.clone(),
        values: f.values.clone(),
        options: f
            .options
            .iter()
            .map(|o| rest::FieldOption {
                label: o.label.clone(),
                value: o.value.clone(),
            })
            .collect(),
        required: f.required,
        desc: f.desc.clone(),
    }
}

fn to_reported(form: &Form) -> Option<rest::Reported> {
    let columns = form.reported.as_ref()?;
    Some(rest::Reported {
        columns: columns
            .iter()
            .map(|c| rest::Column {
                var: c.var.clone().unwrap_or_default(),
                label: c.label.clone(),
                type_: c.type_.clone(),
            })
            .collect(),
        items: form
            .items
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| rest::Cell {
                        var: cell.var.clone().unwrap_or_default(),
                        values: cell.values.clone(),
                    })
                    .collect()
            })
            .collect(),
    })
}

/// Several notes become one: their texts joined by a newline, under the most severe type.
fn merge_notes(reply: &CommandReply) -> Option<rest::Note> {
    let severity = |t: &str| match t {
        "error" => 2,
        "warn" => 1,
        _ => 0,
    };
    let worst = reply.notes.iter().max_by_key(|n| severity(&n.type_))?;
    Some(rest::Note {
        type_: worst.type_.clone(),
        value: reply
            .notes
            .iter()
            .map(|n| n.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases() -> Vec<String> {
        vec!["sess-man".into()]
    }

    #[test]
    fn the_session_manager_alias_means_the_domain() {
        let t = Target::resolve("sess-man@domain.com", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "domain.com");
        assert_eq!(t.written, "sess-man@domain.com");
        let t = Target::resolve("conference.domain.com", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "conference.domain.com");
        let t = Target::resolve("bot@domain.com", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "bot@domain.com");
    }

    #[test]
    fn resources_and_garbage_are_refused() {
        for bad in [
            "sess-man@domain.com/res",
            "@@",
            "",
            "a@",
            "sess-man@example.test;x=1",
        ] {
            assert!(Target::resolve(bad, &aliases()).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_are_named_as_in_xmpp() {
        assert_eq!(kebab("ServiceUnavailable"), "service-unavailable");
        assert_eq!(kebab("Gone { new_address: None }"), "gone");
        assert_eq!(kebab("Auth"), "auth");
    }

    #[test]
    fn notes_merge_under_the_most_severe_type() {
        let reply = CommandReply {
            node: "n".into(),
            sessionid: None,
            status: Status::Completed,
            actions: vec![],
            default_action: None,
            notes: vec![
                xep0050::Note {
                    type_: "info".into(),
                    text: "a".into(),
                },
                xep0050::Note {
                    type_: "warn".into(),
                    text: "b".into(),
                },
            ],
            form: None,
        };
        let n = merge_notes(&reply).unwrap();
        assert_eq!((n.type_.as_str(), n.value.as_str()), ("warn", "a\nb"));
    }
}
