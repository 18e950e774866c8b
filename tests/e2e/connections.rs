//! Connection-level admission against the real binary: stalled clients under the connection
//! cap, the body deadline for a crowd of them, the request-head limit, HTTP/2 prior knowledge,
//! a chunked body that never ends, the idle keep-alive deadline, the write deadline for a
//! client that does not read its answers, and the admin listener under the same loop: a scrape
//! and a health check answered beside 500 idle or non-reading sockets.
//!
//! Only against Prosody: connections are admitted, timed and closed before any request reaches
//! the XMPP server, so the server makes no difference here; it is there to answer the normal
//! requests that must still get their 200. No test asserts on wall-clock time: where timing
//! matters, the order of events is compared.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::prometheus::{parse_exposition, value};
use crate::common::rest::{admin, PATH};
use crate::common::{self, http, try_http, HttpResponse, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The client timeout of an operator's scrape or health check while the admin listener is
/// under attack (issue #19: "a few seconds").
const MONITOR_TIMEOUT: Duration = Duration::from_secs(3);
/// Sockets an attacker holds on the admin listener (issue #19).
const ATTACKERS: usize = 500;

/// What the gateway answers HTTP/2 prior knowledge (see `http::listener::H2_GOAWAY`): an empty
/// SETTINGS frame, then GOAWAY, last stream 0, HTTP_1_1_REQUIRED, with a reason.
const GOAWAY: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\
\x00\x00\x1c\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0dHTTP/1.1 is required";

/// How a connection the test left waiting ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Closed (EOF or reset) without a byte of response.
    Closed,
    /// A response with this status, then whatever followed.
    Status(u16, String),
}

/// Raises this process's open-files limit (the gateway it starts inherits it, and raises its
/// own anyway): the tests hold more client sockets than the common default of 1,024.
fn raise_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    assert!(
        lim.rlim_max >= need,
        "this test needs RLIMIT_NOFILE >= {need}; the hard limit is {}",
        lim.rlim_max
    );
    if lim.rlim_cur < need {
        lim.rlim_cur = lim.rlim_max.min(65_536).max(need);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
}

/// Sends the HTTP/2 preface and the client's SETTINGS frame, as an HTTP/2 client does, and
/// asserts the gateway answers [`GOAWAY`] then ends the stream cleanly (`reset` says how it
/// failed otherwise).
async fn assert_goaway_after_preface(
    conn: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    reset: &str,
) {
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("write preface");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut got)).await;
    read.expect("no end of stream within 30 s").expect(reset);
    assert_eq!(got, GOAWAY, "{:?}", String::from_utf8_lossy(&got));
}

/// `n` connections stalled after their headers, each read to its end by a task of its own,
/// which stamps its place in `order`.
async fn stall(
    addr: SocketAddr,
    n: usize,
    order: &Arc<AtomicU64>,
) -> tokio::task::JoinSet<(End, u64)> {
    let mut ends = tokio::task::JoinSet::new();
    for _ in 0..n {
        let conn = stalled_after_headers(addr).await;
        let order = order.clone();
        ends.spawn(async move { read_end(conn, &order).await });
    }
    ends
}

/// A connection that sent whole POST headers promising 100 bytes of body, and no body.
async fn stalled_after_headers(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    s
}

/// Reads until one whole response (head and `Content-Length` body) or the end of the
/// connection; `order` is stamped when the first byte or the end arrives.
async fn read_end(mut s: TcpStream, order: &AtomicU64) -> (End, u64) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut stamp = None;
    loop {
        let read = tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk))
            .await
            .expect("the connection was neither answered nor closed within 60 s");
        let n = read.unwrap_or(0);
        let at = *stamp.get_or_insert_with(|| order.fetch_add(1, Ordering::SeqCst));
        if n == 0 {
            if buf.is_empty() {
                return (End::Closed, at);
            }
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if response_complete(&buf) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {text:?}"));
    let at = stamp.unwrap_or_default();
    (End::Status(status, text), at)
}

fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + length
}

/// The status of one raw request written as is on a new connection.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> End {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    read_end(s, &AtomicU64::new(0)).await.0
}

