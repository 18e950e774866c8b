//! Multi-stage commands, which Tigase cannot run: a command left `executing` for a client that
//! asked to keep it (`?keep=1`) gets a `sessionid` of the gateway's own, and the client goes on
//! stage by stage by POSTing it with an `action` and its fields.
//!
//! The id is random and stands for one account, one upstream stream and one upstream session
//! (the servers accept invented ids and ejabberd's are timestamps, so theirs is never shown).
//! It expires after an idle while and dies with its stream; an unknown, expired or foreign id
//! is answered exactly alike (404), so nobody learns that an id exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_xmpp::parsers::jid::{BareJid, Jid};

use super::xep0050::{CommandReply, CommandRequestIq, Form, Status};
use super::{cancel_in_background, form, send, to_response, Call, CommandError};
use crate::rest::{CommandRequest, CommandResponse};
use crate::upstream::AdminSession;

/// The open command sessions of all clients.
pub struct Stages {
    idle: Duration,
    open: Mutex<HashMap<String, Stage>>,
}

/// One open upstream command session.
struct Stage {
    account: BareJid,
    session: Arc<AdminSession>,
    /// Where the command runs.
    to: Jid,
    /// The URL's `{jid}` as written, and the node: a continuation must name the same.
    target: String,
    node: String,
    upstream_sid: String,
    /// The current stage's form (what the next submission is checked against).
    form: Option<Form>,
    /// The action that submits the current stage when the client names none.
    default_action: String,
    last_used: Instant,
}

/// Open sessions a single account may hold, so that a client cannot grow the map without end.
const PER_ACCOUNT: usize = 64;

impl Stages {
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the command session `reply` opened and answers it with the gateway's id.
    pub(super) fn keep(
        &self,
        call: &Call<'_>,
        reply: &CommandReply,
    ) -> Result<CommandResponse, CommandError> {
        let mut doc = to_response(call.target, reply)?;
        let Some(upstream_sid) = reply.sessionid.clone() else {
            return Ok(doc);
        };
        let id = format!("{:032x}", rand::random::<u128>());
        let stage = Stage {
            account: call.account.clone(),
            session: call.session.clone(),
            to: call.target.to.clone(),
            target: call.target.written.clone(),
            node: reply.node.clone(),
            upstream_sid,
            form: reply.form.clone(),
            default_action: reply.submit_action().to_string(),
            last_used: Instant::now(),
        };
        let mut open = self.lock();
        self.sweep(&mut open);
        let held = open.values().filter(|s| s.account == stage.account).count();
        if held >= PER_ACCOUNT {
            drop(open);
            cancel_in_background(
                call.session,
                &call.target.to,
                &stage.node,
                &stage.upstream_sid,
            );
            return Err(CommandError::TooManyStages(PER_ACCOUNT));
        }
        open.insert(id.clone(), stage);
        doc.sessionid = Some(id);
        doc.actions = offered_actions(reply);
        Ok(doc)
    }

    /// Goes on with the session `req.sessionid`: the next stage, the result, or `canceled`.
    pub(super) async fn resume(
        &self,
        call: &Call<'_>,
        req: &CommandRequest,
    ) -> Result<CommandResponse, CommandError> {
        let id = req.sessionid.as_deref().unwrap_or_default();
        let action = req.action.as_deref().filter(|a| !a.is_empty());
        if let Some(a) = action {
            if !matches!(a, "execute" | "next" | "prev" | "complete" | "cancel") {
                return Err(CommandError::BadRequest(format!(
                    "action {a:?}: use execute, next, prev, complete or cancel"
                )));
            }
        }
        // Taken out while in use: a second request with the same id meanwhile is a 404.
        let stage = self.take(id, call, req)?;
        let action = action.unwrap_or(&stage.default_action).to_string();
        let submission = match action.as_str() {
            "cancel" | "prev" => None,
            _ => match &stage.form {
                Some(f) => match form::fill(f, &req.fields, call.max_jids) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // A typo costs one retry, not the session.
                        self.put_back(id, stage);
                        return Err(e.into());
                    }
                },
                None => None,
            },
        };
        let cmd = CommandRequestIq {
            node: &stage.node,
            action: Some(&action),
            sessionid: Some(&stage.upstream_sid),
            form: submission.as_ref(),
        };
        let reply = send(&stage.session, &stage.to, cmd).await?;
        if reply.status != Status::Executing {
            return to_response(call.target, &reply);
        }
        let mut doc = to_response(call.target, &reply)?;
        doc.sessionid = Some(id.to_string());
        doc.actions = offered_actions(&reply);
        let next = Stage {
            form: reply.form.clone(),
            default_action: reply.submit_action().to_string(),
            last_used: Instant::now(),
            upstream_sid: reply
                .sessionid
                .clone()
                .unwrap_or(stage.upstream_sid.clone()),
            ..stage
        };
        self.put_back(id, next);
        Ok(doc)
    }

    /// Removes and returns the session if it exists, is alive, is this account's and names the
    /// same target and node; anything else is the same 404.
    fn take(&self, id: &str, call: &Call<'_>, req: &CommandRequest) -> Result<Stage, CommandError> {
        let mut open = self.lock();
        self.sweep(&mut open);
        let fits = open.get(id).is_some_and(|s| {
            s.account == *call.account
                && s.target == call.target.written
                && req
                    .node
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == s.node)
        });
        match fits.then(|| open.remove(id)).flatten() {
            Some(s) => Ok(s),
            None => Err(CommandError::UnknownSession),
        }
    }

    fn put_back(&self, id: &str, mut stage: Stage) {
        stage.last_used = Instant::now();
        self.lock().insert(id.to_string(), stage);
    }

    /// Forgets expired sessions and those whose stream died, cancelling the expired ones.
    fn sweep(&self, open: &mut HashMap<String, Stage>) {
        open.retain(|_, s| {
            let alive = s.session.is_alive();
            let fresh = s.last_used.elapsed() < self.idle;
            if alive && !fresh {
                tracing::debug!(node = %s.node, "command session expired");
                cancel_in_background(&s.session, &s.to, &s.node, &s.upstream_sid);
            }
            alive && fresh
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stage>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The actions a client may take next: the server's list, or `execute` when it gave none.
fn offered_actions(reply: &CommandReply) -> Vec<String> {
    if reply.actions.is_empty() {
        vec!["execute".into()]
    } else {
        reply.actions.clone()
    }
}
