//! Requests between replicas. A kept command lives on the replica that started it; its
//! sessionid names that replica (`app::App::route`), and a request whose sessionid names
//! another replica is forwarded there over HTTP(S) ([`Forwarder`]), with a header that proves
//! it comes from a replica ([`HEADER`], HMAC-SHA256 under the replica key, purpose `forward`).
//! The receiving replica checks that header ([`check`]): only then does it take the client's
//! address from it, and it never forwards such a request again (no loop, no chain). It runs its
//! own admission and stage checks as for any request.
//!
//! Bounds: at most [`MAX_FORWARDS`] forwards at once (503 `overloaded` beyond), the connect
//! within [`CONNECT_TIMEOUT`] (a peer that refuses or does not accept in time is gone: its
//! sessionids are 404, as unknown ones), the whole forward within the request's deadline
//! (`--request-timeout`, 504 `timeout`), the peer's answer at most [`MAX_ANSWER`] bytes (502
//! `replica-unavailable` beyond, as for an answer that breaks off). One connection per forward:
//! forwarding is the rare case behind a balancer that routes an account to one replica.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;

use super::error::ApiError;
use crate::app::Failure;
use crate::expiring::ExpiringMap;
use crate::metrics::{self, Forward};
use crate::replica::{hex, unhex, Peer, ReplicaKey, Replicas};

/// The header a replica puts on a request it forwards:
/// `from=NAME; ts=UNIX_SECONDS; client=ADDRESS; tag=HEX`.
pub static HEADER: HeaderName = HeaderName::from_static("x-xrg-replica");

/// The purpose of the forward header's HMAC.
const PURPOSE: &str = "forward";

/// How far a forward header's time may be from the receiver's, either way, in seconds: long
/// enough for a forward under way and clocks a little apart, short enough that a captured
/// request is soon worthless.
pub const WINDOW_SECS: u64 = 30;

/// How long a peer may take to accept the connection (name resolution included): beyond it
/// the peer is taken to be gone.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Forwards in flight at once, all peers together.
pub const MAX_FORWARDS: usize = 64;

/// The largest answer relayed from a peer, in bytes.
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// The request headers a forward carries over (the client's credentials, its formats, its
/// request id); any other is the sender's business.
const CARRIED: [&str; 4] = ["authorization", "x-api-key", "content-type", "accept"];

/// The answer headers never relayed: hop-by-hop ones, the length (the relay sets its own), and
/// those the relaying replica's own layers write.
const NOT_RELAYED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-request-id",
    "cache-control",
];

/// A request another replica forwarded here, its header verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The replica that sent it.
    pub from: String,
    /// The client's address, as that replica saw it.
    pub client: IpAddr,
}

/// What a request's forward header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No header, or this gateway has no replicas: an ordinary request.
    Absent,
    /// From a peer, signed, in time.
    Accepted(Forwarded),
    /// A header that does not verify: an unknown replica, a stale or future time, a bad tag,
    /// another request's tag (403).
    Refused,
}

/// The bytes the forward header's tag covers: who, when, which forward (a random nonce, so
/// that two forwards of one request in one second differ), for whom, and the request itself
/// (method, path and query, the body's SHA-256).
fn signed(
    from: &str,
    ts: u64,
    nonce: &str,
    client: IpAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "{from}\n{ts}\n{nonce}\n{client}\n{method}\n{target}\n{}",
        hex(digest.as_ref())
    )
    .into_bytes()
}

