//! End-to-end: the gateway binary against real Prosody and ejabberd (started once per test
//! binary by the harness), driven over HTTP as an operator's curl would. Every behaviour is
//! checked on both servers; each test uses accounts of its own so that tests can run at once.

#[macro_use]
mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::doc::{assert_json_eq, assert_xml_eq, parse_xml};
use common::victim::Victim;
use common::{basic, http, HttpResponse, ServerKind, TestGateway};

const SEED_REQUEST_XML: &str = include_str!("fixtures/seed/request.xml");
const SEED_REQUEST_JSON: &str = include_str!("fixtures/seed/request.json");
const SEED_CONNECTED_XML: &str = include_str!("fixtures/seed/response-connected.xml");
const SEED_CONNECTED_JSON: &str = include_str!("fixtures/seed/response-connected.json");
const SEED_OFFLINE_XML: &str = include_str!("fixtures/seed/response-not-connected.xml");
const SEED_OFFLINE_JSON: &str = include_str!("fixtures/seed/response-not-connected.json");

const SEED_PATH: &str = "/rest/adhoc/sess-man@domain.com";
const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";
/// How long a kicked client may take to see its stream end.
const KICK_SEEN: Duration = Duration::from_secs(5);

on_both_servers!(
    seed_responses_on_both_formats,
    several_resources_are_all_reported,
    a_full_jid_ends_that_resource_only,
    several_accounts_in_one_request,
    an_admin_ends_its_own_other_sessions_and_keeps_serving,
    wrong_password_is_401_and_throttled_to_429,
    a_non_admin_is_403,
    a_warm_session_serves_without_logging_in_again,
    a_changed_password_is_tried_with_a_fresh_login,
    field_checks_name_the_field,
    errors_follow_the_status_table,
    a_generic_command_maps_its_result_form,
    upstream_tls_is_verified_against_the_ca,
    sigterm_finishes_and_closes_upstream_streams,
    a_form_is_discovered_and_cancelled_by_default,
    a_kept_command_runs_stage_by_stage,
    a_kept_command_can_be_cancelled,
    foreign_unknown_and_expired_sessionids_are_404,
    the_command_list_follows_the_account,
    https_is_served_with_tls_cert_and_key,
    a_hibernating_session_is_ended_and_reported,
);

/// One gateway per server shared by the tests that need no special flags: ejabberd caps an
/// account at ten streams, and every gateway keeps one for the admin.
async fn gateway(kind: ServerKind) -> &'static TestGateway {
    static PROSODY: OnceLock<TestGateway> = OnceLock::new();
    static EJABBERD: OnceLock<TestGateway> = OnceLock::new();
    let s = common::started(kind).await;
    let cell = match kind {
        ServerKind::Prosody => &PROSODY,
        ServerKind::Ejabberd => &EJABBERD,
    };
    cell.get_or_init(|| TestGateway::start(s, &[]))
}

fn admin() -> String {
    basic("admin@domain.com", "adminpass")
}

/// POSTs `body` as `content_type` to `path` with `auth`.
async fn post(gw: &TestGateway, path: &str, auth: &str, ct: &str, body: &str) -> HttpResponse {
    http(
        gw.addr,
        "POST",
        path,
        &[("authorization", auth), ("content-type", ct)],
        body.as_bytes(),
    )
    .await
}

/// end-user-session for `jids` as the admin, in JSON.
async fn end_sessions(gw: &TestGateway, jids: &[String]) -> HttpResponse {
    let body = serde_json::json!({"command": {"node": END_USER_SESSION,
        "fields": [{"var": "accountjids", "value": jids}]}});
    post(
        gw,
        SEED_PATH,
        &admin(),
        "application/json",
        &body.to_string(),
    )
    .await
}

/// The `Notes` lines of a JSON end-user-session answer.
fn notes(r: &HttpResponse) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    let fields = doc["command"]["fields"].as_array().expect("fields").clone();
    match fields.as_slice() {
        [] => vec![],
        [notes] => {
            assert_eq!(notes["var"], "Notes");
            assert_eq!(notes["type"], "text-multi");
            notes["value"]
                .as_array()
                .expect("an array")
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        }
        other => panic!("unexpected fields {other:?}"),
    }
}

fn line(bare: &str, resource: &str) -> String {
    format!("Operation successful for user {bare}/{resource}")
}

fn error_of(r: &HttpResponse) -> serde_json::Value {
    r.json()["error"].clone()
}

