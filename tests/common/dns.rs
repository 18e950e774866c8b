//! A DNS responder on loopback for the tests: answers from a table the test gives (SRV, A,
//! NXDOMAIN, an empty answer, silence, bytes that are no DNS message), over UDP and TCP on one
//! random port of 127.0.0.1. An answer too large for the query's UDP payload goes out
//! truncated (TC) over UDP and whole over TCP, as a real server does. It runs on a thread and
//! a runtime of its own, so a test's paused clock does not touch it; dropping it stops it.
//!
//! Shared by the e2e harness (`tests/common`) and the unit tests of `upstream::srv`
//! (`#[path]`), so it names nothing of either.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// One SRV record of an answer.
#[derive(Debug, Clone)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// As written in a zone file: `xmpp1.example.` (absolute), or `.` for "no service".
    pub target: String,
}

impl Srv {
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.to_string(),
        }
    }
}

/// What the responder answers for a name.
#[derive(Debug, Clone)]
pub enum Answer {
    /// SRV records, all with this TTL.
    Srv { ttl: u32, records: Vec<Srv> },
    /// A records.
    A { ttl: u32, addrs: Vec<Ipv4Addr> },
    /// NXDOMAIN.
    NxDomain,
    /// NOERROR without records.
    Empty,
    /// SERVFAIL.
    ServFail,
    /// Nothing, ever.
    Silent,
    /// A response header with this query's id, then these bytes.
    Garbage(Vec<u8>),
}

