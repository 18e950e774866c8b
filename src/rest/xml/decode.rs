//! Body -> request: the body is read into a small element tree first, so depth, DTDs and
//! well-formedness are checked once, for the whole body, before any of it is interpreted.

use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use crate::rest::xmlchar::is_xml_char;
use crate::rest::{CommandRequest, DecodeError, FieldValue, RequestField};

/// The deepest element nesting a request may have: `command/fields/item/value/item` needs 5,
/// the rest is slack for unknown elements a client adds.
const MAX_DEPTH: usize = 8;

/// Decodes an XML request body (`<command>` with `node`, `fields`, `sessionid`, `action`).
///
/// `node`, `var`, `sessionid` and `action` are trimmed of surrounding whitespace (pretty-printed
/// bodies put line breaks around them) and an empty `node`, `sessionid` or `action` counts as
/// absent; a `<value>` is kept exactly as written.
pub fn decode_request(body: &[u8]) -> Result<CommandRequest, DecodeError> {
    let root = parse_tree(body)?;
    if root.name != "command" {
        return Err(shape("the root element must be <command>"));
    }
    command_from(&root)
}

/// Checks that `body` is one well-formed element (no DTD, within the depth bound, XML 1.0
/// characters only) without interpreting it: the request guards, for a stanza body.
pub fn check_element(body: &[u8]) -> Result<(), DecodeError> {
    parse_tree(body).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Decoding: body -> element tree

/// An element reduced to what the command shape needs: its local name (prefixes and attributes
/// play no part in Tigase's shape), its child elements, and all its character data (text,
/// references and CDATA) concatenated, as the XML spec's line-end normalisation leaves it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(in crate::rest) struct Element {
    pub(in crate::rest) name: String,
    pub(in crate::rest) children: Vec<Element>,
    pub(in crate::rest) text: String,
}

/// Reads `body` into its root element, refusing DTDs, nesting beyond [`MAX_DEPTH`] and anything
/// that is not exactly one well-formed element (comments, PIs and an XML declaration may
/// surround it).
pub(super) fn parse_tree(body: &[u8]) -> Result<Element, DecodeError> {
    let input = std::str::from_utf8(body)
        .map_err(|e| malformed(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let mut reader = Reader::from_str(input);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| read_error(input, reader.error_position(), &e))?;
        match event {
            Event::DocType(_) => return Err(DecodeError::Dtd),
            Event::Start(start) => open.push(start_element(&start, &open, &root)?),
            Event::Empty(start) => {
                let element = start_element(&start, &open, &root)?;
                close(element, &mut open, &mut root);
            }
            Event::End(_) => {
                // quick-xml has checked that this end tag matches the innermost open element.
                if let Some(element) = open.pop() {
                    close(element, &mut open, &mut root);
                }
            }
            Event::Text(t) => add_text(&mut open, &t.xml10_content())?,
            Event::CData(c) => add_text(&mut open, &c.xml10_content())?,
            Event::GeneralRef(r) => add_text(&mut open, resolve(&r)?.encode_utf8(&mut [0; 4]))?,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof if open.is_empty() => return root.ok_or_else(|| malformed("no element")),
            Event::Eof => return Err(malformed("an element is not closed")),
        }
    }
}

