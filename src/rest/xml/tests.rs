//! What only the XML codec has: its layout, entities and CDATA, DTDs, depth, escaping. What
//! both codecs share is in [`crate::rest::conformance`].

use quick_xml::events::BytesText;
use quick_xml::Writer;

use super::decode::{is_whitespace, parse_tree, Element};
use super::{decode_request, encode_items, encode_response};
use crate::rest::conformance::{
    field, full_response, seed_not_connected, FULL_RESPONSE_XML, NOT_CONNECTED_XML,
};
use crate::rest::{
    CommandRequest, CommandResponse, DecodeError, FieldValue, Note, RequestField, ResponseField,
};

/// Parses a document and drops the whitespace between elements, which carries no meaning.
pub(in crate::rest) fn tree(doc: &[u8]) -> Element {
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
fn value_forms() {
    assert_eq!(value_of("<value></value>"), single(""));
    assert_eq!(value_of("<value> </value>"), single(" "));
    assert_eq!(
        value_of("<value><item>a</item><other>x</other></value>"),
        list(&["a"])
    );
}

#[test]
fn cdata_comments_and_line_ends_are_decoded() {
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
}

#[test]
fn malformed_xml_is_refused() {
    for body in [
        "<command><node>x</node>",
        "<command></fields>",
        "</command>",
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
        "<fields/>",
        "<command>stray</command>",
        "<command><node>a</node><node>b</node></command>",
        "<command><fields><item><var>a</var><var>b</var></item></fields></command>",
        "<command><fields><item><var>a</var><value>x</value><value>y</value></item></fields></command>",
        "<command><fields><item><var>a</var><value>x<item>y</item></value></item></fields></command>",
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
fn responses_are_laid_out_as_the_seed_and_the_contract() {
    let text = |doc: &CommandResponse| String::from_utf8(encode_response(doc)).unwrap();
    assert_eq!(text(&seed_not_connected()), NOT_CONNECTED_XML);
    assert_eq!(text(&full_response()), FULL_RESPONSE_XML);
    assert_eq!(encode_items(&[]), b"<items />\n");
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
