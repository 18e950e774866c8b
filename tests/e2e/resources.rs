//! The resources beside `/rest/adhoc` against real Prosody and ejabberd: sessions listed and
//! ended, accounts created, refused twice, given a new password and deleted, an announcement
//! reaching an online user, and a token refused a node it was not given. Each test works on
//! accounts of its own.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::doc::parse_xml;
use crate::common::proxy::proxied;
use crate::common::rest::{self, admin};
use crate::common::victim::Victim;
use crate::common::{self, http, HttpResponse, ServerKind, TestGateway, TestServer};
use crate::gateway;

const KICK_SEEN: Duration = Duration::from_secs(5);

on_both_servers!(
    sessions_are_listed_and_ended_one_then_all,
    the_gateways_own_sessions_are_never_listed,
    replicas_never_list_or_end_each_others_streams,
    an_unknown_account_has_no_sessions_to_list,
    an_account_is_created_refused_twice_changed_and_deleted,
    an_account_is_created_in_xml,
    an_announcement_reaches_an_online_user,
    a_token_runs_only_the_nodes_it_was_given,
);

/// A fresh account of this test's own, registered with a random password.
fn fresh(s: &TestServer, prefix: &str) -> (String, String) {
    let (local, pw) = (
        format!("{prefix}{}", common::random_hex(4)),
        common::random_hex(8),
    );
    s.register(&local, &pw);
    (local, pw)
}

