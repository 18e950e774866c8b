//! The REST calls the e2e modules share: the seed documents, the command nodes they name, and
//! requests and answers in the gateway's JSON shape.

use std::net::SocketAddr;
use std::sync::LazyLock;

use super::{basic, http, HttpResponse, TestServer};

pub const SEED_REQUEST_XML: &str = include_str!("../fixtures/seed/request.xml");
pub const SEED_REQUEST_JSON: &str = include_str!("../fixtures/seed/request.json");
pub const SEED_CONNECTED_XML: &str = include_str!("../fixtures/seed/response-connected.xml");
pub const SEED_CONNECTED_JSON: &str = include_str!("../fixtures/seed/response-connected.json");
pub const SEED_OFFLINE_XML: &str = include_str!("../fixtures/seed/response-not-connected.xml");
pub const SEED_OFFLINE_JSON: &str = include_str!("../fixtures/seed/response-not-connected.json");

/// The seed documents for `idle@domain.com`, whom no test connects: for tests that need an
/// end-user-session answer but must not end the sessions the seed tests hold for `test`.
pub static IDLE_SEED_XML: LazyLock<String> = LazyLock::new(|| seed_for(SEED_REQUEST_XML, "idle"));
pub static IDLE_SEED_JSON: LazyLock<String> = LazyLock::new(|| seed_for(SEED_REQUEST_JSON, "idle"));

/// A seed document naming `local@domain.com` instead of `test@domain.com`.
pub fn seed_for(document: &str, local: &str) -> String {
    assert_eq!(document.matches("test@domain.com").count(), 1, "{document}");
    document.replace("test@domain.com", &format!("{local}@domain.com"))
}

/// The seed document's target: the admin commands of the server's session manager.
pub const PATH: &str = "/rest/adhoc/sess-man@domain.com";
pub const ADMIN_NS: &str = "http://jabber.org/protocol/admin#";
pub const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";
pub const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";
pub const CHANGE_PASSWORD: &str = "http://jabber.org/protocol/admin#change-user-password";

/// HTTP Basic for `admin@domain.com`.
pub fn admin() -> String {
    basic("admin@domain.com", "adminpass")
}

/// HTTP Basic for a pre-registered account of `s`.
pub fn auth(s: &TestServer, local: &str) -> String {
    basic(&s.jid(local), &s.password(local))
}

/// POSTs `body` as `content_type` to `path` with `auth`.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    auth: &str,
    content_type: &str,
    body: &str,
) -> HttpResponse {
    let headers = [("authorization", auth), ("content-type", content_type)];
    http(addr, "POST", path, &headers, body.as_bytes()).await
}

/// POSTs a JSON document to `path` with `auth`.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    auth: &str,
    body: &serde_json::Value,
) -> HttpResponse {
    post(addr, path, auth, "application/json", &body.to_string()).await
}

/// The idle seed document in XML as the admin: a request that needs the upstream and ends
/// nobody's sessions.
pub async fn idle_seed_as_admin(addr: SocketAddr) -> HttpResponse {
    post(addr, PATH, &admin(), "application/xml", &IDLE_SEED_XML).await
}

/// end-user-session for `jids`.
pub fn end_sessions(jids: &[String]) -> serde_json::Value {
    serde_json::json!({"command": {"node": END_USER_SESSION,
        "fields": [{"var": "accountjids", "value": jids}]}})
}

/// user-stats for `jid`.
pub fn user_stats(jid: &str) -> serde_json::Value {
    serde_json::json!({"command": {"node": USER_STATS,
        "fields": [{"var": "accountjid", "value": jid}]}})
}

/// end-user-session for `jids` as the admin, on the seed path.
pub async fn end_sessions_as_admin(addr: SocketAddr, jids: &[String]) -> HttpResponse {
    post_json(addr, PATH, &admin(), &end_sessions(jids)).await
}

/// The `Notes` lines of a JSON end-user-session answer (none when no session was ended).
pub fn notes(r: &HttpResponse) -> Vec<String> {
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

/// The note end-user-session gives for one ended session.
pub fn line(bare: &str, resource: &str) -> String {
    format!("Operation successful for user {bare}/{resource}")
}

/// The `error` object of a JSON error answer.
pub fn error_of(r: &HttpResponse) -> serde_json::Value {
    r.json()["error"].clone()
}

/// The field `var` of a JSON command document; panics if it has none.
pub fn field<'a>(doc: &'a serde_json::Value, var: &str) -> &'a serde_json::Value {
    doc["command"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["var"] == var)
        .unwrap_or_else(|| panic!("no field {var} in {doc}"))
}
