//! Any command, the way a careful XMPP client runs it: execute; a command that completes at
//! once is answered as it is; an `executing` form is filled from the client's fields, checked,
//! and submitted with its sessionid, and remembered so that the next request for the same
//! stream, target and node submits in its first IQ (one round trip).

use super::xep0050::{CommandReply, CommandRequestIq, Status};
use super::{cancel_in_background, form, send, to_response, Call, CommandError, Memory};
use crate::rest::{self, CommandRequest, CommandResponse};

/// Runs `node` at the call's target with the client's fields.
pub async fn run(
    call: &Call<'_>,
    node: &str,
    req: &CommandRequest,
    memory: &Memory,
) -> Result<CommandResponse, CommandError> {
    let (session, target, forms) = (call.session, call.target, &memory.forms);
    let stream = session.jid();
    if !req.fields.is_empty() {
        if let Some(known) = forms.get(stream, &target.to, node) {
            let submit = form::fill(&known, &req.fields, call.max_jids)?;
            let cmd = CommandRequestIq {
                node,
                action: Some("execute"),
                sessionid: None,
                form: Some(&submit),
            };
            let reply = send(session, &target.to, cmd).await.inspect_err(|e| {
                if matches!(e, CommandError::Xmpp { .. }) {
                    forms.forget(stream, &target.to, node);
                }
            })?;
            if reply.notes.iter().any(|n| n.type_ == "error") {
                // Refused (Prosody's way): the form may have changed; learn it afresh.
                forms.forget(stream, &target.to, node);
            }
            return finish(call, memory, reply);
        }
    }
    let first = CommandRequestIq {
        node,
        action: Some("execute"),
        sessionid: None,
        form: None,
    };
    let reply = send(session, &target.to, first).await?;
    let (Status::Executing, Some(stage)) = (reply.status, reply.form.as_ref()) else {
        // Completed (or canceled, or executing with nothing to fill in) at once: it takes no
        // input, whatever the client sent.
        let mut doc = finish(call, memory, reply)?;
        warn_ignored_fields(&mut doc, req);
        return Ok(doc);
    };
    let sid = reply.sessionid.clone().unwrap_or_default();
    if req.fields.is_empty() {
        // A request without fields asks for the form itself.
        return finish(call, memory, reply);
    }
    let submit = match form::fill(stage, &req.fields, call.max_jids) {
        Ok(s) => s,
        Err(e) => {
            cancel_in_background(session, &target.to, node, &sid);
            return Err(e.into());
        }
    };
    let second = CommandRequestIq {
        node,
        action: Some(reply.submit_action()),
        sessionid: reply.sessionid.as_deref(),
        form: Some(&submit),
    };
    let done = send(session, &target.to, second).await?;
    if done.status == Status::Completed && !done.notes.iter().any(|n| n.type_ == "error") {
        forms.put(stream, &target.to, node, stage.clone());
    }
    finish(call, memory, done)
}

/// Maps the last answer. A command still executing is kept open for a client that asked
/// (`?keep=1`); for any other it is cancelled upstream, so nothing is left open.
fn finish(
    call: &Call<'_>,
    memory: &Memory,
    reply: CommandReply,
) -> Result<CommandResponse, CommandError> {
    if reply.status != Status::Executing {
        return to_response(call.target, &reply);
    }
    if call.keep {
        return memory.stages.keep(call, &reply);
    }
    if let Some(sid) = &reply.sessionid {
        cancel_in_background(call.session, &call.target.to, &reply.node, sid);
    }
    to_response(call.target, &reply)
}

/// Fields sent to a command that took none are named in a `warn` note, not silently lost.
fn warn_ignored_fields(doc: &mut CommandResponse, req: &CommandRequest) {
    if req.fields.is_empty() {
        return;
    }
    let names: Vec<&str> = req.fields.iter().map(|f| f.var.as_str()).collect();
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
