//! Concurrency and fault tests against real Prosody and ejabberd: hundreds of requests at once
//! across accounts, each answer checked against what it asked; the upstream cut under load (a
//! loopback proxy between gateway and server drops every connection and refuses new ones, which
//! is what a server restart looks like from the gateway); no answer (504); the concurrency limit
//! (503); and the bound on warm sessions. No test asserts on wall-clock time.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::victim::Victim;
use common::{basic, http, HttpResponse, ServerKind, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const PATH: &str = "/rest/adhoc/sess-man@domain.com";
const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";
const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";

on_both_servers!(
    hundreds_of_concurrent_requests_get_their_own_answers,
    an_upstream_cut_under_load_answers_everyone_then_recovers,
    no_answer_is_504_and_a_dead_upstream_502_with_503_at_the_limit,
    the_least_recently_used_session_is_closed_beyond_the_bound,
);

fn user_stats(jid: &str) -> String {
    serde_json::json!({"command": {"node": USER_STATS,
        "fields": [{"var": "accountjid", "value": jid}]}})
    .to_string()
}

fn end_session(jid: &str) -> String {
    serde_json::json!({"command": {"node": END_USER_SESSION,
        "fields": [{"var": "accountjids", "value": [jid]}]}})
    .to_string()
}

async fn post(addr: SocketAddr, auth: &str, body: &str) -> HttpResponse {
    http(
        addr,
        "POST",
        PATH,
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await
}

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
    let gw = TestGateway::start(s, &[]);
    // Six accounts with two resources each, named after the account so a mix-up shows.
    let mut victims = Vec::new();
    let mut expected = Vec::new();
    for i in 1..=6 {
        let local = format!("user{i}");
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
        let offline = s.jid(&format!("user{}", 7 + n % 6));
        tasks.spawn(async move {
            if n % 3 == 2 {
                // end-user-session of an offline account: nothing to end, empty fields.
                let r = post(addr, &auth, &end_session(&offline)).await;
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(
                    r.json()["command"]["fields"],
                    serde_json::json!([]),
                    "{offline}"
                );
            } else {
                let r = post(addr, &auth, &user_stats(&jid)).await;
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
                if let Some(v) = echoed {
                    assert_eq!(v, serde_json::json!(jid));
                }
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
    assert_eq!(gw.log().matches("logged in").count(), 2, "{}", gw.log());
}

/// What the loopback proxy does with traffic.
const FORWARD: u8 = 0;
/// Drops every connection, new ones at once: a server restarting.
const REFUSE: u8 = 1;
/// Keeps connections but passes nothing on: a server that stopped answering.
const STALL: u8 = 2;

/// A TCP proxy on 127.0.0.1 in front of a server's c2s port.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if m.load(Ordering::SeqCst) == REFUSE {
                    continue; // dropped: closed at once
                }
                let m = m.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, m).await;
                    }
                });
            }
        });
        Proxy { addr, mode, task }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes or the proxy cuts the connection.
async fn relay(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, mode.clone()),
        pipe(server_read, client_write, mode),
    );
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: Arc<AtomicU8>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = wait_for(&mode, REFUSE) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Stalled: the bytes wait until the mode changes; a cut drops them.
        while mode.load(Ordering::SeqCst) == STALL {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if mode.load(Ordering::SeqCst) == REFUSE || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Resolves once the proxy is in `wanted` mode.
async fn wait_for(mode: &AtomicU8, wanted: u8) {
    while mode.load(Ordering::SeqCst) != wanted {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn admin() -> String {
    basic("admin@domain.com", "adminpass")
}

async fn an_upstream_cut_under_load_answers_everyone_then_recovers(kind: ServerKind) {
    let s = common::started(kind).await;
    let proxy = Proxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let gw = TestGateway::start(s, &["--upstream", &upstream, "--request-timeout", "10"]);
    let target = s.jid("user1");
    assert_eq!(
        post(gw.addr, &admin(), &user_stats(&target)).await.status,
        200
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (addr, body) = (gw.addr, user_stats(&target));
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..15 {
                let r = post(addr, &admin(), &body).await;
                statuses.push(r.status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        });
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    proxy.set(REFUSE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(FORWARD);
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("a load task failed"));
    }
    assert_eq!(all.len(), 16 * 15, "every request was answered");
    assert!(all.iter().all(|s| [200, 502].contains(s)), "{all:?}");
    assert!(all.contains(&502), "the cut was not seen: {all:?}");
    // Back to service, on a new login.
    let r = post(gw.addr, &admin(), &user_stats(&target)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(gw.log().matches("logged in").count() >= 2, "{}", gw.log());
}

async fn no_answer_is_504_and_a_dead_upstream_502_with_503_at_the_limit(kind: ServerKind) {
    let s = common::started(kind).await;
    let proxy = Proxy::start(s.c2s_addr()).await;
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
    assert_eq!(post(gw.addr, &admin(), &body).await.status, 200);
    // The server stops answering: the request times out (504); the one beside it finds the
    // gateway at its limit (503).
    proxy.set(STALL);
    let auth = admin();
    let (stuck, beside) = tokio::join!(post(gw.addr, &auth, &body), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(gw.addr, &admin(), &body).await
    });
    assert_eq!(stuck.status, 504, "{}", stuck.text());
    assert_eq!(stuck.json()["error"]["condition"], "timeout");
    assert_eq!(beside.status, 503, "{}", beside.text());
    // The connection is cut: the stream is known dead, and the next login is refused: 502.
    proxy.set(REFUSE);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = post(gw.addr, &admin(), &body).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["condition"], "upstream-unavailable");
    // A server that accepts but never speaks: 502 once the connect timeout is over.
    proxy.set(STALL);
    let r = post(gw.addr, &admin(), &body).await;
    assert_eq!(r.status, 502, "{}", r.text());
    proxy.set(FORWARD);
    let r = post(gw.addr, &admin(), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn the_least_recently_used_session_is_closed_beyond_the_bound(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start(s, &["--max-sessions", "1"]);
    let body = user_stats(&s.jid("user3"));
    let admin2 = basic("admin2@domain.com", &s.password("admin2"));
    assert_eq!(post(gw.addr, &admin(), &body).await.status, 200);
    assert_eq!(post(gw.addr, &admin2, &body).await.status, 200);
    assert!(
        gw.log().contains("closing the least recently used session"),
        "{}",
        gw.log()
    );
    assert_eq!(post(gw.addr, &admin(), &body).await.status, 200);
    assert_eq!(gw.log().matches("logged in").count(), 3, "{}", gw.log());
}