async fn seed_responses_on_both_formats(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    type Compare = fn(&[u8], &[u8]);
    let formats: [(&str, &str, &str, &str, Compare); 2] = [
        (
            "application/xml",
            SEED_REQUEST_XML,
            SEED_CONNECTED_XML,
            SEED_OFFLINE_XML,
            assert_xml_eq,
        ),
        (
            "application/json",
            SEED_REQUEST_JSON,
            SEED_CONNECTED_JSON,
            SEED_OFFLINE_JSON,
            assert_json_eq,
        ),
    ];
    for (content_type, request, connected, offline, assert_eq_parsed) in formats {
        let victim = Victim::connect(s, "test", "resource").await;
        let r = post(gw, SEED_PATH, &admin(), content_type, request).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type));
        assert_eq_parsed(&r.body, connected.as_bytes());
        assert!(
            victim.closed_within(KICK_SEEN).await,
            "the victim's stream is still open"
        );
        // At once again: the session just ended is not reported a second time.
        let r = post(gw, SEED_PATH, &admin(), content_type, request).await;
        assert_eq_parsed(&r.body, offline.as_bytes());
    }
}

async fn several_resources_are_all_reported(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let mut victims = Vec::new();
    for r in ["laptop", "phone", "tablet"] {
        victims.push(Victim::connect(s, "user1", r).await);
    }
    let mut got = notes(&end_sessions(gw, &[s.jid("user1")]).await);
    got.sort();
    let want: Vec<String> = ["laptop", "phone", "tablet"]
        .iter()
        .map(|r| line(&s.jid("user1"), r))
        .collect();
    assert_eq!(got, want);
    for v in &victims {
        assert!(v.closed_within(KICK_SEEN).await, "{} still open", v.jid);
    }
}

async fn a_full_jid_ends_that_resource_only(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let first = Victim::connect(s, "user2", "res1").await;
    let second = Victim::connect(s, "user2", "res2").await;
    let got = notes(&end_sessions(gw, &[format!("{}/res1", s.jid("user2"))]).await);
    assert_eq!(got, vec![line(&s.jid("user2"), "res1")]);
    assert!(first.closed_within(KICK_SEEN).await);
    assert!(
        !second.closed_within(Duration::from_millis(500)).await,
        "res2 was ended too"
    );
    second.close().await;
}

async fn several_accounts_in_one_request(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let a = Victim::connect(s, "user3", "r1").await;
    let b = Victim::connect(s, "user4", "r2").await;
    let jids = [
        s.jid("user3"),
        s.jid("user5"),
        s.jid("user4"),
        s.jid("nobody"),
    ];
    let got = notes(&end_sessions(gw, &jids).await);
    assert_eq!(
        got,
        vec![line(&s.jid("user3"), "r1"), line(&s.jid("user4"), "r2")]
    );
    assert!(a.closed_within(KICK_SEEN).await && b.closed_within(KICK_SEEN).await);
}

async fn an_admin_ends_its_own_other_sessions_and_keeps_serving(kind: ServerKind) {
    let s = common::started(kind).await;
    // admin2 is an admin of its own, so that ending its sessions touches no other test.
    let gw = TestGateway::start(s, &[]);
    let auth = basic("admin2@domain.com", &s.password("admin2"));
    let phone = Victim::connect(s, "admin2", "phone").await;
    let body = serde_json::json!({"command": {"node": END_USER_SESSION,
        "fields": [{"var": "accountjids", "value": [s.jid("admin2")]}]}});
    let r = post(&gw, SEED_PATH, &auth, "application/json", &body.to_string()).await;
    assert_eq!(notes(&r), vec![line(&s.jid("admin2"), "phone")]);
    assert!(phone.closed_within(KICK_SEEN).await);
    // The gateway's own stream survived: the next request needs no login.
    let r = post(&gw, SEED_PATH, &auth, "application/json", &body.to_string()).await;
    assert_eq!(notes(&r), Vec::<String>::new());
    assert_eq!(gw.log().matches("logged in").count(), 1, "{}", gw.log());
}

