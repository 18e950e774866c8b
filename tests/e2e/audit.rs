//! The audit trail and `X-Request-Id`: one `audit` line per `/rest/*` request, refusals
//! included, with every key on every line, in both log formats; the request id taken when
//! sane, made otherwise, echoed, and on the lines the request's upstream work writes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::rest::*;
use crate::common::victim::Victim;
use crate::common::{self, basic, http, HttpResponse, ServerKind, TestGateway, TestServer};
use crate::gateway;

on_both_servers!(
    one_audit_line_per_request_in_text_and_json,
    x_request_id_is_echoed_made_and_replaced,
    the_request_id_marks_the_upstream_lines_of_its_request,
    a_request_dropped_before_its_answer_has_its_line,
);

/// The keys of an audit line, in the order they are written.
const KEYS: [&str; 13] = [
    "request_id",
    "client",
    "account",
    "token",
    "jid",
    "node",
    "action",
    "subjects",
    "status",
    "condition",
    "ms",
    "forwarded_to",
    "forwarded_from",
];

/// One audit line's keys and values, `-` for "not applicable" in both formats.
type Line = BTreeMap<String, String>;

async fn one_audit_line_per_request_in_text_and_json(kind: ServerKind) {
    let s = common::started(kind).await;
    for format in ["text", "json"] {
        let (gw, bearer) = gateway_with_token(s, kind, format);
        let id = |what: &str| format!("{what}-{format}-{}", common::random_hex(4));
        let mut expected: Vec<(String, Vec<(&str, String)>)> = Vec::new();

        // A command that ends a session: the account it ended is the line's subject.
        let victim = Victim::connect(s, "audit1", "desk").await;
        let rid = id("ok");
        let body = end_sessions(&[s.jid("audit1")]).to_string();
        let r = send(gw.addr, &rid, "POST", PATH, &admin(), body.as_bytes()).await;
        assert_eq!(r.status, 200, "{kind} {format}: {}", r.text());
        assert!(victim.closed_within(Duration::from_secs(5)).await);
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("client", "127.0.0.1".into()), ("account", "admin@domain.com".into()),
            ("token", "-".into()), ("jid", "sess-man@domain.com".into()),
            ("node", END_USER_SESSION.into()), ("action", "execute".into()),
            ("subjects", s.jid("audit1")), ("status", "200".into()), ("condition", "-".into()),
        ]));

        // A command through the generic path: the subject is the server form's JID field's.
        let rid = id("stats");
        let body = user_stats(&s.jid("audit2")).to_string();
        let r = send(gw.addr, &rid, "POST", PATH, &admin(), body.as_bytes()).await;
        assert_eq!(r.status, 200, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("node", USER_STATS.into()), ("subjects", s.jid("audit2")), ("status", "200".into()),
        ]));

        // A command through /rest/stream/: the subjects are the form's JID fields, never
        // another field's value, however much it looks like a JID.
        let rid = id("stream");
        #[rustfmt::skip]
        let stanza = format!(
            "<iq type='set' to='domain.com' id='s1'><command \
             xmlns='http://jabber.org/protocol/commands' node='{USER_STATS}' action='execute'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='accountjid'><value>{}</value></field>\
             <field var='note' type='text-private'><value>{}</value></field>\
             </x></command></iq>",
            s.jid("audit2"), s.jid("audit1"),
        );
        let headers = [
            ("authorization", admin()),
            ("content-type", "application/xml".to_string()),
            ("x-request-id", rid.clone()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = http(
            gw.addr,
            "POST",
            "/rest/stream/",
            &headers,
            stanza.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("jid", "-".into()), ("node", USER_STATS.into()), ("action", "iq".into()),
            ("subjects", s.jid("audit2")), ("status", "200".into()),
        ]));

        // A wrong password: refused by the server.
        let rid = id("401");
        let wrong = basic(&s.jid("audit2"), "not-the-password");
        let r = send(gw.addr, &rid, "GET", PATH, &wrong, b"").await;
        assert_eq!(r.status, 401, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("account", s.jid("audit2")), ("action", "list".into()), ("status", "401".into()),
            ("condition", "unauthorized".into()), ("subjects", "-".into()),
        ]));

        // A token's rules: refused by the gateway before any login.
        let rid = id("403");
        let body = user_stats(&s.jid("audit1")).to_string();
        let r = send(gw.addr, &rid, "POST", PATH, &bearer, body.as_bytes()).await;
        assert_eq!(r.status, 403, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("account", s.jid("admin2")), ("token", "auditor".into()), ("node", USER_STATS.into()),
            ("status", "403".into()), ("condition", "forbidden".into()),
        ]));

        // A body that is not a document.
        let rid = id("400");
        let r = send(gw.addr, &rid, "POST", PATH, &admin(), b"{\"command\": [").await;
        assert_eq!(r.status, 400, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("account", "admin@domain.com".into()), ("node", "-".into()),
            ("status", "400".into()), ("condition", "bad-request".into()),
        ]));

        // No such route under /rest/, and a method a route does not take: no handler ran.
        let rid = id("404");
        let r = send(gw.addr, &rid, "GET", "/rest/nothing/here", &admin(), b"").await;
        assert_eq!(r.status, 404, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("account", "-".into()), ("jid", "-".into()), ("action", "GET".into()),
            ("status", "404".into()), ("condition", "not-found".into()),
        ]));
        let rid = id("405");
        let r = send(
            gw.addr,
            &rid,
            "PATCH",
            "/rest/users/a@domain.com",
            &admin(),
            b"",
        )
        .await;
        assert_eq!(r.status, 405, "{kind} {format}: {}", r.text());
        #[rustfmt::skip]
        expected.push((rid, vec![
            ("jid", "a@domain.com".into()), ("action", "PATCH".into()),
            ("status", "405".into()), ("condition", "method-not-allowed".into()),
        ]));

        let marker = if format == "json" {
            "\"target\":\"audit\""
        } else {
            " INFO audit: "
        };
        let log = gw.log_lines(marker, expected.len()).await;
        assert!(!log.contains('\x1b'), "colour in a piped log:\n{log}");
        let lines = audit_lines(&log, format);
        assert_eq!(lines.len(), expected.len(), "{kind} {format}:\n{log}");
        for ((rid, want), got) in expected.iter().zip(&lines) {
            assert_eq!(got["request_id"], *rid, "{kind} {format}: {got:?}");
            for (key, value) in want {
                assert_eq!(got[*key], *value, "{kind} {format} {key}: {got:?}");
            }
            assert!(got["ms"].parse::<u64>().is_ok(), "{got:?}");
        }
    }
}

