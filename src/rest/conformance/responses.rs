//! Responses, command lists and errors: what both codecs encode from one model.

use super::full::{full_response, FULL_RESPONSE_JSON, FULL_RESPONSE_XML};
use super::{case, Case};
use crate::rest::{
    Cell, Column, CommandItem, CommandResponse, ErrorBody, Reported, ResponseField, FIELD_TYPES,
};

const CONNECTED_XML: &str = include_str!("../../../tests/fixtures/seed/response-connected.xml");
const CONNECTED_JSON: &str = include_str!("../../../tests/fixtures/seed/response-connected.json");
pub(in crate::rest) const NOT_CONNECTED_XML: &str =
    include_str!("../../../tests/fixtures/seed/response-not-connected.xml");
const NOT_CONNECTED_JSON: &str =
    include_str!("../../../tests/fixtures/seed/response-not-connected.json");

/// A field with only a var, a type and values.
pub(in crate::rest) fn field(var: &str, type_: Option<&str>, values: &[&str]) -> ResponseField {
    ResponseField {
        var: var.into(),
        type_: type_.map(Into::into),
        values: values.iter().map(|v| v.to_string()).collect(),
        ..ResponseField::default()
    }
}

/// The seed's answer when the account had no session to end.
pub(in crate::rest) fn seed_not_connected() -> CommandResponse {
    CommandResponse {
        jid: "sess-man@domain.com".into(),
        node: "http://jabber.org/protocol/admin#end-user-session".into(),
        ..CommandResponse::default()
    }
}

fn with_fields(fields: Vec<ResponseField>) -> CommandResponse {
    CommandResponse {
        fields,
        ..CommandResponse::default()
    }
}

pub(super) fn responses() -> Vec<Case<CommandResponse>> {
    let connected = CommandResponse {
        fields: vec![field(
            "Notes",
            Some("text-multi"),
            &["Operation successful for user test@domain.com/resource"],
        )],
        ..seed_not_connected()
    };
    let mut cases = vec![
        case(
            "the seed's session ended",
            CONNECTED_XML,
            CONNECTED_JSON,
            connected,
        ),
        case(
            "the seed's no session",
            NOT_CONNECTED_XML,
            NOT_CONNECTED_JSON,
            seed_not_connected(),
        ),
        case(
            "every key",
            FULL_RESPONSE_XML,
            FULL_RESPONSE_JSON,
            full_response(),
        ),
        case(
            "an empty reported table is left out",
            "<command><jid/><node/><fields/></command>",
            r#"{"command": {"jid": "", "node": "", "fields": []}}"#,
            CommandResponse {
                reported: Some(Reported::default()),
                ..CommandResponse::default()
            },
        ),
        reported_cells(),
    ];
    cases.extend(
        FIELD_TYPES
            .map(Some)
            .into_iter()
            .chain([None])
            .map(value_rule),
    );
    cases
}

/// The value rule for fields of `type_`: in XML one value is `<value>`, several are items of it;
/// in JSON a `*-multi` field's value is always an array, another's is a string when it is one.
fn value_rule(type_: Option<&str>) -> Case<CommandResponse> {
    let xml_type = type_.map_or(String::new(), |t| format!("<type>{t}</type>"));
    let json_type = type_.map_or(String::new(), |t| format!(r#", "type": "{t}""#));
    let json_one = match type_ {
        Some(t) if t.ends_with("-multi") => r#"["1"]"#,
        _ => r#""1""#,
    };
    case(
        format!("the value rule for type {type_:?}"),
        format!(
            "<command><jid/><node/><fields>
               <item><var>none</var>{xml_type}</item>
               <item><var>one</var>{xml_type}<value>1</value></item>
               <item><var>two</var>{xml_type}<value><item>a</item><item>b</item></value></item>
             </fields></command>"
        ),
        format!(
            r#"{{"command": {{"jid": "", "node": "", "fields": [
                {{"var": "none"{json_type}}},
                {{"var": "one"{json_type}, "value": {json_one}}},
                {{"var": "two"{json_type}, "value": ["a", "b"]}}]}}}}"#
        ),
        with_fields(vec![
            field("none", type_, &[]),
            field("one", type_, &["1"]),
            field("two", type_, &["a", "b"]),
        ]),
    )
}

