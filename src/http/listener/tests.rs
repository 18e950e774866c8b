//! The accept loop while the gateway drains, on loopback with a router of the test's own:
//! answers close their connections once the drain has begun, new connections are still
//! accepted until the delay ends (here: a second signal), then refused, and a request in flight
//! then finishes before `serve` returns. No clock is waited on: the delay is ended by the
//! second signal (its timing is `shutdown`'s tests', on a paused clock).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::{Limits, Listener};
use crate::shutdown::{Drain, Signals};

/// Bounds every wait of these tests, so that a bug fails them instead of hanging them.
const BOUND: Duration = Duration::from_secs(10);

struct TestSignals(mpsc::UnboundedReceiver<()>);

impl Signals for TestSignals {
    async fn next(&mut self) {
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

fn limits() -> Limits {
    Limits {
        max_connections: 16,
        max_header_bytes: 8192,
        header_timeout: BOUND,
        idle_timeout: BOUND,
        write_timeout: BOUND,
        drain: BOUND,
        tls: None,
    }
}

/// One request on `conn` and its answer: the head (lower-cased) and the body.
async fn exchange(conn: &mut TcpStream, path: &str) -> (String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return (head, body);
                }
            }
            let mut chunk = [0u8; 1024];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole answer: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(BOUND, read).await.expect("an answer")
}

/// Whether the server closed `conn` (nothing more to read).
async fn closed(conn: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(BOUND, conn.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(BOUND, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {BOUND:?}"));
}

#[tokio::test]
async fn draining_closes_each_answered_connection_then_stops_accepting_and_finishes_in_flight() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let app = Router::new().route("/quick", get(|| async { "ok" })).route(
        "/slow",
        get(move || async move {
            e.notify_one();
            r.notified().await;
            "slow"
        }),
    );
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let drain = Arc::new(Drain::new());
    let (signal, signals) = mpsc::unbounded_channel();
    let listener = Listener::new("api", tcp, app, limits(), drain.clone());
    let serving = {
        let drain = drain.clone();
        tokio::spawn(async move {
            let stop = drain.stop_accepting(TestSignals(signals), Duration::from_secs(3600));
            listener.serve(stop).await;
        })
    };

    // Before the drain: kept alive, no `Connection: close`.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let (head, body) = exchange(&mut kept, "/quick").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(body, "ok");

    signal.send(()).unwrap();
    until("draining", || drain.is_draining()).await;
    // A new connection is still accepted and served; its answer closes it.
    let mut new = TcpStream::connect(addr).await.unwrap();
    let (head, body) = exchange(&mut new, "/quick").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "ok");
    assert!(closed(&mut new).await, "the connection stayed open");
    // So does the next answer on a connection kept alive from before.
    let (head, _) = exchange(&mut kept, "/quick").await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        closed(&mut kept).await,
        "the kept-alive connection stayed open"
    );

    // A request in flight as the delay ends (a second signal) finishes; nothing new is let in.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let asked = slow.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
    asked.await.unwrap();
    tokio::time::timeout(BOUND, entered.notified())
        .await
        .expect("the slow request reached its handler");
    signal.send(()).unwrap();
    let mut refused = false;
    let wait = async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        refused = true;
    };
    let _ = tokio::time::timeout(BOUND, wait).await;
    assert!(refused, "still accepting after the delay's end");
    assert!(!serving.is_finished(), "returned with a request in flight");
    release.notify_one();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BOUND, slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the slow request's connection stayed open");
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    tokio::time::timeout(BOUND, serving)
        .await
        .expect("serve returned once the request in flight was answered")
        .unwrap();
}
