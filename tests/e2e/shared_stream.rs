//! Nobody can end an account's shared stream (issue 19, parts 1 and 2), against real Prosody
//! and ejabberd: another account of the server that learnt the gateway's full JID sends it
//! what it likes, and requests of every route whose stanza would be over the server's limit
//! once written are refused 413 before anything is sent. Throughout, the account's requests
//! succeed and the gateway logs in once: counted on the wire by the reading proxy.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;
use tokio_xmpp::minidom::Element;

use crate::common::prometheus::{parse_exposition, value};
use crate::common::proxy::proxied;
use crate::common::rest::*;
use crate::common::victim::Victim;
use crate::common::{self, http, HttpResponse, ServerKind, TestServer};

on_both_servers!(
    other_accounts_and_oversized_requests_never_end_the_shared_stream,
    a_stanza_just_under_the_default_limit_is_taken_by_the_server,
);

const WAIT: Duration = Duration::from_secs(10);
const DROPPED: &str = "xrg_upstream_dropped_stanzas_total";
/// The stanza limit of the gateway under test: small enough that a password the password
/// resource accepts can be over it.
const LIMIT: usize = 4096;

async fn call(addr: SocketAddr, method: &str, path: &str, auth: &str, body: &str) -> HttpResponse {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    http(addr, method, path, &headers, body.as_bytes()).await
}

async fn stream(addr: SocketAddr, auth: &str, stanza: &str) -> HttpResponse {
    let headers = [("authorization", auth), ("content-type", "application/xml")];
    http(addr, "POST", "/rest/stream/", &headers, stanza.as_bytes()).await
}

/// `depth` elements, each inside the one before.
fn nested(depth: usize) -> Element {
    (1..depth).fold(Element::builder("a", "urn:xrg:deep").build(), |inner, _| {
        Element::builder("a", "urn:xrg:deep").append(inner).build()
    })
}