async fn x_request_id_is_echoed_made_and_replaced(kind: ServerKind) {
    let gw = gateway(kind).await;
    let given = format!("op.42_{}-x", common::random_hex(4));
    let r = send(
        gw.addr,
        &given,
        "POST",
        PATH,
        &admin(),
        IDLE_SEED_JSON.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some(given.as_str()));
    // On a refusal too, and in the audit line of the shared gateway's log.
    let r = send(gw.addr, &given, "GET", "/rest/nothing", &admin(), b"").await;
    assert_eq!(r.header("x-request-id"), Some(given.as_str()));
    let audit = format!("audit: request_id={given} ");
    let log = gw.log_lines(&audit, 2).await;
    let mentions = log.lines().filter(|l| l.contains(&audit)).count();
    assert_eq!(mentions, 2, "{log}");

    let none = http(gw.addr, "GET", "/rest/nothing", &[], b"").await;
    let made = none.header("x-request-id").expect("a request id");
    assert!(is_made(made), "{made}");
    let too_long = "a".repeat(65);
    for insane in ["two words", "quote\"d", "a=b", too_long.as_str()] {
        let r = send(gw.addr, insane, "GET", "/rest/nothing", &admin(), b"").await;
        let got = r.header("x-request-id").expect("a request id");
        assert!(is_made(got), "{insane:?} -> {got}");
    }
    let r = send(gw.addr, &"b".repeat(64), "GET", "/rest/x", &admin(), b"").await;
    assert_eq!(r.header("x-request-id"), Some(&*"b".repeat(64)));
}

