//! What only the JSON codec has: numbers and booleans as values, keys given twice, depth,
//! escaping, layout. What both codecs share is in [`crate::rest::conformance`].

use serde_json::{json, Value};

use super::{decode_request, encode_response};
use crate::rest::conformance::{field, full_response, FULL_RESPONSE_JSON};
use crate::rest::{CommandRequest, CommandResponse, DecodeError, FieldValue, Note};

/// The document in compact form: with `preserve_order`, equal strings mean equal keys,
/// values and key order.
pub(in crate::rest) fn compact(doc: &[u8]) -> String {
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

/// Past eight keys the duplicate check moves from a list to a set: a repeat is found on either
/// side of that line, escaped or not, and many distinct keys pass.
#[test]
fn a_key_given_twice_is_refused_among_many_keys() {
    let object = |n: usize, extra: &str| {
        let keys: String = (0..n).map(|i| format!(", \"k{i}\": {i}")).collect();
        format!(r#"{{"command": {{"node": "a"{keys}{extra}}}}}"#)
    };
    for extra in [
        ", \"k3\": 0",
        ", \"k19\": 0",
        ", \"k\\u0031\": 0",
        ", \"node\": \"b\"",
    ] {
        let body = object(20, extra);
        match decode(&body) {
            Err(DecodeError::Malformed(m)) => assert!(m.contains("twice"), "{body}: {m}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    for n in [0, 7, 8, 9, 200] {
        let body = object(n, "");
        let req = decode(&body).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(req.node.as_deref(), Some("a"));
    }
}

/// The value of the one field of `{"command": {"fields": [{"var": "v", "value": …}]}}`.
fn value_of(value_json: &str) -> Result<Option<FieldValue>, DecodeError> {
    let body = format!(r#"{{"command": {{"fields": [{{"var": "v", "value": {value_json}}}]}}}}"#);
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
fn scalars_are_taken_as_their_text() {
    assert_eq!(value_of(r#""x""#), single("x"));
    assert_eq!(value_of(r#"" spaced ""#), single(" spaced "));
    assert_eq!(value_of("25"), single("25"));
    assert_eq!(value_of("-3"), single("-3"));
    assert_eq!(value_of("1.50"), single("1.50"));
    assert_eq!(value_of("true"), single("true"));
    assert_eq!(value_of("[]"), list(&[]));
}

#[test]
fn wrong_shapes_are_refused() {
    for body in [
        r#""command""#,
        "null",
        "42",
        r#"{"command": []}"#,
        r#"{"command": null}"#,
        r#"{"command": {"sessionid": true}}"#,
        r#"{"command": {"action": ["next"]}}"#,
        r#"{"command": {"fields": {}}}"#,
        r#"{"command": {"fields": ["x"]}}"#,
        r#"{"command": {"fields": [{"var": 1, "value": "x"}]}}"#,
        r#"{"command": {"fields": [{"var": "v", "value": {"a": "b"}}]}}"#,
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
    for body in ["{'a': 1}", r#"{"a": 1,}"#] {
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
fn responses_are_laid_out_as_the_contract() {
    let text = String::from_utf8(encode_response(&full_response())).unwrap();
    assert_eq!(text, FULL_RESPONSE_JSON);
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

/// The decoder before the typed pass (a `Value` tree of the whole body), kept as the reference
/// the typed pass must agree with.
fn reference(body: &[u8]) -> Result<CommandRequest, DecodeError> {
    use serde_json::Map;
    fn shape(m: impl Into<String>) -> DecodeError {
        DecodeError::Shape(m.into())
    }
    fn checked(s: &str) -> Result<String, DecodeError> {
        if s.chars().all(crate::rest::xmlchar::is_xml_char) {
            Ok(s.to_owned())
        } else {
            Err(shape("a string holds a control character XML cannot carry"))
        }
    }
    fn identifier(c: &Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
        match c.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => checked(s).map(Some),
            Some(_) => Err(shape(format!("\"{key}\" must be a string"))),
        }
    }
    fn scalar(v: &Value) -> Result<String, DecodeError> {
        match v {
            Value::String(s) => checked(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(shape(
                "a value must be a string, number or boolean, or an array of those",
            )),
        }
    }
    fn field(f: &Value) -> Result<crate::rest::RequestField, DecodeError> {
        let Value::Object(f) = f else {
            return Err(shape("a field must be an object"));
        };
        let var = match f.get("var") {
            Some(Value::String(v)) => checked(v)?,
            _ => return Err(shape("a field needs a string \"var\"")),
        };
        let value = match f.get("value") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(FieldValue::List(
                items.iter().map(scalar).collect::<Result<_, _>>()?,
            )),
            Some(v) => Some(FieldValue::Single(scalar(v)?)),
        };
        Ok(crate::rest::RequestField { var, value })
    }
    // The syntax, depth and duplicate checks are the decoder's own (shared).
    super::decode::checked_body_for_tests(body)?;
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let doc: Value = serde_json::from_slice(body).expect("checked above");
    let Value::Object(mut top) = doc else {
        return Err(shape("the body must be a JSON object"));
    };
    let command = match top.remove("command") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err(shape("\"command\" must be an object")),
        None => top,
    };
    Ok(CommandRequest {
        node: identifier(&command, "node")?,
        fields: match command.get("fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(fs)) => fs.iter().map(field).collect::<Result<_, _>>()?,
            Some(_) => return Err(shape("\"fields\" must be an array")),
        },
        sessionid: identifier(&command, "sessionid")?,
        action: identifier(&command, "action")?,
    })
}

/// The typed pass answers exactly as the `Value` tree did (the same request, or the same
/// error and message) for every combination of the request's keys holding every kind of JSON
/// value, at the top, under `command` and in a field; numbers included, which serde_json hands
/// to a visitor as a map.
#[test]
fn the_typed_pass_agrees_with_the_value_tree() {
    let values = [
        "null",
        "0",
        "25",
        "-3",
        "1.50",
        "1e400",
        "true",
        "false",
        "\"\"",
        "\"x\"",
        "\"a\\u0000b\"",
        "[]",
        "[1, \"a\", true]",
        "[null]",
        "[[]]",
        "[{}]",
        "{}",
        "{\"var\": \"v\"}",
        "{\"var\": \"v\", \"value\": 2.0}",
        "[{\"var\": \"v\", \"value\": [\"a\", 1.25]}]",
        "[{\"var\": 1}]",
        "[5]",
        "[{\"var\": \"v\", \"value\": {\"x\": 1}}]",
        "{\"node\": \"n\"}",
    ];
    let keys = [
        "command",
        "node",
        "fields",
        "sessionid",
        "action",
        "var",
        "value",
        "other",
    ];
    let mut bodies = Vec::new();
    for v in values {
        bodies.push(v.to_string());
        for k in keys {
            bodies.push(format!("{{\"{k}\": {v}}}"));
            bodies.push(format!("{{\"node\": \"n\", \"{k}\": {v}}}"));
            bodies.push(format!("{{\"command\": {{\"{k}\": {v}}}}}"));
            bodies.push(format!(
                "{{\"{k}\": {v}, \"command\": {{\"node\": \"n\"}}}}"
            ));
            bodies.push(format!(
                "{{\"command\": {{\"node\": \"n\", \"fields\": [{{\"var\": \"f\", \"{k}\": {v}}}]}}}}"
            ));
        }
    }
    for body in &bodies {
        let (typed, tree) = (decode_request(body.as_bytes()), reference(body.as_bytes()));
        assert_eq!(format!("{typed:?}"), format!("{tree:?}"), "{body}");
    }
}

/// serde_json hands a number it keeps as text (a fraction, an exponent, one too big for 64 bits)
/// to a visitor as a map under its private token; the typed pass must take that map for a
/// number, not an object (`"command": 1.5` is no command).
#[test]
fn a_number_is_no_object() {
    for n in ["5", "1.5", "1e3", "123456789012345678901234567890"] {
        let is = |body: String, want: &str| match decode(&body) {
            Err(DecodeError::Shape(m)) => assert_eq!(m, want, "{body}"),
            other => panic!("{body}: {other:?}"),
        };
        is(
            format!(r#"{{"command": {n}}}"#),
            "\"command\" must be an object",
        );
        is(n.to_string(), "the body must be a JSON object");
        is(
            format!(r#"{{"fields": [{n}]}}"#),
            "a field must be an object",
        );
        is(
            format!(r#"{{"fields": {n}}}"#),
            "\"fields\" must be an array",
        );
    }
}
