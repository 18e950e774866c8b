//! Several replicas (issue 21, part 2): two gateways named as each other's peers, sharing a
//! replica key, both through one reading proxy (which counts the commands the server
//! receives). A kept command started through one goes on through the other, is never run
//! twice, and the ids nobody keeps (completed, cancelled, tampered, another account's, of a
//! replica that is gone) are 404.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::prometheus::{parse_exposition, value};
use crate::common::proxy::XmppProxy;
use crate::common::rest::{admin, error_of, field, PATH, USER_STATS};
use crate::common::{
    self, basic, free_port, http, http_from, HttpResponse, ServerKind, TestGateway,
};

on_both_servers!(a_kept_command_goes_on_through_either_replica);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The flags of a replica `name` with `peer` (at `peer_at`) as its other replica, sharing the
/// key file `key`, upstream through the proxy in plain text, its admin listener on `admin`.
pub(crate) fn replica_args(
    proxy: &XmppProxy,
    key: &str,
    name: &str,
    (peer, peer_at): (&str, SocketAddr),
    admin: SocketAddr,
) -> Vec<String> {
    let upstream = proxy.addr.to_string();
    let peer = format!("{peer}=http://{peer_at}");
    let admin = admin.to_string();
    let args = [
        "--upstream",
        &upstream,
        "--upstream-tls",
        "none",
        "--replica-name",
        name,
        "--peer",
        &peer,
        "--replica-key-file",
        key,
        "--admin-listen",
        &admin,
    ];
    args.into_iter().map(String::from).collect()
}

/// A replica `name` listening on `at` ([`replica_args`]).
fn replica(
    s: &common::TestServer,
    proxy: &XmppProxy,
    key: &str,
    (name, at): (&str, SocketAddr),
    peer: (&str, SocketAddr),
    admin: SocketAddr,
) -> TestGateway {
    let args = replica_args(proxy, key, name, peer, admin);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestGateway::start_at(s, at, &args)
}

/// POSTs a JSON document to `gw` as `auth`, with the request id `id`.
async fn post(
    gw: &TestGateway,
    path: &str,
    auth: &str,
    id: &str,
    body: serde_json::Value,
) -> HttpResponse {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
        ("x-request-id", id),
    ];
    http(gw.addr, "POST", path, &headers, body.to_string().as_bytes()).await
}

fn sessionid(r: &HttpResponse) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["command"]["sessionid"]
        .as_str()
        .expect("a sessionid")
        .to_string()
}

/// A gateway's `xrg_forwarded_requests_total{direction, result}`, read from its admin listener.
pub(crate) async fn forwards(admin: SocketAddr, direction: &str, result: &str) -> f64 {
    let r = http(admin, "GET", "/metrics", &[], b"").await;
    let samples = parse_exposition(&r.text());
    let labels = [("direction", direction), ("result", result)];
    value(&samples, "xrg_forwarded_requests_total", &labels)
}

/// A fresh replica key in a scratch directory named after `tag`, readable by its owner only
/// (the gateway refuses a key file others can read); returns its path.
pub(crate) fn replica_key_file(tag: &str) -> String {
    let dir = common::scratch_dir(tag);
    let key = dir.join("replica.key");
    std::fs::write(&key, format!("{}\n", common::random_hex(32))).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    key.to_string_lossy().into_owned()
}

