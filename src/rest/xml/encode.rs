//! Model -> body: elements are built with `quick_xml::Writer`, so every text goes through its
//! escaper, never through string pasting.

use std::borrow::Cow;
use std::io;

use quick_xml::events::BytesText;
use quick_xml::Writer;

use crate::rest::xmlchar::is_xml_char;
use crate::rest::{CommandItem, CommandResponse, ErrorBody, Reported, ResponseField};

/// Encodes a command response as a pretty-printed `<command>` document.
pub fn encode_response(doc: &CommandResponse) -> Vec<u8> {
    document(|w| {
        parent(w, "command", |w| {
            text(w, "jid", &doc.jid)?;
            text(w, "node", &doc.node)?;
            optional(w, "status", &doc.status)?;
            optional(w, "sessionid", &doc.sessionid)?;
            if !doc.actions.is_empty() {
                list(w, "actions", &doc.actions, |w, a| text(w, "item", a))?;
            }
            list(w, "fields", &doc.fields, field)?;
            optional(w, "title", &doc.title)?;
            optional(w, "instructions", &doc.instructions)?;
            if let Some(note) = &doc.note {
                parent(w, "note", |w| {
                    text(w, "type", &note.type_)?;
                    text(w, "value", &note.value)
                })?;
            }
            match &doc.reported {
                Some(r) if !(r.columns.is_empty() && r.items.is_empty()) => reported(w, r),
                _ => Ok(()),
            }
        })
    })
}

/// Encodes a command list as `<items><item><jid/><node/><name/></item>…</items>`.
pub fn encode_items(items: &[CommandItem]) -> Vec<u8> {
    document(|w| {
        list(w, "items", items, |w, item| {
            parent(w, "item", |w| {
                text(w, "jid", &item.jid)?;
                text(w, "node", &item.node)?;
                optional(w, "name", &item.name)
            })
        })
    })
}

/// Encodes an error body as `<error><status/><condition/><text/><field/></error>`.
pub fn encode_error(err: &ErrorBody) -> Vec<u8> {
    document(|w| {
        parent(w, "error", |w| {
            text(w, "status", &err.status.to_string())?;
            text(w, "condition", &err.condition)?;
            optional(w, "text", &err.text)?;
            optional(w, "field", &err.field)
        })
    })
}

type XmlWriter = Writer<Vec<u8>>;

/// Runs `body` on a 2-space-indenting writer (empty elements as `<x />`, like the seed) and
/// returns the document with a trailing newline.
fn document(body: impl FnOnce(&mut XmlWriter) -> io::Result<()>) -> Vec<u8> {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.config_mut().add_space_before_slash_in_empty_elements = true;
    body(&mut writer).expect("writing to a Vec cannot fail");
    let mut out = writer.into_inner();
    out.push(b'\n');
    out
}

/// `<name>text</name>`. The escaper covers `<`, `>`, `&`, both quotes and `\r` (as `&#13;`, so
/// line-end normalisation cannot turn it into `\n`); characters XML 1.0 cannot carry at all
/// (C0 controls other than tab and line ends, U+FFFE, U+FFFF) become U+FFFD.
fn text(w: &mut XmlWriter, name: &str, text: &str) -> io::Result<()> {
    let text: Cow<str> = if text.chars().all(is_xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    };
    w.create_element(name)
        .write_text_content(BytesText::new(&text))?;
    Ok(())
}

/// `<name>text</name>` when there is a text.
fn optional(w: &mut XmlWriter, name: &str, value: &Option<String>) -> io::Result<()> {
    value.as_deref().map_or(Ok(()), |v| text(w, name, v))
}

fn parent(
    w: &mut XmlWriter,
    name: &str,
    content: impl FnOnce(&mut XmlWriter) -> io::Result<()>,
) -> io::Result<()> {
    w.create_element(name).write_inner_content(content)?;
    Ok(())
}

/// `<name>` holding one element per entry, or `<name />` when there is none.
fn list<T>(
    w: &mut XmlWriter,
    name: &str,
    entries: &[T],
    each: impl Fn(&mut XmlWriter, &T) -> io::Result<()>,
) -> io::Result<()> {
    if entries.is_empty() {
        w.create_element(name).write_empty()?;
        return Ok(());
    }
    parent(w, name, |w| entries.iter().try_for_each(|e| each(w, e)))
}

/// One value as `<value>x</value>`, several as `<value><item>a</item>…</value>`, none as
/// nothing: in XML the field type does not matter.
fn values(w: &mut XmlWriter, values: &[String]) -> io::Result<()> {
    match values {
        [] => Ok(()),
        [one] => text(w, "value", one),
        many => parent(w, "value", |w| {
            many.iter().try_for_each(|v| text(w, "item", v))
        }),
    }
}

fn field(w: &mut XmlWriter, f: &ResponseField) -> io::Result<()> {
    parent(w, "item", |w| {
        text(w, "var", &f.var)?;
        optional(w, "label", &f.label)?;
        optional(w, "type", &f.type_)?;
        values(w, &f.values)?;
        if !f.options.is_empty() {
            list(w, "options", &f.options, |w, o| {
                parent(w, "item", |w| {
                    optional(w, "label", &o.label)?;
                    text(w, "value", &o.value)
                })
            })?;
        }
        if f.required {
            text(w, "required", "true")?;
        }
        optional(w, "desc", &f.desc)
    })
}

fn reported(w: &mut XmlWriter, r: &Reported) -> io::Result<()> {
    parent(w, "reported", |w| {
        list(w, "columns", &r.columns, |w, c| {
            parent(w, "item", |w| {
                text(w, "var", &c.var)?;
                optional(w, "label", &c.label)?;
                optional(w, "type", &c.type_)
            })
        })?;
        list(w, "items", &r.items, |w, row| {
            list(w, "item", row, |w, cell| {
                parent(w, "item", |w| {
                    text(w, "var", &cell.var)?;
                    values(w, &cell.values)
                })
            })
        })
    })
}

/// Encodes a resource document: its root holding one element per entry, a list as `<item>`s.
pub fn encode_resource(doc: &crate::rest::resources::Resource) -> Vec<u8> {
    use crate::rest::resources::Value;
    document(|w| {
        parent(w, doc.root, |w| {
            doc.entries.iter().try_for_each(|(key, value)| match value {
                Value::Text(t) => text(w, key, t),
                Value::List(l) => list(w, key, l, |w, item| text(w, "item", item)),
            })
        })
    })
}
