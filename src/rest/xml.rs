//! The XML codec of the REST document (Tigase's `<command>` shape).
//!
//! Decoding reads the body into a small element tree with `quick_xml::Reader` and then picks
//! the command out of it, so depth, DTD and well-formedness are checked once, for the whole
//! body, before any of it is interpreted. Encoding builds elements with `quick_xml::Writer`:
//! every text goes through its escaper, never through string pasting.

use std::borrow::Cow;
use std::io;

use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::{BytesRef, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

use super::{
    CommandItem, CommandRequest, CommandResponse, DecodeError, ErrorBody, FieldValue, Reported,
    RequestField, ResponseField,
};

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

/// Encodes a command response as a pretty-printed `<command>` document.
pub fn encode_response(doc: &CommandResponse) -> Vec<u8> {
    document(|w| {
        parent(w, "command", |w| {
            text(w, "jid", &doc.jid)?;
            text(w, "node", &doc.node)?;
            optional(w, "status", &doc.status)?;
            optional(w, "sessionid", &doc.sessionid)?;
            if !doc.actions.is_empty() {
                list(w, "actions", &doc.actions, |w, a| text(w, "item", a))?;
            }
            list(w, "fields", &doc.fields, field)?;
            optional(w, "title", &doc.title)?;
            optional(w, "instructions", &doc.instructions)?;
            if let Some(note) = &doc.note {
                parent(w, "note", |w| {
                    text(w, "type", &note.type_)?;
                    text(w, "value", &note.value)
                })?;
            }
            match &doc.reported {
                Some(r) if !(r.columns.is_empty() && r.items.is_empty()) => reported(w, r),
                _ => Ok(()),
            }
        })
    })
}

/// Encodes a command list as `<items><item><jid/><node/><name/></item>…</items>`.
pub fn encode_items(items: &[CommandItem]) -> Vec<u8> {
    document(|w| {
        list(w, "items", items, |w, item| {
            parent(w, "item", |w| {
                text(w, "jid", &item.jid)?;
                text(w, "node", &item.node)?;
                optional(w, "name", &item.name)
            })
        })
    })
}

/// Encodes an error body as `<error><status/><condition/><text/><field/></error>`.
pub fn encode_error(err: &ErrorBody) -> Vec<u8> {
    document(|w| {
        parent(w, "error", |w| {
            text(w, "status", &err.status.to_string())?;
            text(w, "condition", &err.condition)?;
            optional(w, "text", &err.text)?;
            optional(w, "field", &err.field)
        })
    })
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production). Upstream streams are XML 1.0,
/// so the JSON codec refuses the same characters this one does.
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

// ---------------------------------------------------------------------------------------------
// Decoding: body -> element tree

/// An element reduced to what the command shape needs: its local name (prefixes and attributes
/// play no part in Tigase's shape), its child elements, and all its character data (text,
/// references and CDATA) concatenated, as the XML spec's line-end normalisation leaves it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Element {
    name: String,
    children: Vec<Element>,
    text: String,
}

