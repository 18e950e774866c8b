//! A loopback proxy between the gateway and a server's c2s port that reads the (plaintext,
//! `--upstream-tls none`) stream as it passes, so that tests check what the server really
//! received rather than the gateway's word: the ad-hoc commands the gateway sent, how many of
//! its IQs were awaiting answers at once, and the JID the server bound. It can also cut every
//! connection (what a server restart looks like from the gateway) and slip a forged stanza to
//! the gateway just before its next command reaches the server (what another account can do).
//! A test that puts a numbered mark in each request (e.g. the account a user-stats asks about)
//! learns which of its requests reached this server, and how many times
//! ([`XmppProxy::record_marks`], [`XmppProxy::mark_counts`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A function of the command IQ's id and the gateway's bound JID that returns the stanza to
/// slip to the gateway before that IQ reaches the server.
pub type Forger = Box<dyn Fn(&str, &str) -> String + Send>;

/// What the proxy saw, over every connection it relayed.
#[derive(Default)]
pub struct Seen {
    /// Ad-hoc `<command/>` payloads the gateway sent to the server.
    pub commands: usize,
    /// IQ requests (`get`, `set`) the gateway sent: bind and session ones included.
    pub iqs: usize,
    /// IQ requests of the gateway awaiting the server's answer, now and at most.
    outstanding: HashSet<String>,
    pub max_outstanding: usize,
    /// The full JID the server bound for the gateway (the last one).
    pub bound: Option<String>,
    /// Forged stanzas slipped to the gateway.
    pub forged: usize,
    /// Connections the gateway opened (one per login).
    pub connections: usize,
    /// When each connection that became a login (the server bound a JID on it) was opened.
    pub logins: Vec<Instant>,
    /// When the server's side of a connection ended (closed, reset, or a node that died).
    pub server_ended: Vec<Instant>,
    /// The marks found in what the gateway sent, in order (see [`XmppProxy::record_marks`]):
    /// only the marks are kept, never the stream.
    pub marks: Vec<String>,
    /// Ids of the IQ answers (`result` or `error`) the gateway sent.
    pub answered: Vec<String>,
    /// Stream footers (`</stream:stream>`) the gateway sent: streams it closed properly.
    pub stream_ends: usize,
    /// Connections relayed now, and those the gateway closed (its socket, read to the end).
    live: usize,
    pub closed_by_gateway: usize,
    /// Connections that have ended, whichever side ended them.
    pub ended: usize,
}

type GatewayWriter = Arc<tokio::sync::Mutex<OwnedWriteHalf>>;

struct Shared {
    seen: Mutex<Seen>,
    /// The prefix of the marks to record, once a test asked.
    mark_prefix: Mutex<Option<String>>,
    forger: Mutex<Option<Forger>>,
    cut: Notify,
    /// The gateway side of the newest connection, for injections.
    newest: Mutex<Option<GatewayWriter>>,
    /// The gateway side of every connection so far (writes to closed ones fail, unheeded).
    writers: Mutex<Vec<GatewayWriter>>,
}

/// The running proxy; dropping it stops accepting (connections in progress end with it).
pub struct XmppProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

const COMMANDS_NS: [&str; 2] = [
    "xmlns='http://jabber.org/protocol/commands'",
    "xmlns=\"http://jabber.org/protocol/commands\"",
];
const STREAM_END: &str = "</stream:stream>";

/// A gateway whose c2s stream passes through a reading proxy (`--upstream-tls none`), with
/// `extra` flags.
pub async fn proxied(s: &super::TestServer, extra: &[&str]) -> (XmppProxy, super::TestGateway) {
    let proxy = XmppProxy::start(s.c2s_addr()).await;
    let upstream = proxy.addr.to_string();
    let mut args = vec!["--upstream", upstream.as_str(), "--upstream-tls", "none"];
    args.extend_from_slice(extra);
    let gw = super::TestGateway::start(s, &args);
    (proxy, gw)
}

