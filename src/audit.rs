//! The audit trail: one line per `/rest/*` request under the target `audit`, at info level,
//! with fixed keys so that "who ended that session, from where?" is one `grep`:
//! `request_id client account token jid node action subjects status condition ms forwarded_to
//! forwarded_from`.
//!
//! The HTTP layer opens a [`Record`] for each request and runs the request inside
//! [`scope`]; whatever learns something on the way (the caller's account and token, the
//! command's node and action, the JIDs a form names) notes it with the functions below, which
//! do nothing outside a request. The layer writes the line once the response is ready, or
//! when the client left before it was. The record holds JID values of `jid-single` and
//! `jid-multi` fields only: never another field's value, so never a password.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one request did, as far as it got.
#[derive(Debug, Clone)]
pub struct Record {
    pub request_id: String,
    /// The client's address (`X-Forwarded-For` only from a trusted proxy).
    pub client: String,
    /// The bare JID the request acts as (Basic, or a token's account).
    pub account: String,
    /// The token's name, when one was presented and accepted.
    pub token: String,
    /// The JID in the URL, as written.
    pub jid: String,
    /// The full command node run.
    pub node: String,
    /// What was asked: the XEP-0050 action of a command document, else the resource's verb,
    /// else the HTTP method.
    pub action: String,
    /// JID values of the request's `jid-single`/`jid-multi` fields, in order, without repeats;
    /// at most [`MAX_SUBJECTS`].
    pub subjects: Vec<String>,
    /// Subjects beyond [`MAX_SUBJECTS`], counted, not kept.
    pub more_subjects: usize,
    /// The replica this request was forwarded to (its sessionid named it), if any.
    pub forwarded_to: String,
    /// The replica that forwarded this request here, if any.
    pub forwarded_from: String,
    pub started: Instant,
}

impl Record {
    pub fn new(request_id: String, client: String, jid: String, method: &str) -> Record {
        Record {
            request_id,
            client,
            account: String::new(),
            token: String::new(),
            jid,
            node: String::new(),
            action: method.to_string(),
            subjects: Vec::new(),
            more_subjects: 0,
            forwarded_to: String::new(),
            forwarded_from: String::new(),
            started: Instant::now(),
        }
    }

    /// Writes the line: `status` answered with `condition` (empty when it succeeded).
    pub fn emit(&self, status: u16, condition: &str) {
        self.emit_as(crate::logging::is_json(), status, condition)
    }

    fn emit_as(&self, json: bool, status: u16, condition: &str) {
        // Every value capped, whoever filled it (the URL's JID comes straight from the path).
        fn v(s: &str, json: bool) -> Value<'_> {
            Value { s: capped(s), json }
        }
        let ms = self.started.elapsed().as_millis() as u64;
        let mut subjects = self.subjects.join(",");
        if self.more_subjects > 0 {
            subjects.push_str(&format!(",+{}-more", self.more_subjects));
        }
        tracing::info!(
            target: "audit",
            request_id = %v(&self.request_id, json),
            client = %v(&self.client, json),
            account = %v(&self.account, json),
            token = %v(&self.token, json),
            jid = %v(&self.jid, json),
            node = %v(&self.node, json),
            action = %v(&self.action, json),
            subjects = %v(&subjects, json),
            status,
            condition = %v(condition, json),
            ms,
            forwarded_to = %v(&self.forwarded_to, json),
            forwarded_from = %v(&self.forwarded_from, json),
        );
    }
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<Record>>;
}

/// Runs `fut` with `record` as the request's record, for the `note_*` functions.
pub async fn scope<F: std::future::Future>(record: Arc<Mutex<Record>>, fut: F) -> F::Output {
    CURRENT.scope(record, fut).await
}

fn note(f: impl FnOnce(&mut Record)) {
    let _ = CURRENT.try_with(|r| f(&mut r.lock().unwrap_or_else(|e| e.into_inner())));
}

/// The account the request acts as.
pub fn note_account(account: &dyn fmt::Display) {
    note(|r| r.account = account.to_string());
}

/// The name of the token the request presented.
pub fn note_token(name: &str) {
    note(|r| r.token = name.to_string());
}

/// The replica the request was forwarded to.
pub fn note_forwarded_to(replica: &str) {
    note(|r| r.forwarded_to = replica.to_string());
}

/// The replica that forwarded the request, and the client's address it vouched for.
pub fn note_forwarded_from(replica: &str, client: &dyn fmt::Display) {
    note(|r| {
        r.forwarded_from = replica.to_string();
        r.client = client.to_string();
    });
}

/// The request's id, inside a request.
pub fn request_id() -> Option<String> {
    CURRENT
        .try_with(|r| {
            r.lock()
                .unwrap_or_else(|e| e.into_inner())
                .request_id
                .clone()
        })
        .ok()
}