async fn the_request_id_marks_the_upstream_lines_of_its_request(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start_with_env(s, &[], &[("RUST_LOG", "debug")]);
    let rid = format!("login-{}", common::random_hex(6));
    let r = send(
        gw.addr,
        &rid,
        "POST",
        PATH,
        &admin(),
        IDLE_SEED_JSON.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let log = gw.log();
    let span = format!("request{{request_id={rid}}}");
    // The fresh login is this request's work: its lines, the TLS library's DEBUG ones
    // included, carry the request's id.
    let login: Vec<&str> = log.lines().filter(|l| l.contains("logged in")).collect();
    assert_eq!(login.len(), 1, "{log}");
    assert!(login[0].contains(&span), "{log}");
    let debug = log
        .lines()
        .filter(|l| l.contains(" DEBUG ") && l.contains(&span))
        .count();
    assert!(debug > 0, "no DEBUG line carries {span}:\n{log}");
}

async fn a_request_dropped_before_its_answer_has_its_line(kind: ServerKind) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &["--max-connections", "1"]);
    let rid = format!("dropped-{}", common::random_hex(4));
    let mut first = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\
         expect: 100-continue\r\nx-request-id: {rid}\r\n\r\n",
        admin()
    );
    first.write_all(head.as_bytes()).await.unwrap();
    // hyper says 100 Continue once the handler reads the body: the request is in the gateway.
    let mut buf = [0u8; 64];
    let n = first.read(&mut buf).await.unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(got.starts_with("HTTP/1.1 100"), "{got}");
    // A second connection over the cap closes the first, its body still coming.
    let r = http(gw.addr, "GET", "/rest/nothing", &[], b"").await;
    assert_eq!(r.status, 404);
    let line = format!("audit: request_id={rid} ");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let found = loop {
        let log = gw.log();
        if let Some(l) = log.lines().find(|l| l.contains(&line)) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line for {rid}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        found.contains(" status=499 condition=connection-closed "),
        "{found}"
    );
    assert_eq!(gw.log().matches(&line).count(), 1);
}

/// A gateway writing `format`, with an access file whose token `auditor` acts as admin2 and
/// may run end-user-session only; and that token's `Authorization`.
fn gateway_with_token(s: &TestServer, kind: ServerKind, format: &str) -> (TestGateway, String) {
    let dir = common::scratch_dir(&format!("audit-{kind}-{}", common::random_hex(4)));
    let access = dir.join("access.toml");
    let access = access.to_str().unwrap();
    let service = s.jid("admin2");
    #[rustfmt::skip]
    let secret = common::token(&[
        "add", "auditor", "--access-file", access, "--account", &service,
        "--allow", "end-user-session",
    ]);
    let creds = dir.join("credentials.toml");
    let line = format!("\"{service}\" = \"{}\"\n", s.password("admin2"));
    std::fs::write(&creds, line).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    #[rustfmt::skip]
    let gw = TestGateway::start(s, &[
        "--log-format", format, "--access-file", access,
        "--credentials-file", creds.to_str().unwrap(),
    ]);
    (gw, format!("Bearer {secret}"))
}

async fn send(
    addr: SocketAddr,
    request_id: &str,
    method: &str,
    path: &str,
    auth: &str,
    body: &[u8],
) -> HttpResponse {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
        ("x-request-id", request_id),
    ];
    http(addr, method, path, &headers, body).await
}

/// A request id the gateway made: 16 hex digits.
fn is_made(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The audit lines of `log`, each with exactly the [`KEYS`]. In JSON every line of the log must
/// be one object; an empty value reads as `-`, as in text.
fn audit_lines(log: &str, format: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for l in log.lines() {
        let line: Line = if format == "json" {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            if v["target"] != "audit" {
                continue;
            }
            let fields = v["fields"].as_object().expect("fields");
            let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            assert_eq!(keys, KEYS, "{l}");
            fields
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) if s.is_empty() => "-".to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        } else {
            let Some((_, pairs)) = l.split_once(" INFO audit: ") else {
                continue;
            };
            let pairs = key_values(pairs);
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, KEYS, "{l}");
            pairs.into_iter().collect()
        };
        out.push(line);
    }
    out
}

/// `key=value key="quoted \"value\""` as pairs, quotes and escapes undone.
fn key_values(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').unwrap_or_else(|| panic!("{text}"));
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                    Some((i, '"')) => break i + 1,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated quote: {text}"),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((key.to_string(), value));
        rest = after.trim_start();
    }
    out
}

#[test]
fn key_values_reads_bare_and_quoted_values() {
    let got = key_values(r#"a=1 b="x y" c=- d="q\"t""#);
    let want = [("a", "1"), ("b", "x y"), ("c", "-"), ("d", "q\"t")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
}
