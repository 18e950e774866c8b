//! One table of documents both codecs must agree on. Each case is an XML text, a JSON text and
//! the model both stand for: a request decodes from either text to the model; a response, a
//! command list or an error encodes from the model to documents equal, once parsed, to the texts
//! (layout whitespace does not count; element and key order do). What only one codec has (DTDs,
//! JSON numbers, escaping, exact layout, depth limits) is tested beside that codec.
//!
//! The seed documents are read from `tests/fixtures/seed`, their only copy.

mod full;
mod requests;
mod responses;

use std::mem::discriminant;

use super::{is_multi_type, json, xml, FIELD_TYPES, MULTI_TYPES};

pub(super) use full::{full_response, FULL_RESPONSE_JSON, FULL_RESPONSE_XML};
pub(super) use responses::{field, seed_not_connected, NOT_CONNECTED_XML};

/// One document in both formats, and the model (or, for a refusal, the error) it stands for.
struct Case<T> {
    name: String,
    xml: String,
    json: String,
    model: T,
}

fn case<T>(
    name: impl Into<String>,
    xml: impl Into<String>,
    json: impl Into<String>,
    model: T,
) -> Case<T> {
    Case {
        name: name.into(),
        xml: xml.into(),
        json: json.into(),
        model,
    }
}

/// Asserts that each case's model encodes, in either format, as that case's text.
fn assert_encode_as_their_texts<T>(
    cases: Vec<Case<T>>,
    to_xml: impl Fn(&T) -> Vec<u8>,
    to_json: impl Fn(&T) -> Vec<u8>,
) {
    for case in cases {
        let xml_out = to_xml(&case.model);
        assert_eq!(
            xml::tests::tree(&xml_out),
            xml::tests::tree(case.xml.as_bytes()),
            "{} in XML: {}",
            case.name,
            String::from_utf8_lossy(&xml_out)
        );
        assert_eq!(
            json::tests::compact(&to_json(&case.model)),
            json::tests::compact(case.json.as_bytes()),
            "{} in JSON",
            case.name
        );
    }
}

#[test]
fn requests_decode_to_their_model_from_either_text() {
    for case in requests::requests() {
        let from_xml = xml::decode_request(case.xml.as_bytes());
        assert_eq!(from_xml.as_ref(), Ok(&case.model), "{} in XML", case.name);
        let from_json = json::decode_request(case.json.as_bytes());
        assert_eq!(from_json.as_ref(), Ok(&case.model), "{} in JSON", case.name);
    }
}

#[test]
fn refusals_are_the_same_kind_in_either_format() {
    for case in requests::refusals() {
        for (format, decoded) in [
            ("XML", xml::decode_request(case.xml.as_bytes())),
            ("JSON", json::decode_request(case.json.as_bytes())),
        ] {
            match decoded {
                Err(e) => assert_eq!(
                    discriminant(&e),
                    discriminant(&case.model),
                    "{} in {format}: {e:?}",
                    case.name
                ),
                Ok(req) => panic!("{} in {format} was accepted: {req:?}", case.name),
            }
        }
    }
}

#[test]
fn responses_encode_as_either_text() {
    let cases = responses::responses();
    assert_encode_as_their_texts(cases, xml::encode_response, json::encode_response);
}

#[test]
fn command_lists_encode_as_either_text() {
    let cases = responses::items();
    assert_encode_as_their_texts(cases, |i| xml::encode_items(i), |i| json::encode_items(i));
}

#[test]
fn errors_encode_as_either_text() {
    let cases = responses::errors();
    assert_encode_as_their_texts(cases, xml::encode_error, json::encode_error);
}

#[test]
fn the_multi_types_are_the_multi_field_types() {
    for t in FIELD_TYPES {
        assert_eq!(is_multi_type(Some(t)), t.ends_with("-multi"), "{t}");
    }
    assert!(MULTI_TYPES.iter().all(|t| FIELD_TYPES.contains(t)));
    assert!(!is_multi_type(None));
    assert!(!is_multi_type(Some("text-multiple")));
}
