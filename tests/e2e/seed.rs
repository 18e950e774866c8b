//! end-user-session, the seed command: both formats, several resources, a full JID, several
//! accounts, an admin's own sessions and a hibernating (stream management) session.

use std::time::Duration;

use crate::common::doc::{assert_json_eq, assert_xml_eq};
use crate::common::proxy::proxied;
use crate::common::rest::*;
use crate::common::victim::{Hibernated, Victim};
use crate::common::{self, ServerKind};
use crate::gateway;

/// How long a kicked client may take to see its stream end.
const KICK_SEEN: Duration = Duration::from_secs(5);

on_both_servers!(
    seed_responses_on_both_formats,
    several_resources_are_all_reported,
    a_full_jid_ends_that_resource_only,
    several_accounts_in_one_request,
    an_admin_ends_its_own_other_sessions_and_keeps_serving,
    a_hibernating_session_is_ended_and_reported,
    a_tigase_script_posts_the_seed_with_curls_default_content_type,
);

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
        let r = post(gw.addr, PATH, &admin(), content_type, request).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type));
        assert_eq_parsed(&r.body, connected.as_bytes());
        assert!(
            victim.closed_within(KICK_SEEN).await,
            "the victim's stream is still open"
        );
        // At once again: the session just ended is not reported a second time.
        let r = post(gw.addr, PATH, &admin(), content_type, request).await;
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
    let mut got = notes(&end_sessions_as_admin(gw.addr, &[s.jid("user1")]).await);
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
    let got = notes(&end_sessions_as_admin(gw.addr, &[format!("{}/res1", s.jid("user2"))]).await);
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
    let got = notes(&end_sessions_as_admin(gw.addr, &jids).await);
    assert_eq!(
        got,
        vec![line(&s.jid("user3"), "r1"), line(&s.jid("user4"), "r2")]
    );
    assert!(a.closed_within(KICK_SEEN).await && b.closed_within(KICK_SEEN).await);
}

async fn an_admin_ends_its_own_other_sessions_and_keeps_serving(kind: ServerKind) {
    let s = common::started(kind).await;
    // admin3 is an admin of this test's own, so that ending its sessions touches no other.
    let (proxy, gw) = proxied(s, &[]).await;
    let auth = auth(s, "admin3");
    let phone = Victim::connect(s, "admin3", "phone").await;
    let body = end_sessions(&[s.jid("admin3")]).to_string();
    let r = post(gw.addr, PATH, &auth, "application/json", &body).await;
    assert_eq!(notes(&r), vec![line(&s.jid("admin3"), "phone")]);
    assert!(phone.closed_within(KICK_SEEN).await);
    // The gateway's own stream survived: the next request needs no login.
    let r = post(gw.addr, PATH, &auth, "application/json", &body).await;
    assert_eq!(notes(&r), Vec::<String>::new());
    assert_eq!(proxy.connections(), 1, "logins");
}

async fn a_hibernating_session_is_ended_and_reported(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let sleepy = Hibernated::start(s, "user12", "sleepy").await;
    // The server keeps the vanished session, listed, until it is ended.
    let stats = serde_json::json!({"command": {"node": USER_STATS,
        "fields": [{"var": "accountjid", "value": s.jid("user12")}]}});
    let r = post_json(gw.addr, PATH, &admin(), &stats).await;
    assert_eq!(
        field(&r.json(), "onlineresources")["value"],
        serde_json::json!(["sleepy"])
    );
    let got = notes(&end_sessions_as_admin(gw.addr, &[s.jid("user12")]).await);
    assert_eq!(got, vec![line(&s.jid("user12"), &sleepy.resource)]);
    assert!(
        !sleepy.resume(s, "user12").await,
        "the ended session was resumed"
    );
}

/// Tigase's documentation: `curl -d @request.xml '...?type=text/xml'`, which posts with curl's
/// default `Content-Type: application/x-www-form-urlencoded`. The seed request, unchanged but
/// for the account (one of this test's own, so that no concurrent test is disturbed).
async fn a_tigase_script_posts_the_seed_with_curls_default_content_type(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let (local, pw) = (
        format!("tig{}", common::random_hex(4)),
        common::random_hex(8),
    );
    s.register(&local, &pw);
    let victim = Victim::connect_with(s, &local, &pw, "resource").await;
    let form = "application/x-www-form-urlencoded";
    let path = format!("{PATH}?type=text/xml");
    let request = seed_for(SEED_REQUEST_XML, &local);
    let r = post(gw.addr, &path, &admin(), form, &request).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_xml_eq(&r.body, seed_for(SEED_CONNECTED_XML, &local).as_bytes());
    assert!(
        victim.closed_within(KICK_SEEN).await,
        "the session really ended"
    );
    // Without `type`, the same post is refused: the body's type is unknown.
    let r = post(gw.addr, PATH, &admin(), form, &request).await;
    assert_eq!(r.status, 415, "{}", r.text());
}
