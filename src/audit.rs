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
#[path = "audit_tests.rs"]
mod tests;
