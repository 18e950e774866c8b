//! Command -> bytes: the outgoing `<iq type='set'/>` with its `<command/>` and submitted form.

use std::borrow::Cow;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::Writer;

use super::WireError;
use crate::adhoc::xep0050::{Command, Form, NS_COMMANDS, NS_DATA};
use crate::xmlchar::is_xml_char;

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
    let mut iq = BytesStart::new("iq");
    iq.push_attribute(attr("type", "set"));
    iq.push_attribute(attr("to", to));
    iq.push_attribute(attr("id", id));
    w.write_event(Event::Start(iq))?;

    let mut command = BytesStart::new("command");
    command.push_attribute(attr("xmlns", NS_COMMANDS));
    command.push_attribute(attr("node", &cmd.node));
    if let Some(a) = &cmd.action {
        command.push_attribute(attr("action", a));
    }
    if let Some(s) = &cmd.sessionid {
        command.push_attribute(attr("sessionid", s));
    }
    match &cmd.form {
        None => w.write_event(Event::Empty(command))?,
        Some(form) => {
            w.write_event(Event::Start(command))?;
            write_form(&mut w, form)?;
            w.write_event(Event::End(BytesEnd::new("command")))?;
        }
    }
    w.write_event(Event::End(BytesEnd::new("iq")))
}

/// The `<x/>` of a submission: its type, and each field's var, type and values (what the
/// minidom path's `Form::to_element` writes).
fn write_form(w: &mut Writer<&mut Vec<u8>>, form: &Form) -> std::io::Result<()> {
    let mut x = BytesStart::new("x");
    x.push_attribute(attr("xmlns", NS_DATA));
    x.push_attribute(attr("type", &form.type_));
    w.write_event(Event::Start(x))?;
    for f in &form.fields {
        let mut field = BytesStart::new("field");
        if let Some(v) = &f.var {
            field.push_attribute(attr("var", v));
        }
        if let Some(t) = &f.type_ {
            field.push_attribute(attr("type", t));
        }
        if f.values.is_empty() {
            w.write_event(Event::Empty(field))?;
            continue;
        }
        w.write_event(Event::Start(field))?;
        for v in &f.values {
            w.write_event(Event::Start(BytesStart::new("value")))?;
            w.write_event(Event::Text(BytesText::from_escaped(escape(v, false))))?;
            w.write_event(Event::End(BytesEnd::new("value")))?;
        }
        w.write_event(Event::End(BytesEnd::new("field")))?;
    }
    w.write_event(Event::End(BytesEnd::new("x")))
}

/// An attribute whose value is escaped here rather than by `push_attribute((k, v))`: quick-xml
/// leaves tab, line feed and carriage return raw there, and a reader turns those into spaces
/// (attribute-value normalisation), so a value would not arrive as it was sent.
fn attr<'a>(key: &'a str, value: &'a str) -> Attribute<'a> {
    Attribute {
        key: QName(key),
        value: escape(value, true),
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
