//! The pull reader: the same model as the tree path on every reply the servers were recorded
//! sending (`tests/fixtures/fuzz/xep0050-reply/`, one file per distinct reply shape of
//! `reference/transcripts/`), and an error, never a panic, on malformed replies.

use std::path::Path;

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;

use super::{read_reply, WireError, MAX_DEPTH};
use crate::adhoc::stream::Answer;
use crate::adhoc::xep0050::{CommandReply, Status};
use crate::adhoc::CommandError;

/// What today's path (rxml + minidom + xso's `Iq` + `CommandReply::parse`, as
/// `AdminSession::run` does it) makes of a reply: id, from and answer; `None` when it does
/// not read the stanza as a reply at all.
fn by_tree(bytes: &[u8]) -> Option<(String, Option<String>, Answer)> {
    let el = Element::from_reader_with_prefixes(bytes, String::from("jabber:client")).ok()?;
    match Iq::try_from(el).ok()? {
        Iq::Result {
            id, from, payload, ..
        } => {
            let answer = match payload {
                Some(p) => CommandReply::parse(&p)
                    .ok_or_else(|| CommandError::Malformed(format!("<{}/>", p.name()))),
                None => Err(CommandError::Malformed("an empty result".into())),
            };
            Some((id, from.map(|f| f.to_string()), answer))
        }
        Iq::Error {
            id, from, error, ..
        } => Some((id, from.map(|f| f.to_string()), Err(error.into()))),
        _ => None,
    }
}

/// The two answers, compared in full (`CommandError` has no `PartialEq`; its `Debug` shows
/// every field).
fn same(a: &Answer, b: &Answer) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn recorded() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/xep0050-reply");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_recorded_reply_reads_as_the_tree_path_reads_it() {
    let replies = recorded();
    assert!(
        replies.len() >= 40,
        "only {} recorded replies",
        replies.len()
    );
    let (mut commands, mut errors) = (0, 0);
    for (name, bytes) in replies {
        let (id, from, expected) = by_tree(&bytes).unwrap_or_else(|| panic!("{name}: no reply"));
        let got = read_reply(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((&got.id, &got.from), (&id, &from), "{name}");
        assert!(
            same(&got.answer, &expected),
            "{name}:\n pull {:?}\n tree {:?}",
            got.answer,
            expected
        );
        match expected {
            Ok(_) => commands += 1,
            Err(CommandError::Xmpp { .. }) => errors += 1,
            Err(_) => {}
        }
    }
    // Both kinds were compared, not only the disco and version answers.
    assert!(
        commands >= 20 && errors >= 8,
        "{commands} commands, {errors} errors"
    );
}

#[test]
fn a_reply_in_an_explicit_client_namespace_reads_the_same() {
    let bytes = b"<iq xmlns='jabber:client' type='result' id='a' from='x.test'>\
        <command xmlns='http://jabber.org/protocol/commands' node='n' status='executing' \
        sessionid='s'><actions><next/><complete/></actions><note>plain</note></command></iq>";
    let got = read_reply(bytes).unwrap();
    let (_, _, expected) = by_tree(bytes).unwrap();
    assert!(same(&got.answer, &expected));
    let reply = got.answer.unwrap();
    assert_eq!(reply.status, Status::Executing);
    assert_eq!(reply.submit_action(), "complete");
    assert_eq!(reply.notes[0].type_, "info");
}

#[test]
fn unknown_elements_and_text_are_skipped() {
    let bytes = b"<iq type='result' id='a'><command xmlns='http://jabber.org/protocol/commands' \
        node='n'><x xmlns='urn:other'><deep><deeper>t</deeper></deep></x>\
        <note type='warn'>a<b>skipped</b>&amp;c<![CDATA[<d>]]></note>\
        <x xmlns='jabber:x:data' type='result'><unknown/><field var='v'><value>1</value>\
        <extra xmlns='urn:e'><value>no</value></extra></field></x></command></iq>";
    let got = read_reply(bytes).unwrap();
    let (_, _, expected) = by_tree(bytes).unwrap();
    assert!(same(&got.answer, &expected), "{:?}", got.answer);
    let reply = got.answer.unwrap();
    assert_eq!(reply.notes[0].text, "a&c<d>");
    assert_eq!(reply.form.unwrap().fields[0].values, ["1"]);
}

