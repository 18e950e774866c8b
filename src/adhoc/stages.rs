//! Multi-stage commands, which Tigase cannot run: a command left `executing` for a client that
//! asked to keep it (`?keep=1`) gets a `sessionid` of the gateway's own, and the client goes on
//! stage by stage by POSTing it with an `action` and its fields.
//!
//! The id is random (among replicas, `NAME.RANDOM.TAG`: [`SessionIds`]) and stands for one account, one upstream stream and one upstream session
//! (the servers accept invented ids and ejabberd's are timestamps, so theirs is never shown).
//! A stage refers to its stream weakly: it never keeps a replaced stream open, and it dies with
//! its stream. It expires after an idle while; an unknown, expired or foreign id is answered
//! exactly alike (404), so nobody learns that an id exists.
//!
//! A session the gateway lets go of is cancelled upstream, whichever way it goes: expired (the
//! sweeper), evicted at the bound by a newer one, refused beyond the account's share, or taken
//! out for a step that failed or was dropped. The cancel is sent in the background and bounded
//! in time (`cancel_in_background`); a session whose stream is gone needs none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_xmpp::parsers::jid::{BareJid, FullJid, Jid};

use super::registry::Handler;
use super::reply::to_response;
use super::stream::{run_one, CommandStream};
use super::xep0050::{Command, CommandReply, Form, Status};
use super::Answered;
use super::{cancel_in_background, form, Call, CommandError};
use crate::expiring::ExpiringMap;
use crate::replica::SessionIds;
use crate::rest::{CommandRequest, FieldValue, RequestField};

/// Open sessions a single account may hold, so that a client cannot grow the map without end.
const PER_ACCOUNT: usize = 64;
/// Open sessions of all accounts together.
const BOUND: usize = 16_384;

/// The open command sessions of all clients, by the gateway's id.
pub struct Stages {
    open: ExpiringMap<String, Stage>,
    /// How many of `open` each account holds (expired ones not yet swept included), kept as
    /// they come and go so that a new one costs no look at the others.
    held: Mutex<HashMap<BareJid, usize>>,
    /// How the ids are written: plain, or naming this replica under the replica key.
    ids: SessionIds,
}

/// One open upstream command session.
struct Stage {
    account: BareJid,
    /// The stream it lives on: only that stream may go on with it.
    stream_jid: FullJid,
    stream: Weak<dyn CommandStream>,
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
    /// The actions the current stage allows (`offered_actions`, with `execute` and `cancel`,
    /// which XEP-0050 always allows): any other is refused at once, since a server may leave
    /// it unanswered (Prosody and a `prev` it does not offer) until the request times out.
    allowed: Vec<String>,
}

impl Stage {
    fn stream(&self) -> Option<Arc<dyn CommandStream>> {
        self.stream.upgrade().filter(|s| s.is_alive())
    }
}

impl Stages {
    pub fn new(idle: Duration) -> Self {
        Self::bounded(idle, BOUND)
    }

    fn bounded(idle: Duration, bound: usize) -> Self {
        Self {
            open: ExpiringMap::new(idle, bound),
            held: Mutex::new(HashMap::new()),
            ids: SessionIds::default(),
        }
    }

    /// Writes the ids as `ids` does (`NAME.RANDOM.TAG` among replicas).
    pub fn set_ids(&mut self, ids: SessionIds) {
        self.ids = ids;
    }