impl XmppProxy {
    pub async fn start(upstream: SocketAddr) -> XmppProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            mark_prefix: Mutex::new(None),
            forger: Mutex::new(None),
            cut: Notify::new(),
            newest: Mutex::new(None),
            writers: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, s).await;
                    }
                });
            }
        });
        XmppProxy { addr, shared, task }
    }

    /// Runs `f` on what the proxy saw so far.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.shared.seen.lock().unwrap())
    }

    /// Commands seen so far (a baseline to subtract).
    pub fn commands(&self) -> usize {
        self.seen(|s| s.commands)
    }

    /// Waits until `done` holds of what the proxy saw; panics naming `what` after `limit`.
    pub async fn await_seen(&self, what: &str, limit: Duration, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + limit;
        while !self.seen(&done) {
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// From now on, records in [`Seen::marks`] every `prefix` followed by digits (e.g.
    /// `mark17`) in what the gateways send the server, found whole when a stanza arrives in
    /// pieces: with a mark of its own in each request, a test sees which requests reached this
    /// server and that none did twice. Call it before the first such request is sent.
    pub fn record_marks(&self, prefix: &str) {
        assert!(!prefix.is_empty() && !prefix.ends_with(|c: char| c.is_ascii_digit()));
        *self.shared.mark_prefix.lock().unwrap() = Some(prefix.to_owned());
    }

    /// How many times each mark recorded so far reached the server (see [`record_marks`]).
    ///
    /// [`record_marks`]: Self::record_marks
    pub fn mark_counts(&self) -> HashMap<String, usize> {
        self.seen(|s| {
            let mut counts = HashMap::new();
            for m in &s.marks {
                *counts.entry(m.clone()).or_default() += 1;
            }
            counts
        })
    }

    /// Connections the gateway opened so far: one per login, refused ones included.
    pub fn connections(&self) -> usize {
        self.seen(|s| s.connections)
    }

    /// Forgets the in-flight maximum, to measure one request's.
    pub fn reset_max_outstanding(&self) {
        let mut s = self.shared.seen.lock().unwrap();
        s.max_outstanding = s.outstanding.len();
    }

    /// Before the gateway's next command IQ is passed on, sends the gateway `forger(id, jid)`.
    pub fn forge_next(&self, forger: Forger) {
        *self.shared.forger.lock().unwrap() = Some(forger);
    }

    /// Sends `stanza` to the gateway on the newest connection, as if the server routed it.
    pub async fn inject(&self, stanza: &str) {
        let writer = self.shared.newest.lock().unwrap().clone();
        let writer = writer.expect("no connection to inject into");
        writer
            .lock()
            .await
            .write_all(stanza.as_bytes())
            .await
            .expect("injecting");
    }

    /// Cuts every connection in progress, as a server that vanished would.
    pub fn cut(&self) {
        self.shared.cut.notify_waiters();
    }

    /// Ends every stream as a server shutting down does (a `system-shutdown` stream error and
    /// the footer), waits until each of those connections has ended (the gateway closes one
    /// once it has noticed the stream is over), then cuts them. Returns how many there were;
    /// panics if they have not all ended within 10 s.
    pub async fn shut_down(&self) -> usize {
        const BYE: &str = "<stream:error><system-shutdown \
            xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";
        let (live, ended) = self.seen(|s| (s.live, s.ended));
        let writers = self.shared.writers.lock().unwrap().clone();
        for w in writers {
            let _ = w.lock().await.write_all(BYE.as_bytes()).await;
        }
        let what = format!("the gateway closing {live} streams the server ended");
        let limit = Duration::from_secs(10);
        // A stream the server was already ending counts once it has ended (Prosody ends an
        // account's streams when its password changes, and that may still be under way).
        self.await_seen(&what, limit, |s| s.ended >= ended + live)
            .await;
        self.cut();
        live
    }
}

impl Drop for XmppProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.cut.notify_waiters();
    }
}

