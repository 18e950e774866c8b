//! The JSON codec of the REST document (Tigase's `{"command": {…}}` shape).
//!
//! Decoding goes through `serde_json::Value` after a depth pre-scan; encoding builds
//! `serde_json` maps (key order preserved) so every key appears in the order the contract fixes.

use serde_json::{json, Map, Value};

use super::xml::is_xml_char;
use super::{
    is_multi_type, CommandItem, CommandRequest, CommandResponse, DecodeError, ErrorBody,
    FieldValue, Reported, RequestField, ResponseField,
};

/// The deepest nesting of objects and arrays a request may have:
/// `{"command": {"fields": [{"value": [..]}]}}` needs 5.
const MAX_DEPTH: usize = 8;

/// Decodes a JSON request body, `{"command": {…}}` or the inner object alone (when it has no
/// `command` key).
///
/// A number or boolean value is taken as its JSON text (`25` -> `"25"`, `false` -> `"false"`);
/// `null` is no value. An empty `node`, `sessionid` or `action` counts as absent.
pub fn decode_request(body: &[u8]) -> Result<CommandRequest, DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    check_depth(body)?;
    serde_json::from_slice::<NoDuplicateKeys>(body)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let Value::Object(mut top) = doc else {
        return Err(shape("the body must be a JSON object"));
    };
    let command = match top.remove("command") {
        Some(Value::Object(command)) => command,
        Some(_) => return Err(shape("\"command\" must be an object")),
        None => top,
    };
    Ok(CommandRequest {
        node: identifier(&command, "node")?,
        fields: fields_from(command.get("fields"))?,
        sessionid: identifier(&command, "sessionid")?,
        action: identifier(&command, "action")?,
    })
}

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

// ---------------------------------------------------------------------------------------------
// Decoding

/// Refuses nesting beyond [`MAX_DEPTH`] before parsing, so a deep body costs neither a tree nor
/// serde_json's own (much higher) recursion limit. Brackets inside strings do not count.
fn check_depth(body: &[u8]) -> Result<(), DecodeError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A pass over a JSON document that refuses an object naming a key twice (`serde_json::Value`
/// would silently keep the last, so `"node"` twice would run a command the client did not
/// mean). Depth is bounded before this runs.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

fn fields_from(fields: Option<&Value>) -> Result<Vec<RequestField>, DecodeError> {
    match fields {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(fields)) => fields.iter().map(field_from).collect(),
        Some(_) => Err(shape("\"fields\" must be an array")),
    }
}

fn field_from(field: &Value) -> Result<RequestField, DecodeError> {
    let Value::Object(field) = field else {
        return Err(shape("a field must be an object"));
    };
    let var = match field.get("var") {
        Some(Value::String(var)) => checked(var)?,
        _ => return Err(shape("a field needs a string \"var\"")),
    };
    let value = match field.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(FieldValue::List(
            items.iter().map(scalar).collect::<Result<_, _>>()?,
        )),
        Some(value) => Some(FieldValue::Single(scalar(value)?)),
    };
    Ok(RequestField { var, value })
}

/// One value as text: a string as is, a number or boolean as its JSON text. Tigase drops
/// `false`, `0` and `""`; they are values like any other here.
fn scalar(value: &Value) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => checked(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => Err(shape(
            "a value must be a string, number or boolean, or an array of those",
        )),
    }
}

/// `node`, `sessionid` or `action`: a string or null, absent when empty.
fn identifier(command: &Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match command.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => checked(s).map(Some),
        Some(_) => Err(shape(format!("\"{key}\" must be a string"))),
    }
}

/// Refuses characters the upstream's XML 1.0 stream cannot carry (JSON can: `"\u0000"`).
fn checked(s: &str) -> Result<String, DecodeError> {
    if s.chars().all(is_xml_char) {
        Ok(s.to_owned())
    } else {
        Err(shape("a string holds a control character XML cannot carry"))
    }
}

fn shape(message: impl Into<String>) -> DecodeError {
    DecodeError::Shape(message.into())
}