async fn wrong_password_is_401_and_throttled_to_429(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &["--throttle-pair", "3"]);
    let wrong = basic("throttle1@domain.com", "wrong");
    for _ in 0..3 {
        let r = post(&gw, SEED_PATH, &wrong, "application/xml", SEED_REQUEST_XML).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm="));
        let e = parse_xml(&r.body);
        assert_eq!(e.child("condition").unwrap().text, "unauthorized");
    }
    // Locked for the pair, whatever the password, and the upstream is not asked.
    let right = basic("throttle1@domain.com", &s.password("throttle1"));
    let r = post(&gw, SEED_PATH, &right, "application/xml", SEED_REQUEST_XML).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 300);
    assert_eq!(gw.log().matches("login refused").count(), 3, "{}", gw.log());
    // Other accounts from the same address are not locked out.
    let r = post(
        &gw,
        SEED_PATH,
        &admin(),
        "application/xml",
        SEED_REQUEST_XML,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Passwords reach no log.
    assert!(!gw.log().contains(&s.password("throttle1")));
    assert!(!gw.log().contains("adminpass"));
}

async fn a_non_admin_is_403(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let auth = basic("nonadmin@domain.com", &s.password("nonadmin"));
    let r = post(gw, SEED_PATH, &auth, "application/json", SEED_REQUEST_JSON).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(error_of(&r)["condition"], "forbidden");
    assert!(error_of(&r)["text"].as_str().is_some_and(|t| !t.is_empty()));
}

async fn a_warm_session_serves_without_logging_in_again(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &[]);
    let auth = basic("Admin@Domain.com", "adminpass");
    for _ in 0..5 {
        let r = post(&gw, SEED_PATH, &auth, "application/xml", SEED_REQUEST_XML).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(gw.log().matches("logged in").count(), 1, "{}", gw.log());
}

async fn a_changed_password_is_tried_with_a_fresh_login(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &["--reauth-interval", "1"]);
    let body = SEED_REQUEST_XML.replace("test@domain.com", "user6@domain.com");
    let ok = post(&gw, SEED_PATH, &admin(), "application/xml", &body).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Another password for a warm account is a fresh login (refused), not the warm session.
    let wrong = basic("admin@domain.com", "not-the-password");
    let r = post(&gw, SEED_PATH, &wrong, "application/xml", &body).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Past the re-auth interval even the right password is proved again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post(&gw, SEED_PATH, &admin(), "application/xml", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.log().matches("logged in").count(), 2, "{}", gw.log());
}

async fn field_checks_name_the_field(kind: ServerKind) {
    let gw = gateway(kind).await;
    let bad_jid = r#"{"command": {"node": "http://jabber.org/protocol/admin#end-user-session",
        "fields": [{"var": "accountjids", "value": ["@@bad jid"]}]}}"#;
    let r = post(gw, SEED_PATH, &admin(), "application/json", bad_jid).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "accountjids");
    let unknown = r#"{"command": {"node": "http://jabber.org/protocol/admin#user-stats",
        "fields": [{"var": "accountjid", "value": "user7@domain.com"},
                   {"var": "colour", "value": "blue"}]}}"#;
    let r = post(gw, SEED_PATH, &admin(), "application/json", unknown).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "colour");
    let missing = r#"{"command": {"node": "http://jabber.org/protocol/admin#user-stats",
        "fields": [{"var": "FORM_TYPE", "value": "http://jabber.org/protocol/admin"}]}}"#;
    let r = post(gw, SEED_PATH, &admin(), "application/json", missing).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "accountjid");
}