/// Opens an element, checking its depth, that it is not a second root, and its attributes'
/// syntax (quick-xml parses those lazily).
fn start_element(
    start: &BytesStart,
    open: &[Element],
    root: &Option<Element>,
) -> Result<Element, DecodeError> {
    if open.len() >= MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    if root.is_some() {
        return Err(malformed("content after the root element"));
    }
    if start.attributes().any(|a| a.is_err()) {
        return Err(malformed("an attribute is not well-formed"));
    }
    Ok(Element {
        name: start.local_name().as_ref().to_owned(),
        ..Element::default()
    })
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(element: Element, open: &mut [Element], root: &mut Option<Element>) {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Appends character data to the innermost open element; outside the root only whitespace is
/// allowed. Characters XML 1.0 forbids are refused, literal or referenced.
fn add_text(open: &mut [Element], text: &str) -> Result<(), DecodeError> {
    if !text.chars().all(is_xml_char) {
        return Err(malformed("a character XML does not allow"));
    }
    match open.last_mut() {
        Some(element) => element.text.push_str(text),
        None if is_whitespace(text) => {}
        None => return Err(malformed("text outside the root element")),
    }
    Ok(())
}

/// A character reference or one of the five predefined entities (nothing else exists without
/// a DTD).
fn resolve(r: &BytesRef) -> Result<char, DecodeError> {
    crate::rest::xmlchar::resolve_reference(r).map_err(|e| malformed(e.message()))
}

/// Maps a reader error to a message that never quotes the body (tag names included). An entity
/// or other markup declaration outside a DOCTYPE is a syntax error to quick-xml; it is reported
/// as [`DecodeError::Dtd`] so that every declaration gets the same answer.
fn read_error(input: &str, position: u64, err: &XmlError) -> DecodeError {
    let at = usize::try_from(position)
        .ok()
        .and_then(|p| input.as_bytes().get(p..))
        .unwrap_or_default();
    match err {
        XmlError::Syntax(SyntaxError::InvalidBangMarkup) if is_declaration(at) => DecodeError::Dtd,
        XmlError::Syntax(e) => malformed(format!("{e} (byte {position})")),
        XmlError::IllFormed(_) => malformed(format!("unmatched or missing tag (byte {position})")),
        _ => malformed(format!("invalid markup (byte {position})")),
    }
}

/// Whether `at` starts a markup declaration (`<!ENTITY`, `<!ELEMENT`, `<!ATTLIST`, `<!NOTATION`).
fn is_declaration(at: &[u8]) -> bool {
    let Some(rest) = at.strip_prefix(b"<!") else {
        return false;
    };
    ["ENTITY", "ELEMENT", "ATTLIST", "NOTATION"]
        .iter()
        .any(|k| {
            rest.get(..k.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(k.as_bytes()))
        })
}

/// XML's whitespace (`S`), which is narrower than Unicode's.
pub(super) fn is_whitespace(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

// ---------------------------------------------------------------------------------------------
// Decoding: element tree -> request

fn command_from(root: &Element) -> Result<CommandRequest, DecodeError> {
    children(root)?;
    Ok(CommandRequest {
        node: identifier(unique(root, "node")?)?,
        fields: match unique(root, "fields")? {
            Some(fields) => fields_from(fields)?,
            None => Vec::new(),
        },
        sessionid: identifier(unique(root, "sessionid")?)?,
        action: identifier(unique(root, "action")?)?,
    })
}

fn fields_from(fields: &Element) -> Result<Vec<RequestField>, DecodeError> {
    named(children(fields)?, "item").map(field_from).collect()
}

fn field_from(item: &Element) -> Result<RequestField, DecodeError> {
    children(item)?;
    let var = unique(item, "var")?.ok_or_else(|| shape("a field has no <var>"))?;
    Ok(RequestField {
        var: trim(leaf_text(var)?).to_owned(),
        value: unique(item, "value")?.map(value_from).transpose()?,
    })
}

/// A `<value>` with child elements is a list of its `<item>`s (whitespace between them is
/// layout); without, its text exactly as written, `<value/>` being the empty string.
fn value_from(value: &Element) -> Result<FieldValue, DecodeError> {
    if value.children.is_empty() {
        return Ok(FieldValue::Single(value.text.clone()));
    }
    named(children(value)?, "item")
        .map(|item| leaf_text(item).map(str::to_owned))
        .collect::<Result<_, _>>()
        .map(FieldValue::List)
}

/// `node`, `sessionid` or `action`: trimmed, and absent when empty.
fn identifier(element: Option<&Element>) -> Result<Option<String>, DecodeError> {
    let Some(element) = element else {
        return Ok(None);
    };
    let text = trim(leaf_text(element)?);
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// The child elements of a container, which may hold no text but layout whitespace.
fn children(element: &Element) -> Result<&[Element], DecodeError> {
    if is_whitespace(&element.text) {
        Ok(&element.children)
    } else {
        Err(shape(format!(
            "<{}> holds text among its elements",
            element.name
        )))
    }
}

/// The text of an element that must not have child elements.
fn leaf_text(element: &Element) -> Result<&str, DecodeError> {
    if element.children.is_empty() {
        Ok(&element.text)
    } else {
        Err(shape(format!(
            "<{}> must hold text, not elements",
            element.name
        )))
    }
}

/// The only child named `name`, if any: a repeated `node`, `var`, … is ambiguous, not ignored.
fn unique<'a>(parent: &'a Element, name: &'static str) -> Result<Option<&'a Element>, DecodeError> {
    let mut found = named(&parent.children, name);
    let first = found.next();
    match found.next() {
        None => Ok(first),
        Some(_) => Err(shape(format!("more than one <{name}>"))),
    }
}

fn named<'a>(elements: &'a [Element], name: &'static str) -> impl Iterator<Item = &'a Element> {
    elements.iter().filter(move |e| e.name == name)
}

fn trim(text: &str) -> &str {
    text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

fn malformed(message: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(message.into())
}

fn shape(message: impl Into<String>) -> DecodeError {
    DecodeError::Shape(message.into())
}

/// Decodes a resource body: `<root>` holding one text-only element per key, in order.
pub fn decode_resource(body: &[u8], root: &str) -> Result<Vec<(String, String)>, DecodeError> {
    let tree = parse_tree(body)?;
    if tree.name != root {
        return Err(shape(format!("the root element must be <{root}>")));
    }
    children(&tree)?
        .iter()
        .map(|e| {
            if e.children.is_empty() {
                Ok((e.name.clone(), e.text.clone()))
            } else {
                Err(shape(format!("<{}> must hold text only", e.name)))
            }
        })
        .collect()
}