async fn call(addr: SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> HttpResponse {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    http(addr, method, path, &headers, body.as_bytes()).await
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    let list = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    let mut out: Vec<String> = list
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

async fn sessions_are_listed_and_ended_one_then_all(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let (local, pw) = fresh(s, "ses");
    let jid = s.jid(&local);
    let phone = Victim::connect_with(s, &local, &pw, "phone").await;
    let laptop = Victim::connect_with(s, &local, &pw, "laptop").await;
    let path = format!("/rest/sessions/{jid}");

    let r = call(gw.addr, "GET", &path, &admin(), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["jid"], jid.as_str());
    assert_eq!(strings(&r.json()["resources"]), ["laptop", "phone"]);
    // The same in XML: `<sessions><jid/><resources><item/>…</resources></sessions>`.
    let xml = [
        ("authorization", admin()),
        ("accept", "application/xml".into()),
    ];
    let xml: Vec<(&str, &str)> = xml.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http(gw.addr, "GET", &path, &xml, b"").await;
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let doc = parse_xml(&r.body);
    assert_eq!(doc.name, "sessions", "{}", r.text());
    let items = &doc.child("resources").expect("resources").children;
    assert_eq!(items.len(), 2, "{}", r.text());

    let r = call(gw.addr, "DELETE", &format!("{path}/phone"), &admin(), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(strings(&r.json()["ended"]), [format!("{jid}/phone")]);
    assert!(phone.closed_within(KICK_SEEN).await, "phone still open");
    assert!(laptop.is_alive(), "laptop was ended with phone");

    let r = call(gw.addr, "DELETE", &path, &admin(), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(strings(&r.json()["ended"]), [format!("{jid}/laptop")]);
    assert!(laptop.closed_within(KICK_SEEN).await, "laptop still open");
    // Nothing left: an empty list, not a claim.
    let r = call(gw.addr, "DELETE", &path, &admin(), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], serde_json::json!([]));
}

/// The gateway hides exactly its own streams, known by value: a user's own client named
/// `xrg-phone` is listed, the gateway's stream of the same account is not.
async fn the_gateways_own_sessions_are_never_listed(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let (local, pw) = fresh(s, "own");
    let jid = s.jid(&local);
    let phone = Victim::connect_with(s, &local, &pw, "xrg-phone").await;
    // The gateway logs in as the user too: its warm stream is an `xrg-` resource of this very
    // account.
    let domain = jid.rsplit('@').next().unwrap_or_default().to_string();
    let user = common::basic(&jid, &pw);
    let r = call(gw.addr, "GET", &format!("/rest/adhoc/{domain}"), &user, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        gw.addr,
        "GET",
        &format!("/rest/sessions/{jid}"),
        &admin(),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(strings(&r.json()["resources"]), ["xrg-phone"]);
    phone.close().await;
}

/// Two replicas sharing a replica key, both logged in as the same administrator and as the
/// same user (each then holds a stream of its own of each): through A, neither lists nor ends
/// B's streams or its own, while the account's own clients, `xrg-phone` and a forged mark
/// (`xrg-<nonce>-<wrong tag>`), are listed and ended. Every stream of the gateways' is still
/// the one its next request runs on: no login at the server after the first four.
async fn replicas_never_list_or_end_each_others_streams(kind: ServerKind) {
    let s = common::started(kind).await;
    let key = common::scratch_dir(&format!("replica-key-{kind}")).join("key");
    std::fs::write(&key, format!("{}\n", common::random_hex(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap();
    let (pa, a) = proxied(s, &["--replica-name", "a", "--replica-key-file", key]).await;
    let (pb, b) = proxied(s, &["--replica-name", "b", "--replica-key-file", key]).await;
    let admin4 = rest::auth(s, "admin4");
    let (local, pw) = fresh(s, "rep");
    let user = common::basic(&s.jid(&local), &pw);
    let list = format!("/rest/adhoc/{}", common::DOMAIN);
    let streams = [(&a, &admin4), (&b, &admin4), (&a, &user), (&b, &user)];
    for (gw, who) in streams {
        let r = call(gw.addr, "GET", &list, who, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let logins = || (pa.connections(), pb.connections());
    assert_eq!(logins(), (2, 2), "each replica logged in as each account");
    let forged = format!("xrg-{}-{}", common::random_hex(8), "0".repeat(16));
    for (local, pw) in [
        ("admin4", s.password("admin4")),
        (local.as_str(), pw.clone()),
    ] {
        let jid = s.jid(local);
        let phone = Victim::connect_with(s, local, &pw, "xrg-phone").await;
        let mimic = Victim::connect_with(s, local, &pw, &forged).await;
        let path = format!("/rest/sessions/{jid}");
        let mut theirs = vec![forged.clone(), "xrg-phone".to_string()];
        theirs.sort();
        let r = call(a.addr, "GET", &path, &admin4, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(strings(&r.json()["resources"]), theirs, "{local}");
        let r = call(a.addr, "DELETE", &path, &admin4, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let ended: Vec<String> = theirs.iter().map(|r| format!("{jid}/{r}")).collect();
        assert_eq!(strings(&r.json()["ended"]), ended, "{local}");
        assert!(
            phone.closed_within(KICK_SEEN).await,
            "{local}/xrg-phone still open"
        );
        assert!(
            mimic.closed_within(KICK_SEEN).await,
            "{local}/{forged} still open"
        );
    }
    for (gw, who) in streams {
        let r = call(gw.addr, "GET", &list, who, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        logins(),
        (2, 2),
        "a replica's stream was ended: it logged in again"
    );
    assert_eq!(
        pa.seen(|s| s.closed_by_gateway) + pb.seen(|s| s.closed_by_gateway),
        0
    );
}

/// The same answer on both servers: Prosody's user-stats says "User does not exist", ejabberd's
/// answers empty statistics and the gateway asks get-user-lastlogin. A known account with no
/// session is still an empty list.
async fn an_unknown_account_has_no_sessions_to_list(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let nobody = s.jid(&format!("nobody{}", common::random_hex(4)));
    let r = call(
        gw.addr,
        "GET",
        &format!("/rest/sessions/{nobody}"),
        &admin(),
        "",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.json()["error"]["condition"],
        "item-not-found",
        "{}",
        r.text()
    );
    let (local, _) = fresh(s, "idle");
    let jid = s.jid(&local);
    let r = call(
        gw.addr,
        "GET",
        &format!("/rest/sessions/{jid}"),
        &admin(),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["resources"], serde_json::json!([]), "{}", r.text());
}

async fn an_account_is_created_refused_twice_changed_and_deleted(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let local = format!("new{}", common::random_hex(4));
    let jid = s.jid(&local);
    let (first, second) = (common::random_hex(8), common::random_hex(8));
    let user = format!("/rest/users/{jid}");
    let body = |pw: &str| serde_json::json!({ "password": pw }).to_string();

    let r = call(gw.addr, "POST", &user, &admin(), &body(&first)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({ "jid": jid }));
    let r = call(gw.addr, "POST", &user, &admin(), &body(&second)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["condition"], "conflict", "{}", r.text());

    let password = format!("{user}/password");
    // A password no server would take says why, before anything is sent (Prosody answered a
    // 200 KB one "User does not exist", 404).
    for (what, bad) in [
        ("long", "p".repeat(200_000)),
        ("SASLprep", "a\u{85}b".to_string()),
    ] {
        let r = call(gw.addr, "PUT", &password, &admin(), &body(&bad)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let text = r.json()["error"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            text.contains(if what == "long" { "1024" } else { what }),
            "{text}"
        );
    }
    let r = call(gw.addr, "PUT", &password, &admin(), &body(&second)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    // The new password logs in (a refused login panics).
    Victim::connect_with(s, &local, &second, "check")
        .await
        .close()
        .await;

    let r = call(gw.addr, "DELETE", &user, &admin(), "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = call(gw.addr, "DELETE", &user, &admin(), "").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["condition"], "item-not-found");
    let r = call(gw.addr, "PUT", &password, &admin(), &body(&first)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Not a password body: refused before anything is sent.
    let r = call(gw.addr, "POST", &user, &admin(), r#"{"pasword": "x"}"#).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

async fn an_account_is_created_in_xml(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let jid = s.jid(&format!("xml{}", common::random_hex(4)));
    let pw = common::random_hex(8);
    let body = format!("<user><password>{pw}</password></user>");
    let path = format!("/rest/users/{jid}");
    let headers = [("authorization", admin())];
    let mut headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.push(("content-type", "application/xml"));
    let r = http(gw.addr, "POST", &path, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let doc = parse_xml(&r.body);
    assert_eq!(doc.name, "user");
    assert_eq!(
        doc.child("jid").map(|j| j.text.as_str()),
        Some(jid.as_str())
    );
    let r = http(gw.addr, "POST", &path, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let doc = parse_xml(&r.body);
    let condition = doc.child("condition").map(|c| c.text.as_str());
    assert_eq!(condition, Some("conflict"), "{}", r.text());
    let r = http(gw.addr, "DELETE", &path, &headers, b"").await;
    assert_eq!(r.status, 204, "{}", r.text());
}

async fn an_announcement_reaches_an_online_user(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let (local, pw) = fresh(s, "ann");
    let listener = Victim::connect_with(s, &local, &pw, "radio").await;
    // Available before the announcement, which goes to online users' available resources.
    listener.settled().await;
    let words = format!("maintenance at noon {}", common::random_hex(6));
    let body = serde_json::json!({ "subject": "Notice", "body": words }).to_string();
    let r = call(
        gw.addr,
        "POST",
        "/rest/announce/domain.com",
        &admin(),
        &body,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = listener.message_containing(&words, KICK_SEEN).await;
    assert_eq!(got.as_deref(), Some(words.as_str()));
    // Again, once the gateway knows the form: Prosody's announce takes it only in a session.
    let again = format!("and again {}", common::random_hex(6));
    let body = serde_json::json!({ "body": again }).to_string();
    let r = call(
        gw.addr,
        "POST",
        "/rest/announce/domain.com",
        &admin(),
        &body,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = listener.message_containing(&again, KICK_SEEN).await;
    assert_eq!(got.as_deref(), Some(again.as_str()));
    listener.close().await;
    // A body without one is refused.
    let r = call(gw.addr, "POST", "/rest/announce/domain.com", &admin(), "{}").await;
    assert_eq!(r.status, 400, "{}", r.text());
}

async fn a_token_runs_only_the_nodes_it_was_given(kind: ServerKind) {
    let s = common::started(kind).await;
    let d = common::scratch_dir(&format!("resources-{kind}-{}", common::random_hex(4)));
    let access = d.join("access.toml");
    let service = s.jid("admin2");
    let access = access.to_str().unwrap();
    let secret = common::token(&[
        "add",
        "ops",
        "--access-file",
        access,
        "--account",
        &service,
        "--allow",
        "end-user-session",
    ]);
    let creds = d.join("credentials.toml");
    let line = format!("\"{service}\" = \"{}\"\n", s.password("admin2"));
    std::fs::write(&creds, line).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let gw = TestGateway::start(
        s,
        &[
            "--access-file",
            access,
            "--credentials-file",
            creds.to_str().unwrap(),
        ],
    );
    let bearer = format!("Bearer {secret}");
    let (local, pw) = fresh(s, "tok");
    let jid = s.jid(&local);
    let victim = Victim::connect_with(s, &local, &pw, "desk").await;
    // Allowed: ending sessions is end-user-session.
    let r = call(
        gw.addr,
        "DELETE",
        &format!("/rest/sessions/{jid}"),
        &bearer,
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(strings(&r.json()["ended"]), [format!("{jid}/desk")]);
    assert!(victim.closed_within(KICK_SEEN).await);
    // Not given: delete-user, user-stats. The account survives.
    let r = call(
        gw.addr,
        "DELETE",
        &format!("/rest/users/{jid}"),
        &bearer,
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(
        gw.addr,
        "GET",
        &format!("/rest/sessions/{jid}"),
        &bearer,
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    Victim::connect_with(s, &local, &pw, "again")
        .await
        .close()
        .await;
}
