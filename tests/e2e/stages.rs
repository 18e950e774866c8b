//! Commands beyond one step: a generic command's result form, a form discovered and
//! cancelled by default, kept commands run stage by stage or cancelled, and the session ids
//! (foreign, unknown, expired) that are 404.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::proxy::proxied;
use crate::common::rest::{self, admin, error_of, field, post, END_USER_SESSION, PATH, USER_STATS};
use crate::common::victim::Victim;
use crate::common::{self, basic, HttpResponse, ServerKind, TestGateway};
use crate::gateway;

on_both_servers!(
    a_generic_command_maps_its_result_form,
    a_form_is_discovered_and_cancelled_by_default,
    a_kept_command_runs_stage_by_stage,
    an_action_the_stage_does_not_offer_is_refused_at_once,
    a_kept_command_can_be_cancelled,
    foreign_unknown_and_expired_sessionids_are_404,
    a_kept_end_user_session_spares_another_replicas_stream,
);

/// POSTs the JSON document `body` to `path` on `gw`.
async fn post_json(
    gw: &TestGateway,
    path: &str,
    auth: &str,
    body: serde_json::Value,
) -> HttpResponse {
    crate::common::rest::post_json(gw.addr, path, auth, &body).await
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
        let r = post(gw.addr, PATH, &admin(), "application/json", &body).await;
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
    let r = post(gw.addr, PATH, &admin(), "application/json", ask).await;
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

async fn a_form_is_discovered_and_cancelled_by_default(kind: ServerKind) {
    let gw = gateway(kind).await;
    let ask = serde_json::json!({"command": {"node": END_USER_SESSION}});
    let r = post_json(gw, PATH, &admin(), ask).await;
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
    let path = format!("{PATH}?keep=1");
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
    let r = post_json(gw, PATH, &admin(), typo).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "acountjid");
    let next = serde_json::json!({"command": {"sessionid": sid, "action": "complete",
        "fields": [{"var": "accountjid", "value": s.jid("user11")}]}});
    let r = post_json(gw, PATH, &admin(), next.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert!(doc["command"].get("status").is_none(), "{doc}");
    assert!(doc["command"].get("sessionid").is_none(), "{doc}");
    assert_eq!(
        field(&doc, "onlineresources")["value"],
        serde_json::json!(["bench"])
    );
    // Completed: the id is gone.
    let r = post_json(gw, PATH, &admin(), next).await;
    assert_eq!(r.status, 404, "{}", r.text());
    v.close().await;
}

/// A `prev` the stage does not offer is answered 400 by the gateway, never sent (Prosody
/// leaves it unanswered until the request times out), and the stage goes on.
async fn an_action_the_stage_does_not_offer_is_refused_at_once(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let path = format!("{PATH}?keep=1");
    let ask = serde_json::json!({"command": {"node": USER_STATS}});
    let r = post_json(gw, &path, &admin(), ask).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    let sid = doc["command"]["sessionid"].as_str().expect("a sessionid");
    let offered = doc["command"]["actions"].as_array().expect("actions");
    assert!(!offered.contains(&serde_json::json!("prev")), "{doc}");
    let prev = serde_json::json!({"command": {"sessionid": sid, "action": "prev"}});
    let r = post_json(gw, PATH, &admin(), prev).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["condition"], "bad-request", "{}", r.text());
    let done = serde_json::json!({"command": {"sessionid": sid, "action": "complete",
        "fields": [{"var": "accountjid", "value": s.jid("admin")}]}});
    let r = post_json(gw, PATH, &admin(), done).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn a_kept_command_can_be_cancelled(kind: ServerKind) {
    let gw = gateway(kind).await;
    let ask = serde_json::json!({"command": {"node": END_USER_SESSION}});
    let r = post_json(gw, &format!("{PATH}?keep=1"), &admin(), ask).await;
    let sid = r.json()["command"]["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let cancel = serde_json::json!({"command": {"sessionid": sid, "action": "cancel"}});
    let r = post_json(gw, PATH, &admin(), cancel.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["command"]["status"], "canceled");
    let r = post_json(gw, PATH, &admin(), cancel).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

async fn foreign_unknown_and_expired_sessionids_are_404(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &["--command-idle", "1"]);
    let ask = serde_json::json!({"command": {"node": USER_STATS}});
    let admin2 = basic("admin2@domain.com", &s.password("admin2"));
    let r = post_json(&gw, &format!("{PATH}?keep=1"), &admin2, ask.clone()).await;
    let sid = r.json()["command"]["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let go = |sid: &str| {
        serde_json::json!({"command": {"sessionid": sid,
            "fields": [{"var": "accountjid", "value": "user12@domain.com"}]}})
    };
    let foreign = post_json(&gw, PATH, &admin(), go(&sid)).await;
    let unknown = post_json(&gw, PATH, &admin(), go("0123456789abcdef0123456789abcdef")).await;
    assert_eq!((foreign.status, unknown.status), (404, 404));
    assert_eq!(
        error_of(&foreign),
        error_of(&unknown),
        "answers must not differ"
    );
    // The owner still has it; once idle past --command-idle it is gone.
    let r = post_json(&gw, &format!("{PATH}?keep=1"), &admin2, ask).await;
    let sid2 = r.json()["command"]["sessionid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_json(&gw, PATH, &admin2, go(&sid)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = post_json(&gw, PATH, &admin2, go(&sid2)).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// Two replicas sharing a replica key; B is logged in as a user who also has a client online.
/// A kept end-user-session of that user, completed through A (the web console's flow), ends
/// the client and leaves B's stream up: B's next request runs on it, with no new login.
async fn a_kept_end_user_session_spares_another_replicas_stream(kind: ServerKind) {
    let s = common::started(kind).await;
    let key = common::scratch_dir(&format!("kept-eus-key-{kind}")).join("key");
    std::fs::write(&key, format!("{}\n", common::random_hex(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap();
    let (_pa, a) = proxied(s, &["--replica-name", "a", "--replica-key-file", key]).await;
    let (pb, b) = proxied(s, &["--replica-name", "b", "--replica-key-file", key]).await;
    let (local, pw) = (
        format!("kepteus{}", common::random_hex(4)),
        common::random_hex(8),
    );
    s.register(&local, &pw);
    let jid = s.jid(&local);
    let user = basic(&jid, &pw);
    let list = format!("/rest/adhoc/{}", common::DOMAIN);
    let r = common::http(b.addr, "GET", &list, &[("authorization", &user)], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(pb.connections(), 1);
    let desk = Victim::connect_with(s, &local, &pw, "desk").await;
    let admin4 = rest::auth(s, "admin4");
    let ask = serde_json::json!({"command": {"node": END_USER_SESSION}});
    let r = post_json(&a, &format!("{PATH}?keep=1"), &admin4, ask).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = r.json()["command"]["sessionid"]
        .as_str()
        .expect("a sessionid")
        .to_string();
    let var = if kind == ServerKind::Prosody {
        "accountjids"
    } else {
        "accountjid"
    };
    let done = serde_json::json!({"command": {"sessionid": sid, "action": "complete",
        "fields": [{"var": var, "value": [jid]}]}});
    let r = post_json(&a, PATH, &admin4, done).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert!(doc["command"].get("status").is_none(), "{doc}");
    assert_eq!(
        field(&doc, "Notes")["value"],
        serde_json::json!([format!("Operation successful for user {jid}/desk")])
    );
    assert!(
        desk.closed_within(Duration::from_secs(5)).await,
        "the client's session is still open"
    );
    let r = common::http(b.addr, "GET", &list, &[("authorization", &user)], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        pb.connections(),
        1,
        "B's stream was ended: it logged in again"
    );
}
