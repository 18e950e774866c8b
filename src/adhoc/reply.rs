//! A server's `<command/>` answer as the REST document the contract describes: fields, the
//! form's title and instructions, notes merged into one, `<reported/>` tables.

use super::outcome::said;
use super::xep0050::{self, CommandReply, Form, Status};
use super::{Answered, CommandError, Outcome, Target};
use crate::rest::{self, CommandResponse};

/// The REST document for a server's answer, as the contract maps it, and what the command
/// came to. A completed command with an error note failed; what its words mean is read from
/// the servers' table ([`said`]).
pub(super) fn to_response(target: &Target, reply: &CommandReply) -> Result<Answered, CommandError> {
    let note = merge_notes(reply);
    let outcome = match reply.status {
        Status::Completed => {
            if let Some(n) = note.as_ref().filter(|n| n.type_ == "error") {
                return Err(CommandError::Failed {
                    text: n.value.clone(),
                    says: said(&n.value),
                });
            }
            Outcome::Completed {
                says: note.as_ref().and_then(|n| said(&n.value)),
            }
        }
        Status::Canceled => Outcome::Canceled,
        Status::Executing => Outcome::Form,
    };
    let form = reply.form.as_ref();
    let doc = CommandResponse {
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
    };
    Ok(Answered { doc, outcome })
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