async fn a_kept_command_goes_on_through_either_replica(kind: ServerKind) {
    let s = common::started(kind).await;
    let key = replica_key_file(&format!("forwarding-{kind}"));
    let proxy = XmppProxy::start(s.c2s_addr()).await;
    let (a_at, b_at, a_admin, b_admin) = (loopback(), loopback(), loopback(), loopback());
    let a = replica(s, &proxy, &key, ("gw-a", a_at), ("gw-b", b_at), a_admin);
    let mut b = replica(s, &proxy, &key, ("gw-b", b_at), ("gw-a", a_at), b_admin);
    let keep = format!("{PATH}?keep=1");
    let ask = serde_json::json!({"command": {"node": USER_STATS}});
    let me = s.jid("admin");
    let complete = |sid: &str| {
        serde_json::json!({"command": {"sessionid": sid, "action": "complete",
            "fields": [{"var": "accountjid", "value": me}]}})
    };

    // Started through A: the id names A.
    let sid = sessionid(&post(&a, &keep, &admin(), "fw-start", ask.clone()).await);
    assert!(sid.starts_with("gw-a."), "{sid}");
    assert_eq!(proxy.commands(), 1);
    // Through B: A's stage checks run there (a typo costs a retry, nothing sent) ...
    let typo = serde_json::json!({"command": {"sessionid": sid,
        "fields": [{"var": "acountjid", "value": me}]}});
    let r = post(&b, PATH, &admin(), "fw-typo", typo).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "acountjid");
    assert_eq!(proxy.commands(), 1);
    // ... and the stage completes there (from another client address, which A learns from
    // B's signed header only).
    let auth = admin();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("x-request-id", "fw-complete"),
    ];
    let body = complete(&sid).to_string();
    let other: std::net::IpAddr = [127, 0, 0, 2].into();
    let r = http_from(other, b.addr, "POST", PATH, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert!(doc["command"].get("sessionid").is_none(), "{doc}");
    assert!(field(&doc, "onlineresources").is_object(), "{doc}");
    assert_eq!(proxy.commands(), 2);
    // Completed: gone through either replica, and nothing more reaches the server.
    for (gw, id) in [(&a, "fw-again-a"), (&b, "fw-again-b")] {
        let r = post(gw, PATH, &admin(), id, complete(&sid)).await;
        assert_eq!(r.status, 404, "{id}: {}", r.text());
        assert_eq!(error_of(&r)["condition"], "item-not-found");
    }
    assert_eq!(proxy.commands(), 2);
    // The audit lines of the two replicas tell the forward, under the one request id.
    let line = b.log_lines("request_id=fw-complete ", 1).await;
    assert!(
        line.contains(" forwarded_to=gw-a forwarded_from=-"),
        "{line}"
    );
    let line = a.log_lines("request_id=fw-complete ", 1).await;
    let line = line
        .lines()
        .find(|l| l.contains("request_id=fw-complete "))
        .unwrap_or_default();
    assert!(line.contains(" status=200 "), "{line}");
    assert!(line.contains(" client=127.0.0.2 "), "{line}");
    assert!(
        line.contains(" forwarded_to=- forwarded_from=gw-b"),
        "{line}"
    );

    // Another one, cancelled through B: once.
    let sid2 = sessionid(&post(&a, &keep, &admin(), "fw-start2", ask.clone()).await);
    let cancel = serde_json::json!({"command": {"sessionid": sid2, "action": "cancel"}});
    let r = post(&b, PATH, &admin(), "fw-cancel", cancel.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["command"]["status"], "canceled");
    assert_eq!(proxy.commands(), 4);
    let r = post(&b, PATH, &admin(), "fw-cancel-again", cancel).await;
    assert_eq!(r.status, 404, "{}", r.text());

    // Another account's id is 404 through B as through A, and the owner's still works.
    let admin2 = basic(&s.jid("admin2"), &s.password("admin2"));
    let sid3 = sessionid(&post(&a, &keep, &admin2, "fw-start3", ask.clone()).await);
    let r = post(&b, PATH, &admin(), "fw-foreign", complete(&sid3)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(proxy.commands(), 5);
    // A tampered id: 404 at once, nothing forwarded (A never sees the request).
    let mut tampered = sid3.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let r = post(&b, PATH, &admin2, "fw-tampered", complete(&tampered)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(error_of(&r)["condition"], "item-not-found");
    let r = post(&b, PATH, &admin2, "fw-owner", complete(&sid3)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.commands(), 6, "each command ran exactly once");
    assert!(!a.log_settled().await.contains("fw-tampered"));
    // B forwarded typo, complete, complete again, cancel, cancel again, foreign, owner: all
    // answered by A, which accepted them all.
    assert_eq!(forwards(b_admin, "sent", "answered").await, 7.0);
    assert_eq!(forwards(a_admin, "received", "accepted").await, 7.0);
    assert_eq!(forwards(b_admin, "sent", "unreachable").await, 0.0);

    // B gone: its ids are 404 through A, promptly, never 5xx.
    let sid4 = sessionid(&post(&b, &keep, &admin(), "fw-start4", ask).await);
    assert!(sid4.starts_with("gw-b."), "{sid4}");
    assert!(b.terminate(Duration::from_secs(10)).is_some(), "B stopped");
    let started = Instant::now();
    let r = post(&a, PATH, &admin(), "fw-gone", complete(&sid4)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(error_of(&r)["condition"], "item-not-found");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(forwards(a_admin, "sent", "unreachable").await, 1.0);
}