/// Reads `body` into its root element, refusing DTDs, nesting beyond [`MAX_DEPTH`] and anything
/// that is not exactly one well-formed element (comments, PIs and an XML declaration may
/// surround it).
fn parse_tree(body: &[u8]) -> Result<Element, DecodeError> {
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

/// Resolves a character reference or one of the five predefined entities. Without a DTD no
/// other entity can be declared, so any other name is an error rather than something to expand.
fn resolve(r: &BytesRef) -> Result<char, DecodeError> {
    let c = match r.resolve_char_ref() {
        Ok(Some(c)) => c,
        Ok(None) => match &**r {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => return Err(malformed("reference to an undeclared entity")),
        },
        Err(_) => return Err(malformed("invalid character reference")),
    };
    if is_xml_char(c) {
        Ok(c)
    } else {
        Err(malformed(
            "a character reference to a character XML does not allow",
        ))
    }
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
fn is_whitespace(text: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Encoding

type XmlWriter = Writer<Vec<u8>>;

/// Runs `body` on a 2-space-indenting writer (empty elements as `<x />`, like the seed) and
/// returns the document with a trailing newline.
fn document(body: impl FnOnce(&mut XmlWriter) -> io::Result<()>) -> Vec<u8> {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.config_mut().add_space_before_slash_in_empty_elements = true;
    body(&mut writer).expect("writing to a Vec cannot fail");
    let mut out = writer.into_inner();
    out.push(b'\n');
    out
}

/// `<name>text</name>`. The escaper covers `<`, `>`, `&`, both quotes and `\r` (as `&#13;`, so
/// line-end normalisation cannot turn it into `\n`); characters XML 1.0 cannot carry at all
/// (C0 controls other than tab and line ends, U+FFFE, U+FFFF) become U+FFFD.
fn text(w: &mut XmlWriter, name: &str, text: &str) -> io::Result<()> {
    let text: Cow<str> = if text.chars().all(is_xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    };
    w.create_element(name)
        .write_text_content(BytesText::new(&text))?;
    Ok(())
}

/// `<name>text</name>` when there is a text.
fn optional(w: &mut XmlWriter, name: &str, value: &Option<String>) -> io::Result<()> {
    value.as_deref().map_or(Ok(()), |v| text(w, name, v))
}

fn parent(
    w: &mut XmlWriter,
    name: &str,
    content: impl FnOnce(&mut XmlWriter) -> io::Result<()>,
) -> io::Result<()> {
    w.create_element(name).write_inner_content(content)?;
    Ok(())
}

/// `<name>` holding one element per entry, or `<name />` when there is none.
fn list<T>(
    w: &mut XmlWriter,
    name: &str,
    entries: &[T],
    each: impl Fn(&mut XmlWriter, &T) -> io::Result<()>,
) -> io::Result<()> {
    if entries.is_empty() {
        w.create_element(name).write_empty()?;
        return Ok(());
    }
    parent(w, name, |w| entries.iter().try_for_each(|e| each(w, e)))
}

/// One value as `<value>x</value>`, several as `<value><item>a</item>…</value>`, none as
/// nothing: in XML the field type does not matter.
fn values(w: &mut XmlWriter, values: &[String]) -> io::Result<()> {
    match values {
        [] => Ok(()),
        [one] => text(w, "value", one),
        many => parent(w, "value", |w| {
            many.iter().try_for_each(|v| text(w, "item", v))
        }),
    }
}

fn field(w: &mut XmlWriter, f: &ResponseField) -> io::Result<()> {
    parent(w, "item", |w| {
        text(w, "var", &f.var)?;
        optional(w, "label", &f.label)?;
        optional(w, "type", &f.type_)?;
        values(w, &f.values)?;
        if !f.options.is_empty() {
            list(w, "options", &f.options, |w, o| {
                parent(w, "item", |w| {
                    optional(w, "label", &o.label)?;
                    text(w, "value", &o.value)
                })
            })?;
        }
        if f.required {
            text(w, "required", "true")?;
        }
        optional(w, "desc", &f.desc)
    })
}

fn reported(w: &mut XmlWriter, r: &Reported) -> io::Result<()> {
    parent(w, "reported", |w| {
        list(w, "columns", &r.columns, |w, c| {
            parent(w, "item", |w| {
                text(w, "var", &c.var)?;
                optional(w, "label", &c.label)?;
                optional(w, "type", &c.type_)
            })
        })?;
        list(w, "items", &r.items, |w, row| {
            list(w, "item", row, |w, cell| {
                parent(w, "item", |w| {
                    text(w, "var", &cell.var)?;
                    values(w, &cell.values)
                })
            })
        })
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::rest::{Cell, Column, FieldOption, Note};

    pub(in crate::rest) const SEED_XML_REQUEST: &str = "<command>
  <node>http://jabber.org/protocol/admin#end-user-session</node>
  <fields>
    <item>
      <var>accountjids</var>
      <value>
        <item>test@domain.com</item>
      </value>
    </item>
  </fields>
</command>";

    const SEED_XML_ENDED: &str = "<command>
  <jid>sess-man@domain.com</jid>
  <node>http://jabber.org/protocol/admin#end-user-session</node>
  <fields>
    <item>
      <var>Notes</var>
      <type>text-multi</type>
      <value>Operation successful for user test@domain.com/resource</value>
     </item>
  </fields>
</command>";

    const SEED_XML_NONE: &str = "<command>
  <jid>sess-man@domain.com</jid>
  <node>http://jabber.org/protocol/admin#end-user-session</node>
  <fields />
</command>";

    pub(in crate::rest) const END_USER_SESSION: &str =
        "http://jabber.org/protocol/admin#end-user-session";

    /// The seed's two answers: one session ended, and none.
    pub(in crate::rest) fn seed_responses() -> (CommandResponse, CommandResponse) {
        let none = CommandResponse {
            jid: "sess-man@domain.com".into(),
            node: END_USER_SESSION.into(),
            ..CommandResponse::default()
        };
        let ended = CommandResponse {
            fields: vec![ResponseField {
                var: "Notes".into(),
                type_: Some("text-multi".into()),
                values: vec!["Operation successful for user test@domain.com/resource".into()],
                ..ResponseField::default()
            }],
            ..none.clone()
        };
        (ended, none)
    }

    pub(in crate::rest) fn field(var: &str, type_: Option<&str>, values: &[&str]) -> ResponseField {
        ResponseField {
            var: var.into(),
            type_: type_.map(Into::into),
            values: values.iter().map(|v| v.to_string()).collect(),
            ..ResponseField::default()
        }
    }

    /// A response using every key: a multi-stage form with a reported table and a note.
    pub(in crate::rest) fn full_response() -> CommandResponse {
        CommandResponse {
            jid: "sess-man@example.org".into(),
            node: "http://jabber.org/protocol/admin#get-online-users-list".into(),
            status: Some("executing".into()),
            sessionid: Some("s1".into()),
            actions: vec!["next".into(), "complete".into()],
            fields: vec![
                field(
                    "FORM_TYPE",
                    Some("hidden"),
                    &["http://jabber.org/protocol/admin"],
                ),
                ResponseField {
                    label: Some("Maximum number of items to show".into()),
                    options: vec![
                        FieldOption {
                            label: Some("25".into()),
                            value: "25".into(),
                        },
                        FieldOption {
                            label: None,
                            value: "50".into(),
                        },
                    ],
                    required: true,
                    desc: Some("How many".into()),
                    ..field("max_items", Some("list-single"), &["25"])
                },
            ],
            title: Some("Get List of Online Users".into()),
            instructions: Some("Pick a number".into()),
            note: Some(Note {
                type_: "info".into(),
                value: "All fine".into(),
            }),
            reported: Some(Reported {
                columns: vec![
                    Column {
                        var: "jid".into(),
                        label: Some("JID".into()),
                        type_: Some("jid-single".into()),
                    },
                    Column {
                        var: "groups".into(),
                        label: None,
                        type_: Some("text-multi".into()),
                    },
                ],
                items: vec![
                    vec![
                        Cell {
                            var: "jid".into(),
                            values: vec!["a@example.org".into()],
                        },
                        Cell {
                            var: "groups".into(),
                            values: vec!["g1".into()],
                        },
                    ],
                    vec![Cell {
                        var: "jid".into(),
                        values: vec!["b@example.org".into()],
                    }],
                ],
            }),
        }
    }

    /// Parses a document and drops the whitespace between elements, which carries no meaning.
    fn tree(doc: &[u8]) -> Element {
        fn strip(mut e: Element) -> Element {
            if !e.children.is_empty() && is_whitespace(&e.text) {
                e.text.clear();
            }
            e.children = e.children.into_iter().map(strip).collect();
            e
        }
        strip(parse_tree(doc).expect("well-formed"))
    }

    /// The texts of the elements at `path` below `root`, in document order.
    fn texts<'a>(root: &'a Element, path: &[&str]) -> Vec<&'a str> {
        match path.split_first() {
            None => vec![root.text.as_str()],
            Some((first, rest)) => root
                .children
                .iter()
                .filter(|c| c.name == *first)
                .flat_map(|c| texts(c, rest))
                .collect(),
        }
    }

    fn elements_named<'a>(parent: &'a Element, name: &str) -> Vec<&'a Element> {
        parent.children.iter().filter(|c| c.name == name).collect()
    }

    fn decode(body: &str) -> Result<CommandRequest, DecodeError> {
        decode_request(body.as_bytes())
    }

    fn one_field(body: &str) -> RequestField {
        let mut req = decode(body).expect("decodes");
        assert_eq!(req.fields.len(), 1, "{body}");
        req.fields.remove(0)
    }

    fn value_of(value_xml: &str) -> Option<FieldValue> {
        one_field(&format!(
            "<command><fields><item><var>v</var>{value_xml}</item></fields></command>"
        ))
        .value
    }

    fn single(s: &str) -> Option<FieldValue> {
        Some(FieldValue::Single(s.into()))
    }

    fn list(items: &[&str]) -> Option<FieldValue> {
        Some(FieldValue::List(
            items.iter().map(|s| s.to_string()).collect(),
        ))
    }

    #[test]
    fn seed_request_decodes() {
        let req = decode(SEED_XML_REQUEST).unwrap();
        assert_eq!(
            req,
            CommandRequest {
                node: Some(END_USER_SESSION.into()),
                fields: vec![RequestField {
                    var: "accountjids".into(),
                    value: list(&["test@domain.com"])
                }],
                sessionid: None,
                action: None,
            }
        );
    }

    #[test]
    fn contract_request_decodes() {
        let req = decode(
            "<command>
              <node>http://jabber.org/protocol/admin#end-user-session</node>
              <fields>
                <item><var>accountjids</var><value><item>test@example.org</item></value></item>
                <item><var>reason</var><value>maintenance</value></item>
              </fields>
            </command>",
        )
        .unwrap();
        assert_eq!(
            req.fields[1],
            RequestField {
                var: "reason".into(),
                value: single("maintenance")
            }
        );
    }

    #[test]
    fn seed_responses_encode_as_the_seed() {
        let (ended, none) = seed_responses();
        assert_eq!(
            tree(&encode_response(&ended)),
            tree(SEED_XML_ENDED.as_bytes())
        );
        assert_eq!(
            tree(&encode_response(&none)),
            tree(SEED_XML_NONE.as_bytes())
        );
        let none_text = String::from_utf8(encode_response(&none)).unwrap();
        assert_eq!(none_text, format!("{SEED_XML_NONE}\n"));
    }

    #[test]
    fn value_forms() {
        assert_eq!(value_of("<value/>"), single(""));
        assert_eq!(value_of("<value></value>"), single(""));
        assert_eq!(value_of(""), None);
        assert_eq!(
            value_of("<value>  two  words \n</value>"),
            single("  two  words \n")
        );
        assert_eq!(value_of("<value> </value>"), single(" "));
        assert_eq!(
            value_of("<value>\n  <item> a </item>\n  <item/>\n</value>"),
            list(&[" a ", ""])
        );
        assert_eq!(
            value_of("<value><item>a</item><other>x</other></value>"),
            list(&["a"])
        );
        assert_eq!(value_of("<value>false</value>"), single("false"));
        assert_eq!(value_of("<value>0</value>"), single("0"));
    }

    #[test]
    fn entities_cdata_and_line_ends_are_decoded() {
        assert_eq!(
            value_of("<value>&lt;&amp;&gt;&quot;&apos;&#233;&#x65E5;&#13;</value>"),
            single("<&>\"'é日\r")
        );
        assert_eq!(
            value_of("<value>a<![CDATA[<b>&amp;]]>c</value>"),
            single("a<b>&amp;c")
        );
        assert_eq!(value_of("<value>a\r\nb\rc</value>"), single("a\nb\nc"));
        assert_eq!(
            value_of("<value><item>x<!-- note -->y</item></value>"),
            list(&["xy"])
        );
    }

    #[test]
    fn identifiers_are_trimmed_and_empty_ones_absent() {
        let req = decode(
            "<command><jid>ignored@example.org</jid>
               <node>\n  urn:x  \n</node><sessionid>abc</sessionid><action> next </action>
               <fields><item><var> v </var></item></fields></command>",
        )
        .unwrap();
        assert_eq!(req.node.as_deref(), Some("urn:x"));
        assert_eq!(req.sessionid.as_deref(), Some("abc"));
        assert_eq!(req.action.as_deref(), Some("next"));
        assert_eq!(
            req.fields,
            vec![RequestField {
                var: "v".into(),
                value: None
            }]
        );
        let req =
            decode("<command><node/><sessionid> </sessionid><action></action></command>").unwrap();
        assert_eq!(req, CommandRequest::default());
    }

    #[test]
    fn unknown_elements_attributes_and_prolog_are_ignored() {
        let req = decode(
            "<?xml version=\"1.0\"?><!-- hi --><?pi x?>
             <x:command xmlns:x='urn:x' a=\"1\"><extra><deep><er>text</er></deep></extra>
               <node>n</node><fields><junk/><item><var>a</var><misc/></item></fields>
             </x:command>\n<!-- bye -->\n",
        )
        .unwrap();
        assert_eq!(req.node.as_deref(), Some("n"));
        assert_eq!(
            req.fields,
            vec![RequestField {
                var: "a".into(),
                value: None
            }]
        );
        assert_eq!(
            decode("\u{FEFF}<command/>").unwrap(),
            CommandRequest::default()
        );
        assert_eq!(
            decode("<command><fields/></command>").unwrap(),
            CommandRequest::default()
        );
    }

    #[test]
    fn malformed_xml_is_refused() {
        for body in [
            "",
            "   ",
            "<command>",
            "<command><node>x</node>",
            "<command></fields>",
            "</command>",
            "<command/>garbage",
            "<command/><command/>",
            "text<command/>",
            "<command a=></command>",
            "<command a='1' a='2'/>",
            "<command>&foo;</command>",
            "<command>&#0;</command>",
            "<command>&#1;</command>",
            "<command>&#xD800;</command>",
            "<command>\u{1}</command>",
            "<command>&amp</command>",
            "<command><!-- x</command>",
            "<command><![CDATA[x</command>",
        ] {
            assert!(
                matches!(decode(body), Err(DecodeError::Malformed(_))),
                "{body:?}: {:?}",
                decode(body)
            );
        }
        assert!(matches!(
            decode_request(b"<command>\xff</command>"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn wrong_shapes_are_refused() {
        for body in [
            "<cmd/>",
            "<fields/>",
            "<command>stray</command>",
            "<command><node>a</node><node>b</node></command>",
            "<command><node><b>x</b></node></command>",
            "<command><fields><item><value>x</value></item></fields></command>",
            "<command><fields><item><var>a</var><var>b</var></item></fields></command>",
            "<command><fields><item><var>a</var><value>x</value><value>y</value></item></fields></command>",
            "<command><fields><item><var>a</var><value>x<item>y</item></value></item></fields></command>",
            "<command><fields><item><var>a</var><value><item><b/></item></value></item></fields></command>",
        ] {
            assert!(matches!(decode(body), Err(DecodeError::Shape(_))), "{body:?}: {:?}", decode(body));
        }
    }

    #[test]
    fn errors_do_not_quote_the_body() {
        for body in [
            "<command></secret>",
            "<command>&secret;</command>",
            "<secret/>",
        ] {
            let message = decode(body).unwrap_err().to_string();
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn dtds_and_entity_declarations_are_refused() {
        let laughs = "<?xml version=\"1.0\"?>
<!DOCTYPE lolz [
 <!ENTITY lol \"lol\">
 <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">
 <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">
]>
<command><node>&lol3;</node></command>";
        for body in [
            "<!DOCTYPE x [<!ENTITY a \"b\">]><command>&a;</command>",
            "<!DOCTYPE command><command/>",
            "<!doctype command><command/>",
            "<!DOCTYPE command SYSTEM \"file:///etc/passwd\"><command/>",
            "<command><!ENTITY a \"b\"></command>",
            "<command><!ELEMENT a ANY></command>",
            "<!ENTITY a \"b\"><command/>",
            laughs,
        ] {
            assert_eq!(decode(body), Err(DecodeError::Dtd), "{body:?}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let nested = |depth: usize| {
            format!(
                "<command>{}{}</command>",
                "<x>".repeat(depth - 1),
                "</x>".repeat(depth - 1)
            )
        };
        assert!(decode(&nested(8)).is_ok());
        assert_eq!(decode(&nested(9)), Err(DecodeError::TooDeep));
        assert_eq!(decode(&nested(100_000)), Err(DecodeError::TooDeep));
        let empty_at_9 = format!(
            "<command>{}<x/>{}</command>",
            "<x>".repeat(7),
            "</x>".repeat(7)
        );
        assert_eq!(decode(&empty_at_9), Err(DecodeError::TooDeep));
    }

    #[test]
    fn full_response_layout() {
        let expected = r#"<command>
  <jid>sess-man@example.org</jid>
  <node>http://jabber.org/protocol/admin#get-online-users-list</node>
  <status>executing</status>
  <sessionid>s1</sessionid>
  <actions>
    <item>next</item>
    <item>complete</item>
  </actions>
  <fields>
    <item>
      <var>FORM_TYPE</var>
      <type>hidden</type>
      <value>http://jabber.org/protocol/admin</value>
    </item>
    <item>
      <var>max_items</var>
      <label>Maximum number of items to show</label>
      <type>list-single</type>
      <value>25</value>
      <options>
        <item>
          <label>25</label>
          <value>25</value>
        </item>
        <item>
          <value>50</value>
        </item>
      </options>
      <required>true</required>
      <desc>How many</desc>
    </item>
  </fields>
  <title>Get List of Online Users</title>
  <instructions>Pick a number</instructions>
  <note>
    <type>info</type>
    <value>All fine</value>
  </note>
  <reported>
    <columns>
      <item>
        <var>jid</var>
        <label>JID</label>
        <type>jid-single</type>
      </item>
      <item>
        <var>groups</var>
        <type>text-multi</type>
      </item>
    </columns>
    <items>
      <item>
        <item>
          <var>jid</var>
          <value>a@example.org</value>
        </item>
        <item>
          <var>groups</var>
          <value>g1</value>
        </item>
      </item>
      <item>
        <item>
          <var>jid</var>
          <value>b@example.org</value>
        </item>
      </item>
    </items>
  </reported>
</command>
"#;
        assert_eq!(
            String::from_utf8(encode_response(&full_response())).unwrap(),
            expected
        );
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
                    field("none", type_, &[]),
                    field("one", type_, &["1"]),
                    field("two", type_, &["a", "b"]),
                ],
                ..CommandResponse::default()
            };
            let doc = tree(&encode_response(&doc));
            let [fields] = &elements_named(&doc, "fields")[..] else {
                panic!("one <fields>")
            };
            let [none, one, two] = &elements_named(fields, "item")[..] else {
                panic!("three fields")
            };
            for f in [none, one, two] {
                assert_eq!(texts(f, &["type"]), type_.into_iter().collect::<Vec<_>>());
            }
            assert!(texts(none, &["value"]).is_empty(), "{type_:?}");
            assert_eq!(texts(one, &["value"]), ["1"], "{type_:?}");
            assert!(texts(one, &["value", "item"]).is_empty(), "{type_:?}");
            assert_eq!(texts(two, &["value", "item"]), ["a", "b"], "{type_:?}");
        }
    }

    #[test]
    fn text_round_trips_through_escaping() {
        let nasty = "<&>\"' \n\r\t é 日本 ]]> &amp; \r\n";
        let doc = CommandResponse {
            jid: nasty.into(),
            node: nasty.into(),
            fields: vec![ResponseField {
                label: Some(nasty.into()),
                desc: Some(nasty.into()),
                ..field(nasty, Some("text-multi"), &[nasty, nasty])
            }],
            title: Some(nasty.into()),
            note: Some(Note {
                type_: "info".into(),
                value: nasty.into(),
            }),
            ..CommandResponse::default()
        };
        let bytes = encode_response(&doc);
        let raw = String::from_utf8(bytes.clone()).unwrap();
        assert!(raw.contains("&lt;&amp;&gt;") && raw.contains("&#13;") && !raw.contains('\r'));
        let doc = tree(&bytes);
        for path in [
            &["jid"][..],
            &["node"],
            &["fields", "item", "var"],
            &["fields", "item", "label"],
            &["fields", "item", "desc"],
            &["title"],
            &["note", "value"],
        ] {
            assert_eq!(texts(&doc, path), [nasty], "{path:?}");
        }
        assert_eq!(
            texts(&doc, &["fields", "item", "value", "item"]),
            [nasty, nasty]
        );

        // And a client's value comes back exactly through the decoder.
        let mut body = Vec::new();
        let mut w = Writer::new(&mut body);
        w.create_element("command")
            .write_inner_content(|w| {
                w.create_element("fields").write_inner_content(|w| {
                    w.create_element("item").write_inner_content(|w| {
                        w.create_element("var")
                            .write_text_content(BytesText::new("v"))?;
                        w.create_element("value")
                            .write_text_content(BytesText::new(nasty))?;
                        Ok(())
                    })?;
                    Ok(())
                })?;
                Ok(())
            })
            .unwrap();
        assert_eq!(
            decode_request(&body).unwrap().fields[0].value,
            single(nasty)
        );
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        let doc = CommandResponse {
            title: Some("a\u{0}b\u{1b}c\u{FFFF}".into()),
            ..CommandResponse::default()
        };
        let doc = tree(&encode_response(&doc));
        assert_eq!(texts(&doc, &["title"]), ["a\u{FFFD}b\u{FFFD}c\u{FFFD}"]);
    }

    #[test]
    fn items_encode() {
        assert_eq!(encode_items(&[]), b"<items />\n");
        let items = [
            CommandItem {
                jid: "example.org".into(),
                node: "n1".into(),
                name: Some("One & two".into()),
            },
            CommandItem {
                jid: "example.org".into(),
                node: "n2".into(),
                name: None,
            },
        ];
        let doc = tree(&encode_items(&items));
        assert_eq!(doc.name, "items");
        assert_eq!(texts(&doc, &["item", "node"]), ["n1", "n2"]);
        assert_eq!(texts(&doc, &["item", "name"]), ["One & two"]);
        assert_eq!(
            texts(&doc, &["item", "jid"]),
            ["example.org", "example.org"]
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
            tree(&encode_error(&err)),
            tree(b"<error><status>403</status><condition>forbidden</condition><text>You don't have permission to execute this command</text></error>")
        );
        let err = ErrorBody {
            status: 400,
            condition: "bad-request".into(),
            text: None,
            field: Some("accountjids".into()),
        };
        assert_eq!(
            tree(&encode_error(&err)),
            tree(b"<error><status>400</status><condition>bad-request</condition><field>accountjids</field></error>")
        );
    }

    #[test]
    fn empty_reported_is_omitted() {
        let doc = CommandResponse {
            reported: Some(Reported::default()),
            ..CommandResponse::default()
        };
        assert!(texts(&tree(&encode_response(&doc)), &["reported"]).is_empty());
    }
}
