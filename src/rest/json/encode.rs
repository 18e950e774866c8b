//! Model -> body: each document is serialised straight from the model into the output bytes
//! (serde_json's pretty printer over `Serialize` views of the model: no `Value` tree, no key
//! or value copied), every key in the order the contract fixes.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::rest::{
    is_multi_type, Cell, Column, CommandItem, CommandResponse, ErrorBody, FieldOption, Note,
    Reported, ResponseField,
};

/// Encodes a command response as pretty-printed `{"command": {…}}`.
pub fn encode_response(doc: &CommandResponse) -> Vec<u8> {
    document(&Wrapped("command", CommandJson(doc)))
}

/// Encodes a command list as `{"items": [{"jid", "node", "name"}, …]}`.
pub fn encode_items(items: &[CommandItem]) -> Vec<u8> {
    document(&Wrapped("items", Seq(items, ItemJson)))
}

/// Encodes an error body as `{"error": {"status": 403, "condition", "text", "field"}}`.
pub fn encode_error(err: &ErrorBody) -> Vec<u8> {
    document(&Wrapped("error", ErrorJson(err)))
}

/// Encodes a resource document as an object, one key per entry.
pub fn encode_resource(doc: &crate::rest::resources::Resource) -> Vec<u8> {
    document(&ResourceJson(doc))
}

/// Pretty-prints (2-space indent, serde_json's default) with a trailing newline.
fn document(doc: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::pretty(&mut out);
    doc.serialize(&mut ser)
        .expect("the model serialises: string keys, writes to a Vec");
    out.push(b'\n');
    out
}

/// `{key: value}`.
struct Wrapped<T>(&'static str, T);

impl<T: Serialize> Serialize for Wrapped<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

/// A slice as an array, each element through the view `V`.
struct Seq<'a, T, V>(&'a [T], V);

impl<'a, T, V, J> Serialize for Seq<'a, T, V>
where
    V: Fn(&'a T) -> J,
    J: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(&self.1))
    }
}

/// Writes `key` only when there is a value.
fn put<M: SerializeMap>(m: &mut M, key: &'static str, value: Option<&str>) -> Result<(), M::Error> {
    match value {
        Some(v) => m.serialize_entry(key, v),
        None => Ok(()),
    }
}

/// The contract's value rule: `text-multi`, `jid-multi` and `list-multi` always an array, other
/// types a string for one value and an array for several; no key for no value.
fn put_values<M: SerializeMap>(
    m: &mut M,
    type_: Option<&str>,
    values: &[String],
) -> Result<(), M::Error> {
    match values {
        [] => Ok(()),
        [one] if !is_multi_type(type_) => m.serialize_entry("value", one),
        many => m.serialize_entry("value", many),
    }
}

struct CommandJson<'a>(&'a CommandResponse);

impl Serialize for CommandJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let doc = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jid", &doc.jid)?;
        m.serialize_entry("node", &doc.node)?;
        put(&mut m, "status", doc.status.as_deref())?;
        put(&mut m, "sessionid", doc.sessionid.as_deref())?;
        if !doc.actions.is_empty() {
            m.serialize_entry("actions", &doc.actions)?;
        }
        m.serialize_entry("fields", &Seq(&doc.fields, FieldJson))?;
        put(&mut m, "title", doc.title.as_deref())?;
        put(&mut m, "instructions", doc.instructions.as_deref())?;
        if let Some(note) = &doc.note {
            m.serialize_entry("note", &NoteJson(note))?;
        }
        match &doc.reported {
            Some(r) if !(r.columns.is_empty() && r.items.is_empty()) => {
                m.serialize_entry("reported", &ReportedJson(r))?;
            }
            _ => {}
        }
        m.end()
    }
}

struct NoteJson<'a>(&'a Note);

impl Serialize for NoteJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", &self.0.type_)?;
        m.serialize_entry("value", &self.0.value)?;
        m.end()
    }
}

struct FieldJson<'a>(&'a ResponseField);

impl Serialize for FieldJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("var", &f.var)?;
        put(&mut m, "label", f.label.as_deref())?;
        put(&mut m, "type", f.type_.as_deref())?;
        put_values(&mut m, f.type_.as_deref(), &f.values)?;
        if !f.options.is_empty() {
            m.serialize_entry("options", &Seq(&f.options, OptionJson))?;
        }
        if f.required {
            m.serialize_entry("required", &true)?;
        }
        put(&mut m, "desc", f.desc.as_deref())?;
        m.end()
    }
}

struct OptionJson<'a>(&'a FieldOption);

impl Serialize for OptionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        put(&mut m, "label", self.0.label.as_deref())?;
        m.serialize_entry("value", &self.0.value)?;
        m.end()
    }
}

/// Columns as `{var, label, type}`; each cell's value follows the value rule with the type of
/// the column of the same `var` (none when no column has it).
struct ReportedJson<'a>(&'a Reported);

impl<'a> Serialize for ReportedJson<'a> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("columns", &Seq(&r.columns, ColumnJson))?;
        let row = |cells: &'a Vec<Cell>| Seq(cells, move |cell| CellJson(cell, r));
        m.serialize_entry("items", &Seq(&r.items, row))?;
        m.end()
    }
}

struct ColumnJson<'a>(&'a Column);

impl Serialize for ColumnJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("var", &c.var)?;
        put(&mut m, "label", c.label.as_deref())?;
        put(&mut m, "type", c.type_.as_deref())?;
        m.end()
    }
}

/// A cell, typed by its table's column of the same `var`.
struct CellJson<'a>(&'a Cell, &'a Reported);

impl Serialize for CellJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (cell, r) = (self.0, self.1);
        let type_ = r
            .columns
            .iter()
            .find(|c| c.var == cell.var)
            .and_then(|c| c.type_.as_deref());
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("var", &cell.var)?;
        put_values(&mut m, type_, &cell.values)?;
        m.end()
    }
}

struct ItemJson<'a>(&'a CommandItem);

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let item = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jid", &item.jid)?;
        m.serialize_entry("node", &item.node)?;
        put(&mut m, "name", item.name.as_deref())?;
        m.end()
    }
}

struct ErrorJson<'a>(&'a ErrorBody);

impl Serialize for ErrorJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let err = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("status", &err.status)?;
        m.serialize_entry("condition", &err.condition)?;
        put(&mut m, "text", err.text.as_deref())?;
        put(&mut m, "field", err.field.as_deref())?;
        m.end()
    }
}

struct ResourceJson<'a>(&'a crate::rest::resources::Resource);

impl Serialize for ResourceJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::rest::resources::Value as Entry;
        let mut m = s.serialize_map(Some(self.0.entries.len()))?;
        for (key, value) in &self.0.entries {
            match value {
                Entry::Text(t) => m.serialize_entry(key, t)?,
                Entry::List(l) => m.serialize_entry(key, l)?,
            }
        }
        m.end()
    }
}
