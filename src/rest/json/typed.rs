//! The typed pass of a JSON request body (after `decode`'s syntax and duplicate-key pass):
//! only the request's keys are kept (`command`, `node`, `fields`, `sessionid`, `action`, and
//! each field's `var` and `value`), everything else is skipped unread, and every value that
//! should be an object but is not becomes [`Slot::Other`], refused by `decode` afterwards.

use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
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

/// A field's `var` and `value`, as JSON values (one string is one allocation, moved on).
#[derive(Default)]
pub(super) struct Field {
    pub(super) var: Option<Value>,
    pub(super) value: Option<Value>,
}

/// The key under which serde_json (with `arbitrary_precision`, which keeps a number's text)
/// hands a number to a visitor: as a one-entry map, which its `Number` reads back. Such a map
/// is a number, not an object; `a_number_is_no_object` pins this against the serde_json in use.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

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

/// Walks an object's entries, handing each key to `entry` (which must consume its value);
/// `false` when the "object" is serde_json's number in disguise (consumed too).
fn entries<'de, A: MapAccess<'de>>(
    mut map: A,
    mut entry: impl FnMut(&mut A, &str) -> Result<(), A::Error>,
) -> Result<bool, A::Error> {
    let mut first = true;
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        if first && key == NUMBER_TOKEN {
            map.next_value::<IgnoredAny>()?;
            return Ok(false);
        }
        first = false;
        entry(&mut map, &key)?;
    }
    Ok(true)
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
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let mut object = T::default();
                let is_object = entries(map, |map, key| object.entry(map, key))?;
                Ok(if is_object {
                    Slot::Object(object)
                } else {
                    Slot::Other
                })
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
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
                entries(map, |map, _| map.next_value::<IgnoredAny>().map(drop))?;
                Ok(Fields::Other)
            }
        }
        d.deserialize_any(V)
    }
}
