//! Secrets never reach the gateway's log, at any level and in either format: a gateway at
//! `RUST_LOG=trace` logs a fresh account in with its password and fails one with a wrong
//! password (SASL), adds an account and changes its password as an admin, by command and by
//! the REST resource (`text-private` fields on the wire), makes the server answer errors
//! (ejabberd echoes the submitted form, passwords included), then the whole log is searched for every password in every form it could take there: as written, as
//! bytes (decimal or hex), and inside any base64 text (HTTP Basic, SASL PLAIN). Without
//! `src/logging.rs` this finds 4 lines on Prosody and 9 on ejabberd.

use base64::Engine as _;
use serde_json::json;

use crate::common::rest::{ADMIN_NS, PATH};
use crate::common::{self, basic, http, HttpResponse, ServerKind, TestGateway};

const LIST_PATH: &str = "/rest/adhoc/sess-man@domain.com?type=application/json";

/// How many HTTP requests the test makes, each one audit line in the log.
const REQUESTS: usize = 9;

on_both_servers!(
    no_password_reaches_the_log_at_trace,
    no_password_reaches_the_json_log_at_trace,
);

async fn no_password_reaches_the_log_at_trace(kind: ServerKind) {
    no_password_reaches_the_log(kind, "text").await
}

async fn no_password_reaches_the_json_log_at_trace(kind: ServerKind) {
    no_password_reaches_the_log(kind, "json").await
}

