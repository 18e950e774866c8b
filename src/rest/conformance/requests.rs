//! Requests: what both codecs decode alike, and what both refuse alike.

use super::{case, Case};
use crate::rest::{CommandRequest, DecodeError, FieldValue, RequestField};

const SEED_XML: &str = include_str!("../../../tests/fixtures/seed/request.xml");
const SEED_JSON: &str = include_str!("../../../tests/fixtures/seed/request.json");

const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";

fn with_value(var: &str, value: Option<FieldValue>) -> RequestField {
    RequestField {
        var: var.into(),
        value,
    }
}

fn single(s: &str) -> Option<FieldValue> {
    Some(FieldValue::Single(s.into()))
}

fn list(items: &[&str]) -> Option<FieldValue> {
    Some(FieldValue::List(
        items.iter().map(|s| s.to_string()).collect(),
    ))
}

fn fields(fields: Vec<RequestField>) -> CommandRequest {
    CommandRequest {
        fields,
        ..CommandRequest::default()
    }
}

pub(super) fn requests() -> Vec<Case<CommandRequest>> {
    let seed = CommandRequest {
        node: Some(END_USER_SESSION.into()),
        ..fields(vec![with_value("accountjids", list(&["test@domain.com"]))])
    };
    vec![
        case("the seed request", SEED_XML, SEED_JSON, seed.clone()),
        case(
            "the seed request, JSON without the command wrapper",
            SEED_XML,
            r#"{"node": "http://jabber.org/protocol/admin#end-user-session",
                "fields": [{"var": "accountjids", "value": ["test@domain.com"]}]}"#,
            seed,
        ),
        case(
            "the contract's request: a list and a single value",
            "<command>
              <node>http://jabber.org/protocol/admin#end-user-session</node>
              <fields>
                <item><var>accountjids</var><value><item>test@example.org</item></value></item>
                <item><var>reason</var><value>maintenance</value></item>
              </fields>
            </command>",
            r#"{"command": {"node": "http://jabber.org/protocol/admin#end-user-session",
                "fields": [{"var": "accountjids", "value": ["test@example.org"]},
                           {"var": "reason", "value": "maintenance"}]}}"#,
            CommandRequest {
                node: Some(END_USER_SESSION.into()),
                ..fields(vec![
                    with_value("accountjids", list(&["test@example.org"])),
                    with_value("reason", single("maintenance")),
                ])
            },
        ),
        case(
            "identifiers, with the body's jid and unknown children ignored (XML trims them)",
            "<command><jid>ignored@example.org</jid>
               <node>\n  urn:x  \n</node><sessionid>abc</sessionid><action> next </action>
               <extra><deep>x</deep></extra><fields><item><var> v </var></item></fields>
             </command>",
            r#"{"command": {"jid": "ignored", "node": "urn:x", "sessionid": "abc",
                "action": "next", "extra": {"deep": [1, 2]}, "fields": [{"var": "v"}]}}"#,
            CommandRequest {
                node: Some("urn:x".into()),
                fields: vec![with_value("v", None)],
                sessionid: Some("abc".into()),
                action: Some("next".into()),
            },
        ),
        case(
            "empty identifiers count as absent",
            "<command><node/><sessionid> </sessionid><action></action><fields/></command>",
            r#"{"command": {"node": "", "sessionid": null, "action": "", "fields": []}}"#,
            CommandRequest::default(),
        ),
        case(
            "no fields at all",
            "<command><node>n</node></command>",
            r#"{"command": {"node": "n", "fields": null}}"#,
            CommandRequest {
                node: Some("n".into()),
                ..CommandRequest::default()
            },
        ),
        case(
            "a byte order mark",
            "\u{FEFF}<command/>",
            "\u{FEFF}{}",
            CommandRequest::default(),
        ),
        case(
            "values kept exactly as written, false, 0 and empty ones included",
            "<command><fields>
               <item><var>none</var></item>
               <item><var>empty</var><value/></item>
               <item><var>spaced</var><value>  two  words \n</value></item>
               <item><var>false</var><value>false</value></item>
               <item><var>zero</var><value>0</value></item>
               <item><var>list</var><value>\n  <item> a </item>\n  <item/>\n</value></item>
               <item><var>mixed</var><value><item>a</item><item>0</item><item>false</item>
                 <item></item><item>2</item></value></item>
             </fields></command>",
            r#"{"command": {"fields": [
                {"var": "none", "value": null},
                {"var": "empty", "value": ""},
                {"var": "spaced", "value": "  two  words \n"},
                {"var": "false", "value": false},
                {"var": "zero", "value": 0},
                {"var": "list", "value": [" a ", ""]},
                {"var": "mixed", "value": ["a", 0, false, "", 2]}]}}"#,
            fields(vec![
                with_value("none", None),
                with_value("empty", single("")),
                with_value("spaced", single("  two  words \n")),
                with_value("false", single("false")),
                with_value("zero", single("0")),
                with_value("list", list(&[" a ", ""])),
                with_value("mixed", list(&["a", "0", "false", "", "2"])),
            ]),
        ),
        case(
            "escaped characters",
            "<command><fields><item><var>v</var>
               <value>&lt;&amp;&gt;&quot;&apos;&#233;&#x65E5;&#13;</value>
             </item></fields></command>",
            r#"{"command": {"fields": [{"var": "v", "value": "<&>\"'\u00e9\u65e5\r"}]}}"#,
            fields(vec![with_value("v", single("<&>\"'é日\r"))]),
        ),
    ]
}

/// Bodies refused in either format, with the kind of refusal (the message is not compared).
pub(super) fn refusals() -> Vec<Case<DecodeError>> {
    let malformed = || DecodeError::Malformed(String::new());
    let shape = || DecodeError::Shape(String::new());
    vec![
        case("an empty body", "", "", malformed()),
        case("whitespace alone", "   ", " ", malformed()),
        case("an unclosed document", "<command>", "{", malformed()),
        case(
            "content after the document",
            "<command/>garbage",
            r#"{"command": {}} x"#,
            malformed(),
        ),
        case("a root that is not a command", "<cmd/>", "[]", shape()),
        case(
            "a node that is not text",
            "<command><node><b>x</b></node></command>",
            r#"{"command": {"node": 1}}"#,
            shape(),
        ),
        case(
            "fields that are not a list of fields",
            "<command><fields>x</fields></command>",
            r#"{"command": {"fields": "x"}}"#,
            shape(),
        ),
        case(
            "a field without a var",
            "<command><fields><item><value>x</value></item></fields></command>",
            r#"{"command": {"fields": [{"value": "x"}]}}"#,
            shape(),
        ),
        case(
            "a list item that is not text",
            "<command><fields><item><var>v</var><value><item><b/></item></value></item></fields></command>",
            r#"{"command": {"fields": [{"var": "v", "value": [["a"]]}]}}"#,
            shape(),
        ),
    ]
}