    /// Keeps the command session `reply` opened and answers it with the gateway's id.
    pub(super) fn keep(
        &self,
        call: &Call<'_>,
        reply: &CommandReply,
    ) -> Result<Answered, CommandError> {
        let mut answered = to_response(call.target, reply)?;
        let Some(upstream_sid) = reply.sessionid.clone() else {
            return Ok(answered);
        };
        if !self.count_in(call.account, Some(PER_ACCOUNT)) {
            cancel_in_background(call.stream, &call.target.to, &reply.node, &upstream_sid);
            return Err(CommandError::TooManyStages(PER_ACCOUNT));
        }
        let id = self.ids.mint();
        let stage = Stage {
            account: call.account.clone(),
            stream_jid: call.stream.jid().clone(),
            stream: Arc::downgrade(call.stream),
            to: call.target.to.clone(),
            target: call.target.written.clone(),
            node: reply.node.clone(),
            upstream_sid,
            form: reply.form.clone(),
            default_action: reply.submit_action().to_string(),
            allowed: allowed_actions(reply),
        };
        self.put(id.clone(), stage);
        answered.doc.sessionid = Some(id);
        answered.doc.actions = offered_actions(reply);
        Ok(answered)
    }

    /// Goes on with the session `req.sessionid`: the next stage, the result, or `canceled`.
    /// A submission to a session whose node has a handler that takes submissions
    /// (`submission_to`) goes to that handler, not to the server (`hand_over`).
    pub(super) async fn resume<'h>(
        &self,
        call: &Call<'_>,
        req: &CommandRequest,
        submission_to: &(dyn Fn(&str) -> Option<&'h dyn Handler> + Sync),
    ) -> Result<Answered, CommandError> {
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
        let stage = self
            .open
            .remove_if(&id.to_string(), |s| fits(s, call, req))
            .ok_or(CommandError::UnknownSession)?;
        self.count_out(&stage.account);
        if let Err(refused) = (call.guard)(&stage.node) {
            self.put_back(id.to_string(), stage);
            return Err(refused);
        }
        if let Some(a) = action.filter(|a| !stage.allowed.iter().any(|o| o == a)) {
            let allowed = stage.allowed.join(", ");
            // Never sent: the session stays as it was, for an action it offers (counted in
            // its account's share again, as it was counted out above).
            self.put_back(id.to_string(), stage);
            return Err(CommandError::BadRequest(format!(
                "action {a:?} is not offered at this stage: use {allowed}"
            )));
        }
        let action = action.unwrap_or(&stage.default_action).to_string();
        let submission = match action.as_str() {
            "cancel" | "prev" => None,
            _ => match &stage.form {
                Some(f) => match form::fill(f, &req.fields, call.max_jids) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // A typo costs one retry, not the session.
                        self.put_back(id.to_string(), stage);
                        return Err(e.into());
                    }
                },
                None => None,
            },
        };
        if !matches!(action.as_str(), "cancel" | "prev") {
            if let Some(handler) = submission_to(&stage.node) {
                return self.hand_over(handler, call, id, stage, submission).await;
            }
        }
        let cmd = Command::step(&stage.node, &action, &stage.upstream_sid, submission);
        // Taken out and not yet answered: if the step fails or the request is dropped (its
        // timeout), the upstream session is cancelled rather than left open on the server.
        let abandoned = Abandoned(Some(&stage));
        let reply = run_one(call.stream.as_ref(), &stage.to, cmd).await?;
        abandoned.answered();
        if reply.status != Status::Executing {
            return to_response(call.target, &reply);
        }
        let mut answered = to_response(call.target, &reply)?;
        answered.doc.sessionid = Some(id.to_string());
        answered.doc.actions = offered_actions(&reply);
        let next = Stage {
            form: reply.form.clone(),
            default_action: reply.submit_action().to_string(),
            allowed: allowed_actions(&reply),
            upstream_sid: reply
                .sessionid
                .clone()
                .unwrap_or(stage.upstream_sid.clone()),
            ..stage
        };
        self.put_back(id.to_string(), next);
        Ok(answered)
    }

    /// Answers a kept session's submission with the node's handler, which acts on what the
    /// stage would have sent (the filled form, else the client's fields) under its own rules
    /// (end-user-session spares every gateway stream), then cancels the upstream session:
    /// nothing the client submitted reaches the server as written. A `Field` error (nothing
    /// sent) leaves the session open, as a typo does on the generic path.
    async fn hand_over(
        &self,
        handler: &dyn Handler,
        call: &Call<'_>,
        id: &str,
        stage: Stage,
        submission: Option<Form>,
    ) -> Result<Answered, CommandError> {
        let submitted = CommandRequest {
            node: Some(stage.node.clone()),
            fields: match submission {
                Some(form) => as_request_fields(form),
                None => Vec::new(),
            },
            ..CommandRequest::default()
        };
        // Cancelled upstream if the request is dropped before the handler answers.
        let abandoned = Abandoned(Some(&stage));
        let answered = handler.run(call, &submitted).await;
        abandoned.answered();
        if let Err(CommandError::Field(_)) = answered {
            self.put_back(id.to_string(), stage);
        } else {
            cancel(&stage);
        }
        answered
    }

    /// Forgets sessions that expired (cancelling them upstream) or whose stream is gone.
    pub fn sweep(&self) {
        let expired = self.open.sweep();
        // Every entry, but the map is small and this is the sweeper's, once a second.
        let orphaned = self.open.remove_where(|s| s.stream().is_none());
        for (_, stage) in expired.into_iter().chain(orphaned) {
            self.count_out(&stage.account);
            cancel(&stage);
        }
    }

    /// Puts a counted session in the map; the one it displaces (the least recently used, at
    /// the bound) is cancelled upstream.
    fn put(&self, id: String, stage: Stage) {
        if let Some((_, displaced)) = self.open.insert(id, stage) {
            self.count_out(&displaced.account);
            cancel(&displaced);
        }
    }

    /// Puts back a session taken out for a step (it was counted before, so never refused).
    fn put_back(&self, id: String, stage: Stage) {
        self.count_in(&stage.account, None);
        self.put(id, stage);
    }

    /// Counts one more session of `account`, unless it holds `limit` already.
    fn count_in(&self, account: &BareJid, limit: Option<usize>) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(account.clone()).or_default();
        if limit.is_some_and(|l| *n >= l) {
            return false;
        }
        *n += 1;
        true
    }

    fn count_out(&self, account: &BareJid) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(account);
            }
        }
    }
}

