//! The REST resources beside the command document (`/rest/sessions`, `/rest/users`): their
//! bodies in JSON and XML, and what they read from the XEP-0133 commands' answers. Pure.
//!
//! JSON: an object, one key per entry. XML: the root (`<sessions>`, `<user>`) holding one
//! element per key, a list as an element holding `<item>`s. A request body is
//! `{"password": "..."}` or `<user><password>…</password></user>`.

use super::{json, xml, CommandResponse, DecodeError, Format};

/// One entry's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
}

/// A resource document: its XML root and its entries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub root: &'static str,
    pub entries: Vec<(&'static str, Value)>,
}

/// `{"jid": ..., "resources": [...]}`.
pub fn sessions(jid: &str, resources: Vec<String>) -> Resource {
    Resource {
        root: "sessions",
        entries: vec![
            ("jid", Value::Text(jid.into())),
            ("resources", Value::List(resources)),
        ],
    }
}

/// `{"jid": ..., "ended": [full JIDs]}`.
pub fn ended(jid: &str, ended: Vec<String>) -> Resource {
    Resource {
        root: "sessions",
        entries: vec![
            ("jid", Value::Text(jid.into())),
            ("ended", Value::List(ended)),
        ],
    }
}

/// `{"jid": ...}` under `<user>`.
pub fn user(jid: &str) -> Resource {
    Resource {
        root: "user",
        entries: vec![("jid", Value::Text(jid.into()))],
    }
}

/// Encodes a resource document in `format`.
pub fn encode(format: Format, doc: &Resource) -> Vec<u8> {
    match format {
        Format::Xml => xml::encode_resource(doc),
        Format::Json => json::encode_resource(doc),
    }
}

/// Reads the password of a `{"password": "..."}` / `<user><password>…</password></user>`
/// body. Any other key is refused, so that a typo is not silently ignored.
pub fn decode_password(format: Format, body: &[u8]) -> Result<String, DecodeError> {
    let entries = match format {
        Format::Xml => xml::decode_resource(body, "user")?,
        Format::Json => json::decode_resource(body)?,
    };
    let mut password = None;
    for (key, value) in entries {
        match key.as_str() {
            "password" if password.is_none() => password = Some(value),
            "password" => return Err(shape("the password is given twice")),
            other => return Err(shape(&format!("unknown key {other:?}: send only password"))),
        }
    }
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| shape("the body names no password"))?;
    check_password(&password)?;
    Ok(password)
}

/// The longest password the gateway sends, in bytes (UTF-8). Far beyond any password a person
/// or a generator makes, and far under every stanza limit: a longer one is refused before
/// anything is sent, where the servers would fail it without saying why (Prosody's
/// change-user-password answers "User does not exist").
pub const MAX_PASSWORD: usize = 1024;

/// Why a password cannot be set, said before anything is sent: too long, or not a string the
/// servers can store (SASLprep, RFC 4013: control characters, unassigned or prohibited code
/// points; both servers store SCRAM secrets of the SASLprepped password, and fail without
/// saying why). The texts never quote the password.
fn check_password(password: &str) -> Result<(), DecodeError> {
    if password.len() > MAX_PASSWORD {
        return Err(shape(&format!(
            "the password is {} bytes long; at most {MAX_PASSWORD} are accepted",
            password.len()
        )));
    }
    if stringprep::saslprep(password).map_or(true, |p| p.is_empty()) {
        return Err(shape(
            "the password is not valid under SASLprep (RFC 4013): it holds a control character, \
             an unassigned or prohibited code point, or mixes text directions, which the XMPP \
             server cannot store",
        ));
    }
    Ok(())
}

/// An announcement: its body, and a subject when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub body: String,
    pub subject: Option<String>,
}

/// Reads `{"body": "...", "subject": "..."}` / `<announce><body/><subject/></announce>`; the
/// subject is optional, the body is not.
pub fn decode_announcement(format: Format, body: &[u8]) -> Result<Announcement, DecodeError> {
    let entries = match format {
        Format::Xml => xml::decode_resource(body, "announce")?,
        Format::Json => json::decode_resource(body)?,
    };
    let (mut text, mut subject) = (None, None);
    for (key, value) in entries {
        let slot = match key.as_str() {
            "body" => &mut text,
            "subject" => &mut subject,
            other => {
                return Err(shape(&format!(
                    "unknown key {other:?}: send body and subject"
                )))
            }
        };
        if slot.replace(value).is_some() {
            return Err(shape(&format!("{key:?} is given twice")));
        }
    }
    Ok(Announcement {
        body: text
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| shape("the announcement has no body"))?,
        subject: subject.filter(|s| !s.is_empty()),
    })
}

fn shape(text: &str) -> DecodeError {
    DecodeError::Shape(text.into())
}