async fn errors_follow_the_status_table(kind: ServerKind) {
    let gw = gateway(kind).await;
    let a = admin();
    let json = "application/json";
    // method, path, headers, body, status, condition
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            SEED_PATH,
            vec![("content-type", json)],
            "{not json",
            400,
            "bad-request",
        ),
        (
            "POST",
            SEED_PATH,
            vec![("content-type", json)],
            r#"{"command":{}}"#,
            400,
            "bad-request",
        ),
        (
            "POST",
            "/rest/adhoc/a@b@c",
            vec![("content-type", json)],
            SEED_REQUEST_JSON,
            400,
            "bad-request",
        ),
        (
            "POST",
            "/rest/adhoc/sess-man@domain.com%2Fres",
            vec![("content-type", json)],
            SEED_REQUEST_JSON,
            400,
            "bad-request",
        ),
        (
            "POST",
            SEED_PATH,
            vec![("content-type", "text/plain"), ("accept", json)],
            "x",
            415,
            "unsupported-media-type",
        ),
        (
            "POST",
            SEED_PATH,
            vec![("content-type", json), ("accept", "text/html")],
            SEED_REQUEST_JSON,
            406,
            "not-acceptable",
        ),
        (
            "PUT",
            SEED_PATH,
            vec![("content-type", json)],
            SEED_REQUEST_JSON,
            405,
            "method-not-allowed",
        ),
        (
            "POST",
            "/rest/nothing",
            vec![("content-type", json)],
            SEED_REQUEST_JSON,
            404,
            "not-found",
        ),
        (
            "POST",
            SEED_PATH,
            vec![("content-type", json)],
            r#"{"command":{"node":"http://jabber.org/protocol/admin#no-such-command","fields":[{"var":"x","value":"y"}]}}"#,
            404,
            "service-unavailable",
        ),
    ];
    for (method, path, mut headers, body, status, condition) in cases {
        headers.push(("authorization", &a));
        let r = http(gw.addr, method, path, &headers, body.as_bytes()).await;
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.text());
        let e = error_of(&r);
        assert_eq!(e["condition"], condition, "{method} {path}: {}", r.text());
        assert_eq!(e["status"], status);
    }
    // A DTD is refused before anything is expanded, with an XML error body.
    let dtd = "<!DOCTYPE c [<!ENTITY a \"b\">]><command><node>&a;</node></command>";
    let r = post(gw, SEED_PATH, &a, "application/xml", dtd).await;
    assert_eq!(r.status, 400);
    assert_eq!(parse_xml(&r.body).child("status").unwrap().text, "400");
    // A body over --max-body.
    let big = format!("<command><node>{}</node></command>", "x".repeat(300 * 1024));
    let r = post(gw, SEED_PATH, &a, "application/xml", &big).await;
    assert_eq!(r.status, 413);
    // No credentials.
    let r = http(gw.addr, "POST", SEED_PATH, &[("content-type", json)], b"{}").await;
    assert_eq!(r.status, 401);
    // The server's own refusals: ejabberd answers conflict (409), Prosody an error note (422).
    let add = r#"{"command":{"node":"http://jabber.org/protocol/admin#add-user","fields":[
        {"var":"accountjid","value":"user8@domain.com"},
        {"var":"password","value":"p"},{"var":"password-verify","value":"p"}]}}"#;
    let r = post(gw, SEED_PATH, &a, json, add).await;
    let want = if kind == ServerKind::Ejabberd {
        409
    } else {
        422
    };
    assert_eq!(r.status, want, "{}", r.text());
    assert!(
        !r.text().contains("\"p\""),
        "a submitted password was echoed: {}",
        r.text()
    );
}

async fn a_generic_command_maps_its_result_form(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let v = Victim::connect(s, "user9", "desk").await;
    let body = format!(
        r#"{{"command":{{"node":"http://jabber.org/protocol/admin#user-stats",
            "fields":[{{"var":"accountjid","value":"{}"}}]}}}}"#,
        s.jid("user9")
    );
    for _ in 0..2 {
        // The second time, the learnt form is submitted in the first IQ.
        let r = post(gw, SEED_PATH, &admin(), "application/json", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let doc = r.json();
        let fields = doc["command"]["fields"].as_array().unwrap();
        let res = fields
            .iter()
            .find(|f| f["var"] == "onlineresources")
            .expect("onlineresources");
        assert_eq!(res["type"], "text-multi");
        assert_eq!(res["value"], serde_json::json!(["desk"]));
        assert!(res["label"].is_string());
        assert!(doc["command"].get("status").is_none());
    }
    // A command asked without fields answers its form, executing.
    let ask = r#"{"command":{"node":"http://jabber.org/protocol/admin#user-stats"}}"#;
    let r = post(gw, SEED_PATH, &admin(), "application/json", ask).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["command"]["status"], "executing");
    let jid = doc["command"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["var"] == "accountjid")
        .expect("accountjid")
        .clone();
    assert_eq!(jid["type"], "jid-single");
    assert_eq!(jid["required"], true);
    v.close().await;
}

async fn upstream_tls_is_verified_against_the_ca(kind: ServerKind) {
    let s = common::started(kind).await;
    // Trusting another CA, the server's certificate does not verify: no login, 502.
    let other_ca = other_ca();
    let untrusted = TestGateway::start(s, &["--upstream-ca", other_ca.to_str().unwrap()]);
    let r = post(
        &untrusted,
        SEED_PATH,
        &admin(),
        "application/xml",
        SEED_REQUEST_XML,
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        parse_xml(&r.body).child("condition").unwrap().text,
        "upstream-unavailable"
    );
    assert!(
        untrusted.log().contains("UnknownIssuer"),
        "{}",
        untrusted.log()
    );
    // With the harness CA (as every other test runs), TLS verifies for domain.com on 127.0.0.1.
    let r = post(
        gateway(kind).await,
        SEED_PATH,
        &admin(),
        "application/xml",
        SEED_REQUEST_XML,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A CA certificate that signed nothing the servers use.
fn other_ca() -> std::path::PathBuf {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = common::scratch_dir("other-ca");
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes", "-keyout", "key.pem", "-out", "ca.pem", "-days", "1",
            ])
            .args(["-subj", "/CN=not the harness CA"])
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("ca.pem")
    })
    .clone()
}