/// The forward header's value for a request sent by `from` at `ts` (seconds since the epoch).
pub fn header_value(
    key: &ReplicaKey,
    from: &str,
    ts: u64,
    client: IpAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> String {
    let nonce = format!("{:016x}", rand::random::<u64>());
    let tag = key.sign(
        PURPOSE,
        &signed(from, ts, &nonce, client, method, target, body),
    );
    format!(
        "from={from}; ts={ts}; nonce={nonce}; client={client}; tag={}",
        hex(&tag)
    )
}

/// The forward tags this replica has accepted, each kept until no clock in the window could
/// take it again (twice the window, and a second): a forward captured between replicas and
/// sent again is refused (403) rather than run as a second request. Every forward has a tag of
/// its own (its nonce), so a client's own repeated request is never taken for a replay.
pub struct SeenTags(ExpiringMap<Vec<u8>, bool>);

/// The most forward tags kept. Beyond it the oldest goes first: only a replica receiving more
/// than about 268 forwards a second for a minute could see a tag leave before its window ends.
pub const MAX_SEEN_TAGS: usize = 16_384;

impl Default for SeenTags {
    fn default() -> Self {
        SeenTags(ExpiringMap::new(
            Duration::from_secs(2 * WINDOW_SECS + 1),
            MAX_SEEN_TAGS,
        ))
    }
}

impl SeenTags {
    /// Whether `tag` is new (and from now on seen).
    fn first(&self, tag: &[u8]) -> bool {
        let (was, _) = self
            .0
            .upsert(tag.to_vec(), || false, |seen| std::mem::replace(seen, true));
        !was
    }
}

/// Reads the forward header of a request (`target`: its path and query as received) at `now`
/// (seconds since the epoch); a tag accepted once is refused after (`seen`).
pub fn check(
    replicas: Option<&Replicas>,
    seen: &SeenTags,
    headers: &HeaderMap,
    method: &str,
    target: &str,
    body: &[u8],
    now: u64,
) -> Check {
    let Some(replicas) = replicas else {
        return Check::Absent;
    };
    let mut values = headers.get_all(&HEADER).iter();
    let Some(value) = values.next() else {
        return Check::Absent;
    };
    if values.next().is_some() {
        return Check::Refused;
    }
    let verified = value.to_str().ok().and_then(|v| {
        let mut parts = v.split("; ");
        let mut field = |name: &str| parts.next()?.strip_prefix(name)?.strip_prefix('=');
        let (from, ts, nonce, client, tag) = (
            field("from")?,
            field("ts")?,
            field("nonce")?,
            field("client")?,
            field("tag")?,
        );
        if parts.next().is_some() || replicas.peer(from).is_none() {
            return None;
        }
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let ts: u64 = ts.parse().ok()?;
        let client: IpAddr = client.parse().ok()?;
        if now.abs_diff(ts) > WINDOW_SECS {
            return None;
        }
        let data = signed(from, ts, nonce, client, method, target, body);
        let tag = unhex(tag)?;
        (replicas.key.verify(PURPOSE, &data, &tag) && seen.first(&tag)).then(|| Forwarded {
            from: from.to_string(),
            client,
        })
    });
    verified.map_or(Check::Refused, Check::Accepted)
}

/// Seconds since the epoch, by the system's clock (the replicas' clocks must agree within
/// [`WINDOW_SECS`]).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a forward sends: the client's request as it came.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// The path and query, as received.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The client's address (the forward header vouches for it).
    pub client: IpAddr,
}

/// Sends requests to the replica their sessionid names.
pub struct Forwarder {
    replicas: Replicas,
    places: Arc<Semaphore>,
    /// For `https://` peers: the system's roots (`rustls-native-certs`), read at start.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Forwarder {
    /// The forwarder of this replica, when it has replicas.
    pub fn new(replicas: Option<&Replicas>) -> Option<Forwarder> {
        let replicas = replicas?.clone();
        let tls = replicas.peers.iter().any(|p| p.https).then(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            config.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
        });
        let tls = match tls {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                tracing::error!("no TLS for the https:// peers: {e}");
                None
            }
            None => None,
        };
        Some(Forwarder {
            replicas,
            places: Arc::new(Semaphore::new(MAX_FORWARDS)),
            tls,
        })
    }

    /// Forwards `out` to `peer` and relays its answer (status, headers but hop-by-hop ones,
    /// body). A peer that cannot be reached makes the sessionid unknown (404); the caller
    /// bounds the whole in time.
    pub async fn send(&self, peer: &Peer, out: Outgoing<'_>) -> Result<Response, ApiError> {
        let Ok(_place) = self.places.clone().try_acquire_owned() else {
            metrics::forwarded(Forward::SentBusy);
            return Err(ApiError::overloaded(
                "the gateway is forwarding as many requests to other replicas as it may",
            ));
        };
        crate::audit::note_forwarded_to(&peer.name);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&peer.authority))
            .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(gone(peer, &e.to_string())),
            Err(_) => return Err(gone(peer, "no connection within the connect timeout")),
        };
        // Counted as a timeout if the caller's deadline drops this future from here on.
        let mut sent = Sent(Some(Forward::SentTimeout));
        let answer = if peer.https {
            let Some(tls) = &self.tls else {
                return Err(sent.failed(peer, "no TLS configuration for https:// peers"));
            };
            let host = peer
                .authority
                .rsplit_once(':')
                .map_or(peer.authority.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_string()) else {
                return Err(sent.failed(peer, "the peer's host is no TLS server name"));
            };
            match tls.connect(name, tcp).await {
                Ok(stream) => self.exchange(stream, peer, out).await,
                Err(e) => Err(format!("TLS: {e}")),
            }
        } else {
            self.exchange(tcp, peer, out).await
        };
        match answer {
            Ok(resp) => {
                sent.done(Forward::SentAnswered);
                Ok(resp)
            }
            Err(why) => Err(sent.failed(peer, &why)),
        }
    }

    /// One request on a fresh connection to the peer, and its whole answer (bounded).
    async fn exchange<S>(&self, io: S, peer: &Peer, out: Outgoing<'_>) -> Result<Response, String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        // The connection's task ends with this forward, whichever way it goes.
        let conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let value = header_value(
            &self.replicas.key,
            &self.replicas.name,
            unix_now(),
            out.client,
            out.method.as_str(),
            out.target,
            &out.body,
        );
        let mut req = hyper::Request::builder()
            .method(out.method.clone())
            .uri(out.target)
            .header(header::HOST, &peer.authority)
            .header(&HEADER, value);
        for name in CARRIED {
            for v in out.headers.get_all(name) {
                req = req.header(name, v);
            }
        }
        if let Some(id) = crate::audit::request_id() {
            req = req.header("x-request-id", id);
        }
        let req = req.body(Full::new(out.body)).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("the answer (at most {MAX_ANSWER} bytes): {e}"))?
            .to_bytes();
        drop(conn);
        let mut relayed = Response::new(Body::from(body));
        *relayed.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            if !NOT_RELAYED.contains(&name.as_str()) {
                relayed.headers_mut().append(name.clone(), value.clone());
            }
        }
        tracing::debug!(peer = %peer.name, status = %parts.status, "forwarded");
        Ok(relayed)
    }
}