/// The full command node run (a client's string: [`capped`]).
pub fn note_node(node: &str) {
    note(|r| r.node = capped(node).into_owned());
}

/// What the request asked, when it is not a command's action ([`capped`]).
pub fn note_action(action: &str) {
    note(|r| r.action = capped(action).into_owned());
}

/// The longest value the line carries (longer ones are [`capped`]): a client chooses the URL's
/// JID, the node, the action and the subjects, and one line must stay a line.
pub const MAX_VALUE: usize = 256;

/// Subjects one line names; more are counted (`+N-more`). A form's JID lists are refused
/// beyond `--max-jids` anyway, but a line must not grow with what a client sends.
pub const MAX_SUBJECTS: usize = 128;

/// `s`, or when it is longer than [`MAX_VALUE`] bytes its first bytes up to a character
/// boundary and the marker `...[+N]`, N the bytes cut: a reader sees that the value was longer.
pub fn capped(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_VALUE {
        return Cow::Borrowed(s);
    }
    let mut end = MAX_VALUE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...[+{}]", &s[..end], s.len() - end))
}

/// JID values of `jid-single`/`jid-multi` fields: the accounts a command acts on. Only ever
/// called with such values, never with another field's.
pub fn note_subjects<'a>(jids: impl IntoIterator<Item = &'a str>) {
    note(|r| {
        for j in jids {
            let j = capped(j.trim());
            if j.is_empty() || r.subjects.iter().any(|s| *s == j) {
                continue;
            }
            if r.subjects.len() < MAX_SUBJECTS {
                r.subjects.push(j.into_owned());
            } else {
                r.more_subjects += 1;
            }
        }
    });
}

/// The longest `X-Request-Id` taken from a client.
pub const MAX_REQUEST_ID: usize = 64;

/// The client's `X-Request-Id` when it is a sane token (1 to 64 of `[A-Za-z0-9._-]`), so it
/// can be logged as is and echoed; `None` otherwise.
pub fn sane_request_id(given: &[u8]) -> Option<&str> {
    let sane = !given.is_empty()
        && given.len() <= MAX_REQUEST_ID
        && given
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    sane.then(|| std::str::from_utf8(given).ok()).flatten()
}

