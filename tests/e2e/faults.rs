//! Concurrency and fault tests: hundreds of requests at once across accounts, each answer
//! checked against what it asked; the upstream cut under load (a loopback proxy between
//! gateway and server drops every connection and refuses new ones, which is what a server
//! restart looks like from the gateway); no answer (504); the concurrency limit (503); the
//! bound on warm sessions; and SIGTERM closing the upstream streams. Logins are counted where
//! the server sees them, as connections through the proxy. No test asserts on wall-clock time.

use std::time::Duration;

use crate::common::proxy::proxied;
use crate::common::rest::{
    admin, end_sessions, post, post_json, seed_for, user_stats, PATH, SEED_REQUEST_XML,
};
use crate::common::tcp_proxy::{Mode, TcpProxy};
use crate::common::victim::Victim;
use crate::common::{self, basic, HttpResponse, ServerKind, TestGateway};

on_both_servers!(
    hundreds_of_concurrent_requests_get_their_own_answers,
    an_upstream_cut_under_load_answers_everyone_then_recovers,
    no_answer_is_504_and_a_dead_upstream_502_with_503_at_the_limit,
    the_least_recently_used_session_is_closed_beyond_the_bound,
    sigterm_finishes_and_closes_upstream_streams,
    sighup_without_anything_to_reload_leaves_the_gateway_serving,
);