// ---------------------------------------------------------------------------------------------
// Encoding

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::xml::tests::{field, full_response, seed_responses, END_USER_SESSION};
    use crate::rest::{Cell, Note};

    const SEED_JSON_REQUEST: &str = r#"{
  "command" : {
  	"node": "http://jabber.org/protocol/admin#end-user-session",
  	"fields": [
		{
	    	"var" : "accountjids",
			"value" : [
				"test@domain.com"
			]
		}
  	]
  }
}"#;

    const SEED_JSON_ENDED: &str = r#"{
  "command" : {
    "jid" : "sess-man@domain.com",
    "node" : "http://jabber.org/protocol/admin#end-user-session",
    "fields" : [
      {
        "var" : "Notes",
        "type" : "text-multi",
        "value" : [
          "Operation successful for user test@domain.com/resource"
        ]
      }
   ]
  }
}"#;

    const SEED_JSON_NONE: &str = r#"{
  "command" : {
    "jid" : "sess-man@domain.com",
    "node" : "http://jabber.org/protocol/admin#end-user-session",
    "fields" : []
  }
}"#;

    /// The document in compact form: with `preserve_order`, equal strings mean equal keys,
    /// values and key order.
    fn compact(doc: &[u8]) -> String {
        serde_json::from_slice::<Value>(doc)
            .expect("valid JSON")
            .to_string()
    }

    fn decode(body: &str) -> Result<CommandRequest, DecodeError> {
        decode_request(body.as_bytes())
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"command": {"node": "a", "node": "b"}}"#,
            r#"{"command": {"node": "a", "fields": [{"var": "x", "var": "y"}]}}"#,
            r#"{"command": {"node": "a"}, "command": {"node": "b"}}"#,
            r#"{"command": {"node": "a", "n\u006fde": "b"}}"#,
        ] {
            match decode(body) {
                Err(DecodeError::Malformed(m)) => assert!(m.contains("twice"), "{m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        let ok = decode(r#"{"command": {"node": "a", "fields": [{"var": "x", "value": 1.50}]}}"#);
        assert_eq!(ok.unwrap().node.as_deref(), Some("a"));
    }

    /// The value of the one field of `{"command": {"fields": [{"var": "v", "value": …}]}}`.
    fn value_of(value_json: &str) -> Result<Option<FieldValue>, DecodeError> {
        let body =
            format!(r#"{{"command": {{"fields": [{{"var": "v", "value": {value_json}}}]}}}}"#);
        decode(&body).map(|mut req| req.fields.remove(0).value)
    }

    fn single(s: &str) -> Result<Option<FieldValue>, DecodeError> {
        Ok(Some(FieldValue::Single(s.into())))
    }

    fn list(items: &[&str]) -> Result<Option<FieldValue>, DecodeError> {
        Ok(Some(FieldValue::List(
            items.iter().map(|s| s.to_string()).collect(),
        )))
    }

    #[test]
    fn seed_request_decodes() {
        let expected = CommandRequest {
            node: Some(END_USER_SESSION.into()),
            fields: vec![RequestField {
                var: "accountjids".into(),
                value: Some(FieldValue::List(vec!["test@domain.com".into()])),
            }],
            sessionid: None,
            action: None,
        };
        assert_eq!(decode(SEED_JSON_REQUEST).unwrap(), expected);
        let unwrapped = r#"{"node": "http://jabber.org/protocol/admin#end-user-session",
                            "fields": [{"var": "accountjids", "value": ["test@domain.com"]}]}"#;
        assert_eq!(decode(unwrapped).unwrap(), expected);
    }

    #[test]
    fn seed_responses_encode_as_the_seed() {
        let (ended, none) = seed_responses();
        assert_eq!(
            compact(&encode_response(&ended)),
            compact(SEED_JSON_ENDED.as_bytes())
        );
        assert_eq!(
            compact(&encode_response(&none)),
            compact(SEED_JSON_NONE.as_bytes())
        );
    }

    #[test]
    fn scalars_are_taken_as_their_text() {
        assert_eq!(value_of(r#""x""#), single("x"));
        assert_eq!(value_of(r#""""#), single(""));
        assert_eq!(value_of(r#"" spaced ""#), single(" spaced "));
        assert_eq!(value_of("25"), single("25"));
        assert_eq!(value_of("0"), single("0"));
        assert_eq!(value_of("-3"), single("-3"));
        assert_eq!(value_of("1.50"), single("1.50"));
        assert_eq!(value_of("true"), single("true"));
        assert_eq!(value_of("false"), single("false"));
        assert_eq!(value_of("null"), Ok(None));
        assert_eq!(value_of("[]"), list(&[]));
        assert_eq!(
            value_of(r#"["a", 0, false, "", 2]"#),
            list(&["a", "0", "false", "", "2"])
        );
        let req = decode(r#"{"fields": [{"var": "v"}]}"#).unwrap();
        assert_eq!(
            req.fields,
            vec![RequestField {
                var: "v".into(),
                value: None
            }]
        );
    }

    #[test]
    fn identifiers_and_unknown_keys() {
        let req = decode(
            r#"{"command": {"jid": "ignored", "node": "n", "sessionid": "s", "action": "next",
                            "extra": {"deep": [1, 2]}, "fields": null}}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            CommandRequest {
                node: Some("n".into()),
                fields: vec![],
                sessionid: Some("s".into()),
                action: Some("next".into()),
            }
        );
        let req = decode(r#"{"command": {"node": "", "sessionid": null, "fields": []}}"#).unwrap();
        assert_eq!(req, CommandRequest::default());
        assert_eq!(decode("\u{FEFF}{}").unwrap(), CommandRequest::default());
    }

    #[test]
    fn wrong_shapes_are_refused() {
        for body in [
            "[]",
            r#""command""#,
            "null",
            "42",
            r#"{"command": []}"#,
            r#"{"command": null}"#,
            r#"{"command": {"node": 1}}"#,
            r#"{"command": {"sessionid": true}}"#,
            r#"{"command": {"action": ["next"]}}"#,
            r#"{"command": {"fields": {}}}"#,
            r#"{"command": {"fields": "x"}}"#,
            r#"{"command": {"fields": ["x"]}}"#,
            r#"{"command": {"fields": [{"value": "x"}]}}"#,
            r#"{"command": {"fields": [{"var": 1, "value": "x"}]}}"#,
            r#"{"command": {"fields": [{"var": "v", "value": {"a": "b"}}]}}"#,
            r#"{"command": {"fields": [{"var": "v", "value": [["a"]]}]}}"#,
            r#"{"command": {"fields": [{"var": "v", "value": [{}]}]}}"#,
            r#"{"command": {"fields": [{"var": "v", "value": [null]}]}}"#,
            r#"{"command": {"fields": [{"var": "v", "value": "a\u0000b"}]}}"#,
            r#"{"command": {"node": "\u001b"}}"#,
        ] {
            assert!(
                matches!(decode(body), Err(DecodeError::Shape(_))),
                "{body}: {:?}",
                decode(body)
            );
        }
    }

    #[test]
    fn malformed_json_is_refused() {
        for body in [
            "",
            " ",
            "{",
            r#"{"command": {}} x"#,
            "{'a': 1}",
            r#"{"a": 1,}"#,
        ] {
            assert!(
                matches!(decode(body), Err(DecodeError::Malformed(_))),
                "{body:?}: {:?}",
                decode(body)
            );
        }
        assert!(matches!(
            decode_request(b"{\"node\": \"\xff\"}"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn depth_is_limited() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let in_value = |depth: usize| format!(r#"{{"command": {{"x": {}}}}}"#, nested(depth - 2));
        assert!(decode(&in_value(8)).is_ok());
        assert_eq!(decode(&in_value(9)), Err(DecodeError::TooDeep));
        assert_eq!(decode(&nested(100_000)), Err(DecodeError::TooDeep));
        let brackets_in_strings = r#"{"node": "[[[[[[[[[[{{{{{{{{{{ \" [[[[[[[[[[", "x": "\\"}"#;
        assert_eq!(
            decode(brackets_in_strings).unwrap().node.as_deref(),
            Some("[[[[[[[[[[{{{{{{{{{{ \" [[[[[[[[[[")
        );
    }

    #[test]
    fn full_response_layout() {
        let expected = r#"{"command":{"jid":"sess-man@example.org","node":"http://jabber.org/protocol/admin#get-online-users-list","status":"executing","sessionid":"s1","actions":["next","complete"],"fields":[{"var":"FORM_TYPE","type":"hidden","value":"http://jabber.org/protocol/admin"},{"var":"max_items","label":"Maximum number of items to show","type":"list-single","value":"25","options":[{"label":"25","value":"25"},{"value":"50"}],"required":true,"desc":"How many"}],"title":"Get List of Online Users","instructions":"Pick a number","note":{"type":"info","value":"All fine"},"reported":{"columns":[{"var":"jid","label":"JID","type":"jid-single"},{"var":"groups","type":"text-multi"}],"items":[[{"var":"jid","value":"a@example.org"},{"var":"groups","value":["g1"]}],[{"var":"jid","value":"b@example.org"}]]}}}"#;
        let out = encode_response(&full_response());
        assert_eq!(compact(&out), expected);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\n  \"command\": {\n    \"jid\": "),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn every_field_type_follows_the_value_rule() {
        let types = [
            Some("boolean"),
            Some("fixed"),
            Some("hidden"),
            Some("jid-single"),
            Some("jid-multi"),
            Some("list-single"),
            Some("list-multi"),
            Some("text-single"),
            Some("text-multi"),
            Some("text-private"),
            None,
        ];
        for type_ in types {
            let doc = CommandResponse {
                fields: vec![
                    field("v", type_, &[]),
                    field("v", type_, &["1"]),
                    field("v", type_, &["a", "b"]),
                ],
                ..CommandResponse::default()
            };
            let doc: Value = serde_json::from_slice(&encode_response(&doc)).unwrap();
            let fields = &doc["command"]["fields"];
            let type_key = type_.map_or(String::new(), |t| format!(r#","type":"{t}""#));
            let one = if is_multi_type(type_) {
                r#"["1"]"#
            } else {
                r#""1""#
            };
            assert_eq!(fields[0].to_string(), format!(r#"{{"var":"v"{type_key}}}"#));
            assert_eq!(
                fields[1].to_string(),
                format!(r#"{{"var":"v"{type_key},"value":{one}}}"#)
            );
            assert_eq!(
                fields[2].to_string(),
                format!(r#"{{"var":"v"{type_key},"value":["a","b"]}}"#)
            );
        }
    }

    #[test]
    fn reported_cells_follow_their_column_type() {
        let mut doc = full_response();
        let reported = doc.reported.as_mut().unwrap();
        reported.items[0][0].values.push("c@example.org".into());
        reported.items[1].push(Cell {
            var: "unknown".into(),
            values: vec!["x".into()],
        });
        reported.items[1].push(Cell {
            var: "groups".into(),
            values: vec![],
        });
        let doc: Value = serde_json::from_slice(&encode_response(&doc)).unwrap();
        let items = &doc["command"]["reported"]["items"];
        assert_eq!(
            items[0][0]["value"],
            json!(["a@example.org", "c@example.org"])
        );
        assert_eq!(items[1][1], json!({"var": "unknown", "value": "x"}));
        assert_eq!(items[1][2], json!({"var": "groups"}));
    }

    #[test]
    fn text_round_trips() {
        let nasty = "<&>\"' \n\r\t é 日本 \\ \u{1F600} \u{0}";
        let doc = CommandResponse {
            jid: nasty.into(),
            fields: vec![field(nasty, Some("text-single"), &[nasty])],
            note: Some(Note {
                type_: "warn".into(),
                value: nasty.into(),
            }),
            ..CommandResponse::default()
        };
        let doc: Value = serde_json::from_slice(&encode_response(&doc)).unwrap();
        let c = &doc["command"];
        for v in [
            &c["jid"],
            &c["fields"][0]["var"],
            &c["fields"][0]["value"],
            &c["note"]["value"],
        ] {
            assert_eq!(v, nasty);
        }
        let body = json!({"command": {"fields": [{"var": "v", "value": nasty.replace('\0', "")}]}});
        let req = decode_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            req.fields[0].value,
            Some(FieldValue::Single(nasty.replace('\0', "")))
        );
    }

    #[test]
    fn items_encode() {
        assert_eq!(compact(&encode_items(&[])), r#"{"items":[]}"#);
        let items = [
            CommandItem {
                jid: "example.org".into(),
                node: "n1".into(),
                name: Some("One".into()),
            },
            CommandItem {
                jid: "example.org".into(),
                node: "n2".into(),
                name: None,
            },
        ];
        assert_eq!(
            compact(&encode_items(&items)),
            r#"{"items":[{"jid":"example.org","node":"n1","name":"One"},{"jid":"example.org","node":"n2"}]}"#
        );
    }

    #[test]
    fn errors_encode() {
        let err = ErrorBody {
            status: 403,
            condition: "forbidden".into(),
            text: Some("You don't have permission to execute this command".into()),
            field: None,
        };
        assert_eq!(
            compact(&encode_error(&err)),
            r#"{"error":{"status":403,"condition":"forbidden","text":"You don't have permission to execute this command"}}"#
        );
        let err = ErrorBody {
            status: 400,
            condition: "bad-request".into(),
            text: None,
            field: Some("accountjids".into()),
        };
        assert_eq!(
            compact(&encode_error(&err)),
            r#"{"error":{"status":400,"condition":"bad-request","field":"accountjids"}}"#
        );
    }
}
