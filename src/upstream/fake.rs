//! A scripted XMPP server for in-process tests: a logged-in stream over an in-memory pipe
//! (`tokio::io::duplex`) whose far end a test drives stanza by stanza ([`FakeServer`]), and a
//! [`FakeUpstream`] that the pool logs in through, counting logins and refusing the passwords
//! it is told to. Nothing here touches the network.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{BufStream, DuplexStream};
use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, FullJid};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::xmlstream::{
    accept_stream, initiate_stream, FallibleStreamElement, PendingFeaturesRecv,
    PendingFeaturesSend, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement,
};
use tokio_xmpp::Stanza;

use super::connect::{stream_timeouts, LoggedIn};
use super::pool::Login;
use super::UpstreamError;

/// The server's end of one c2s stream.
pub(crate) struct FakeServer {
    stream: XmppStream<BufStream<DuplexStream>>,
}

/// A stream bound as `jid` over a pipe holding `buffer` bytes each way, and the server's end.
pub(crate) async fn logged_in(jid: &FullJid, buffer: usize) -> (LoggedIn, FakeServer) {
    logged_in_with(jid, buffer, stream_timeouts()).await
}

/// The same, with the client's read timeouts (when it probes a silent stream, and gives up).
pub(crate) async fn logged_in_with(
    jid: &FullJid,
    buffer: usize,
    timeouts: Timeouts,
) -> (LoggedIn, FakeServer) {
    let (pending, server) = headers(jid, buffer, timeouts).await;
    let client = async {
        let (_, stream) = pending
            .recv_features::<FallibleStreamElement>()
            .await
            .expect("client features");
        stream
    };
    let (stream, server) = tokio::join!(client, server_features(server));
    let logged_in = LoggedIn::new(stream, jid.clone(), timeouts).expect("between stanzas");
    (logged_in, server)
}