/// The responder; stops when dropped.
pub struct DnsResponder {
    addr: SocketAddr,
    table: Arc<Mutex<HashMap<String, Answer>>>,
    queries: Queries,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A name as the table keys it: lower case, absolute.
fn key(name: &str) -> String {
    let mut k = name.to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

impl DnsResponder {
    /// Starts answering `table` (name -> answer; names not in it get NXDOMAIN).
    pub fn start(table: impl IntoIterator<Item = (String, Answer)>) -> DnsResponder {
        let table: HashMap<String, Answer> = table.into_iter().map(|(n, a)| (key(&n), a)).collect();
        let table = Arc::new(Mutex::new(table));
        let queries = Queries::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        let (t, q) = (table.clone(), queries.clone());
        let thread = std::thread::Builder::new()
            .name("dns-responder".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the responder's runtime");
                rt.block_on(async move {
                    let (udp, tcp) = bind_both().await;
                    bound.send(udp.local_addr().expect("its address")).ok();
                    tokio::select! {
                        _ = serve_udp(udp, t.clone(), q.clone()) => {}
                        _ = serve_tcp(tcp, t, q) => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("the responder's thread");
        let addr = addr.recv().expect("the responder bound its port");
        DnsResponder {
            addr,
            table,
            queries,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address to give as `--dns-server`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far, over UDP and TCP: a query the client sent again over the
    /// same transport (hickory repeats a UDP query unanswered after 333 ms, which a loaded
    /// machine can make happen) counts once.
    pub fn queries(&self) -> usize {
        self.queries.lock().map_or(0, |q| q.len())
    }

    /// Answers `name` with `answer` from now on.
    pub fn set(&self, name: &str, answer: Answer) {
        self.table
            .lock()
            .expect("the table")
            .insert(key(name), answer);
    }
}

/// A UDP socket and a TCP listener on one port of 127.0.0.1: a free UDP port is not always
/// free over TCP, so a few are tried.
async fn bind_both() -> (UdpSocket, TcpListener) {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("a UDP port");
        let port = udp.local_addr().expect("its address").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port of 127.0.0.1 free over both UDP and TCP in 100 tries");
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// The queries seen, by message id and transport.
type Queries = Arc<Mutex<HashSet<(u16, Transport)>>>;

fn seen(queries: &Queries, query: &[u8], transport: Transport) {
    if let (Some(&[a, b]), Ok(mut q)) = (query.first_chunk::<2>(), queries.lock()) {
        q.insert((u16::from_be_bytes([a, b]), transport));
    }
}

async fn serve_udp(udp: UdpSocket, table: Arc<Mutex<HashMap<String, Answer>>>, queries: Queries) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            continue;
        };
        seen(&queries, &buf[..n], Transport::Udp);
        if let Some(reply) = respond(&buf[..n], &table, Transport::Udp) {
            udp.send_to(&reply, from).await.ok();
        }
    }
}

async fn serve_tcp(tcp: TcpListener, table: Arc<Mutex<HashMap<String, Answer>>>, queries: Queries) {
    loop {
        let Ok((conn, _)) = tcp.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(conn, table.clone(), queries.clone()));
    }
}

async fn serve_connection(
    mut conn: TcpStream,
    table: Arc<Mutex<HashMap<String, Answer>>>,
    queries: Queries,
) {
    loop {
        let Ok(len) = conn.read_u16().await else {
            return;
        };
        let mut query = vec![0u8; usize::from(len)];
        if conn.read_exact(&mut query).await.is_err() {
            return;
        }
        seen(&queries, &query, Transport::Tcp);
        let Some(reply) = respond(&query, &table, Transport::Tcp) else {
            continue; // silent: the client's timeout ends it
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        if conn.write_u16(len).await.is_err() || conn.write_all(&reply).await.is_err() {
            return;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Transport {
    Udp,
    Tcp,
}

/// A name as it may travel on the wire: `.`-separated labels taken as bytes, whatever they
/// hold (a hostile server's `-a` or `_x` too); absolute.
pub fn wire_name(written: &str) -> Option<Name> {
    let labels: Vec<&[u8]> = written
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::as_bytes)
        .collect();
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The reply's bytes, or `None` to stay silent.
fn respond(
    query: &[u8],
    table: &Mutex<HashMap<String, Answer>>,
    transport: Transport,
) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let answer = table
        .lock()
        .ok()?
        .get(&key(&question.name().to_ascii()))
        .cloned()
        .unwrap_or(Answer::NxDomain);
    let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.add_query(question.clone());
    let name = question.name().clone();
    match (answer, question.query_type()) {
        (Answer::Silent, _) => return None,
        (Answer::Garbage(bytes), _) => {
            let mut raw = reply.to_vec().ok()?;
            raw.truncate(12); // the header alone
            raw.extend_from_slice(&bytes);
            return Some(raw);
        }
        (Answer::NxDomain, _) => reply.metadata.response_code = ResponseCode::NXDomain,
        (Answer::ServFail, _) => reply.metadata.response_code = ResponseCode::ServFail,
        (Answer::Empty, _) => {}
        (Answer::Srv { ttl, records }, RecordType::SRV) => {
            for r in records {
                let target = wire_name(&r.target)?;
                reply.add_answer(Record::from_rdata(
                    name.clone(),
                    ttl,
                    RData::SRV(SRV::new(r.priority, r.weight, r.port, target)),
                ));
            }
        }
        (Answer::A { ttl, addrs }, RecordType::A) => {
            for a in addrs {
                reply.add_answer(Record::from_rdata(name.clone(), ttl, RData::A(A(a))));
            }
        }
        // The name exists, not with this type.
        (Answer::Srv { .. } | Answer::A { .. }, _) => {}
    }
    // Encoded whole (hickory's encoder would stop at the EDNS payload size, mid-record), then,
    // over UDP, the header and question alone with TC when it does not fit, as a server does;
    // over TCP the whole message (up to 64 KiB).
    let mut whole = request.edns.clone().unwrap_or_default();
    whole.set_max_payload(u16::MAX);
    reply.set_edns(whole);
    let bytes = reply.to_vec().ok()?;
    let room = request
        .edns
        .as_ref()
        .map_or(512, |e| usize::from(e.max_payload()).max(512));
    if transport == Transport::Udp && bytes.len() > room {
        let mut truncated = reply.truncate();
        truncated.edns = request.edns.clone();
        return truncated.to_vec().ok();
    }
    Some(bytes)
}
