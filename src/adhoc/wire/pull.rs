//! The pull reader under `read`: quick-xml's namespace-aware events reduced to what a reply
//! needs (elements by namespace, checked text), with depth bounded and every attribute checked.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;

use super::{WireError, MAX_DEPTH};
use crate::adhoc::xep0050::{NS_COMMANDS, NS_DATA};
use crate::rest::xmlchar::is_xml_char;

const NS_CLIENT: &str = "jabber:client";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

pub(super) fn syntax(what: impl Into<String>) -> WireError {
    WireError::Syntax(what.into())
}

/// The namespaces the reply's elements are told apart by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ns {
    Client,
    Commands,
    Data,
    Stanzas,
    Other,
}

pub(super) enum Pulled<'i> {
    /// An element opens; `true` when it is empty (`<x/>`) and so already closed.
    Open(Ns, BytesStart<'i>, bool),
    Text(Cow<'i, str>),
    Close,
    Eof,
}

pub(super) struct Pull<'i> {
    reader: NsReader<&'i [u8]>,
    /// Elements open now.
    depth: usize,
}

impl<'i> Pull<'i> {
    pub(super) fn new(reader: NsReader<&'i [u8]>) -> Self {
        Self { reader, depth: 0 }
    }

    pub(super) fn next(&mut self) -> Result<Pulled<'i>, WireError> {
        loop {
            let (ns, event) = self
                .reader
                .read_resolved_event()
                .map_err(|e| syntax(e.to_string()))?;
            let ns = match ns {
                ResolveResult::Unbound => Ns::Client,
                ResolveResult::Bound(n) => match n.as_ref() {
                    NS_CLIENT => Ns::Client,
                    NS_COMMANDS => Ns::Commands,
                    NS_DATA => Ns::Data,
                    NS_STANZAS => Ns::Stanzas,
                    _ => Ns::Other,
                },
                ResolveResult::Unknown(_) => return Err(syntax("an undeclared prefix")),
            };
            return match event {
                Event::Start(_) | Event::Empty(_) if self.depth >= MAX_DEPTH => {
                    Err(WireError::TooDeep)
                }
                Event::Start(s) => {
                    self.depth += 1;
                    Ok(Pulled::Open(ns, s, false))
                }
                Event::Empty(s) => Ok(Pulled::Open(ns, s, true)),
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    Ok(Pulled::Close)
                }
                Event::Text(t) => checked(t.xml10_content()),
                Event::CData(c) => checked(c.xml10_content()),
                Event::GeneralRef(r) => {
                    let c = resolve(&r)?;
                    Ok(Pulled::Text(Cow::Owned(c.to_string())))
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
                Event::DocType(_) => Err(syntax("a DTD")),
                Event::Eof if self.depth == 0 => Ok(Pulled::Eof),
                Event::Eof => Err(syntax("truncated")),
            };
        }
    }

    /// Skips the rest of an element just opened (nothing when it was empty).
    pub(super) fn skip(&mut self, empty: bool) -> Result<(), WireError> {
        if empty {
            return Ok(());
        }
        let mut open = 1usize;
        while open > 0 {
            match self.next()? {
                Pulled::Open(_, _, false) => open += 1,
                Pulled::Close => open -= 1,
                Pulled::Eof => return Err(syntax("truncated")),
                Pulled::Open(_, _, true) | Pulled::Text(_) => {}
            }
        }
        Ok(())
    }

    /// Walks the children of an element just opened: `child` gets each child element (and
    /// must consume it, e.g. with `skip`); the element's own text (not its children's) is
    /// returned, as minidom's `Element::text` has it.
    pub(super) fn children(
        &mut self,
        empty: bool,
        mut child: impl FnMut(&mut Self, Ns, BytesStart<'i>, bool) -> Result<(), WireError>,
    ) -> Result<String, WireError> {
        let mut text = String::new();
        if empty {
            return Ok(text);
        }
        loop {
            match self.next()? {
                Pulled::Open(ns, start, empty) => child(self, ns, start, empty)?,
                Pulled::Text(t) => text.push_str(&t),
                Pulled::Close => return Ok(text),
                Pulled::Eof => return Err(syntax("truncated")),
            }
        }
    }

    /// The text of an element just opened; its child elements are skipped.
    pub(super) fn text(&mut self, empty: bool) -> Result<String, WireError> {
        self.children(empty, |p, _, _, empty| p.skip(empty))
    }
}

/// Every attribute of an element, unescaped and normalised, to `each` in order; a duplicate, a
/// malformed one or one holding a character XML forbids is an error (quick-xml checks
/// attributes lazily). Duplicates are told apart here, against the keys on the stack, rather
/// than by quick-xml's check, which allocates for every element.
pub(super) fn attributes<'a>(
    start: &'a BytesStart,
    mut each: impl FnMut(&'a str, Cow<'a, str>),
) -> Result<(), WireError> {
    const ON_STACK: usize = 8;
    let mut seen: [&str; ON_STACK] = [""; ON_STACK];
    // Past a few, the keys go to a set: a server's element with thousands of attributes must
    // not cost a quadratic scan.
    let mut many: Option<std::collections::HashSet<&str>> = None;
    for (count, a) in start.attributes().with_checks(false).enumerate() {
        let a = a.map_err(|e| syntax(e.to_string()))?;
        let key = a.key.0;
        let repeated = match &mut many {
            Some(set) => !set.insert(key),
            None if count < ON_STACK => {
                let repeated = seen[..count].contains(&key);
                seen[count] = key;
                repeated
            }
            None => {
                let mut set: std::collections::HashSet<&str> = seen.into_iter().collect();
                let repeated = !set.insert(key);
                many = Some(set);
                repeated
            }
        };
        if repeated {
            return Err(syntax(format!("the attribute {key:?} appears twice")));
        }
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| syntax(e.to_string()))?;
        if !value.chars().all(is_xml_char) {
            return Err(syntax("a character XML does not allow"));
        }
        each(key, value);
    }
    Ok(())
}

/// One attribute's value, all attributes checked.
pub(super) fn attr(start: &BytesStart, key: &str) -> Result<Option<String>, WireError> {
    let mut found = None;
    attributes(start, |k, v| {
        if k == key {
            found = Some(v.into_owned());
        }
    })?;
    Ok(found)
}

fn checked(text: Cow<'_, str>) -> Result<Pulled<'_>, WireError> {
    if text.chars().all(is_xml_char) {
        Ok(Pulled::Text(text))
    } else {
        Err(syntax("a character XML does not allow"))
    }
}

/// A character reference or one of the five predefined entities (nothing else exists without
/// a DTD).
fn resolve(r: &BytesRef) -> Result<char, WireError> {
    crate::rest::xmlchar::resolve_reference(r).map_err(|e| syntax(e.message()))
}
