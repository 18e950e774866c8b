//! Hostile clients against real Prosody and ejabberd: what an ordinary account or a stranger can
//! make the gateway do to the server is bounded, and checked on the wire. The gateway talks to
//! the server through a reading proxy (`common::proxy`, plaintext c2s on loopback), so every
//! count below is what the server received, not what the gateway says it sent.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::proxy::proxied;
use crate::common::rest::*;
use crate::common::{self, basic, http, http_from, ServerKind, TestGateway};

on_both_servers!(
    a_jid_list_beyond_the_bound_is_400_before_anything_is_sent,
    a_refused_caller_costs_the_server_two_iqs_however_many_accounts_it_names,
    a_hundred_sessions_never_exceed_the_in_flight_bound,
    a_forged_reply_is_ignored_and_only_the_server_is_answered,
    failures_from_one_address_do_not_lock_out_a_proved_password,
    small_refusals,
);

async fn a_jid_list_beyond_the_bound_is_400_before_anything_is_sent(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &[]).await;
    let admin = auth(s, "admin");
    // Warm: the login and its stream exist, so what follows can only be commands.
    let r = post_json(gw.addr, PATH, &admin, &user_stats(&s.jid("test"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let before = proxy.commands();
    let jids: Vec<String> = (0..101).map(|i| format!("ghost{i}@domain.com")).collect();
    let r = post_json(gw.addr, PATH, &admin, &end_sessions(&jids)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["field"], "accountjids", "{}", r.text());
    assert_eq!(proxy.commands(), before, "nothing may reach the server");
}

async fn a_refused_caller_costs_the_server_two_iqs_however_many_accounts_it_names(
    kind: ServerKind,
) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &[]).await;
    let caller = auth(s, "nonadmin");
    let before = proxy.commands();
    let jids: Vec<String> = (0..100).map(|i| format!("ghost{i}@domain.com")).collect();
    let r = post_json(gw.addr, PATH, &caller, &end_sessions(&jids)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The first account's user-stats and end-user-session, pipelined; nothing after the 403.
    assert_eq!(proxy.commands() - before, 2);
}

async fn a_hundred_sessions_never_exceed_the_in_flight_bound(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &["--session-in-flight", "8"]).await;
    let admin = auth(s, "admin");
    let r = post_json(gw.addr, PATH, &admin, &user_stats(&s.jid("test"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (before, _) = (proxy.commands(), proxy.reset_max_outstanding());
    let jids: Vec<String> = (0..100)
        .map(|i| format!("{}/gone{i}", s.jid("user12")))
        .collect();
    let r = post_json(gw.addr, PATH, &admin, &end_sessions(&jids)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["command"]["fields"], json!([]), "none was online");
    assert_eq!(
        proxy.commands() - before,
        101,
        "user-stats and one command per JID"
    );
    let max = proxy.seen(|s| s.max_outstanding);
    assert!(max <= 8, "{max} IQs in flight at once, the bound is 8");
    assert!(max >= 2, "the proxy saw the batch pipelined ({max})");
}

async fn a_forged_reply_is_ignored_and_only_the_server_is_answered(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &[]).await;
    let admin = auth(s, "admin");
    let r = post_json(gw.addr, PATH, &admin, &user_stats(&s.jid("test"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Another account answers the gateway's next command first, with its id, as the server
    // would route it (the server stamps the sender's real JID).
    proxy.forge_next(Box::new(|id, gateway| {
        format!(
            "<iq type='error' id='{id}' from='test@domain.com/forger' to='{gateway}'>\
             <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>FORGED-BY-TEST</text>\
             </error></iq>"
        )
    }));
    let r = post_json(gw.addr, PATH, &admin, &user_stats(&s.jid("test"))).await;
    assert_eq!(
        proxy.seen(|s| s.forged),
        1,
        "the forgery reached the gateway"
    );
    assert_eq!(r.status, 200, "the real answer wins: {}", r.text());
    assert!(!r.text().contains("FORGED"), "{}", r.text());

    // Pings: another account's goes unanswered, the server's is answered.
    let gateway = proxy.seen(|s| s.bound.clone()).expect("bound JID");
    proxy
        .inject(&format!(
            "<iq type='get' id='probe-from-test' from='test@domain.com/x' to='{gateway}'>\
             <ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    proxy
        .inject(&format!(
            "<iq type='get' id='probe-from-server' from='domain.com' to='{gateway}'>\
             <ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    let answered = |id: &str| proxy.seen(|s| s.answered.iter().any(|a| a == id));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answered("probe-from-server") {
        assert!(
            Instant::now() < deadline,
            "the server's ping was not answered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The gateway handles its stream in order: the first probe was decided before the second.
    assert!(
        !answered("probe-from-test"),
        "another account's ping was answered"
    );
    let r = post_json(gw.addr, PATH, &admin, &user_stats(&s.jid("test"))).await;
    assert_eq!(r.status, 200, "the stream still serves: {}", r.text());
}

async fn failures_from_one_address_do_not_lock_out_a_proved_password(kind: ServerKind) {
    let s = common::started(kind).await;
    // Two accounts of their own (the gateway cannot tell admins from others): `kept` keeps its
    // password, `changed` has it changed on the server after its last login.
    let tag = common::random_hex(4);
    let (kept, changed) = (format!("kept{tag}"), format!("changed{tag}"));
    let (p_kept, p_old) = (format!("pk-{tag}"), format!("po-{tag}"));
    s.register(&kept, &p_kept);
    s.register(&changed, &p_old);
    let (proxy, gw) = proxied(s, &[]).await;
    let direct = TestGateway::start(s, &[]);
    let list = |addr, auth: String| async move {
        let headers = [("authorization", auth.as_str())];
        http(addr, "GET", PATH, &headers, b"").await
    };
    for (local, pass) in [(&kept, &p_kept), (&changed, &p_old)] {
        let r = list(gw.addr, basic(&s.jid(local), pass)).await;
        assert_eq!(r.status, 200, "{local}: {}", r.text());
    }

    // 30 wrong passwords for accounts that do not exist, from another address: 15 reach the
    // server (the address's budget and the gateway-wide one), then 429 without a connection.
    let stranger: IpAddr = "127.0.0.2".parse().unwrap();
    let connections = proxy.seen(|s| s.connections);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let auth = basic(&format!("ghost{i}-{tag}@domain.com"), "wrong");
        let headers = [("authorization", auth.as_str())];
        statuses.push(
            http_from(stranger, gw.addr, "GET", PATH, &headers, b"")
                .await
                .status,
        );
    }
    assert_eq!(statuses[..15], [401; 15]);
    assert_eq!(statuses[15..], [429; 15]);
    assert_eq!(proxy.seen(|s| s.connections) - connections, 15);

    // The password of `changed` changes on the server.
    let form = json!({"command": {"node": CHANGE_PASSWORD, "fields": [
        {"var": "accountjid", "value": s.jid(&changed)},
        {"var": "password", "value": format!("pn-{tag}")}]}});
    let r = post_json(direct.addr, PATH, &auth(s, "admin"), &form).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The server restarts: it ends every stream, so the next requests need logins. Waiting
    // for the gateway to close both connections (it does once it has noticed) keeps the next
    // request from racing the end of its stream.
    proxy.shut_down().await;
    let r = list(gw.addr, basic(&s.jid(&kept), &p_kept)).await;
    assert_eq!(
        r.status,
        200,
        "a proved password logs in again: {}",
        r.text()
    );
    let r = list(gw.addr, basic(&s.jid(&changed), &p_old)).await;
    assert_eq!(
        r.status,
        401,
        "the changed password is refused: {}",
        r.text()
    );
    // Its proof is forgotten, so it has no exemption left: the spent budget applies.
    let connections = proxy.seen(|s| s.connections);
    let r = list(gw.addr, basic(&s.jid(&changed), &p_old)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        proxy.seen(|s| s.connections),
        connections,
        "429 sends nothing"
    );
}

/// A raw HTTP/1.1 exchange, for requests hyper's client will not send.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut out));
    let _ = read.await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn small_refusals(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &[]);
    let admin = auth(s, "admin");
    let headers = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
    ];

    // "node" twice: refused, not the last one silently taken.
    let body = format!(
        r#"{{"command": {{"node": "{USER_STATS}", "node": "{END_USER_SESSION}",
            "fields": [{{"var": "accountjid", "value": "test@domain.com"}}]}}}}"#
    );
    let r = http(gw.addr, "POST", PATH, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("twice"), "{}", r.text());

    // A domainpart that is no host name.
    let r = http(
        gw.addr,
        "GET",
        "/rest/adhoc/sess-man@domain.com;x=1",
        &headers,
        b"",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // A transfer coding the gateway does not undo.
    let request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {admin}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n"
    );
    let answer = raw(gw.addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(answer.contains("not-implemented"), "{answer}");

    // A domain the server does not serve: 401 with a hint, readable, counted per address.
    let elsewhere: IpAddr = "127.0.0.3".parse().unwrap();
    let other = basic("admin@other.test", "whatever");
    let h = [("authorization", other.as_str())];
    let r = http_from(elsewhere, gw.addr, "GET", PATH, &h, b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains("does not serve the domain other.test"),
        "{text}"
    );
    assert!(
        !text.contains("StreamError") && !text.contains('{'),
        "{text}"
    );
    let mut statuses = Vec::new();
    for _ in 0..39 {
        statuses.push(
            http_from(elsewhere, gw.addr, "GET", PATH, &h, b"")
                .await
                .status,
        );
    }
    assert_eq!(statuses[..14], [401; 14]);
    assert_eq!(statuses[14..], [429; 25]);
    // None of it spent the gateway-wide budget: a new login from elsewhere still happens.
    let r = http(
        gw.addr,
        "GET",
        PATH,
        &[("authorization", admin.as_str())],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
