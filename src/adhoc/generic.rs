//! Any command, the way a careful XMPP client runs it: execute; a command that completes at
//! once is answered as it is; an `executing` form is filled from the client's fields, checked,
//! and submitted with its sessionid, and remembered so that the next request for the same
//! stream, target and node submits in its first IQ (one round trip).

use std::sync::Arc;
use std::time::Duration;

use tokio_xmpp::parsers::jid::{FullJid, Jid};

use super::reply::to_response;
use super::stages::Stages;
use super::stream::run_one;
use super::xep0050::{Command, CommandReply, Form, Status};
use super::{cancel_in_background, form, Answered, Call, CommandError, Outcome};
use crate::expiring::ExpiringMap;
use crate::rest::{self, CommandRequest};

/// How long a learnt form is kept unused, and how many are kept. A new stream has a new JID,
/// so what an old one learnt is never used again and simply expires.
const FORM_TTL: Duration = Duration::from_secs(3600);
const FORM_BOUND: usize = 4096;

type FormKey = (FullJid, Jid, String);

/// The generic path and the forms it learnt: (stream, target, node) -> form.
pub struct Generic {
    forms: ExpiringMap<FormKey, Arc<Form>>,
    /// Commands that answered a submission without a session with their form again (Prosody's
    /// mod_announce takes its form only within a session): always run in two steps.
    two_steps: ExpiringMap<FormKey, ()>,
}

impl Default for Generic {
    fn default() -> Self {
        Self {
            forms: ExpiringMap::new(FORM_TTL, FORM_BOUND),
            two_steps: ExpiringMap::new(FORM_TTL, FORM_BOUND),
        }
    }
}

impl Generic {
    /// Runs `node` at the call's target with the client's fields.
    pub async fn run(
        &self,
        call: &Call<'_>,
        node: &str,
        req: &CommandRequest,
        stages: &Stages,
    ) -> Result<Answered, CommandError> {
        let (stream, to) = (call.stream.as_ref(), &call.target.to);
        let key = (stream.jid().clone(), to.clone(), node.to_string());
        let mut first = None;
        if !req.fields.is_empty() {
            if let Some(known) = self.forms.get(&key) {
                let submit = form::fill(&known, &req.fields, call.max_jids)?;
                let reply = run_one(stream, to, Command::execute(node, Some(submit)))
                    .await
                    .inspect_err(|e| {
                        if matches!(e, CommandError::Xmpp { .. }) {
                            self.forms.remove(&key);
                        }
                    })?;
                if reply.notes.iter().any(|n| n.type_ == "error") {
                    // Refused (Prosody's way): the form may have changed; learn it afresh.
                    self.forms.remove(&key);
                }
                let form_again = reply.status == Status::Executing
                    && reply.sessionid.is_some()
                    && reply.form.as_ref().is_some_and(|f| same_fields(f, &known));
                if !form_again {
                    // Completed, or the next stage of a command with several: as it is.
                    return finish(call, stages, reply);
                }
                // The submission was not taken, only the form given: fill it in its session.
                self.forms.remove(&key);
                self.two_steps.insert(key.clone(), ());
                first = Some(reply);
            }
        }
        let reply = match first {
            Some(reply) => reply,
            None => run_one(stream, to, Command::execute(node, None)).await?,
        };
        let (Status::Executing, Some(stage)) = (reply.status, reply.form.as_ref()) else {
            // Completed (or canceled, or executing with nothing to fill in) at once: it takes
            // no input, whatever the client sent.
            let mut answered = finish(call, stages, reply)?;
            ignored_fields(&mut answered, req);
            return Ok(answered);
        };
        let sid = reply.sessionid.clone().unwrap_or_default();
        if req.fields.is_empty() {
            // A request without fields asks for the form itself.
            return finish(call, stages, reply);
        }
        let submit = match form::fill(stage, &req.fields, call.max_jids) {
            Ok(s) => s,
            Err(e) => {
                cancel_in_background(call.stream, to, node, &sid);
                return Err(e.into());
            }
        };
        let second = Command {
            node: node.to_string(),
            action: Some(reply.submit_action().to_string()),
            sessionid: reply.sessionid.clone(),
            form: Some(submit),
        };
        let done = run_one(stream, to, second).await?;
        let refused = done.notes.iter().any(|n| n.type_ == "error");
        if done.status == Status::Completed && !refused && self.two_steps.get(&key).is_none() {
            self.forms.insert(key, Arc::new(stage.clone()));
        }
        finish(call, stages, done)
    }

    /// Forgets forms unused for long.
    pub fn sweep(&self) {
        self.forms.sweep();
        self.two_steps.sweep();
    }
}

/// Whether two forms ask for the same fields (the same form given again, not a next stage).
fn same_fields(a: &Form, b: &Form) -> bool {
    let vars = |f: &Form| f.fields.iter().map(|x| x.var.clone()).collect::<Vec<_>>();
    vars(a) == vars(b)
}

/// Maps the last answer. A command still executing is kept open for a client that asked
/// (`?keep=1`); for any other it is cancelled upstream, so nothing is left open.
fn finish(call: &Call<'_>, stages: &Stages, reply: CommandReply) -> Result<Answered, CommandError> {
    if reply.status != Status::Executing {
        return to_response(call.target, &reply);
    }
    if call.keep {
        return stages.keep(call, &reply);
    }
    if let Some(sid) = &reply.sessionid {
        cancel_in_background(call.stream, &call.target.to, &reply.node, sid);
    }
    to_response(call.target, &reply)
}

/// Fields sent to a command that took none are named in a `warn` note, not silently lost, and
/// the outcome says so (a completed command that took none of them did not do what was asked).
fn ignored_fields(answered: &mut Answered, req: &CommandRequest) {
    if req.fields.is_empty() {
        return;
    }
    let names: Vec<&str> = req.fields.iter().map(|f| f.var.as_str()).collect();
    if matches!(answered.outcome, Outcome::Completed { .. }) {
        answered.outcome = Outcome::IgnoredFields(names.iter().map(|n| n.to_string()).collect());
    }
    let doc = &mut answered.doc;
    let warning = format!(
        "The command takes no input; these fields were ignored: {}",
        names.join(", ")
    );
    doc.note = Some(match doc.note.take() {
        Some(n) if n.type_ == "error" => rest::Note {
            type_: n.type_,
            value: format!("{}\n{warning}", n.value),
        },
        Some(n) => rest::Note {
            type_: "warn".into(),
            value: format!("{}\n{warning}", n.value),
        },
        None => rest::Note {
            type_: "warn".into(),
            value: warning,
        },
    });
}

#[cfg(test)]
#[path = "generic_tests.rs"]
mod tests;
