//! Draining on SIGTERM (`--drain-delay`, `--drain-timeout`): `/readyz` answers 503
//! `draining` on both listeners at once while `/healthz` stays 200; what arrives during the
//! delay is served with `Connection: close`; a request in flight as the delay ends finishes;
//! then new connections are refused, the process exits 0 within delay + timeout, and the
//! server sees the stream closed. A second signal ends the delay at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::prometheus::{parse_exposition, value};
use crate::common::proxy::proxied;
use crate::common::rest::{admin, error_of, post_json, user_stats, PATH};
use crate::common::{self, http, HttpResponse, ServerKind, TestGateway};

on_both_servers!(sigterm_drains_then_finishes_in_flight_and_closes_the_streams);

/// Short, to keep the suite fast; long enough for the few requests made during it.
const DELAY: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(10);

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http(addr, "GET", path, &[("accept", "application/json")], b"").await
}

/// Waits for the gateway's line saying the drain has begun (the signal is handled
/// asynchronously: a request sent right after `kill` may come before it).
async fn until_draining(gw: &TestGateway) {
    let log = gw.log_lines("draining: /readyz answers 503", 1).await;
    assert!(log.contains("draining: /readyz answers 503"), "{log}");
}

async fn sigterm_drains_then_finishes_in_flight_and_closes_the_streams(kind: ServerKind) {
    let s = common::started(kind).await;
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let (delay, timeout) = (DELAY.as_secs().to_string(), TIMEOUT.as_secs().to_string());
    let (proxy, mut gw) = proxied(
        s,
        &[
            "--drain-delay",
            &delay,
            "--drain-timeout",
            &timeout,
            "--admin-listen",
            &admin_addr.to_string(),
        ],
    )
    .await;
    let body = user_stats(&s.jid("user3")).to_string();
    let r = post_json(gw.addr, PATH, &admin(), &user_stats(&s.jid("user3"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("connection"), None, "closed before any drain");

    // A request whose body is still arriving as the delay ends: in flight.
    let mut in_flight = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: \
         application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
        gw.addr,
        admin(),
        body.len()
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first).await.unwrap();

    gw.signal(libc::SIGTERM);
    let signalled = Instant::now();
    until_draining(&gw).await;
    for addr in [gw.addr, admin_addr] {
        let r = get(addr, "/readyz").await;
        assert_eq!(r.status, 503, "{addr}: {}", r.text());
        assert_eq!(
            error_of(&r)["condition"],
            "draining",
            "{addr}: {}",
            r.text()
        );
        assert_eq!(r.header("connection"), Some("close"), "{addr}");
        let r = get(addr, "/healthz").await;
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "{addr}");
    }
    // Still served during the delay, each answer closing its connection.
    let r = post_json(gw.addr, PATH, &admin(), &user_stats(&s.jid("user3"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    let metrics = parse_exposition(&get(admin_addr, "/metrics").await.text());
    assert_eq!(value(&metrics, "xrg_draining", &[]), 1.0);
    // /readyz, /healthz and the command on the API listener; /readyz and /healthz on the
    // admin one (the scrape's own answer is counted as it leaves).
    let answers = |listener| {
        value(
            &metrics,
            "xrg_draining_answers_total",
            &[("listener", listener)],
        )
    };
    assert_eq!((answers("api"), answers("admin")), (3.0, 2.0));

    // Once the delay is over: new connections refused.
    let refused_by = Instant::now() + DELAY + Duration::from_secs(10);
    while TcpStream::connect(gw.addr).await.is_ok() {
        assert!(Instant::now() < refused_by, "still accepting\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        signalled.elapsed() >= DELAY,
        "stopped accepting before the delay's end"
    );
    // The request in flight finishes, with its answer.
    in_flight.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, in_flight.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the request in flight was not answered");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\"command\""), "{answer}");

    let left = (DELAY + TIMEOUT).saturating_sub(signalled.elapsed());
    let status = tokio::task::block_in_place(|| gw.wait_exit(left));
    let status = status.unwrap_or_else(|| panic!("running after delay + timeout\n{}", gw.log()));
    assert!(status.success(), "{status:?}\n{}", gw.log());
    // One connection: the admin's stream (readiness while draining probes nothing), closed
    // as a stream (its footer sent), not only dropped with the process's sockets.
    assert_eq!(proxy.connections(), 1);
    let footer = "the stream's footer from the gateway";
    proxy
        .await_seen(footer, Duration::from_secs(5), |s| s.stream_ends == 1)
        .await;
}

/// Operators expect a second Ctrl-C or SIGTERM to hurry things: it ends the delay at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain_delay() {
    let s = common::started(ServerKind::Prosody).await;
    let mut gw = TestGateway::start(s, &["--drain-delay", "600"]);
    gw.signal(libc::SIGTERM);
    until_draining(&gw).await;
    let r = get(gw.addr, "/readyz").await;
    assert_eq!(error_of(&r)["condition"], "draining", "{}", r.text());
    gw.signal(libc::SIGINT);
    let status = tokio::task::block_in_place(|| gw.wait_exit(TIMEOUT));
    let status = status.unwrap_or_else(|| panic!("still in its delay\n{}", gw.log()));
    assert!(status.success(), "{status:?}\n{}", gw.log());
    assert!(
        gw.log().contains("second signal: drain delay ended"),
        "{}",
        gw.log()
    );
}