async fn no_password_reaches_the_log(kind: ServerKind, format: &str) {
    let s = common::started(kind).await;
    let args = ["--log-format", format];
    let gw = TestGateway::start_with_env(s, &args, &[("RUST_LOG", "trace")]);
    let tag = format!("{:016x}", rand::random::<u64>());
    let local = format!("secrets-{}", &tag[..8]);
    let jid = s.jid(&local);
    let first = format!("Sekr3t-first-{tag}");
    let second = format!("Sekr3t-second-{tag}");
    let wrong = format!("Sekr3t-wrong-{tag}");
    let admin = basic(&s.jid("admin"), &s.password("admin"));

    let r = command(gw.addr, &admin, "add-user", &add_user(&jid, &first)).await;
    assert_eq!(r.status, 200, "{kind} add-user: {}", r.text());

    // Fresh logins, one right and one wrong: SASL with the new password, then without.
    let r = list(gw.addr, &basic(&jid, &first)).await;
    assert_eq!(
        r.status,
        200,
        "{kind} login with the new password: {}",
        r.text()
    );
    let r = list(gw.addr, &basic(&jid, &wrong)).await;
    assert_eq!(
        r.status,
        401,
        "{kind} login with a wrong password: {}",
        r.text()
    );

    // Errors: ejabberd echoes the submitted form, text-private values included, in its error
    // replies; Prosody completes with an error note (422).
    let again = format!("Sekr3t-again-{tag}");
    let r = command(gw.addr, &admin, "add-user", &add_user(&jid, &again)).await;
    let want = match kind {
        ServerKind::Prosody => 422,
        ServerKind::Ejabberd => 409,
    };
    assert_eq!(
        r.status,
        want,
        "{kind} add-user of an existing account: {}",
        r.text()
    );
    let nobody = format!("Sekr3t-nobody-{tag}");
    let fields = change_password(&s.jid(&format!("nobody-{tag}")), &nobody);
    let r = command(gw.addr, &admin, "change-user-password", &fields).await;
    let want = match kind {
        ServerKind::Prosody => 422,
        ServerKind::Ejabberd => 404,
    };
    assert_eq!(
        r.status,
        want,
        "{kind} change-user-password of no account: {}",
        r.text()
    );

    let fields = change_password(&jid, &second);
    let r = command(gw.addr, &admin, "change-user-password", &fields).await;
    assert_eq!(r.status, 200, "{kind} change-user-password: {}", r.text());
    let r = list(gw.addr, &basic(&jid, &second)).await;
    assert_eq!(
        r.status,
        200,
        "{kind} login with the changed password: {}",
        r.text()
    );

    // The REST resource's password body: a text-private field too, once it reaches the server.
    let third = format!("Sekr3t-third-{tag}");
    let headers = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
    ];
    let body = json!({ "password": third }).to_string();
    let path = format!("/rest/users/{jid}/password");
    let r = http(gw.addr, "PUT", &path, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 204, "{kind} PUT password: {}", r.text());

    let fields = json!([{"var": "accountjids", "value": [jid]}]);
    let r = command(gw.addr, &admin, "delete-user", &fields).await;
    assert_eq!(r.status, 200, "{kind} delete-user: {}", r.text());

    let marker = if format == "json" {
        "\"target\":\"audit\""
    } else {
        " INFO audit: "
    };
    let log = gw.log_lines(marker, REQUESTS).await;
    // Not vacuous: this is the log of the requests above, written at trace level, with the
    // dependencies' own traces in it.
    let (audit, trace) = match format {
        "json" => {
            for l in log.lines() {
                let parsed = serde_json::from_str::<serde_json::Value>(l);
                assert!(parsed.is_ok(), "{kind}: a line that is not JSON: {l}");
            }
            ("\"target\":\"audit\"", "\"level\":\"TRACE\"")
        }
        _ => (" INFO audit: ", " TRACE "),
    };
    let requests = log.lines().filter(|l| l.contains(audit)).count();
    let logins = log.matches("logged in").count();
    let traces = log
        .lines()
        .filter(|l| l.contains(trace) && !l.contains("xmpp_rest_gateway"))
        .count();
    assert!(
        requests == REQUESTS && logins == 3 && traces > 0,
        "{kind} {format}: expected {REQUESTS} audit lines, 3 logins and dependencies' TRACE lines, \
         got {requests}, {logins}, {traces}:\n{}",
        tail(&log)
    );
    let secrets = [
        ("admin's password", s.password("admin")),
        ("add-user's password", first),
        ("change-user-password's password", second),
        ("the password resource's password", third),
        ("the wrong password", wrong),
        ("the existing account's add-user password", again),
        ("no account's change-user-password password", nobody),
    ];
    let mut found = Vec::new();
    for (what, secret) in &secrets {
        for (form, text) in encodings(secret) {
            for line in log.lines().filter(|l| l.contains(&text)) {
                found.push(format!("{what} ({form}): {line}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "{kind} {format}: the log at RUST_LOG=trace holds secrets ({} lines):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// Every way `secret` could be written in a log line: as is, as a list of decimal bytes
/// (`Debug` of a `[u8]`), as hex, and the part of any base64 text that encodes it, whatever
/// comes before or after it (so `Basic base64(user:pass)` and SASL PLAIN's
/// `base64(authzid\0authcid\0pass)` are found whatever the user part is).
fn encodings(secret: &str) -> Vec<(String, String)> {
    let bytes = secret.as_bytes();
    let decimal: Vec<String> = bytes.iter().map(|b| b.to_string()).collect();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![
        ("as is".to_owned(), secret.to_owned()),
        ("decimal bytes".to_owned(), decimal.join(", ")),
        ("hex".to_owned(), hex),
    ];
    for offset in 0..3 {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(bytes);
        let text = base64::engine::general_purpose::STANDARD.encode(&shifted);
        // Only the characters made of the secret's bits alone: none of the prefix's, none of
        // whatever follows (or of the padding).
        let start = (8 * offset).div_ceil(6);
        let end = 8 * (offset + bytes.len()) / 6;
        out.push((
            format!("base64 at offset {offset}"),
            text[start..end].to_owned(),
        ));
    }
    out
}

fn add_user(jid: &str, password: &str) -> serde_json::Value {
    json!([
        {"var": "accountjid", "value": jid},
        {"var": "password", "value": password},
        {"var": "password-verify", "value": password},
    ])
}

fn change_password(jid: &str, password: &str) -> serde_json::Value {
    json!([
        {"var": "accountjid", "value": jid},
        {"var": "password", "value": password},
    ])
}

async fn command(
    addr: std::net::SocketAddr,
    auth: &str,
    node: &str,
    fields: &serde_json::Value,
) -> HttpResponse {
    let body = json!({"command": {"node": format!("{ADMIN_NS}{node}"), "fields": fields}});
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    http(addr, "POST", PATH, &headers, body.to_string().as_bytes()).await
}

async fn list(addr: std::net::SocketAddr, auth: &str) -> HttpResponse {
    http(addr, "GET", LIST_PATH, &[("authorization", auth)], b"").await
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn the_base64_search_finds_basic_and_sasl_plain_forms() {
    let engine = base64::engine::general_purpose::STANDARD;
    let secret = "Sekr3t-0123456789abcdef";
    let cores: Vec<String> = encodings(secret)
        .into_iter()
        .filter(|(form, _)| form.starts_with("base64"))
        .map(|(_, t)| t)
        .collect();
    for whole in [
        format!("user@domain.com:{secret}"),
        format!("\0user\0{secret}"),
        format!("user\0{secret}"),
        format!("user@domain.com\0user\0{secret}"),
        secret.to_owned(),
    ] {
        let text = engine.encode(whole.as_bytes());
        assert!(
            cores.iter().any(|c| text.contains(c.as_str())),
            "{whole:?} as {text} is not found by {cores:?}"
        );
    }
    let other = engine.encode(b"user@domain.com:Sekr3t-0123456789abcdeX");
    let unrelated = engine.encode(b"\0user\0something-else-entirely-here");
    for text in [other, unrelated] {
        assert!(!cores.iter().any(|c| text.contains(c.as_str())), "{text}");
    }
}