/// The admin's user-stats of `test`, which must succeed.
async fn admin_request(addr: SocketAddr, s: &TestServer) {
    let r = post_json(addr, PATH, &admin(), &user_stats(&s.jid("test"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A 413 naming the stanza limit.
fn assert_stanza_too_large(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 413, "{what}: {}", r.text());
    assert!(
        r.text().contains("payload-too-large"),
        "{what}: {}",
        r.text()
    );
    assert!(
        r.text().contains("--max-stanza-bytes"),
        "{what}: {}",
        r.text()
    );
}

async fn dropped(admin_listener: SocketAddr, reason: &str) -> f64 {
    let r = http(admin_listener, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    value(&parse_exposition(&r.text()), DROPPED, &[("reason", reason)])
}

async fn other_accounts_and_oversized_requests_never_end_the_shared_stream(kind: ServerKind) {
    let s = common::started(kind).await;
    // A token acting as the admin that may only announce: it shares the admin's stream.
    let dir = common::scratch_dir(&format!("shared-{kind}-{}", common::random_hex(4)));
    let access = dir.join("access.toml");
    let access = access.to_str().unwrap();
    let service = s.jid("admin");
    #[rustfmt::skip]
    let secret = common::token(&[
        "add", "announcer", "--access-file", access, "--account", &service, "--allow", "announce",
    ]);
    let creds = dir.join("credentials.toml");
    std::fs::write(
        &creds,
        format!("\"{service}\" = \"{}\"\n", s.password("admin")),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let admin_listener: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let (limit, admin_listen) = (LIMIT.to_string(), admin_listener.to_string());
    #[rustfmt::skip]
    let (proxy, gw) = proxied(s, &[
        "--access-file", access, "--credentials-file", creds.to_str().unwrap(),
        "--max-stanza-bytes", &limit, "--admin-listen", &admin_listen,
    ]).await;
    let (bearer, basic_admin) = (format!("Bearer {secret}"), admin());
    admin_request(gw.addr, s).await;

    // An ordinary account learns the gateway's full JID from a message sent through it.
    let local = format!("shared-{}", common::random_hex(4));
    let password = format!("pw-{}", common::random_hex(8));
    s.register(&local, &password);
    let other = Victim::connect_with(s, &local, &password, "phone").await;
    other.settled().await;
    let hello = format!("hello {}", common::random_hex(6));
    let message = format!("<message to='{}'><body>{hello}</body></message>", other.jid);
    assert_eq!(stream(gw.addr, &admin(), &message).await.status, 202);
    let gateway_jid = other
        .sender_of(&hello, WAIT)
        .await
        .expect("the message arrived");
    assert!(
        gateway_jid.starts_with(&format!("{service}/")),
        "{gateway_jid}"
    );

    // It sends that resource a message 70 elements deep and one as large as its rate lets it
    // send at once (both servers' c2s limits, 256 KiB, stay far under what the gateway keeps:
    // its skipping of larger ones is unit-tested), while the admin's requests run.
    let (deep_before, unsolicited_before) = (
        dropped(admin_listener, "too_deep").await,
        dropped(admin_listener, "unsolicited").await,
    );
    let load = {
        let addr = gw.addr;
        tokio::spawn(async move {
            let s = common::started(kind).await;
            for _ in 0..10 {
                admin_request(addr, s).await;
            }
        })
    };
    let foreign_before = dropped(admin_listener, "foreign_request").await;
    other
        .send_message(&gateway_jid, "deep", Some(nested(70)))
        .await;
    other
        .send_message(&gateway_jid, &"x".repeat(16_000), None)
        .await;
    // An IQ request to the gateway's resource gets no answer at all (nor does the server
    // answer for it).
    let version = Element::builder("query", "jabber:iq:version").build();
    let answered = other
        .answered_within(&gateway_jid, version, Duration::from_secs(2))
        .await;
    assert!(!answered, "the gateway answered another account's request");
    other.settled().await;
    load.await.expect("the admin's requests");
    let deadline = tokio::time::Instant::now() + WAIT;
    while dropped(admin_listener, "too_deep").await < deep_before + 1.0
        || dropped(admin_listener, "unsolicited").await < unsolicited_before + 1.0
        || dropped(admin_listener, "foreign_request").await < foreign_before + 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other account's messages never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin_request(gw.addr, s).await;

    // Requests whose stanza grows over the limit once written: 413, nothing sent, and the
    // account's request beside each succeeds.
    let gt = ">".repeat(250_000);
    let big_message = format!("<message to='{}'><body>{gt}</body></message>", other.jid);
    let (r, ()) = tokio::join!(
        stream(gw.addr, &basic_admin, &big_message),
        admin_request(gw.addr, s)
    );
    assert_stanza_too_large(&r, "/rest/stream/ message");
    let announce = json!({ "body": gt }).to_string();
    let (r, ()) = tokio::join!(
        call(
            gw.addr,
            "POST",
            "/rest/announce/domain.com",
            &bearer,
            &announce
        ),
        admin_request(gw.addr, s)
    );
    assert_stanza_too_large(&r, "announce with a token");
    // 1,000 characters, 4,000 bytes escaped: over the limit with the form around it.
    let password_body = json!({ "password": ">".repeat(1000) }).to_string();
    let password_path = format!("/rest/users/{}/password", s.jid(&local));
    let (r, ()) = tokio::join!(
        call(gw.addr, "PUT", &password_path, &basic_admin, &password_body),
        admin_request(gw.addr, s)
    );
    assert_stanza_too_large(&r, "the password resource");
    let change = json!({"command": {"node": CHANGE_PASSWORD, "fields": [
        {"var": "accountjid", "value": s.jid(&local)},
        {"var": "password", "value": ">".repeat(1000)},
    ]}});
    let (r, ()) = tokio::join!(
        post_json(gw.addr, PATH, &basic_admin, &change),
        admin_request(gw.addr, s)
    );
    assert_stanza_too_large(&r, "/rest/adhoc change-user-password");

    // Nothing of them reached anyone: a message sent after them arrives, they never did (the
    // server handles a stream's stanzas in order), and the password is unchanged.
    let after = format!("after {}", common::random_hex(6));
    let message = format!("<message to='{}'><body>{after}</body></message>", other.jid);
    assert_eq!(stream(gw.addr, &basic_admin, &message).await.status, 202);
    assert!(other.sender_of(&after, WAIT).await.is_some());
    assert_eq!(other.message_containing(">>>>", Duration::ZERO).await, None);
    other.close().await;
    Victim::connect_with(s, &local, &password, "again")
        .await
        .close()
        .await;

    admin_request(gw.addr, s).await;
    assert_eq!(
        proxy.connections(),
        1,
        "the gateway logged in once for the account through it all"
    );
}

async fn a_stanza_just_under_the_default_limit_is_taken_by_the_server(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = crate::gateway(kind).await;
    let local = format!("shared-big-{}", common::random_hex(4));
    let password = format!("pw-{}", common::random_hex(8));
    s.register(&local, &password);
    let inbox = Victim::connect_with(s, &local, &password, "phone").await;
    inbox.settled().await;
    // The admin (exempt from the servers' rate limits, as an operator's account would be)
    // sends a message a few hundred bytes under the default limit: the server takes it
    // (and delivers it) rather than end the stream.
    let default = xmpp_rest_gateway::upstream::session::DEFAULT_MAX_STANZA;
    let marker = format!("big {}", common::random_hex(6));
    let body = format!("{marker} {}", "x".repeat(default - 400));
    let message = format!("<message to='{}'><body>{body}</body></message>", inbox.jid);
    let r = stream(gw.addr, &admin(), &message).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(inbox.sender_of(&marker, WAIT).await.is_some(), "delivered");
    // A little more is over the default: refused before it is sent.
    let body = format!("{marker} {}", "x".repeat(default));
    let message = format!("<message to='{}'><body>{body}</body></message>", inbox.jid);
    assert_stanza_too_large(&stream(gw.addr, &admin(), &message).await, "default limit");
    inbox.close().await;
}

/// How long each phase of the flood measurement runs.
const FLOOD_PHASE: Duration = Duration::from_secs(6);

/// The measurement of issue 19 part 1 (not an assertion: CI never runs it): p50 of user-stats
/// requests (8 at a time, as `scripts/bench` sends them) with no flood, while another account
/// floods another resource of the admin's account with messages, and while it floods the
/// gateway's own resource. The flood comes from an ordinary account at the rate its server
/// reads from it (Prosody's `limits`, 10 KiB/s; ejabberd's `normal` shaper, 3000 B/s), and,
/// as a harsher case, from an account exempt from those limits as fast as the server takes it.
/// Prints one table per server.
/// `cargo test --test e2e flood_ -- --ignored --nocapture` (with `XRG_GATEWAY_BIN` for a
/// release build).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement; run by hand with --ignored --nocapture"]
async fn flood_of_the_gateways_resource_measured() {
    for kind in [ServerKind::Prosody, ServerKind::Ejabberd] {
        measure_flood(kind).await;
    }
}

/// One flood message: about 250 bytes as written.
fn flood_body() -> String {
    "flood ".repeat(30)
}

async fn measure_flood(kind: ServerKind) {
    let s = common::started(kind).await;
    let admin_listener: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let admin_listen = admin_listener.to_string();
    let gw = common::TestGateway::start(s, &["--admin-listen", &admin_listen]);
    admin_request(gw.addr, s).await;
    let local = format!("flood-{}", common::random_hex(4));
    let password = format!("pw-{}", common::random_hex(8));
    s.register(&local, &password);
    let probe = Victim::connect_with(s, &local, &password, "probe").await;
    let hello = format!("hello {}", common::random_hex(6));
    let message = format!("<message to='{}'><body>{hello}</body></message>", probe.jid);
    assert_eq!(stream(gw.addr, &admin(), &message).await.status, 202);
    let gateway_jid = probe.sender_of(&hello, WAIT).await.expect("learnt");
    probe.close().await;
    let sibling = Victim::connect(s, "admin", "flood-sibling").await;
    sibling.settled().await;
    // The server's read rate for an ordinary account, in bytes per second.
    let ordinary_rate = match kind {
        ServerKind::Prosody => 10 * 1024,
        ServerKind::Ejabberd => 3000,
    };
    let per_second = ordinary_rate / 250;

    let mut rows = Vec::new();
    #[rustfmt::skip]
    let phases = [
        ("no flood", None, None),
        ("ordinary account, to another resource", Some(sibling.jid.clone()), Some(per_second)),
        ("ordinary account, to the gateway's resource", Some(gateway_jid.clone()), Some(per_second)),
        ("unlimited account, to another resource", Some(sibling.jid.clone()), None),
        ("unlimited account, to the gateway's resource", Some(gateway_jid.clone()), None),
        ("no flood (again)", None, None),
    ];
    for (name, target, paced) in phases {
        let received_before = dropped(admin_listener, "unsolicited").await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flooder = match (&target, paced) {
            (None, _) => None,
            (Some(_), Some(_)) => Some(Victim::connect_with(s, &local, &password, "f").await),
            (Some(_), None) => Some(Victim::connect(s, "admin3", "f").await),
        };
        let flood = flooder.map(|flooder| {
            let (to, stop) = (target.clone().unwrap_or_default(), stop.clone());
            tokio::spawn(async move {
                let body = flood_body();
                let mut tick = paced.map(|n| {
                    tokio::time::interval(Duration::from_secs(1) / u32::try_from(n).unwrap())
                });
                let (mut sent, started) = (0u64, std::time::Instant::now());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    if let Err(e) = flooder.try_send_message(&to, &body, None).await {
                        let after = started.elapsed();
                        println!("{kind}: the flooder's stream ended after {sent} messages, {after:.1?}: {e}");
                        break;
                    }
                    sent += 1;
                }
                flooder.close().await;
                sent
            })
        });
        // Let the flood reach its rate before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let deadline = tokio::time::Instant::now() + FLOOD_PHASE;
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let addr = gw.addr;
                tokio::spawn(async move {
                    let s = common::started(kind).await;
                    let mut took = Vec::new();
                    while tokio::time::Instant::now() < deadline {
                        let started = std::time::Instant::now();
                        admin_request(addr, s).await;
                        took.push(started.elapsed());
                    }
                    took
                })
            })
            .collect();
        let mut took = Vec::new();
        for w in workers {
            took.extend(w.await.expect("worker"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = match flood {
            Some(f) => f.await.expect("flood"),
            None => 0,
        };
        took.sort();
        let p = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
        let received = dropped(admin_listener, "unsolicited").await - received_before;
        rows.push((name, took.len(), p(0.5), p(0.99), sent, received));
    }
    let base = rows[0].2.as_secs_f64();
    println!("\n{kind}: user-stats, 8 at a time, {FLOOD_PHASE:?} per row");
    println!(
        "| while | requests | p50 | p99 | p50 / no flood | messages sent | reached the gateway |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, n, p50, p99, sent, received) in rows {
        println!(
            "| {name} | {n} | {p50:.2?} | {p99:.2?} | {:.2} | {sent} | {received} |",
            p50.as_secs_f64() / base
        );
    }
    sibling.close().await;
}