async fn sigterm_finishes_and_closes_upstream_streams(kind: ServerKind) {
    let s = common::started(kind).await;
    let mut gw = TestGateway::start(s, &[]);
    let body = SEED_REQUEST_XML.replace("test@domain.com", "user10@domain.com");
    let r = post(&gw, SEED_PATH, &admin(), "application/xml", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let status = gw.terminate(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}\n{}", gw.log());
    assert!(
        gw.log().contains("all upstream streams closed"),
        "{}",
        gw.log()
    );
}

const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";

fn field<'a>(doc: &'a serde_json::Value, var: &str) -> &'a serde_json::Value {
    doc["command"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["var"] == var)
        .unwrap_or_else(|| panic!("no field {var} in {doc}"))
}

async fn post_json(
    gw: &TestGateway,
    path: &str,
    auth: &str,
    body: serde_json::Value,
) -> HttpResponse {
    post(gw, path, auth, "application/json", &body.to_string()).await
}

async fn a_form_is_discovered_and_cancelled_by_default(kind: ServerKind) {
    let gw = gateway(kind).await;
    let ask = serde_json::json!({"command": {"node": END_USER_SESSION}});
    let r = post_json(gw, SEED_PATH, &admin(), ask).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["command"]["status"], "executing");
    assert!(doc["command"].get("sessionid").is_none());
    assert!(doc["command"]["title"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert_eq!(field(&doc, "FORM_TYPE")["type"], "hidden");
    let jid_field = if kind == ServerKind::Prosody {
        "accountjids"
    } else {
        "accountjid"
    };
    assert_eq!(field(&doc, jid_field)["required"], true);
    assert!(field(&doc, jid_field)["label"].is_string());
}

async fn a_kept_command_runs_stage_by_stage(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let v = Victim::connect(s, "user11", "bench").await;
    let path = format!("{SEED_PATH}?keep=1");
    let ask = serde_json::json!({"command": {"node": USER_STATS}});
    let r = post_json(gw, &path, &admin(), ask).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert_eq!(doc["command"]["status"], "executing");
    let sid = doc["command"]["sessionid"]
        .as_str()
        .expect("a sessionid")
        .to_string();
    assert_eq!(
        sid.len(),
        32,
        "the gateway's own id, not the server's: {sid}"
    );
    assert!(doc["command"]["actions"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    // A typo costs one retry, not the session.
    let typo = serde_json::json!({"command": {"sessionid": sid,
        "fields": [{"var": "acountjid", "value": s.jid("user11")}]}});
    let r = post_json(gw, SEED_PATH, &admin(), typo).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "acountjid");
    let next = serde_json::json!({"command": {"sessionid": sid, "action": "complete",
        "fields": [{"var": "accountjid", "value": s.jid("user11")}]}});
    let r = post_json(gw, SEED_PATH, &admin(), next.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert!(doc["command"].get("status").is_none(), "{doc}");
    assert!(doc["command"].get("sessionid").is_none(), "{doc}");
    assert_eq!(
        field(&doc, "onlineresources")["value"],
        serde_json::json!(["bench"])
    );
    // Completed: the id is gone.
    let r = post_json(gw, SEED_PATH, &admin(), next).await;
    assert_eq!(r.status, 404, "{}", r.text());
    v.close().await;
}

async fn a_kept_command_can_be_cancelled(kind: ServerKind) {
    let gw = gateway(kind).await;
    let ask = serde_json::json!({"command": {"node": END_USER_SESSION}});
    let r = post_json(gw, &format!("{SEED_PATH}?keep=1"), &admin(), ask).await;
    let sid = r.json()["command"]["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = serde_json::json!({"command": {"sessionid": sid, "action": "cancel"}});
    let r = post_json(gw, SEED_PATH, &admin(), cancel.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["command"]["status"], "canceled");
    let r = post_json(gw, SEED_PATH, &admin(), cancel).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

async fn foreign_unknown_and_expired_sessionids_are_404(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &["--command-idle", "1"]);
    let ask = serde_json::json!({"command": {"node": USER_STATS}});
    let admin2 = basic("admin2@domain.com", &s.password("admin2"));
    let r = post_json(&gw, &format!("{SEED_PATH}?keep=1"), &admin2, ask.clone()).await;
    let sid = r.json()["command"]["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let go = |sid: &str| {
        serde_json::json!({"command": {"sessionid": sid,
            "fields": [{"var": "accountjid", "value": "user12@domain.com"}]}})
    };
    let foreign = post_json(&gw, SEED_PATH, &admin(), go(&sid)).await;
    let unknown = post_json(
        &gw,
        SEED_PATH,
        &admin(),
        go("0123456789abcdef0123456789abcdef"),
    )
    .await;
    assert_eq!((foreign.status, unknown.status), (404, 404));
    assert_eq!(
        error_of(&foreign),
        error_of(&unknown),
        "answers must not differ"
    );
    // The owner still has it; once idle past --command-idle it is gone.
    let r = post_json(&gw, &format!("{SEED_PATH}?keep=1"), &admin2, ask).await;
    let sid2 = r.json()["command"]["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_json(&gw, SEED_PATH, &admin2, go(&sid)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = post_json(&gw, SEED_PATH, &admin2, go(&sid2)).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

async fn the_command_list_follows_the_account(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    // The admin sees the admin commands, in JSON when asked with `?type=`.
    let path = "/rest/adhoc/sess-man@domain.com?type=application/json";
    let r = http(gw.addr, "GET", path, &[("authorization", &admin())], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(
        items.iter().any(|i| i["node"] == END_USER_SESSION),
        "{items:?}"
    );
    assert!(items.iter().all(|i| i["jid"] == "sess-man@domain.com"));
    // A non-admin sees what the server shows it, in XML by default.
    let auth = basic("nonadmin@domain.com", &s.password("nonadmin"));
    let r = http(
        gw.addr,
        "GET",
        "/rest/adhoc/domain.com",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let items = parse_xml(&r.body);
    assert_eq!(items.name, "items");
    let nodes: Vec<&str> = items
        .children
        .iter()
        .map(|i| i.child("node").unwrap().text.as_str())
        .collect();
    assert!(
        !nodes.is_empty() && !nodes.contains(&END_USER_SESSION),
        "{nodes:?}"
    );
    assert!(items
        .children
        .iter()
        .all(|i| i.child("jid").unwrap().text == "domain.com"));
    // A target the server does not serve is an error with a body, not a hang.
    let r = http(
        gw.addr,
        "GET",
        "/rest/adhoc/elsewhere.example?type=application/json",
        &[("authorization", &admin())],
        b"",
    )
    .await;
    assert!([403, 404, 502].contains(&r.status), "{}", r.text());
    assert!(error_of(&r)["condition"].is_string());
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl: (ca.pem, cert, key).
fn https_pki() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = common::scratch_dir("https");
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=https test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "csr.pem",
                "-subj",
                "/CN=127.0.0.1",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "csr.pem",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "1",
                "-extfile",
                "ext",
            ],
        ];
        for args in steps {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    });
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

async fn https_is_served_with_tls_cert_and_key(kind: ServerKind) {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

    let s = common::started(kind).await;
    let (ca, cert, key) = https_pki();
    let gw = TestGateway::start(
        s,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake with the gateway");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(SEED_PATH)
        .header("host", "127.0.0.1")
        .header("authorization", admin())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            SEED_REQUEST_JSON,
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = common::try_http(gw.addr, "GET", SEED_PATH, &[], b"").await;
    assert!(plain.map(|r| r.status != 200).unwrap_or(true));
}

async fn a_hibernating_session_is_ended_and_reported(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let sleepy = common::victim::Hibernated::start(s, "user12", "sleepy").await;
    // The server keeps the vanished session, listed, until it is ended.
    let stats = serde_json::json!({"command": {"node": USER_STATS,
        "fields": [{"var": "accountjid", "value": s.jid("user12")}]}});
    let r = post_json(gw, SEED_PATH, &admin(), stats).await;
    assert_eq!(
        field(&r.json(), "onlineresources")["value"],
        serde_json::json!(["sleepy"])
    );
    let got = notes(&end_sessions(gw, &[s.jid("user12")]).await);
    assert_eq!(got, vec![line(&s.jid("user12"), &sleepy.resource)]);
    assert!(
        !sleepy.resume(s, "user12").await,
        "the ended session was resumed"
    );
}