async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let opened = Instant::now();
    let to_gateway = Arc::new(tokio::sync::Mutex::new(client_write));
    *shared.newest.lock().unwrap() = Some(to_gateway.clone());
    shared.writers.lock().unwrap().push(to_gateway.clone());
    {
        let mut seen = shared.seen.lock().unwrap();
        seen.connections += 1;
        seen.live += 1;
    }
    let cut = shared.cut.notified();
    let ours = to_gateway.clone();
    let up = upward(
        client_read,
        server_write,
        to_gateway.clone(),
        shared.clone(),
    );
    let closed_by_gateway = tokio::select! {
        closed = up => closed,
        _ = downward(server_read, to_gateway, shared.clone(), opened) => false,
        _ = cut => false,
    };
    // The gateway's side ends with the server's, as if the server's own socket closed: the
    // write half is held for injections too, so dropping this task's would not close it.
    let _ = ours.lock().await.shutdown().await;
    let mut seen = shared.seen.lock().unwrap();
    seen.live -= 1;
    seen.closed_by_gateway += usize::from(closed_by_gateway);
    seen.ended += 1;
}

/// Gateway -> server: counts commands and IQ requests, records marks, and slips in forgeries. Returns
/// whether the gateway closed the connection (rather than the server side failing).
async fn upward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    to_gateway: GatewayWriter,
    shared: Arc<Shared>,
) -> bool {
    let mut scan = TagScanner::default();
    let (mut commands_carry, mut ends_carry) = (String::new(), String::new());
    let mut marks_carry = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let iqs = scan.iq_tags(&text);
        let commands = count_new(&mut commands_carry, &text, &COMMANDS_NS);
        let stream_ends = count_new(&mut ends_carry, &text, &[STREAM_END]);
        let prefix = shared.mark_prefix.lock().unwrap().clone();
        let marks = prefix.map_or_else(Vec::new, |p| marks_new(&mut marks_carry, &text, &p));
        let mut forgery = None;
        {
            let mut seen = shared.seen.lock().unwrap();
            seen.marks.extend(marks);
            seen.commands += commands;
            seen.stream_ends += stream_ends;
            for tag in &iqs {
                let Some(id) = attr(tag, "id") else { continue };
                match attr(tag, "type").as_deref() {
                    Some("get" | "set") => {
                        seen.iqs += 1;
                        seen.outstanding.insert(id);
                    }
                    Some("result" | "error") => seen.answered.push(id),
                    _ => {}
                }
            }
            seen.max_outstanding = seen.max_outstanding.max(seen.outstanding.len());
            if commands > 0 {
                let forger = shared.forger.lock().unwrap().take();
                if let (Some(forger), Some(bound)) = (forger, seen.bound.clone()) {
                    let id = iqs.iter().find_map(|t| attr(t, "id")).unwrap_or_default();
                    forgery = Some(forger(&id, &bound));
                    seen.forged += 1;
                }
            }
        }
        if let Some(f) = forgery {
            let mut g = to_gateway.lock().await;
            if g.write_all(f.as_bytes()).await.is_err() {
                return false;
            }
            // Written before the command reaches the server, so the real answer can only
            // come after it on the same stream.
            drop(g);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

/// Server -> gateway: notes answers and the bound JID (and so a login, on a connection
/// `opened` then).
async fn downward(
    mut from: OwnedReadHalf,
    to: GatewayWriter,
    shared: Arc<Shared>,
    opened: Instant,
) {
    let mut scan = TagScanner::default();
    let mut text_so_far = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                shared
                    .seen
                    .lock()
                    .unwrap()
                    .server_ended
                    .push(Instant::now());
                return;
            }
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        {
            let mut seen = shared.seen.lock().unwrap();
            for tag in scan.iq_tags(&text) {
                if matches!(attr(&tag, "type").as_deref(), Some("result" | "error")) {
                    if let Some(id) = attr(&tag, "id") {
                        seen.outstanding.remove(&id);
                    }
                }
            }
            if seen.bound.is_none() || text.contains("<jid>") {
                text_so_far.push_str(&text);
                if let Some(jid) = between(&text_so_far, "<jid>", "</jid>") {
                    seen.bound = Some(jid);
                    seen.logins.push(opened);
                    text_so_far.clear();
                }
            }
        }
        if to.lock().await.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Matches of any of `needles` in a stream read in pieces that end in `text` (the new piece),
/// with `carry` the end of the pieces before it.
fn count_new(carry: &mut String, text: &str, needles: &[&str]) -> usize {
    let joined = format!("{carry}{text}");
    let old = carry.len();
    let count = needles
        .iter()
        .flat_map(|n| joined.match_indices(n).map(move |(i, _)| i + n.len()))
        .filter(|end| *end > old)
        .count();
    let keep = needles.iter().map(|n| n.len()).max().unwrap_or(1) - 1;
    let mut start = joined.len().saturating_sub(keep);
    while !joined.is_char_boundary(start) {
        start -= 1;
    }
    *carry = joined[start..].to_string();
    count
}

/// The marks (`prefix` and the digits after it) in a stream read in pieces that end in `text`,
/// with `carry` what of the pieces before it may begin one.
fn marks_new(carry: &mut String, text: &str, prefix: &str) -> Vec<String> {
    let joined = format!("{carry}{text}");
    let mut marks = Vec::new();
    let mut from = 0;
    while let Some(i) = joined[from..].find(prefix).map(|i| from + i) {
        let digits = joined[i + prefix.len()..]
            .find(|c: char| !c.is_ascii_digit())
            .map(|n| i + prefix.len() + n);
        match digits {
            // At the end of what was read so far, the mark may go on in the next piece.
            None => {
                *carry = joined[i..].to_string();
                return marks;
            }
            Some(end) => {
                if end > i + prefix.len() {
                    marks.push(joined[i..end].to_string());
                }
                from = end;
            }
        }
    }
    let mut start = joined.len().saturating_sub(prefix.len() - 1).max(from);
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    *carry = joined[start..].to_string();
    marks
}

/// Finds whole `<iq …>` start tags in a stream read in pieces.
#[derive(Default)]
struct TagScanner {
    carry: String,
}

impl TagScanner {
    fn iq_tags(&mut self, chunk: &str) -> Vec<String> {
        self.carry.push_str(chunk);
        let mut tags = Vec::new();
        let mut rest = self.carry.as_str();
        loop {
            let Some(start) = rest.find("<iq") else {
                // Keep a possible split "<i" for the next piece.
                let keep = rest.len().saturating_sub(3);
                let keep = (keep..=rest.len())
                    .find(|i| rest.is_char_boundary(*i))
                    .unwrap_or(rest.len());
                rest = &rest[keep..];
                break;
            };
            let after = &rest[start..];
            match after.find('>') {
                Some(end) => {
                    tags.push(after[..=end].to_string());
                    rest = &after[end + 1..];
                }
                None => {
                    rest = after;
                    break;
                }
            }
        }
        self.carry = rest.to_string();
        tags
    }
}

/// The value of attribute `name` in a start tag, either quote.
fn attr(tag: &str, name: &str) -> Option<String> {
    for q in ['\'', '"'] {
        let key = format!(" {name}={q}");
        if let Some(i) = tag.find(&key) {
            let v = &tag[i + key.len()..];
            return v.find(q).map(|end| v[..end].to_string());
        }
    }
    None
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)?;
    Some(text[start..start + end].to_string())
}

#[cfg(test)]
mod tests {
    use super::marks_new;

    #[test]
    fn marks_are_found_across_the_pieces_a_stream_is_read_in() {
        let stream = "<value>mark12@d</value><value>mark3</value>marks mark<x>mark456";
        let whole = marks_new(&mut String::new(), &format!("{stream}<"), "mark");
        assert_eq!(whole, ["mark12", "mark3", "mark456"]);
        for cut in 0..stream.len() {
            let mut carry = String::new();
            let mut found = marks_new(&mut carry, &stream[..cut], "mark");
            found.extend(marks_new(&mut carry, &stream[cut..], "mark"));
            found.extend(marks_new(&mut carry, "<", "mark"));
            assert_eq!(found, whole, "cut at {cut}");
        }
    }
}
