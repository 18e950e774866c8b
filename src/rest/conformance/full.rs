//! The response that uses every key: a multi-stage form with a reported table and a note, and
//! its two texts exactly as the codecs lay them out.

use super::field;
use crate::rest::{Cell, Column, CommandResponse, FieldOption, Note, Reported, ResponseField};

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

/// [`full_response`] in XML, byte for byte.
pub(in crate::rest) const FULL_RESPONSE_XML: &str = r#"<command>
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

/// [`full_response`] in JSON, byte for byte.
pub(in crate::rest) const FULL_RESPONSE_JSON: &str = r#"{
  "command": {
    "jid": "sess-man@example.org",
    "node": "http://jabber.org/protocol/admin#get-online-users-list",
    "status": "executing",
    "sessionid": "s1",
    "actions": [
      "next",
      "complete"
    ],
    "fields": [
      {
        "var": "FORM_TYPE",
        "type": "hidden",
        "value": "http://jabber.org/protocol/admin"
      },
      {
        "var": "max_items",
        "label": "Maximum number of items to show",
        "type": "list-single",
        "value": "25",
        "options": [
          {
            "label": "25",
            "value": "25"
          },
          {
            "value": "50"
          }
        ],
        "required": true,
        "desc": "How many"
      }
    ],
    "title": "Get List of Online Users",
    "instructions": "Pick a number",
    "note": {
      "type": "info",
      "value": "All fine"
    },
    "reported": {
      "columns": [
        {
          "var": "jid",
          "label": "JID",
          "type": "jid-single"
        },
        {
          "var": "groups",
          "type": "text-multi"
        }
      ],
      "items": [
        [
          {
            "var": "jid",
            "value": "a@example.org"
          },
          {
            "var": "groups",
            "value": [
              "g1"
            ]
          }
        ],
        [
          {
            "var": "jid",
            "value": "b@example.org"
          }
        ]
      ]
    }
  }
}
"#;