/// A peer that did not take the connection: its sessionids are as unknown ones (404).
fn gone(peer: &Peer, why: &str) -> ApiError {
    tracing::warn!(peer = %peer.name, "replica unreachable, its sessionid answered 404: {why}");
    metrics::forwarded(Forward::SentUnreachable);
    Failure::UnknownSession.into()
}

/// 504: no whole answer from `peer` within the request's deadline `limit`.
pub fn too_late(peer: &Peer, limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!(
            "no answer from the replica {} that keeps this command session within {limit:?}",
            peer.name
        ),
    )
}

/// How a forward that reached its peer is counted when it ends (dropped by the deadline: a
/// timeout).
struct Sent(Option<Forward>);

impl Sent {
    fn done(&mut self, how: Forward) {
        if self.0.take().is_some() {
            metrics::forwarded(how);
        }
    }

    /// The peer took the connection, then the forward failed: 502.
    fn failed(&mut self, peer: &Peer, why: &str) -> ApiError {
        tracing::warn!(peer = %peer.name, "forward failed: {why}");
        self.done(Forward::SentFailed);
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "replica-unavailable",
            format!(
                "the replica {} that keeps this command session failed to answer; the step \
                 may have run there",
                peer.name
            ),
        )
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        if let Some(how) = self.0.take() {
            metrics::forwarded(how);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::parse_peer;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";
    const T0: u64 = 1_765_000_000;
    const TARGET: &str = "/rest/adhoc/sess-man@example.org?type=json";
    const BODY: &[u8] = br#"{"command":{"sessionid":"gw-1.x.y"}}"#;

    fn replicas(name: &str, peer: &str, secret: &[u8]) -> Replicas {
        Replicas {
            name: name.into(),
            key: Arc::new(ReplicaKey::parse(secret).expect("key")),
            peers: vec![parse_peer(&format!("{peer}=http://127.0.0.1:1")).expect("peer")],
        }
    }

    fn client() -> IpAddr {
        "192.0.2.7".parse().expect("ip")
    }

    /// The headers of a request gw-2 forwards to gw-1 at `ts`.
    fn forwarded_by_gw2(ts: u64, method: &str, target: &str, body: &[u8]) -> HeaderMap {
        let gw2 = replicas("gw-2", "gw-1", SECRET);
        let v = header_value(&gw2.key, "gw-2", ts, client(), method, target, body);
        let mut h = HeaderMap::new();
        h.insert(&HEADER, v.parse().expect("value"));
        h
    }

    fn at_gw1(headers: &HeaderMap, now: u64) -> Check {
        let gw1 = replicas("gw-1", "gw-2", SECRET);
        check(
            Some(&gw1),
            &SeenTags::default(),
            headers,
            "POST",
            TARGET,
            BODY,
            now,
        )
    }

    #[test]
    fn a_forward_is_taken_once_and_a_replay_refused() {
        let gw1 = replicas("gw-1", "gw-2", SECRET);
        let seen = SeenTags::default();
        let h = forwarded_by_gw2(T0, "POST", TARGET, BODY);
        let at = |h: &HeaderMap| check(Some(&gw1), &seen, h, "POST", TARGET, BODY, T0 + 1);
        assert!(matches!(at(&h), Check::Accepted(_)));
        assert_eq!(at(&h), Check::Refused, "the same forward sent again");
        // Another forward of the same request, in the same second, is another tag.
        let later = forwarded_by_gw2(T0, "POST", TARGET, BODY);
        assert!(matches!(at(&later), Check::Accepted(_)));
        // A tag that does not verify is not remembered: it cannot block the real one.
        let other = replicas("gw-1", "gw-2", b"another secret of thirty-two bytes!!");
        let fresh = forwarded_by_gw2(T0 + 2, "POST", TARGET, BODY);
        let seen_other = SeenTags::default();
        let at_other = check(
            Some(&other),
            &seen_other,
            &fresh,
            "POST",
            TARGET,
            BODY,
            T0 + 2,
        );
        assert_eq!(at_other, Check::Refused);
        assert!(seen_other.0.is_empty());
    }

    #[test]
    fn a_signed_forward_is_accepted_within_the_window_only() {
        let h = forwarded_by_gw2(T0, "POST", TARGET, BODY);
        let accepted = Check::Accepted(Forwarded {
            from: "gw-2".into(),
            client: client(),
        });
        assert_eq!(at_gw1(&h, T0), accepted);
        assert_eq!(at_gw1(&h, T0 + WINDOW_SECS), accepted);
        assert_eq!(
            at_gw1(&h, T0 - WINDOW_SECS),
            accepted,
            "clocks a little apart"
        );
        assert_eq!(at_gw1(&h, T0 + WINDOW_SECS + 1), Check::Refused, "stale");
        assert_eq!(at_gw1(&h, T0 - WINDOW_SECS - 1), Check::Refused, "future");
    }

    #[test]
    fn a_forged_or_altered_forward_is_refused() {
        // Another request's header: method, path, query or body differ.
        for h in [
            forwarded_by_gw2(T0, "GET", TARGET, BODY),
            forwarded_by_gw2(T0, "POST", "/rest/adhoc/sess-man@example.org", BODY),
            forwarded_by_gw2(T0, "POST", TARGET, b"{}"),
        ] {
            assert_eq!(at_gw1(&h, T0), Check::Refused);
        }
        let good = forwarded_by_gw2(T0, "POST", TARGET, BODY);
        let value = good
            .get(&HEADER)
            .and_then(|v| v.to_str().ok())
            .expect("value");
        let edit = |from: &str, to: &str| {
            let mut h = HeaderMap::new();
            h.insert(&HEADER, value.replace(from, to).parse().expect("value"));
            h
        };
        // Another client address, another time, another sender, a cut tag, a key of another
        // deployment, an unknown name signed right, a header given twice, a header of nonsense.
        assert_eq!(at_gw1(&edit("192.0.2.7", "192.0.2.8"), T0), Check::Refused);
        assert_eq!(
            at_gw1(&edit(&format!("ts={T0}"), &format!("ts={}", T0 + 1)), T0),
            Check::Refused
        );
        assert_eq!(at_gw1(&edit("from=gw-2", "from=gw-1"), T0), Check::Refused);
        assert_eq!(at_gw1(&edit("; tag=", "; tag=00"), T0), Check::Refused);
        let stranger = replicas("gw-2", "gw-1", OTHER);
        let v = header_value(&stranger.key, "gw-2", T0, client(), "POST", TARGET, BODY);
        let mut h = HeaderMap::new();
        h.insert(&HEADER, v.parse().expect("value"));
        assert_eq!(at_gw1(&h, T0), Check::Refused);
        let ours = replicas("gw-3", "gw-1", SECRET);
        let gw3 = header_value(&ours.key, "gw-3", T0, client(), "POST", TARGET, BODY);
        let mut h = HeaderMap::new();
        h.insert(&HEADER, gw3.parse().expect("value"));
        assert_eq!(at_gw1(&h, T0), Check::Refused);
        let mut twice = good.clone();
        twice.append(&HEADER, value.parse().expect("value"));
        assert_eq!(at_gw1(&twice, T0), Check::Refused);
        for nonsense in [
            "",
            "from=gw-2",
            &format!("{value}; more=1"),
            "tag=ab; from=gw-2",
        ] {
            let mut h = HeaderMap::new();
            h.insert(&HEADER, nonsense.parse().expect("value"));
            assert_eq!(at_gw1(&h, T0), Check::Refused, "{nonsense:?}");
        }
    }

    #[test]
    fn without_the_header_or_without_replicas_the_forwarded_address_is_not_read() {
        // No header: an ordinary request, whatever else it carries.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "192.0.2.7".parse().expect("value"));
        assert_eq!(at_gw1(&h, T0), Check::Absent);
        // A gateway without replicas never reads the header, signed or not.
        let signed = forwarded_by_gw2(T0, "POST", TARGET, BODY);
        assert_eq!(
            check(
                None,
                &SeenTags::default(),
                &signed,
                "POST",
                TARGET,
                BODY,
                T0
            ),
            Check::Absent
        );
    }

    #[tokio::test]
    async fn a_peer_that_refuses_the_connection_makes_its_sessionid_404_at_once() {
        // A port nobody listens on: bound, then closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut gw1 = replicas("gw-1", "gw-2", SECRET);
        gw1.peers = vec![parse_peer(&format!("gw-2=http://127.0.0.1:{port}")).expect("peer")];
        let forwarder = Forwarder::new(Some(&gw1)).expect("forwarder");
        let headers = HeaderMap::new();
        let out = Outgoing {
            method: &Method::POST,
            target: TARGET,
            headers: &headers,
            body: Bytes::from_static(BODY),
            client: client(),
        };
        let started = std::time::Instant::now();
        let e = forwarder.send(&gw1.peers[0], out).await.expect_err("gone");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.condition, "item-not-found");
        assert!(
            started.elapsed() < CONNECT_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    /// A forwarder of gw-1 whose peer gw-2 is a fake at `port`.
    fn forwarder_to(port: u16) -> (Forwarder, Peer) {
        let mut gw1 = replicas("gw-1", "gw-2", SECRET);
        gw1.peers = vec![parse_peer(&format!("gw-2=http://127.0.0.1:{port}")).expect("peer")];
        let peer = gw1.peers[0].clone();
        (Forwarder::new(Some(&gw1)).expect("forwarder"), peer)
    }

    /// A fake peer that reads a request head and answers `answer` raw, then closes.
    async fn fake_peer(answer: Vec<u8>) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = vec![0; 64 * 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&answer).await;
            let _ = s.shutdown().await;
        });
        port
    }

    async fn send_to(forwarder: &Forwarder, peer: &Peer) -> Result<Response, ApiError> {
        let headers = HeaderMap::new();
        let out = Outgoing {
            method: &Method::POST,
            target: TARGET,
            headers: &headers,
            body: Bytes::from_static(BODY),
            client: client(),
        };
        forwarder.send(peer, out).await
    }

    #[tokio::test]
    async fn the_peers_answer_is_relayed_without_hop_by_hop_headers() {
        let answer = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
            connection: close\r\nx-request-id: theirs\r\ncontent-length: 2\r\n\r\n{}"
            .to_vec();
        let (forwarder, peer) = forwarder_to(fake_peer(answer).await);
        let resp = send_to(&forwarder, &peer).await.expect("relayed");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let h = resp.headers();
        assert_eq!(
            h.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        assert!(h.get("connection").is_none() && h.get("x-request-id").is_none());
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"{}");
    }

    #[tokio::test]
    async fn a_peer_that_breaks_off_or_answers_too_much_is_502() {
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"command\"".to_vec();
        let (forwarder, peer) = forwarder_to(fake_peer(cut).await);
        let e = send_to(&forwarder, &peer).await.expect_err("cut");
        assert_eq!(
            (e.status, e.condition.as_str()),
            (StatusCode::BAD_GATEWAY, "replica-unavailable")
        );
        // An answer of the bound is relayed; one byte more is not.
        for (size, relayed) in [(MAX_ANSWER, true), (MAX_ANSWER + 1, false)] {
            let mut answer =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").into_bytes();
            answer.resize(answer.len() + size, b' ');
            let (forwarder, peer) = forwarder_to(fake_peer(answer).await);
            let r = send_to(&forwarder, &peer).await;
            assert_eq!(r.is_ok(), relayed, "{size}");
            if let Err(e) = r {
                assert_eq!(e.status, StatusCode::BAD_GATEWAY);
            }
        }
    }

    #[tokio::test]
    async fn past_the_forwards_in_flight_a_forward_is_503() {
        let (forwarder, peer) = forwarder_to(1);
        let _all = forwarder
            .places
            .clone()
            .try_acquire_many_owned(MAX_FORWARDS as u32)
            .expect("places");
        let e = send_to(&forwarder, &peer).await.expect_err("busy");
        assert_eq!(
            (e.status, e.condition.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
        );
    }
}
