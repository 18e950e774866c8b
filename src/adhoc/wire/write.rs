//! Command -> bytes: the outgoing `<iq type='set'/>` with its `<command/>` and submitted form.

use std::borrow::Cow;

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::WireError;
use crate::adhoc::xep0050::{Command, Form, NS_COMMANDS, NS_DATA};
use crate::rest::xmlchar::is_xml_char;

/// Appends `<iq type='set' to=.. id=..><command .../></iq>` to `out`. Every value is checked
/// first: one that XML cannot carry fails the call and nothing is appended.
pub fn write_command(
    out: &mut Vec<u8>,
    to: &str,
    id: &str,
    cmd: &Command,
) -> Result<(), WireError> {
    check(to)?;
    check(id)?;
    check(&cmd.node)?;
    for v in [&cmd.action, &cmd.sessionid].into_iter().flatten() {
        check(v)?;
    }
    if let Some(form) = &cmd.form {
        check_form(form)?;
    }
    let start = out.len();
    write(out, to, id, cmd).map_err(|e| {
        out.truncate(start);
        WireError::Syntax(e.to_string())
    })
}

fn check_form(form: &Form) -> Result<(), WireError> {
    check(&form.type_)?;
    for f in &form.fields {
        for v in [&f.var, &f.type_].into_iter().flatten() {
            check(v)?;
        }
        for v in &f.values {
            check(v)?;
        }
    }
    Ok(())
}

fn check(value: &str) -> Result<(), WireError> {
    match value.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(WireError::ForbiddenChar(u32::from(c))),
        None => Ok(()),
    }
}

fn write(out: &mut Vec<u8>, to: &str, id: &str, cmd: &Command) -> std::io::Result<()> {
    let mut w = Writer::new(out);
    let mut tag = Tag::default();
    tag.open("iq")
        .attr("type", "set")
        .attr("to", to)
        .attr("id", id);
    w.write_event(Event::Start(tag.event()))?;

    tag.open("command")
        .attr("xmlns", NS_COMMANDS)
        .attr("node", &cmd.node);
    if let Some(a) = &cmd.action {
        tag.attr("action", a);
    }
    if let Some(s) = &cmd.sessionid {
        tag.attr("sessionid", s);
    }
    match &cmd.form {
        None => w.write_event(Event::Empty(tag.event()))?,
        Some(form) => {
            w.write_event(Event::Start(tag.event()))?;
            write_form(&mut w, &mut tag, form)?;
            w.write_event(Event::End(BytesEnd::new("command")))?;
        }
    }
    w.write_event(Event::End(BytesEnd::new("iq")))
}

/// The `<x/>` of a submission: its type, and each field's var, type and values (what the
/// minidom path's `Form::to_element` writes).
fn write_form(w: &mut Writer<&mut Vec<u8>>, tag: &mut Tag, form: &Form) -> std::io::Result<()> {
    tag.open("x")
        .attr("xmlns", NS_DATA)
        .attr("type", &form.type_);
    w.write_event(Event::Start(tag.event()))?;
    for f in &form.fields {
        tag.open("field");
        if let Some(v) = &f.var {
            tag.attr("var", v);
        }
        if let Some(t) = &f.type_ {
            tag.attr("type", t);
        }
        if f.values.is_empty() {
            w.write_event(Event::Empty(tag.event()))?;
            continue;
        }
        w.write_event(Event::Start(tag.event()))?;
        for v in &f.values {
            w.write_event(Event::Start(BytesStart::new("value")))?;
            w.write_event(Event::Text(BytesText::from_escaped(escape(v, false))))?;
            w.write_event(Event::End(BytesEnd::new("value")))?;
        }
        w.write_event(Event::End(BytesEnd::new("field")))?;
    }
    w.write_event(Event::End(BytesEnd::new("x")))
}

/// One start tag at a time in a buffer reused for every tag of a command, handed to the Writer
/// as a borrowed `BytesStart` (building one with `push_attribute` allocates per tag).
/// Attribute values are escaped here rather than by `push_attribute((k, v))`: quick-xml leaves
/// tab, line feed and carriage return raw there, and a reader turns those into spaces
/// (attribute-value normalisation), so a value would not arrive as it was sent.
#[derive(Default)]
struct Tag {
    content: String,
    name_len: usize,
}

impl Tag {
    fn open(&mut self, name: &str) -> &mut Self {
        self.content.clear();
        self.content.push_str(name);
        self.name_len = name.len();
        self
    }

    /// ` key="value"`, as quick-xml writes an attribute (double quotes).
    fn attr(&mut self, key: &str, value: &str) -> &mut Self {
        self.content.push(' ');
        self.content.push_str(key);
        self.content.push_str("=\"");
        self.content.push_str(&escape(value, true));
        self.content.push('"');
        self
    }

    fn event(&self) -> BytesStart<'_> {
        BytesStart::from_content(self.content.as_str(), self.name_len)
    }
}

/// Escapes the five markup characters, a carriage return (which a reader would turn into a line
/// feed) and, in an attribute, tab and line feed. Values are checked for characters XML forbids
/// before any of this is called.
fn escape(value: &str, in_attribute: bool) -> Cow<'_, str> {
    let special = |c: char| {
        matches!(c, '<' | '>' | '&' | '\'' | '"' | '\r')
            || (in_attribute && matches!(c, '\t' | '\n'))
    };
    if !value.chars().any(special) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
