//! The serializer: escaping of every character class XML must escape or forbids, and the same
//! stanza as the minidom path.

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;

use super::{read_reply, write_command, WireError};
use crate::adhoc::xep0050::{Command, Field, Form, NS_DATA};

fn submit(values: &[&str]) -> Form {
    Form::submit(vec![
        Field {
            var: Some("FORM_TYPE".into()),
            type_: Some("hidden".into()),
            values: vec!["http://jabber.org/protocol/admin".into()],
            ..Field::default()
        },
        Field {
            var: Some("accountjids".into()),
            type_: Some("jid-multi".into()),
            values: values.iter().map(|v| v.to_string()).collect(),
            ..Field::default()
        },
    ])
}

fn written(to: &str, id: &str, cmd: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    write_command(&mut out, to, id, cmd).unwrap();
    out
}

/// The bytes as the tree path reads them: the IQ's header and its `<command/>` element.
fn as_tree(bytes: &[u8]) -> (Option<String>, String, Element) {
    let el = Element::from_reader_with_prefixes(bytes, String::from("jabber:client")).unwrap();
    match Iq::try_from(el).unwrap() {
        Iq::Set {
            to, id, payload, ..
        } => (to.map(|t| t.to_string()), id, payload),
        other => panic!("not a set: {other:?}"),
    }
}

/// Every value that needs care: the five markup characters, the three whitespace controls XML
/// allows (which a reader would normalise unless escaped), and the edges of the allowed ranges.
const AWKWARD: &str = "<a> & 'b' \"c\" \t tab \n lf \r cr \r\n crlf ]]> \u{7F}\u{85}\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF} é";

#[test]
fn a_command_is_the_same_stanza_as_the_tree_path_builds() {
    let cmd = Command::step("n#x", "complete", "s-1", Some(submit(&["a@b", "c@d"])));
    let (to, id, payload) = as_tree(&written("example.org", "id-1", &cmd));
    assert_eq!(to.as_deref(), Some("example.org"));
    assert_eq!(id, "id-1");
    assert_eq!(payload, cmd.to_element());
    let bare = Command::execute("http://jabber.org/protocol/admin#user-stats", None);
    let bytes = written("example.org", "i", &bare);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "<iq type=\"set\" to=\"example.org\" id=\"i\"><command \
         xmlns=\"http://jabber.org/protocol/commands\" \
         node=\"http://jabber.org/protocol/admin#user-stats\" action=\"execute\"/></iq>"
    );
}

#[test]
fn every_value_arrives_as_it_was_sent_however_awkward() {
    let cmd = Command::step(AWKWARD, AWKWARD, AWKWARD, Some(submit(&[AWKWARD, ""])));
    let mut form = cmd.form.clone().unwrap();
    form.fields[1].var = Some(AWKWARD.into());
    form.fields[1].type_ = Some(AWKWARD.into());
    let cmd = Command {
        form: Some(form),
        ..cmd
    };
    let bytes = written(AWKWARD, AWKWARD, &cmd);
    // rxml (the tree path's parser) reads back exactly what was written, value for value.
    let el = Element::from_reader_with_prefixes(&bytes[..], String::from("jabber:client")).unwrap();
    assert_eq!(el.attr("to"), Some(AWKWARD));
    assert_eq!(el.attr("id"), Some(AWKWARD));
    let command = el.children().next().unwrap();
    for name in ["node", "action", "sessionid"] {
        assert_eq!(command.attr(name), Some(AWKWARD), "{name}");
    }
    let x = command.get_child("x", NS_DATA).unwrap();
    assert_eq!(Some(Form::parse(x)), cmd.form);
    // And so does the reply reader, given the same command as an answer.
    let text = String::from_utf8(bytes).unwrap();
    let as_reply = text.replacen("type=\"set\"", "type=\"result\"", 1);
    let reply = read_reply(as_reply.as_bytes()).unwrap();
    assert_eq!(reply.id, AWKWARD);
    let reply = reply.answer.unwrap();
    assert_eq!(reply.node, AWKWARD);
    assert_eq!(reply.sessionid.as_deref(), Some(AWKWARD));
    let form = reply.form.unwrap();
    assert_eq!(form.fields[1].var.as_deref(), Some(AWKWARD));
    assert_eq!(form.fields[1].values, [AWKWARD, ""]);
}

#[test]
fn markup_is_never_pasted_raw() {
    let cmd = Command::execute("n", Some(submit(&["</value></field><x>&amp;"])));
    let text = String::from_utf8(written("a'b\"c", "<id>", &cmd)).unwrap();
    assert!(
        text.contains("to=\"a&apos;b&quot;c\" id=\"&lt;id&gt;\""),
        "{text}"
    );
    assert!(
        text.contains("<value>&lt;/value&gt;&lt;/field&gt;&lt;x&gt;&amp;amp;</value>"),
        "{text}"
    );
}

#[test]
fn characters_xml_forbids_are_refused_before_anything_is_written() {
    let forbidden = [
        '\u{0}', '\u{1}', '\u{8}', '\u{B}', '\u{C}', '\u{1B}', '\u{1F}', '\u{FFFE}', '\u{FFFF}',
    ];
    for c in forbidden {
        let bad = format!("x{c}y");
        let cases = [
            ("to", Command::execute("n", None), bad.as_str(), "i"),
            ("id", Command::execute("n", None), "t", bad.as_str()),
            ("node", Command::execute(&bad, None), "t", "i"),
            ("action", Command::step("n", &bad, "s", None), "t", "i"),
            (
                "sessionid",
                Command::step("n", "next", &bad, None),
                "t",
                "i",
            ),
            (
                "value",
                Command::execute("n", Some(submit(&["ok", &bad]))),
                "t",
                "i",
            ),
        ];
        for (place, cmd, to, id) in cases {
            let mut out = b"kept".to_vec();
            let err = write_command(&mut out, to, id, &cmd);
            assert_eq!(
                err,
                Err(WireError::ForbiddenChar(u32::from(c))),
                "U+{:04X} in {place}",
                u32::from(c)
            );
            assert_eq!(out, b"kept", "U+{:04X} in {place}", u32::from(c));
        }
    }
    let mut var = submit(&[]);
    var.fields[0].var = Some("\u{FFFF}".into());
    let mut out = Vec::new();
    let err = write_command(&mut out, "t", "i", &Command::execute("n", Some(var)));
    assert_eq!(err, Err(WireError::ForbiddenChar(0xFFFF)));
    assert!(out.is_empty());
}

#[test]
fn writes_append_to_what_the_buffer_holds() {
    let mut out = b"<iq/>".to_vec();
    write_command(&mut out, "t", "1", &Command::execute("n", None)).unwrap();
    write_command(&mut out, "t", "2", &Command::execute("n", None)).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("<iq/><iq type=\"set\" to=\"t\" id=\"1\">"));
    assert_eq!(text.matches("<command").count(), 2);
}
