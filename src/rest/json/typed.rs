//! The typed pass of a JSON request body (after `decode`'s syntax and duplicate-key pass):
//! only the request's keys are kept (`command`, `node`, `fields`, `sessionid`, `action`, and
//! each field's `var` and `value`), everything else is skipped unread, and every value that
//! should be an object but is not becomes [`Slot::Other`], refused by `decode` afterwards.
//!
//! A field's value keeps a number exactly as the body wrote it ([`Written`]): the value is text
//! to the server (a form's `text-single`, a password, a count), and a client that writes
//! `"value": 1.50` or `"value": 12345678901234567890123` means those digits; read as an `f64`
//! they would become `1.5` and `1.2345678901234568e22`, and the server would act on a value
//! nobody sent. serde_json's `raw_value` hands us the number's text; nothing else of serde_json
//! but its public API is relied on.

use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::decode::Key;

/// What the typed pass keeps of an object that should be one: the object, or `Other` for any
/// other JSON value (consumed unread; its shape is refused afterwards by `decode`, in the order
/// of its checks, whatever order the body wrote its keys in).
pub(super) enum Slot<T> {
    Object(T),
    Other,
}

/// The request's keys of an object (the body's top, or its `command`); every other key is
/// skipped unread.
#[derive(Default)]
pub(super) struct Command {
    pub(super) command: Option<Slot<Box<Command>>>,
    pub(super) node: Option<Value>,
    pub(super) fields: Option<Fields>,
    pub(super) sessionid: Option<Value>,
    pub(super) action: Option<Value>,
}

/// `fields`: an array of field slots, `null`, or anything else (refused).
pub(super) enum Fields {
    Null,
    Array(Vec<Slot<Field>>),
    Other,
}

/// A field's `var` (a JSON value: one string is one allocation, moved on) and `value` (as
/// written).
#[derive(Default)]
pub(super) struct Field {
    pub(super) var: Option<Value>,
    pub(super) value: Option<Written>,
}

/// A JSON value with its numbers as the body wrote them (see the module's doc); an array's
/// items likewise, an object only noted (a value may not be one).
#[derive(Debug)]
pub(super) enum Written {
    Null,
    Bool(bool),
    /// The number's text: its digits as written, an exponent spelt `e` with its sign
    /// (`1E5` -> `1e+5`), as `docs/api.md` promises.
    Number(String),
    String(String),
    Array(Vec<Written>),
    Object,
}

impl Written {
    /// Reads one JSON value that serde_json has already checked and delimited (`raw_value`:
    /// no whitespace around it), so its first byte says what it is.
    fn read(text: &str) -> Result<Written, serde_json::Error> {
        Ok(match text.as_bytes().first() {
            Some(b'"') => Written::String(serde_json::from_str(text)?),
            Some(b'[') => Written::Array(serde_json::from_str(text)?),
            Some(b'{') => Written::Object,
            Some(b't') => Written::Bool(true),
            Some(b'f') => Written::Bool(false),
            Some(b'n') => Written::Null,
            _ => Written::Number(number_text(text)),
        })
    }
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        Written::read(raw.get()).map_err(serde::de::Error::custom)
    }
}

/// A JSON number's text with its exponent (if any) spelt `e` and signed.
fn number_text(text: &str) -> String {
    match text.split_once(['e', 'E']) {
        None => text.to_owned(),
        Some((mantissa, exponent)) => {
            let sign = if exponent.starts_with(['+', '-']) {
                ""
            } else {
                "+"
            };
            format!("{mantissa}e{sign}{exponent}")
        }
    }
}

/// The visits of the scalars but `null`, all answering `$other` (each visitor says what `null`
/// and an array are to it).
macro_rules! not_an_object {
    ($out:ty, $other:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_str<E>(self, _: &str) -> Result<$out, E> {
            Ok($other)
        }
    };
}

/// An object the typed pass reads key by key: `entry` takes the value of the keys it keeps
/// and must skip the others' (`IgnoredAny`).
trait Entries: Default {
    fn entry<'de, A: MapAccess<'de>>(&mut self, map: &mut A, key: &str) -> Result<(), A::Error>;
}

impl Entries for Command {
    fn entry<'de, A: MapAccess<'de>>(&mut self, map: &mut A, key: &str) -> Result<(), A::Error> {
        match key {
            "command" => {
                self.command = Some(match map.next_value::<Slot<Command>>()? {
                    Slot::Object(inner) => Slot::Object(Box::new(inner)),
                    Slot::Other => Slot::Other,
                })
            }
            "node" => self.node = Some(map.next_value()?),
            "fields" => self.fields = Some(map.next_value()?),
            "sessionid" => self.sessionid = Some(map.next_value()?),
            "action" => self.action = Some(map.next_value()?),
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl Entries for Field {
    fn entry<'de, A: MapAccess<'de>>(&mut self, map: &mut A, key: &str) -> Result<(), A::Error> {
        match key {
            "var" => self.var = Some(map.next_value()?),
            "value" => self.value = Some(map.next_value()?),
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl<'de, T: Entries> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Entries> Visitor<'de> for V<T> {
            type Value = Slot<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            not_an_object!(Slot<T>, Slot::Other);
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Slot::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Slot::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = T::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    object.entry(&mut map, &key)?;
                }
                Ok(Slot::Object(object))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            not_an_object!(Fields, Fields::Other);
            fn visit_unit<E>(self) -> Result<Fields, E> {
                Ok(Fields::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(f) = seq.next_element::<Slot<Field>>()? {
                    fields.push(f);
                }
                Ok(Fields::Array(fields))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Fields::Other)
            }
        }
        d.deserialize_any(V)
    }
}