/// The resources user-stats lists online (`onlineresources`), all of them: which are the
/// gateway's own is known only by value, where its streams are (`app::resources`).
pub fn online_resources(doc: &CommandResponse) -> Vec<String> {
    doc.fields
        .iter()
        .filter(|f| f.var == "onlineresources")
        .flat_map(|f| f.values.iter())
        .filter(|r| !r.is_empty())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::ResponseField;

    fn doc_with(var: &str, values: &[&str]) -> CommandResponse {
        CommandResponse {
            fields: vec![ResponseField {
                var: var.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
                ..ResponseField::default()
            }],
            ..CommandResponse::default()
        }
    }

    #[test]
    fn sessions_encode_as_the_issue_shows_them() {
        let doc = sessions("t@example.org", vec!["phone".into(), "laptop".into()]);
        let json: serde_json::Value = serde_json::from_slice(&encode(Format::Json, &doc)).unwrap();
        let want = r#"{"jid":"t@example.org","resources":["phone","laptop"]}"#;
        assert_eq!(json.to_string(), want);
        let xml = String::from_utf8(encode(Format::Xml, &doc)).unwrap();
        assert_eq!(
            xml,
            "<sessions>\n  <jid>t@example.org</jid>\n  <resources>\n    <item>phone</item>\n    \
             <item>laptop</item>\n  </resources>\n</sessions>\n"
        );
    }

    #[test]
    fn an_empty_list_stays_a_list() {
        let doc = ended("t@example.org", vec![]);
        let json: serde_json::Value = serde_json::from_slice(&encode(Format::Json, &doc)).unwrap();
        assert_eq!(json.to_string(), r#"{"jid":"t@example.org","ended":[]}"#);
        let xml = String::from_utf8(encode(Format::Xml, &doc)).unwrap();
        assert_eq!(
            xml,
            "<sessions>\n  <jid>t@example.org</jid>\n  <ended />\n</sessions>\n"
        );
        let xml = String::from_utf8(encode(Format::Xml, &user("a<b@x"))).unwrap();
        assert_eq!(xml, "<user>\n  <jid>a&lt;b@x</jid>\n</user>\n");
    }

    #[test]
    fn the_password_is_read_in_both_formats() {
        let json = decode_password(Format::Json, br#"{"password": "unit-test-value"}"#);
        assert_eq!(json, Ok("unit-test-value".into()));
        let xml = decode_password(Format::Xml, b"<user><password>a&amp;b</password></user>");
        assert_eq!(xml, Ok("a&b".into()));
    }

    #[test]
    fn a_password_too_long_or_not_saslprep_is_refused_saying_why() {
        let body = |p: &str| {
            serde_json::json!({ "password": p })
                .to_string()
                .into_bytes()
        };
        let at_most = "é".repeat(MAX_PASSWORD / 2);
        assert_eq!(
            decode_password(Format::Json, &body(&at_most)).unwrap(),
            at_most
        );
        let over = format!("{at_most}x");
        let e = decode_password(Format::Json, &body(&over))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1025 bytes") && e.contains("1024"), "{e}");
        let e = decode_password(Format::Json, &body(&"x".repeat(200_000)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("200000 bytes"), "{e}");
        for bad in [
            "a\u{7f}b",
            "a\u{85}b",
            "pass\u{202e}word",
            "\u{e000}",
            "a\u{fff9}",
        ] {
            let e = decode_password(Format::Json, &body(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains("SASLprep"), "{bad:?}: {e}");
            assert!(!e.contains(bad), "the password is never quoted");
        }
        // Mapped by SASLprep, not refused: the server maps it the same way.
        assert!(decode_password(Format::Json, &body("a\u{a0}b")).is_ok());
    }

    #[test]
    fn a_body_without_exactly_a_password_is_refused() {
        for body in [
            &br#"{}"#[..],
            br#"{"password": ""}"#,
            br#"{"password": 1}"#,
            br#"{"pasword": "x"}"#,
            br#"{"password": "x", "password": "y"}"#,
            br#"["x"]"#,
        ] {
            assert!(decode_password(Format::Json, body).is_err(), "{body:?}");
        }
        for body in [
            &b"<user/>"[..],
            b"<command><password>x</password></command>",
            b"<user><password>x</password><admin>1</admin></user>",
            b"<user><password><b>x</b></password></user>",
            b"<!DOCTYPE user><user><password>x</password></user>",
        ] {
            assert!(decode_password(Format::Xml, body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn an_announcement_needs_a_body_and_may_have_a_subject() {
        let a = decode_announcement(Format::Json, br#"{"subject": "s", "body": "b"}"#);
        let want = Announcement {
            body: "b".into(),
            subject: Some("s".into()),
        };
        assert_eq!(a, Ok(want));
        let a = decode_announcement(Format::Xml, b"<announce><body>b</body></announce>");
        let want = Announcement {
            body: "b".into(),
            subject: None,
        };
        assert_eq!(a, Ok(want));
        for body in [
            &br#"{"subject": "s"}"#[..],
            br#"{"body": " "}"#,
            br#"{"body": "b", "to": "x"}"#,
        ] {
            assert!(decode_announcement(Format::Json, body).is_err(), "{body:?}");
        }
        let twice = b"<announce><body>a</body><body>b</body></announce>";
        assert!(decode_announcement(Format::Xml, twice).is_err());
    }

    #[test]
    fn every_listed_resource_is_read_whatever_its_name() {
        let doc = doc_with("onlineresources", &["phone", "", "xrg-00ff", "laptop"]);
        assert_eq!(online_resources(&doc), ["phone", "xrg-00ff", "laptop"]);
        assert!(online_resources(&doc_with("rostersize", &["phone"])).is_empty());
    }
}