/// In JSON a cell follows the value rule with the type of its column (none when no column has
/// its var); XML has no such rule.
fn reported_cells() -> Case<CommandResponse> {
    let cell = |var: &str, values: &[&str]| Cell {
        var: var.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let column = |var: &str, type_: &str| Column {
        var: var.into(),
        label: None,
        type_: Some(type_.into()),
    };
    case(
        "reported cells take their column's type",
        "<command><jid/><node/><fields/><reported>
           <columns>
             <item><var>jid</var><type>jid-single</type></item>
             <item><var>groups</var><type>text-multi</type></item>
           </columns>
           <items>
             <item>
               <item><var>jid</var><value><item>a@example.org</item><item>c@example.org</item></value></item>
               <item><var>groups</var><value>g1</value></item>
             </item>
             <item>
               <item><var>jid</var><value>b@example.org</value></item>
               <item><var>unknown</var><value>x</value></item>
               <item><var>groups</var></item>
             </item>
           </items>
         </reported></command>",
        r#"{"command": {"jid": "", "node": "", "fields": [], "reported": {
            "columns": [{"var": "jid", "type": "jid-single"}, {"var": "groups", "type": "text-multi"}],
            "items": [
              [{"var": "jid", "value": ["a@example.org", "c@example.org"]},
               {"var": "groups", "value": ["g1"]}],
              [{"var": "jid", "value": "b@example.org"},
               {"var": "unknown", "value": "x"},
               {"var": "groups"}]]}}}"#,
        CommandResponse {
            reported: Some(Reported {
                columns: vec![column("jid", "jid-single"), column("groups", "text-multi")],
                items: vec![
                    vec![
                        cell("jid", &["a@example.org", "c@example.org"]),
                        cell("groups", &["g1"]),
                    ],
                    vec![
                        cell("jid", &["b@example.org"]),
                        cell("unknown", &["x"]),
                        cell("groups", &[]),
                    ],
                ],
            }),
            ..CommandResponse::default()
        },
    )
}

pub(super) fn items() -> Vec<Case<Vec<CommandItem>>> {
    vec![
        case("no commands", "<items/>", r#"{"items": []}"#, vec![]),
        case(
            "two commands, one without a name",
            "<items>
               <item><jid>example.org</jid><node>n1</node><name>One &amp; two</name></item>
               <item><jid>example.org</jid><node>n2</node></item>
             </items>",
            r#"{"items": [{"jid": "example.org", "node": "n1", "name": "One & two"},
                          {"jid": "example.org", "node": "n2"}]}"#,
            vec![
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
            ],
        ),
    ]
}

pub(super) fn errors() -> Vec<Case<ErrorBody>> {
    vec![
        case(
            "an error with a text",
            "<error><status>403</status><condition>forbidden</condition>
               <text>You don't have permission to execute this command</text></error>",
            r#"{"error": {"status": 403, "condition": "forbidden",
                "text": "You don't have permission to execute this command"}}"#,
            ErrorBody {
                status: 403,
                condition: "forbidden".into(),
                text: Some("You don't have permission to execute this command".into()),
                field: None,
            },
        ),
        case(
            "an error about a field",
            "<error><status>400</status><condition>bad-request</condition>
               <field>accountjids</field></error>",
            r#"{"error": {"status": 400, "condition": "bad-request", "field": "accountjids"}}"#,
            ErrorBody {
                status: 400,
                condition: "bad-request".into(),
                text: None,
                field: Some("accountjids".into()),
            },
        ),
    ]
}
