//! Body -> request: a depth pre-scan, a pass that refuses keys given twice, then a typed pass
//! that keeps only what a request has (`command`, `node`, `fields`, `sessionid`, `action`, and
//! each field's `var` and `value`): no `serde_json::Value` tree of the whole body.

use std::borrow::Cow;

use serde_json::Value;

use super::typed::{Command, Field, Fields, Slot, Written};
use crate::rest::xmlchar::is_xml_char;
use crate::rest::{CommandRequest, DecodeError, FieldValue, RequestField};

/// The deepest nesting of objects and arrays a request may have:
/// `{"command": {"fields": [{"value": [..]}]}}` needs 5.
const MAX_DEPTH: usize = 8;

/// Decodes a JSON request body, `{"command": {…}}` or the inner object alone (when it has no
/// `command` key).
///
/// A number or boolean value is taken as its JSON text (`25` -> `"25"`, `1.50` -> `"1.50"`,
/// `false` -> `"false"`; see `typed`); `null` is no value. An empty `node`, `sessionid` or
/// `action` counts as absent. A number beyond an `f64`'s range anywhere in the body is malformed.
pub fn decode_request(body: &[u8]) -> Result<CommandRequest, DecodeError> {
    let body = checked_body(body)?;
    let top: Slot<Command> =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let Slot::Object(mut top) = top else {
        return Err(shape("the body must be a JSON object"));
    };
    let command = match top.command.take() {
        Some(Slot::Object(command)) => *command,
        Some(Slot::Other) => return Err(shape("\"command\" must be an object")),
        None => top,
    };
    Ok(CommandRequest {
        node: identifier(command.node, "node")?,
        fields: fields_from(command.fields)?,
        sessionid: identifier(command.sessionid, "sessionid")?,
        action: identifier(command.action, "action")?,
    })
}

/// The checks before the typed pass, for the reference decoder of the tests.
#[cfg(test)]
pub(super) fn checked_body_for_tests(body: &[u8]) -> Result<(), DecodeError> {
    checked_body(body).map(drop)
}

/// The body after a BOM is dropped, its depth bounded, its syntax checked and keys given twice
/// refused.
fn checked_body(body: &[u8]) -> Result<&[u8], DecodeError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    check_depth(body)?;
    serde_json::from_slice::<NoDuplicateKeys>(body)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(body)
}

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
        // The keys of an object, borrowed from the body where they need no unescaping; compared
        // in a list while few (a request's objects have two to four), in a set past that, so a
        // body of thousands of keys costs no quadratic scan.
        const LISTED: usize = 8;
        let mut listed: Vec<Key<'de>> = Vec::new();
        let mut many: Option<std::collections::HashSet<Key<'de>>> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let repeated = match &mut many {
                Some(set) => set.contains(&key),
                None => listed.contains(&key),
            };
            if repeated {
                return Err(serde::de::Error::custom(format!(
                    "the key {:?} appears twice in one object",
                    key.0
                )));
            }
            match &mut many {
                Some(set) => {
                    set.insert(key);
                }
                None if listed.len() < LISTED => listed.push(key),
                None => {
                    let mut set: std::collections::HashSet<Key<'de>> = listed.drain(..).collect();
                    set.insert(key);
                    many = Some(set);
                }
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

/// An object key as the body has it: borrowed unless it had escapes to undo.
#[derive(PartialEq, Eq, Hash)]
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

fn fields_from(fields: Option<Fields>) -> Result<Vec<RequestField>, DecodeError> {
    match fields {
        None | Some(Fields::Null) => Ok(Vec::new()),
        Some(Fields::Array(fields)) => fields.into_iter().map(field_from).collect(),
        Some(Fields::Other) => Err(shape("\"fields\" must be an array")),
    }
}

fn field_from(field: Slot<Field>) -> Result<RequestField, DecodeError> {
    let Slot::Object(field) = field else {
        return Err(shape("a field must be an object"));
    };
    let var = match field.var {
        Some(Value::String(var)) => checked(var)?,
        _ => return Err(shape("a field needs a string \"var\"")),
    };
    let value = match field.value {
        None | Some(Written::Null) => None,
        Some(Written::Array(items)) => Some(FieldValue::List(
            items.into_iter().map(scalar).collect::<Result<_, _>>()?,
        )),
        Some(value) => Some(FieldValue::Single(scalar(value)?)),
    };
    Ok(RequestField { var, value })
}

/// One value as text: a string as is, a number or boolean as its JSON text (a number's digits
/// as written: `typed`'s doc says why). Tigase drops `false`, `0` and `""`; they are values
/// like any other here.
fn scalar(value: Written) -> Result<String, DecodeError> {
    match value {
        Written::String(s) => checked(s),
        Written::Number(n) => Ok(n),
        Written::Bool(b) => Ok(b.to_string()),
        Written::Null | Written::Array(_) | Written::Object => Err(shape(
            "a value must be a string, number or boolean, or an array of those",
        )),
    }
}

/// `node`, `sessionid` or `action`: a string or null, absent when empty.
fn identifier(value: Option<Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => checked(s).map(Some),
        Some(_) => Err(shape(format!("\"{key}\" must be a string"))),
    }
}

/// Refuses characters the upstream's XML 1.0 stream cannot carry (JSON can: `"\u0000"`).
fn checked(s: String) -> Result<String, DecodeError> {
    if s.chars().all(is_xml_char) {
        Ok(s)
    } else {
        Err(shape("a string holds a control character XML cannot carry"))
    }
}

fn shape(message: impl Into<String>) -> DecodeError {
    DecodeError::Shape(message.into())
}

/// Decodes a resource body: a flat object of strings (keys given twice refused), in order.
pub fn decode_resource(body: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let body = checked_body(body)?;
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let Value::Object(map) = doc else {
        return Err(shape("the body must be a JSON object"));
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, checked(s)?)),
            _ => Err(shape(format!("{key:?} must be a string"))),
        })
        .collect()
}