#[test]
fn an_error_reads_its_type_condition_and_text() {
    let bytes = b"<iq type='error' id='e' from='x.test'><command \
        xmlns='http://jabber.org/protocol/commands' node='n'/><error type='modify'>\
        <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
        <bad-sessionid xmlns='http://jabber.org/protocol/commands'/>\
        <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>gone &lt;now&gt;</text>\
        </error></iq>";
    let got = read_reply(bytes).unwrap();
    let (_, _, expected) = by_tree(bytes).unwrap();
    assert!(same(&got.answer, &expected), "{:?}", got.answer);
    match got.answer {
        Err(CommandError::Xmpp {
            type_,
            condition,
            text,
        }) => {
            assert_eq!(
                (type_, condition),
                (
                    crate::adhoc::ErrorType::Modify,
                    crate::adhoc::DefinedCondition::BadRequest
                )
            );
            assert_eq!(text.as_deref(), Some("gone <now>"));
        }
        other => panic!("{other:?}"),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Syntax,
    NotAReply,
}

impl Kind {
    fn is(self, e: &WireError) -> bool {
        match self {
            Kind::Syntax => matches!(e, WireError::Syntax(_)),
            Kind::NotAReply => matches!(e, WireError::NotAReply(_)),
        }
    }
}

/// A key given twice is refused wherever it stands among an element's attributes: among the
/// first eight (checked on the stack) and past them (checked in a set).
#[test]
fn a_duplicate_attribute_is_refused_among_few_and_among_many() {
    let element = |n: usize, dup_of: usize| {
        let mut attrs: String = (0..n).map(|i| format!(" a{i}='{i}'")).collect();
        attrs.push_str(&format!(" a{dup_of}='again'"));
        format!("<iq type='result' id='x'{attrs}/>")
    };
    for (n, dup_of) in [(2, 0), (7, 6), (8, 0), (8, 7), (9, 8), (40, 3), (40, 39)] {
        let doc = element(n, dup_of);
        match read_reply(doc.as_bytes()) {
            Err(WireError::Syntax(m)) => assert!(m.contains("twice"), "{doc}: {m}"),
            other => panic!("{doc}: {other:?}"),
        }
    }
    for n in [0, 7, 8, 9, 40] {
        let doc = format!(
            "<iq type='result' id='x'{}/>",
            (0..n).map(|i| format!(" a{i}='{i}'")).collect::<String>()
        );
        // No duplicate: the reply reads (a result without a payload, which the mapping refuses).
        let reply = read_reply(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(reply.id, "x");
    }
}

/// Inputs that are not a reply the gateway can use, each with the error it must give.
#[test]
fn malformed_replies_are_errors() {
    use Kind::{NotAReply, Syntax};
    let cases: &[(&str, &[u8], Kind)] = &[
        ("empty", b"", Syntax),
        ("truncated", b"<iq type='result' id='a'><command", Syntax),
        ("unclosed", b"<iq type='result' id='a'>", Syntax),
        ("mismatched", b"<iq type='result' id='a'></query>", Syntax),
        (
            "duplicate attribute",
            b"<iq type='result' type='error' id='a'/>",
            Syntax,
        ),
        (
            "duplicate inner attribute",
            b"<iq type='result' id='a'><command xmlns='http://jabber.org/protocol/commands' \
              node='a' node='b'/></iq>",
            Syntax,
        ),
        (
            "unknown entity",
            b"<iq type='result' id='a'>&foo;</iq>",
            Syntax,
        ),
        (
            "NUL reference",
            b"<iq type='result' id='a'>&#0;</iq>",
            Syntax,
        ),
        (
            "U+FFFE reference",
            b"<iq type='result' id='&#xFFFE;'/>",
            Syntax,
        ),
        (
            "surrogate reference",
            b"<iq type='result' id='a'>&#xD800;</iq>",
            Syntax,
        ),
        ("raw control", b"<iq type='result' id='a'>\x01</iq>", Syntax),
        ("not UTF-8", b"<iq type='result' id='\xff'/>", Syntax),
        ("DTD", b"<!DOCTYPE iq><iq type='result' id='a'/>", Syntax),
        ("undeclared prefix", b"<p:iq type='result' id='a'/>", Syntax),
        ("content after", b"<iq type='result' id='a'/><iq/>", Syntax),
        ("text before", b"x<iq type='result' id='a'/>", Syntax),
        ("a message", b"<message id='a'/>", NotAReply),
        (
            "server namespace",
            b"<iq xmlns='jabber:server' type='result' id='a'/>",
            NotAReply,
        ),
        (
            "a request",
            b"<iq type='get' id='a'><ping xmlns='urn:xmpp:ping'/></iq>",
            NotAReply,
        ),
        ("no id", b"<iq type='result'/>", NotAReply),
        ("no type", b"<iq id='a'/>", NotAReply),
    ];
    for (what, bytes, expected) in cases {
        match read_reply(bytes) {
            Err(e) => assert!(expected.is(&e), "{what}: {e:?}"),
            Ok(r) => panic!("{what}: read as {r:?}"),
        }
    }
}

#[test]
fn a_command_in_another_namespace_is_not_a_command() {
    let bytes = b"<iq type='result' id='a'><command xmlns='urn:not-commands' node='n'/></iq>";
    let got = read_reply(bytes).unwrap();
    let (_, _, expected) = by_tree(bytes).unwrap();
    assert!(same(&got.answer, &expected));
    assert!(matches!(got.answer, Err(CommandError::Malformed(m)) if m == "<command/>"));
}

#[test]
fn nesting_beyond_the_bound_is_refused_without_recursion() {
    for depth in [MAX_DEPTH + 1, 100_000] {
        let mut bytes = b"<iq type='result' id='a'>".to_vec();
        bytes.extend(b"<a>".repeat(depth));
        bytes.extend(b"</a>".repeat(depth));
        bytes.extend(b"</iq>");
        assert_eq!(
            read_reply(&bytes).unwrap_err(),
            WireError::TooDeep,
            "{depth}"
        );
    }
    let mut ok = b"<iq type='result' id='a'>".to_vec();
    ok.extend(b"<a>".repeat(MAX_DEPTH - 1));
    ok.extend(b"</a>".repeat(MAX_DEPTH - 1));
    ok.extend(b"</iq>");
    assert!(read_reply(&ok).is_ok());
}

#[test]
fn every_truncation_of_every_recorded_reply_is_an_error() {
    for (name, bytes) in recorded() {
        let end = bytes.trim_ascii_end().len();
        for cut in 0..end {
            if let Ok(r) = read_reply(&bytes[..cut]) {
                panic!("{name} cut at {cut}: read as {r:?}");
            }
        }
    }
}
