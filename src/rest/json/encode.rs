//! Model -> body: `serde_json` maps (key order preserved), so every key appears in the order
//! the contract fixes.

use serde_json::{json, Map, Value};

use crate::rest::{
    is_multi_type, CommandItem, CommandResponse, ErrorBody, Reported, ResponseField,
};

/// Encodes a command response as pretty-printed `{"command": {…}}`.
pub fn encode_response(doc: &CommandResponse) -> Vec<u8> {
    let mut c = Map::new();
    c.insert("jid".into(), doc.jid.as_str().into());
    c.insert("node".into(), doc.node.as_str().into());
    put(&mut c, "status", doc.status.as_deref());
    put(&mut c, "sessionid", doc.sessionid.as_deref());
    if !doc.actions.is_empty() {
        c.insert("actions".into(), doc.actions.clone().into());
    }
    c.insert("fields".into(), doc.fields.iter().map(field).collect());
    put(&mut c, "title", doc.title.as_deref());
    put(&mut c, "instructions", doc.instructions.as_deref());
    if let Some(note) = &doc.note {
        c.insert(
            "note".into(),
            json!({"type": note.type_, "value": note.value}),
        );
    }
    match &doc.reported {
        Some(r) if !(r.columns.is_empty() && r.items.is_empty()) => {
            c.insert("reported".into(), reported(r));
        }
        _ => {}
    }
    document(json!({ "command": c }))
}

/// Encodes a command list as `{"items": [{"jid", "node", "name"}, …]}`.
pub fn encode_items(items: &[CommandItem]) -> Vec<u8> {
    let items: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut m = Map::new();
            m.insert("jid".into(), item.jid.as_str().into());
            m.insert("node".into(), item.node.as_str().into());
            put(&mut m, "name", item.name.as_deref());
            Value::Object(m)
        })
        .collect();
    document(json!({ "items": items }))
}

/// Encodes an error body as `{"error": {"status": 403, "condition", "text", "field"}}`.
pub fn encode_error(err: &ErrorBody) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("status".into(), err.status.into());
    m.insert("condition".into(), err.condition.as_str().into());
    put(&mut m, "text", err.text.as_deref());
    put(&mut m, "field", err.field.as_deref());
    document(json!({ "error": m }))
}

/// Pretty-prints (2-space indent, serde_json's default) with a trailing newline.
fn document(doc: Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&doc).expect("a Value with string keys serializes");
    out.push(b'\n');
    out
}

/// Inserts `key` only when there is a value.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        map.insert(key.into(), value.into());
    }
}

/// The contract's value rule: `text-multi`, `jid-multi` and `list-multi` always an array, other
/// types a string for one value and an array for several; no key for no value.
fn put_values(map: &mut Map<String, Value>, type_: Option<&str>, values: &[String]) {
    let value = match values {
        [] => return,
        [one] if !is_multi_type(type_) => one.as_str().into(),
        many => many.to_vec().into(),
    };
    map.insert("value".into(), value);
}

fn field(f: &ResponseField) -> Value {
    let mut m = Map::new();
    m.insert("var".into(), f.var.as_str().into());
    put(&mut m, "label", f.label.as_deref());
    put(&mut m, "type", f.type_.as_deref());
    put_values(&mut m, f.type_.as_deref(), &f.values);
    if !f.options.is_empty() {
        let options = f.options.iter().map(|o| {
            let mut m = Map::new();
            put(&mut m, "label", o.label.as_deref());
            m.insert("value".into(), o.value.as_str().into());
            Value::Object(m)
        });
        m.insert("options".into(), options.collect());
    }
    if f.required {
        m.insert("required".into(), true.into());
    }
    put(&mut m, "desc", f.desc.as_deref());
    Value::Object(m)
}

/// Columns as `{var, label, type}`; each cell's value follows the value rule with the type of
/// the column of the same `var` (none when no column has it).
fn reported(r: &Reported) -> Value {
    let columns: Vec<Value> = r
        .columns
        .iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("var".into(), c.var.as_str().into());
            put(&mut m, "label", c.label.as_deref());
            put(&mut m, "type", c.type_.as_deref());
            Value::Object(m)
        })
        .collect();
    let type_of = |var: &str| {
        r.columns
            .iter()
            .find(|c| c.var == var)
            .and_then(|c| c.type_.as_deref())
    };
    let items: Vec<Value> = r
        .items
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| {
                    let mut m = Map::new();
                    m.insert("var".into(), cell.var.as_str().into());
                    put_values(&mut m, type_of(&cell.var), &cell.values);
                    Value::Object(m)
                })
                .collect()
        })
        .collect();
    json!({ "columns": columns, "items": items })
}

/// Encodes a resource document as an object, one key per entry.
pub fn encode_resource(doc: &crate::rest::resources::Resource) -> Vec<u8> {
    use crate::rest::resources::Value as Entry;
    let mut map = Map::new();
    for (key, value) in &doc.entries {
        let value = match value {
            Entry::Text(t) => Value::String(t.clone()),
            Entry::List(l) => Value::Array(l.iter().cloned().map(Value::String).collect()),
        };
        map.insert((*key).to_string(), value);
    }
    document(Value::Object(map))
}
