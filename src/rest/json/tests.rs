//! What only the JSON codec has: numbers and booleans as values, keys given twice, depth,
//! escaping, layout. What both codecs share is in [`crate::rest::conformance`].

use std::collections::HashMap;

use serde_json::value::RawValue;
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

/// A number is text to the server (a count, an id, a password of digits): it goes on with the
/// digits the client wrote, never through an `f64` (`1.50` would become `1.5`, a long integer
/// would be rounded). Only the exponent's spelling is made one (`1E5` -> `1e+5`).
#[test]
fn numbers_keep_their_digits() {
    for (written, sent) in [
        ("1.50", "1.50"),
        ("0.1", "0.1"),
        ("-0", "-0"),
        ("-0.0", "-0.0"),
        ("18446744073709551616", "18446744073709551616"),
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("0.30000000000000000001", "0.30000000000000000001"),
        ("1e5", "1e+5"),
        ("1E5", "1e+5"),
        ("2.5E-3", "2.5e-3"),
        ("1e+5", "1e+5"),
    ] {
        assert_eq!(value_of(written), single(sent), "{written}");
    }
    assert_eq!(
        value_of("[1.50, 1E5, \"1.50\"]"),
        list(&["1.50", "1e+5", "1.50"])
    );
}

/// A number beyond an `f64`'s range (about 1.8e308) is malformed JSON to the gateway, wherever
/// it stands, a key nobody reads included: the syntax pass reads numbers as serde_json does.
#[test]
fn a_number_beyond_an_f64_is_malformed() {
    for body in [
        r#"{"command": {"fields": [{"var": "v", "value": 1e400}]}}"#,
        r#"{"command": {"node": "a", "other": -1e400}}"#,
    ] {
        match decode(body) {
            Err(DecodeError::Malformed(m)) => assert!(m.contains("out of range"), "{m}"),
            other => panic!("{body}: {other:?}"),
        }
    }
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

/// A tree of the whole body for the reference decoder: serde_json's `Value`, but with each
/// number's text, as the API keeps it (`Value` without `arbitrary_precision` holds an `f64`).
enum Tree {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Tree>),
    Object(HashMap<String, Tree>),
}

impl<'de> serde::Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <&'de RawValue>::deserialize(d)?.get();
        let parsed = match text.as_bytes()[0] {
            b'{' => serde_json::from_str(text).map(Tree::Object),
            b'[' => serde_json::from_str(text).map(Tree::Array),
            b'"' => serde_json::from_str(text).map(Tree::String),
            b'n' => Ok(Tree::Null),
            b't' | b'f' => serde_json::from_str(text).map(Tree::Bool),
            // The API's spelling: digits as written, a signed lower-case exponent.
            _ => Ok(Tree::Number(match text.replace('E', "e").split_once('e') {
                Some((m, x)) if !x.starts_with(['+', '-']) => format!("{m}e+{x}"),
                _ => text.replace('E', "e"),
            })),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// The decoder before the typed pass (a tree of the whole body), kept as the reference the
/// typed pass must agree with.
fn reference(body: &[u8]) -> Result<CommandRequest, DecodeError> {
    type Map = HashMap<String, Tree>;
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
    fn identifier(c: &Map, key: &str) -> Result<Option<String>, DecodeError> {
        match c.get(key) {
            None | Some(Tree::Null) => Ok(None),
            Some(Tree::String(s)) if s.is_empty() => Ok(None),
            Some(Tree::String(s)) => checked(s).map(Some),
            Some(_) => Err(shape(format!("\"{key}\" must be a string"))),
        }
    }
    fn scalar(v: &Tree) -> Result<String, DecodeError> {
        match v {
            Tree::String(s) => checked(s),
            Tree::Number(n) => Ok(n.clone()),
            Tree::Bool(b) => Ok(b.to_string()),
            _ => Err(shape(
                "a value must be a string, number or boolean, or an array of those",
            )),
        }
    }
    fn field(f: &Tree) -> Result<crate::rest::RequestField, DecodeError> {
        let Tree::Object(f) = f else {
            return Err(shape("a field must be an object"));
        };
        let var = match f.get("var") {
            Some(Tree::String(v)) => checked(v)?,
            _ => return Err(shape("a field needs a string \"var\"")),
        };
        let value = match f.get("value") {
            None | Some(Tree::Null) => None,
            Some(Tree::Array(items)) => Some(FieldValue::List(
                items.iter().map(scalar).collect::<Result<_, _>>()?,
            )),
            Some(v) => Some(FieldValue::Single(scalar(v)?)),
        };
        Ok(crate::rest::RequestField { var, value })
    }
    // The syntax, depth and duplicate checks are the decoder's own (shared).
    super::decode::checked_body_for_tests(body)?;
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let doc: Tree = serde_json::from_slice(body).expect("checked above");
    let Tree::Object(mut top) = doc else {
        return Err(shape("the body must be a JSON object"));
    };
    let command = match top.remove("command") {
        Some(Tree::Object(c)) => c,
        Some(_) => return Err(shape("\"command\" must be an object")),
        None => top,
    };
    Ok(CommandRequest {
        node: identifier(&command, "node")?,
        fields: match command.get("fields") {
            None | Some(Tree::Null) => Vec::new(),
            Some(Tree::Array(fs)) => fs.iter().map(field).collect::<Result<_, _>>()?,
            Some(_) => return Err(shape("\"fields\" must be an array")),
        },
        sessionid: identifier(&command, "sessionid")?,
        action: identifier(&command, "action")?,
    })
}

/// The typed pass answers exactly as the tree of the whole body did (the same request, or the
/// same error and message) for every combination of the request's keys holding every kind of
/// JSON value, at the top, under `command` and in a field; numbers of every spelling included.
#[test]
fn the_typed_pass_agrees_with_the_value_tree() {
    let values = [
        "null",
        "0",
        "25",
        "-3",
        "-0",
        "1.50",
        "0.1",
        "1E5",
        "1e-7",
        "123456789012345678901234567890",
        "1e400",
        "[1E2, -0.0, 18446744073709551616]",
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

/// A number where an object belongs is no object (`"command": 1.5` is no command), whatever
/// its spelling: a fraction, an exponent, one too big for 64 bits.
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