/// Whether the session may go on for this call: the same account on the same (live) stream,
/// the same target and node.
fn fits(s: &Stage, call: &Call<'_>, req: &CommandRequest) -> bool {
    s.account == *call.account
        && s.stream_jid == *call.stream.jid()
        && s.stream().is_some()
        && s.target == call.target.written
        && req
            .node
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == s.node)
}

/// A session taken out for a step: cancelled upstream when dropped before its answer came.
struct Abandoned<'a>(Option<&'a Stage>);

impl Abandoned<'_> {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(stage) = self.0 {
            cancel(stage);
        }
    }
}

/// Cancels an abandoned session upstream, if its stream still lives.
fn cancel(stage: &Stage) {
    if let Some(stream) = stage.stream() {
        tracing::debug!(node = %stage.node, "command session let go: cancelled upstream");
        cancel_in_background(&stream, &stage.to, &stage.node, &stage.upstream_sid);
    }
}

/// A filled submit form as a request's fields (a handler reads requests, not forms).
fn as_request_fields(form: Form) -> Vec<RequestField> {
    form.fields
        .into_iter()
        .filter_map(|f| {
            let var = f.var?;
            Some(RequestField {
                var,
                value: Some(FieldValue::List(f.values)),
            })
        })
        .collect()
}

/// The actions a client may take next: the server's list, or `execute` when it gave none.
fn offered_actions(reply: &CommandReply) -> Vec<String> {
    if reply.actions.is_empty() {
        vec!["execute".into()]
    } else {
        reply.actions.clone()
    }
}

/// The actions a stage accepts: those it offers, `execute` (its default action) and `cancel`.
fn allowed_actions(reply: &CommandReply) -> Vec<String> {
    let mut allowed = offered_actions(reply);
    for always in ["execute", "cancel"] {
        if !allowed.iter().any(|a| a == always) {
            allowed.push(always.into());
        }
    }
    allowed
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
