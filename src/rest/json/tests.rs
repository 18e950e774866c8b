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