fn is_408(end: &End) -> bool {
    matches!(end, End::Status(408, text) if text.contains("request-timeout"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_stalled_clients_make_room_and_a_real_request_is_answered_first() {
    raise_nofile(4096);
    let s = common::started(common::ServerKind::Prosody).await;
    let gw = TestGateway::start(s, &["--max-connections", "200", "--body-timeout", "5"]);
    let order = Arc::new(AtomicU64::new(0));
    let mut ends = stall(gw.addr, 300, &order).await;
    let r = http(gw.addr, "GET", PATH, &[("authorization", &admin())], b"").await;
    let answered_at = order.fetch_add(1, Ordering::SeqCst);
    assert_eq!(r.status, 200, "{}", r.text());

    let mut closed = 0;
    let mut timed_out = Vec::new();
    while let Some(done) = ends.join_next().await {
        let (end, at) = done.expect("reader task");
        match end {
            End::Closed => closed += 1,
            ref e if is_408(e) => timed_out.push(at),
            other => panic!("a stalled connection ended otherwise: {other:?}"),
        }
    }
    // 100 made room for the stalled ones beyond the cap, one for the real request.
    assert_eq!(closed, 101, "stalled connections closed to make room");
    assert_eq!(timed_out.len(), 199, "stalled connections answered 408");
    let first_408 = timed_out.iter().min().copied().unwrap_or(u64::MAX);
    assert!(
        answered_at < first_408,
        "the real request was answered after a stalled one's 408"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_hundred_stalled_connections_neither_keep_out_a_request_nor_stay() {
    raise_nofile(4096);
    let s = common::started(common::ServerKind::Prosody).await;
    // Default flags but the body deadline: 3 s instead of 10, to keep the test short.
    let gw = TestGateway::start(s, &["--body-timeout", "3"]);
    let order = Arc::new(AtomicU64::new(0));
    let mut ends = stall(gw.addr, 1500, &order).await;
    let r = http(gw.addr, "GET", PATH, &[("authorization", &admin())], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut timed_out = 0;
    while let Some(done) = ends.join_next().await {
        let (end, _) = done.expect("reader task");
        assert!(
            is_408(&end),
            "a stalled connection ended otherwise: {end:?}"
        );
        timed_out += 1;
    }
    assert_eq!(timed_out, 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_beyond_the_limit_is_431() {
    let s = common::started(common::ServerKind::Prosody).await;
    let gw = TestGateway::start(s, &[]);
    let head = |pad: usize| {
        format!(
            "GET /nope HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(pad)
        )
    };
    // The default --max-header-bytes is 16384: just under it passes (404: no such route).
    let under = raw_status(gw.addr, head(16_000).as_bytes()).await;
    assert!(matches!(under, End::Status(404, _)), "{under:?}");
    let over = raw_status(gw.addr, head(16_400).as_bytes()).await;
    assert!(matches!(over, End::Status(431, _)), "{over:?}");
    // More header lines than hyper's bound of 100, however short.
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /nope HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let too_many = raw_status(gw.addr, request.as_bytes()).await;
    assert!(matches!(too_many, End::Status(431, _)), "{too_many:?}");

    let gw = TestGateway::start(s, &["--max-header-bytes", "9000"]);
    let over = raw_status(gw.addr, head(9_000).as_bytes()).await;
    assert!(matches!(over, End::Status(431, _)), "{over:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_gets_goaway_http_1_1_required_then_a_clean_close() {
    let s = common::started(common::ServerKind::Prosody).await;
    let gw = TestGateway::start(s, &[]);
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    let reset = "the gateway reset the connection instead of closing it";
    assert_goaway_after_preface(&mut conn, reset).await;

    let r = http(gw.addr, "GET", PATH, &[("authorization", &admin())], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_that_never_ends_is_408_at_the_deadline() {
    let s = common::started(common::ServerKind::Prosody).await;
    let gw = TestGateway::start(s, &["--body-timeout", "2"]);
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"com\r\n",
        admin()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let (end, _) = read_end(conn, &AtomicU64::new(0)).await;
    assert!(is_408(&end), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let s = common::started(common::ServerKind::Prosody).await;
    let gw = TestGateway::start(s, &["--keepalive-timeout", "1"]);
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    conn.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !response_complete(&buf) {
        let n = conn.read(&mut chunk).await.expect("read");
        assert_ne!(n, 0, "closed before the response");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.starts_with(b"HTTP/1.1 404"));
    // hyper's own deadline for the next head would close it only at 30 s.
    let n = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut chunk))
        .await
        .expect("the idle connection was still open after 20 s")
        .expect("read");
    assert_eq!(n, 0, "bytes on an idle connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_tls_http2_prior_knowledge_gets_the_same_goaway_and_alpn_offers_only_http_1_1() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

    let s = common::started(common::ServerKind::Prosody).await;
    let pki = common::pki::shared();
    let gw = TestGateway::start(
        s,
        &[
            "--tls-cert",
            pki.server_cert.to_str().unwrap(),
            "--tls-key",
            pki.server_key.to_str().unwrap(),
        ],
    );
    let tls = |alpn: &[&[u8]]| {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&pki.ca_pem).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let name = ServerName::try_from("domain.com").unwrap();
    let connect = |alpn: &'static [&'static [u8]]| {
        let connector = tls(alpn);
        let name = name.clone();
        async move {
            let tcp = TcpStream::connect(gw.addr).await.expect("connect");
            connector.connect(name, tcp).await
        }
    };

    let mut conn = connect(&[]).await.expect("TLS handshake without ALPN");
    let reset = "the gateway ended TLS without close_notify or reset the connection";
    assert_goaway_after_preface(&mut conn, reset).await;

    let both = connect(&[b"h2", b"http/1.1"]).await.expect("TLS handshake");
    assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let h2_only = connect(&[b"h2"]).await;
    assert!(h2_only.is_err(), "a client offering only h2 was accepted");
}

/// A connection that sent `requests` (pipelined) and never reads: its receive buffer is made
/// small, so the answers back up into the gateway's send buffer. A write the gateway already
/// refused (closed to make room) is no failure here: an attacker does not care.
async fn non_reader(addr: SocketAddr, requests: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut s = socket.connect(addr).await.expect("connect");
    let _ = s.write_all(requests).await;
    s
}

/// `GET path` answered 200 within [`MONITOR_TIMEOUT`]; how long it took.
async fn monitored(addr: SocketAddr, path: &str) -> (HttpResponse, Duration) {
    let start = Instant::now();
    let r = tokio::time::timeout(MONITOR_TIMEOUT, try_http(addr, "GET", path, &[], b""))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer within {MONITOR_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    (r, start.elapsed())
}

/// A scrape and a health check on the admin listener, each answered within
/// [`MONITOR_TIMEOUT`]; the times go to the test's output (`--nocapture`).
async fn scrape_and_health_check_answered(admin: SocketAddr, beside: &str) {
    let (scrape, scrape_took) = monitored(admin, "/metrics").await;
    parse_exposition(&scrape.text());
    let (health, health_took) = monitored(admin, "/healthz").await;
    assert_eq!(health.text(), "ok\n");
    eprintln!(
        "beside {beside}: GET /metrics answered in {scrape_took:?}, GET /healthz in \
         {health_took:?}"
    );
}

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], common::free_port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_answers_a_scrape_and_a_health_check_beside_500_idle_sockets() {
    raise_nofile(4096);
    let s = common::started(common::ServerKind::Prosody).await;
    let admin = admin_addr();
    let _gw = TestGateway::start(s, &["--admin-listen", &admin.to_string()]);
    // Half never send a byte; half stay open after one answered request (keep-alive).
    let mut held = Vec::with_capacity(ATTACKERS);
    for i in 0..ATTACKERS {
        let mut conn = TcpStream::connect(admin).await.expect("connect");
        if i % 2 == 1 {
            // Refused or not (an attacker does not care), the socket stays open on its side.
            let _ = conn
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !response_complete(&buf) {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
        held.push(conn);
    }
    scrape_and_health_check_answered(admin, "500 idle sockets").await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_answers_beside_500_sockets_that_pipeline_scrapes_and_never_read() {
    raise_nofile(4096);
    let s = common::started(common::ServerKind::Prosody).await;
    let admin = admin_addr();
    let _gw = TestGateway::start(s, &["--admin-listen", &admin.to_string()]);
    // 1,500 answers of ~3 KB: more than the gateway's send buffer can take (4 MB at most on
    // Linux), so the gateway's writes wait on each client.
    let scrapes = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1500);
    let mut held = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        held.push(non_reader(admin, scrapes.as_bytes()).await);
    }
    scrape_and_health_check_answered(admin, "500 sockets pipelining scrapes unread").await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_closed_at_the_write_timeout() {
    let s = common::started(common::ServerKind::Prosody).await;
    let admin = admin_addr();
    // Idle and head deadlines at 30 s: only the write deadline can close it within 20 s.
    let gw = TestGateway::start(
        s,
        &[
            "--admin-listen",
            &admin.to_string(),
            "--write-timeout",
            "2",
            "--keepalive-timeout",
            "30",
        ],
    );
    // 100 answers of ~55 KB: more than the gateway's send buffer can take.
    const ASKED: usize = 100;
    let requests = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(ASKED);
    let mut conn = non_reader(gw.addr, requests.as_bytes()).await;
    let connections = "xrg_http_connections";
    poll_gauge(admin, connections, 1.0, Duration::from_secs(10)).await;
    let open = Instant::now();
    poll_gauge(admin, connections, 0.0, Duration::from_secs(20)).await;
    eprintln!(
        "a client not reading (--write-timeout 2) was closed {:?} after it was seen open",
        open.elapsed()
    );
    // What it can read now ends before the answers it asked for.
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk))
            .await
            .expect("neither data nor an end within 30 s");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let answers = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(
        answers < ASKED,
        "all {ASKED} answers arrived: the connection was not cut"
    );
}

/// Scrapes `admin` until the gauge `name` reads `want`, within `within`.
async fn poll_gauge(admin: SocketAddr, name: &str, want: f64, within: Duration) {
    let start = Instant::now();
    loop {
        let r = http(admin, "GET", "/metrics", &[], b"").await;
        assert_eq!(r.status, 200);
        let now = value(&parse_exposition(&r.text()), name, &[]);
        if now == want {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{name} still {now} after {within:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