/// A stream whose server sends `first` right behind its stream features, before the client
/// reads them: the client's transport then holds `first` read but unparsed when the session
/// takes the stream over from tokio-xmpp.
pub(crate) async fn logged_in_early(jid: &FullJid, first: Iq) -> (LoggedIn, FakeServer) {
    let (pending, server) = headers(jid, 64 * 1024, stream_timeouts()).await;
    let mut server = server_features(server).await;
    server.send(first).await;
    let (_, stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .expect("client features");
    let logged_in = LoggedIn::new(stream, jid.clone(), stream_timeouts()).expect("between stanzas");
    (logged_in, server)
}

/// Both stream headers exchanged over a pipe of `buffer` bytes each way: the client waiting
/// for the features, the server about to send them.
async fn headers(
    jid: &FullJid,
    buffer: usize,
    timeouts: Timeouts,
) -> (
    PendingFeaturesRecv<Box<dyn AsyncReadAndWrite + Send>>,
    PendingFeaturesSend<BufStream<DuplexStream>>,
) {
    let (client, server) = tokio::io::duplex(buffer);
    let domain = jid.domain().to_string();
    let io: Box<dyn AsyncReadAndWrite + Send> = Box::new(BufStream::new(client));
    let client = async {
        let header = StreamHeader {
            to: Some(Cow::Borrowed(domain.as_str())),
            from: None,
            id: None,
        };
        initiate_stream(io, ns::JABBER_CLIENT, header, timeouts)
            .await
            .expect("client stream header")
    };
    let server = async {
        let accepted = accept_stream(BufStream::new(server), ns::JABBER_CLIENT, stream_timeouts())
            .await
            .expect("server stream header");
        let header = StreamHeader {
            from: Some(Cow::Borrowed(domain.as_str())),
            to: None,
            id: Some(Cow::Borrowed("fake-1")),
        };
        accepted.send_header(header).await.expect("server header")
    };
    tokio::join!(client, server)
}

/// The server's (empty) stream features sent: the stream is the fake server's from here.
async fn server_features(pending: PendingFeaturesSend<BufStream<DuplexStream>>) -> FakeServer {
    FakeServer {
        stream: pending
            .send_features::<FallibleStreamElement>(&StreamFeatures::default())
            .await
            .expect("server features"),
    }
}

impl FakeServer {
    /// What the client sent next; `None` at its footer or when the pipe closed.
    pub async fn next(&mut self) -> Option<XmppStreamElement> {
        loop {
            match self.stream.next().await {
                Some(Ok(FallibleStreamElement::Ok(el))) => return Some(el),
                Some(Err(ReadError::SoftTimeout)) => continue,
                Some(Ok(FallibleStreamElement::Err(e))) => panic!("unparseable from client: {e}"),
                Some(Err(ReadError::StreamFooterReceived)) | None => return None,
                Some(Err(e)) => panic!("client stream failed: {e:?}"),
            }
        }
    }

    /// The next IQ the client sent (anything else fails the test).
    pub async fn next_iq(&mut self) -> Iq {
        match self.next().await {
            Some(XmppStreamElement::Stanza(Stanza::Iq(iq))) => iq,
            other => panic!("expected an IQ, got {other:?}"),
        }
    }

    pub async fn send(&mut self, iq: Iq) {
        self.send_stanza(Stanza::Iq(iq)).await;
    }

    /// Sends any stanza (what another entity's message looks like once the server passes it).
    pub async fn send_stanza(&mut self, stanza: Stanza) {
        self.stream
            .send(&XmppStreamElement::Stanza(stanza))
            .await
            .expect("server send");
    }

    /// Sends `</stream:stream>` and closes the server's side.
    pub async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Answers IQs as `behaviour` says until the client is gone.
    pub async fn serve(mut self, behaviour: Behaviour) {
        if behaviour == Behaviour::Deaf {
            // Holds the pipe and reads nothing: the client's writes stall once it is full.
            let _held = self;
            return std::future::pending().await;
        }
        while let Some(el) = self.next().await {
            let delay = match behaviour {
                Behaviour::Answer => Duration::ZERO,
                Behaviour::AnswerAfter(d) => d,
                _ => continue,
            };
            if let XmppStreamElement::Stanza(Stanza::Iq(iq)) = el {
                if let Some(answer) = result_for(&iq) {
                    tokio::time::sleep(delay).await;
                    self.send(answer).await;
                }
            }
        }
        match behaviour {
            Behaviour::Answer | Behaviour::AnswerAfter(_) => self.close().await,
            _ => {
                let _held = self;
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The empty result a server would send for a get or set, from whom it was sent to.
pub(crate) fn result_for(iq: &Iq) -> Option<Iq> {
    match iq {
        Iq::Get { to, id, .. } | Iq::Set { to, id, .. } => Some(Iq::Result {
            from: to.clone(),
            to: None,
            id: id.clone(),
            payload: None,
        }),
        _ => None,
    }
}

/// How a fake server treats the client once logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Answers every IQ with an empty result and the footer with its own.
    Answer,
    /// The same, each answer this long after its request.
    AnswerAfter(Duration),
    /// Reads everything, answers nothing, never closes.
    Mute,
    /// Reads nothing more.
    Deaf,
}

/// Pipe size for the fakes' streams: roomy, except for a deaf server, whose pipe a single
/// large IQ fills.
fn buffer(behaviour: Behaviour) -> usize {
    match behaviour {
        Behaviour::Deaf => 512,
        _ => 64 * 1024,
    }
}

/// An upstream the pool logs in through: every login gets a fake server behaving as told.
pub(crate) struct FakeUpstream {
    logins: AtomicU64,
    refused: Mutex<HashSet<String>>,
    behaviour: Mutex<Behaviour>,
    delay: Mutex<Duration>,
    under_way: Mutex<HashMap<BareJid, usize>>,
    /// The most logins seen under way at once for one account.
    most_at_once: AtomicUsize,
}

impl FakeUpstream {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            logins: AtomicU64::new(0),
            refused: Mutex::new(HashSet::new()),
            behaviour: Mutex::new(Behaviour::Answer),
            delay: Mutex::new(Duration::ZERO),
            under_way: Mutex::new(HashMap::new()),
            most_at_once: AtomicUsize::new(0),
        })
    }

    /// Logins attempted, refused ones included.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::SeqCst)
    }

    /// From now on, `password` fails SASL.
    pub fn refuse(&self, password: &str) {
        self.refused.lock().unwrap().insert(password.to_string());
    }

    /// How the servers of later logins behave.
    pub fn set_behaviour(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// How long each later login takes.
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    pub fn most_at_once(&self) -> usize {
        self.most_at_once.load(Ordering::SeqCst)
    }

    fn enter(&self, account: &BareJid) {
        let mut u = self.under_way.lock().unwrap();
        let n = u.entry(account.clone()).or_default();
        *n += 1;
        self.most_at_once.fetch_max(*n, Ordering::SeqCst);
    }

    fn leave(&self, account: &BareJid) {
        if let Some(n) = self.under_way.lock().unwrap().get_mut(account) {
            *n -= 1;
        }
    }
}

impl Login for Arc<FakeUpstream> {
    fn login(
        &self,
        account: &BareJid,
        password: &str,
        resource: &str,
    ) -> impl Future<Output = Result<LoggedIn, UpstreamError>> + Send {
        let (fake, account, password) = (self.clone(), account.clone(), password.to_string());
        let jid = account.with_resource_str(resource).expect("resource");
        async move {
            fake.logins.fetch_add(1, Ordering::SeqCst);
            fake.enter(&account);
            let delay = *fake.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            fake.leave(&account);
            if fake.refused.lock().unwrap().contains(&password) {
                return Err(UpstreamError::AuthFailed("not-authorized".into()));
            }
            let behaviour = *fake.behaviour.lock().unwrap();
            let (logged_in, server) = logged_in(&jid, buffer(behaviour)).await;
            tokio::spawn(server.serve(behaviour));
            Ok(logged_in)
        }
    }
}

/// The pool settings the upstream tests start from (each overrides what it is about).
pub(crate) fn pool_config() -> crate::config::PoolConfig {
    crate::config::PoolConfig {
        reauth_interval: Duration::from_secs(300),
        max_sessions: 10,
        session_in_flight: 8,
        max_in_flight_per_account: 4,
        max_logins: 4,
        eviction_drain: Duration::from_secs(30),
        max_stanza_bytes: crate::upstream::session::DEFAULT_MAX_STANZA,
    }
}