fn resources(r: &HttpResponse) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    let field = doc["command"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["var"] == "onlineresources")
        .cloned()
        .unwrap_or_else(|| panic!("no onlineresources: {doc}"));
    let mut v: Vec<String> = field["value"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

async fn hundreds_of_concurrent_requests_get_their_own_answers(kind: ServerKind) {
    let s = common::started(kind).await;
    // TLS to the server as in production; the proxy counts its connections.
    let proxy = TcpProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let gw = TestGateway::start(s, &["--upstream", &upstream]);
    // Six accounts with two resources each, named after the account so a mix-up shows.
    let mut victims = Vec::new();
    let mut expected = Vec::new();
    for i in 1..=6 {
        let local = format!("load{i}");
        let mut res = vec![format!("u{i}-a"), format!("u{i}-b")];
        for r in &res {
            victims.push(Victim::connect(s, &local, r).await);
        }
        res.sort();
        expected.push((s.jid(&local), res));
    }
    let auths = [
        basic("admin@domain.com", "adminpass"),
        basic("admin2@domain.com", &s.password("admin2")),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..300usize {
        let addr = gw.addr;
        let auth = auths[n % 2].clone();
        let (jid, want) = expected[n % expected.len()].clone();
        let offline = s.jid(&format!("load{}", 7 + n % 6));
        tasks.spawn(async move {
            if n % 3 == 2 {
                // end-user-session of an offline account: nothing to end, empty fields.
                let r = post_json(
                    addr,
                    PATH,
                    &auth,
                    &end_sessions(std::slice::from_ref(&offline)),
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(
                    r.json()["command"]["fields"],
                    serde_json::json!([]),
                    "{offline}"
                );
            } else {
                let r = post_json(addr, PATH, &auth, &user_stats(&jid)).await;
                assert_eq!(
                    resources(&r),
                    want,
                    "the answer for {jid} was someone else's"
                );
                let echoed = r.json()["command"]["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["var"] == "accountjid")
                    .map(|f| f["value"].clone());
                // ejabberd echoes the account asked about; Prosody's result form has no such field.
                let want = (kind == ServerKind::Ejabberd).then(|| serde_json::json!(jid));
                assert_eq!(echoed, want, "the account in the answer for {jid}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a request task failed");
    }
    for v in &victims {
        assert!(v.is_alive(), "{} was ended by someone", v.jid);
    }
    // Two accounts, two logins, however many requests.
    assert_eq!(proxy.connections(), 2, "logins");
}

async fn an_upstream_cut_under_load_answers_everyone_then_recovers(kind: ServerKind) {
    let s = common::started(kind).await;
    let proxy = TcpProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let gw = TestGateway::start(s, &["--upstream", &upstream, "--request-timeout", "10"]);
    let target = s.jid("user1");
    assert_eq!(
        post_json(gw.addr, PATH, &admin(), &user_stats(&target))
            .await
            .status,
        200
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (addr, body) = (gw.addr, user_stats(&target));
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..15 {
                let r = post_json(addr, PATH, &admin(), &body).await;
                statuses.push(r.status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        });
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    proxy.set(Mode::Refuse);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Mode::Forward);
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let statuses = done.expect("a load task failed");
        // Each client's requests, in order: answered before the cut, 502 while the server
        // cannot be reached, answered again once it can. A 502 after a recovered answer, or
        // any other status, is a failure the blanket check below would not show.
        let phase = |s: &u16| match s {
            200 => 0,
            502 => 1,
            _ => panic!("a status other than 200 or 502: {statuses:?}"),
        };
        let mut shape: Vec<u8> = statuses.iter().map(phase).collect();
        shape.dedup();
        assert!(
            matches!(shape.as_slice(), [0] | [1] | [0, 1] | [1, 0] | [0, 1, 0]),
            "answers, 502s, answers in that order for each client: {statuses:?}"
        );
        all.extend(statuses);
    }
    assert_eq!(all.len(), 16 * 15, "every request was answered");
    assert!(all.contains(&502), "the cut was not seen: {all:?}");
    // Back to service, on one new login however many requests wanted it: the refused
    // connections never reached the server.
    let r = post_json(gw.addr, PATH, &admin(), &user_stats(&target)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.connections(), 2, "logins that reached the server");
}

async fn no_answer_is_504_and_a_dead_upstream_502_with_503_at_the_limit(kind: ServerKind) {
    let s = common::started(kind).await;
    let proxy = TcpProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let args = [
        "--upstream",
        &upstream,
        "--request-timeout",
        "2",
        "--connect-timeout",
        "1",
        "--max-in-flight",
        "1",
    ];
    let gw = TestGateway::start(s, &args);
    let body = user_stats(&s.jid("user2"));
    assert_eq!(post_json(gw.addr, PATH, &admin(), &body).await.status, 200);
    // The server stops answering: the request times out (504); the one beside it finds the
    // gateway at its limit (503).
    proxy.set(Mode::Stall);
    let auth = admin();
    let (stuck, beside) = tokio::join!(post_json(gw.addr, PATH, &auth, &body), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        post_json(gw.addr, PATH, &admin(), &body).await
    });
    assert_eq!(stuck.status, 504, "{}", stuck.text());
    assert_eq!(stuck.json()["error"]["condition"], "timeout");
    assert_eq!(beside.status, 503, "{}", beside.text());
    // The connection is cut: the stream is known dead, and the next login is refused: 502.
    proxy.set(Mode::Refuse);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = post_json(gw.addr, PATH, &admin(), &body).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["condition"], "upstream-unavailable");
    // A server that accepts but never speaks: 502 once the connect timeout is over.
    proxy.set(Mode::Stall);
    let r = post_json(gw.addr, PATH, &admin(), &body).await;
    assert_eq!(r.status, 502, "{}", r.text());
    proxy.set(Mode::Forward);
    let r = post_json(gw.addr, PATH, &admin(), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn the_least_recently_used_session_is_closed_beyond_the_bound(kind: ServerKind) {
    let s = common::started(kind).await;
    let proxy = TcpProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let gw = TestGateway::start(s, &["--upstream", &upstream, "--max-sessions", "1"]);
    let body = user_stats(&s.jid("user3"));
    let admin2 = basic("admin2@domain.com", &s.password("admin2"));
    let closes = Duration::from_secs(10);
    assert_eq!(post_json(gw.addr, PATH, &admin(), &body).await.status, 200);
    assert_eq!(post_json(gw.addr, PATH, &admin2, &body).await.status, 200);
    // admin's stream, the least recently used, is closed by the gateway.
    proxy.await_closed_by_gateway(1, closes).await;
    assert_eq!(proxy.connections(), 2);
    // So admin logs in again, and admin2's stream is closed in turn.
    assert_eq!(post_json(gw.addr, PATH, &admin(), &body).await.status, 200);
    assert_eq!(proxy.connections(), 3, "admin's session was not kept");
    proxy.await_closed_by_gateway(2, closes).await;
}

async fn sigterm_finishes_and_closes_upstream_streams(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, mut gw) = proxied(s, &[]).await;
    let body = seed_for(SEED_REQUEST_XML, "user10");
    let r = post(gw.addr, PATH, &admin(), "application/xml", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let status = gw.terminate(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}\n{}", gw.log());
    // Closed as a stream (its footer sent), not only dropped with the process's sockets.
    assert_eq!(proxy.connections(), 1);
    let footer = "the stream's footer from the gateway";
    proxy
        .await_seen(footer, Duration::from_secs(5), |s| s.stream_ends == 1)
        .await;
}

/// `systemctl reload` sends SIGHUP whatever the settings: without an access file or HTTPS it
/// reloads nothing, and the gateway goes on serving (the signal's default would end it).
async fn sighup_without_anything_to_reload_leaves_the_gateway_serving(kind: ServerKind) {
    let s = common::started(kind).await;
    let mut gw = TestGateway::start(s, &[]);
    let body = seed_for(SEED_REQUEST_XML, "user10");
    assert_eq!(
        post(gw.addr, PATH, &admin(), "application/xml", &body)
            .await
            .status,
        200
    );
    gw.hangup();
    let said = "SIGHUP: nothing to reload";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gw.log().contains(said) {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = post(gw.addr, PATH, &admin(), "application/xml", &body).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.log());
    let status = gw.terminate(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}\n{}", gw.log());
}
