//! Bytes -> reply: one `<iq/>` answer pulled straight into [`ReplyIq`], walking the events once
//! with no tree in between. It reads what `xep0050::CommandReply::parse` and the stanza-error
//! mapping read (and as leniently); anything unknown is skipped, within
//! [`MAX_DEPTH`].

use std::collections::BTreeMap;

use quick_xml::events::BytesStart;
use quick_xml::reader::NsReader;

use super::pull::{attr, attributes, syntax, Ns, Pull, Pulled};
use super::WireError;
use crate::adhoc::condition::{parse_condition, parse_type};
use crate::adhoc::stream::Answer;
use crate::adhoc::xep0050::{CommandReply, Field, FieldOption, Form, Note, Status};
use crate::adhoc::CommandError;

/// One answer to a command IQ: whom it claims to come from, under which id, and what it says
/// (the same [`Answer`] the minidom path makes of it).
#[derive(Debug, Clone)]
pub struct ReplyIq {
    pub id: String,
    /// The `from` attribute as sent; the session checks it against whom it asked.
    pub from: Option<String>,
    pub answer: Answer,
}

/// Reads one `<iq type='result'/>` or `<iq type='error'/>` (in `jabber:client`, or unqualified
/// as a stream's child is) and nothing else but whitespace.
pub fn read_reply(bytes: &[u8]) -> Result<ReplyIq, WireError> {
    let input = std::str::from_utf8(bytes)
        .map_err(|e| syntax(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let mut pull = Pull::new(NsReader::from_str(input));
    let (start, empty) = loop {
        match pull.next()? {
            Pulled::Open(Ns::Client, start, empty) if start.local_name().as_ref() == "iq" => {
                break (start, empty)
            }
            Pulled::Open(..) => return Err(WireError::NotAReply("not an <iq/>".into())),
            Pulled::Text(t) if t.trim().is_empty() => {}
            Pulled::Text(_) => return Err(syntax("text outside the stanza")),
            Pulled::Close | Pulled::Eof => return Err(syntax("no stanza")),
        }
    };
    let (mut type_, mut id, mut from) = (None, None, None);
    attributes(&start, |key, value| match key {
        "type" => type_ = Some(value),
        "id" => id = Some(value.into_owned()),
        "from" => from = Some(value.into_owned()),
        _ => {}
    })?;
    let id = id.ok_or_else(|| WireError::NotAReply("no id".into()))?;
    let answer = match type_.as_deref() {
        Some("result") => pull.result(empty)?,
        Some("error") => pull.error(empty)?,
        Some(other) => return Err(WireError::NotAReply(format!("an IQ of type {other:?}"))),
        None => return Err(WireError::NotAReply("an IQ without a type".into())),
    };
    loop {
        match pull.next()? {
            Pulled::Eof => break,
            Pulled::Text(t) if t.trim().is_empty() => {}
            _ => return Err(syntax("content after the stanza")),
        }
    }
    Ok(ReplyIq { id, from, answer })
}

impl<'i> Pull<'i> {
    /// The payload of a result: a `<command/>`, or what the minidom path calls malformed.
    fn result(&mut self, empty: bool) -> Result<Answer, WireError> {
        let mut payloads = 0usize;
        let mut answer = Err(CommandError::Malformed("an empty result".into()));
        self.children(empty, |p, ns, start, empty| {
            payloads += 1;
            if payloads > 1 {
                answer = Err(CommandError::Malformed("more than one payload".into()));
                return p.skip(empty);
            }
            let name = start.local_name();
            if ns == Ns::Commands && name.as_ref() == "command" {
                answer = Ok(p.command(&start, empty)?);
                return Ok(());
            }
            let name = name.as_ref().to_string();
            answer = Err(CommandError::Malformed(format!("<{name}/>")));
            p.skip(empty)
        })?;
        Ok(answer)
    }

    /// An error IQ's `<error/>` as [`CommandError::Xmpp`]; other children (the echoed request)
    /// are skipped unread.
    fn error(&mut self, empty: bool) -> Result<Answer, WireError> {
        let mut error = None;
        self.children(empty, |p, ns, start, empty| {
            if error.is_none() && ns == Ns::Client && start.local_name().as_ref() == "error" {
                error = Some(p.stanza_error(&start, empty)?);
                return Ok(());
            }
            p.skip(empty)
        })?;
        Ok(Err(error.unwrap_or_else(|| {
            CommandError::Malformed("an error without <error/>".into())
        })))
    }

    fn stanza_error(&mut self, start: &BytesStart, empty: bool) -> Result<CommandError, WireError> {
        let type_ = attr(start, "type")?;
        let Some(type_) = type_.as_deref().and_then(parse_type) else {
            return Ok(CommandError::Malformed("an error of no known type".into()));
        };
        let mut condition = None;
        // By language, as xmpp-parsers keeps them; the mapping takes the first.
        let mut texts = BTreeMap::new();
        self.children(empty, |p, ns, start, empty| {
            if ns != Ns::Stanzas {
                return p.skip(empty);
            }
            let name = start.local_name().as_ref().to_string();
            if name == "text" {
                let lang = attr(&start, "xml:lang")?.unwrap_or_default();
                let text = p.text(empty)?;
                texts.entry(lang).or_insert(text);
                return Ok(());
            }
            if condition.is_none() {
                condition = parse_condition(&name);
            }
            p.skip(empty)
        })?;
        Ok(match condition {
            Some(condition) => CommandError::Xmpp {
                type_,
                condition,
                text: texts.into_values().next().filter(|t| !t.is_empty()),
            },
            None => CommandError::Malformed("an error without a condition".into()),
        })
    }

    fn command(&mut self, start: &BytesStart, empty: bool) -> Result<CommandReply, WireError> {
        let mut reply = CommandReply {
            node: String::new(),
            sessionid: None,
            status: Status::Completed,
            actions: Vec::new(),
            default_action: None,
            notes: Vec::new(),
            form: None,
        };
        attributes(start, |key, value| match key {
            "node" => reply.node = value.into_owned(),
            "sessionid" => reply.sessionid = Some(value.into_owned()),
            // Servers omit it for a finished one-stage command now and then.
            "status" => {
                reply.status = match value.as_ref() {
                    "executing" => Status::Executing,
                    "canceled" => Status::Canceled,
                    _ => Status::Completed,
                }
            }
            _ => {}
        })?;
        let mut seen_actions = false;
        self.children(empty, |p, ns, start, empty| {
            match (ns, start.local_name().as_ref()) {
                (Ns::Commands, "actions") if !seen_actions => {
                    seen_actions = true;
                    reply.default_action = attr(&start, "execute")?;
                    p.children(empty, |p, _, action, empty| {
                        let name = action.local_name();
                        reply.actions.push(name.as_ref().to_string());
                        p.skip(empty)
                    })?;
                }
                (Ns::Commands, "note") => {
                    let type_ = attr(&start, "type")?.unwrap_or_else(|| "info".into());
                    let text = p.text(empty)?;
                    reply.notes.push(Note { type_, text });
                }
                (Ns::Data, "x") if reply.form.is_none() => {
                    reply.form = Some(p.form(&start, empty)?);
                }
                _ => p.skip(empty)?,
            }
            Ok(())
        })?;
        Ok(reply)
    }

    fn form(&mut self, start: &BytesStart, empty: bool) -> Result<Form, WireError> {
        let mut form = Form {
            type_: attr(start, "type")?.unwrap_or_else(|| "form".into()),
            ..Form::default()
        };
        self.children(empty, |p, ns, start, empty| {
            match (ns, start.local_name().as_ref()) {
                (Ns::Data, "title") if form.title.is_none() => form.title = Some(p.text(empty)?),
                (Ns::Data, "instructions") if form.instructions.is_none() => {
                    form.instructions = Some(p.text(empty)?)
                }
                (Ns::Data, "field") => form.fields.push(p.field(&start, empty)?),
                (Ns::Data, "reported") if form.reported.is_none() => {
                    form.reported = Some(p.fields(empty)?)
                }
                (Ns::Data, "item") => form.items.push(p.fields(empty)?),
                _ => p.skip(empty)?,
            }
            Ok(())
        })?;
        Ok(form)
    }

    /// The `<field/>` children of `<reported/>` or `<item/>`.
    fn fields(&mut self, empty: bool) -> Result<Vec<Field>, WireError> {
        let mut fields = Vec::new();
        self.children(empty, |p, ns, start, empty| {
            if ns == Ns::Data && start.local_name().as_ref() == "field" {
                fields.push(p.field(&start, empty)?);
                return Ok(());
            }
            p.skip(empty)
        })?;
        Ok(fields)
    }

    fn field(&mut self, start: &BytesStart, empty: bool) -> Result<Field, WireError> {
        let mut field = Field::default();
        attributes(start, |key, value| match key {
            "var" => field.var = Some(value.into_owned()),
            "type" => field.type_ = Some(value.into_owned()),
            "label" => field.label = Some(value.into_owned()),
            _ => {}
        })?;
        self.children(empty, |p, ns, start, empty| {
            match (ns, start.local_name().as_ref()) {
                (Ns::Data, "desc") if field.desc.is_none() => field.desc = Some(p.text(empty)?),
                (Ns::Data, "required") => {
                    field.required = true;
                    p.skip(empty)?
                }
                (Ns::Data, "value") => field.values.push(p.text(empty)?),
                (Ns::Data, "option") => {
                    let mut option = FieldOption {
                        label: attr(&start, "label")?,
                        value: String::new(),
                    };
                    let mut seen = false;
                    p.children(empty, |p, ns, start, empty| {
                        if !seen && ns == Ns::Data && start.local_name().as_ref() == "value" {
                            seen = true;
                            option.value = p.text(empty)?;
                            return Ok(());
                        }
                        p.skip(empty)
                    })?;
                    field.options.push(option);
                }
                _ => p.skip(empty)?,
            }
            Ok(())
        })?;
        Ok(field)
    }
}