/// A new request id: 16 random hex digits.
pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A value of the audit line. In text: `-` when empty, bare when it holds only characters
/// that cannot end or split a `key=value` pair, otherwise quoted with Rust's escapes (so a
/// newline or a quote cannot forge a line or a key). In JSON: as is (the encoder escapes).
struct Value<'a> {
    s: Cow<'a, str>,
    json: bool,
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.s;
        if self.json {
            return f.write_str(s);
        }
        let bare = |c: char| c.is_ascii_alphanumeric() || "._-@/:+,[]#%".contains(c);
        if s.is_empty() {
            f.write_str("-")
        } else if s != "-" && s.chars().all(bare) {
            f.write_str(s)
        } else {
            write!(f, "{s:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        Value {
            s: s.into(),
            json: false,
        }
        .to_string()
    }

    #[test]
    fn a_sane_request_id_is_kept_and_anything_else_refused() {
        assert_eq!(sane_request_id(b"abc-DEF_1.2"), Some("abc-DEF_1.2"));
        assert_eq!(sane_request_id(&[b'a'; 64]), Some(&*"a".repeat(64)));
        for insane in [
            &b""[..],
            &[b'a'; 65][..],
            b"a b",
            b"a\nb",
            b"a=b",
            b"\"a\"",
            "é".as_bytes(),
            b"a/b",
        ] {
            assert_eq!(sane_request_id(insane), None, "{insane:?}");
        }
    }

    #[test]
    fn generated_request_ids_are_sane_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 16);
        assert_eq!(sane_request_id(a.as_bytes()), Some(a.as_str()));
        assert_ne!(a, b);
    }

    #[test]
    fn text_values_are_dashes_bare_or_quoted() {
        assert_eq!(text(""), "-");
        assert_eq!(text("admin@example.org"), "admin@example.org");
        assert_eq!(text("a@x,b@y/phone"), "a@x,b@y/phone");
        assert_eq!(text("2001:db8::1"), "2001:db8::1");
        // A literal dash must not read as "not applicable".
        assert_eq!(text("-"), "\"-\"");
        assert_eq!(text("a b"), "\"a b\"");
        assert_eq!(text("x\ny status=200"), "\"x\\ny status=200\"");
        assert_eq!(text("a=b"), "\"a=b\"");
        assert_eq!(text("q\"uote"), "\"q\\\"uote\"");
    }

    #[test]
    fn json_values_are_as_is() {
        assert_eq!(
            Value {
                s: "".into(),
                json: true
            }
            .to_string(),
            ""
        );
        assert_eq!(
            Value {
                s: "a b".into(),
                json: true
            }
            .to_string(),
            "a b"
        );
    }

    /// The line `emit_as` writes, in text or JSON.
    fn line(json: bool, rec: &Record, status: u16, condition: &str) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let w = out.clone();
        let make = move || Sink(w.clone());
        let sub = tracing_subscriber::fmt().with_writer(make).with_ansi(false);
        let sub: Box<dyn tracing::Subscriber + Send + Sync> = match json {
            true => Box::new(sub.json().finish()),
            false => Box::new(sub.finish()),
        };
        tracing::subscriber::with_default(sub, || rec.emit_as(json, status, condition));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn refused() -> Record {
        let mut r = Record::new("r1".into(), "10.0.0.1".into(), "x y".into(), "POST");
        r.account = "admin@example.org".into();
        r
    }

    #[test]
    fn the_text_line_has_every_key_once_with_dashes() {
        let l = line(false, &refused(), 403, "forbidden");
        let want = "request_id=r1 client=10.0.0.1 account=admin@example.org token=- \
                    jid=\"x y\" node=- action=POST subjects=- status=403 condition=forbidden ms=";
        assert!(l.contains(want), "{l}");
        assert!(
            l.trim_end().ends_with(" forwarded_to=- forwarded_from=-"),
            "{l}"
        );
        assert_eq!(l.lines().count(), 1, "{l}");
        assert!(l.contains(" audit: "), "{l}");
    }

    #[test]
    fn the_json_line_has_every_key_with_empty_strings() {
        let l = line(true, &refused(), 200, "");
        let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
        assert_eq!(v["target"], "audit");
        let f = &v["fields"];
        for (k, want) in [
            ("request_id", "r1"),
            ("client", "10.0.0.1"),
            ("account", "admin@example.org"),
            ("token", ""),
            ("jid", "x y"),
            ("node", ""),
            ("action", "POST"),
            ("subjects", ""),
            ("condition", ""),
            ("forwarded_to", ""),
            ("forwarded_from", ""),
        ] {
            assert_eq!(f[k], want, "{k}: {l}");
        }
        assert_eq!(f["status"], 200);
        assert!(f["ms"].is_u64(), "{l}");
    }

    #[tokio::test]
    async fn notes_fill_the_record_in_scope_and_nothing_outside() {
        note_account(&"outside@example.org");
        let rec = Arc::new(Mutex::new(Record::new(
            "r1".into(),
            "127.0.0.1".into(),
            "example.org".into(),
            "POST",
        )));
        scope(rec.clone(), async {
            note_account(&"admin@example.org");
            note_token("ops");
            note_node("http://jabber.org/protocol/admin#end-user-session");
            note_action("execute");
            note_subjects(["a@example.org", " b@example.org ", "a@example.org", ""]);
        })
        .await;
        let r = rec.lock().unwrap().clone();
        assert_eq!(r.account, "admin@example.org");
        assert_eq!(r.token, "ops");
        assert_eq!(r.node, "http://jabber.org/protocol/admin#end-user-session");
        assert_eq!(r.action, "execute");
        assert_eq!(r.subjects, ["a@example.org", "b@example.org"]);
    }

    #[tokio::test]
    async fn what_a_client_chooses_is_bounded_on_the_line() {
        let rec = Arc::new(Mutex::new(Record::new(
            "r2".into(),
            "127.0.0.1".into(),
            "example.org".into(),
            "POST",
        )));
        let many: Vec<String> = (0..MAX_SUBJECTS + 5)
            .map(|i| format!("u{i}@example.org"))
            .collect();
        let long = format!("{}é", "n".repeat(MAX_VALUE - 1));
        scope(rec.clone(), async {
            note_subjects(many.iter().map(String::as_str));
            note_node(&long);
            note_action(&"a".repeat(10 * MAX_VALUE));
        })
        .await;
        let r = rec.lock().unwrap().clone();
        assert_eq!(r.subjects.len(), MAX_SUBJECTS);
        assert_eq!(r.more_subjects, 5);
        // é does not fit whole: cut before it, with the marker.
        assert_eq!(r.node, format!("{}...[+2]", "n".repeat(MAX_VALUE - 1)));
        assert_eq!(
            r.action,
            format!("{}...[+{}]", "a".repeat(MAX_VALUE), 9 * MAX_VALUE)
        );
        // The URL's JID and every other value, on the line itself.
        let long_jid = Record::new("r3".into(), "c".into(), "j".repeat(15_000), "POST");
        for json in [false, true] {
            let l = line(json, &long_jid, 400, "bad-request");
            assert!(l.len() < 2 * MAX_VALUE + 300, "{} bytes", l.len());
            assert!(l.contains(&format!("...[+{}]", 15_000 - MAX_VALUE)), "{l}");
        }
    }
}
