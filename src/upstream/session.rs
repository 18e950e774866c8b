//! One logged-in c2s stream with many IQs in flight. A single task owns the stream: it writes
//! what callers queue, matches replies to waiters, answers the server's pings, probes an idle
//! stream, and when the stream dies fails every waiter at once. Dropping the last handle
//! closes the stream with `</stream:stream>`.
//!
//! Other accounts can send stanzas to the gateway's resource, so nothing arriving is trusted
//! for being there: a reply is accepted only from the JID its request went to, under an id
//! nobody can guess (random per stream and per IQ); IQ requests are answered only for the
//! server. Anything else is dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::jid::{FullJid, Jid};
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::presence::{self, Presence};
use tokio_xmpp::parsers::stanza_error::StanzaError;
use tokio_xmpp::Stanza;

use super::connect::LoggedIn;
use super::UpstreamError;
use driver::{Driver, Reply};

mod driver;
mod frame;
pub mod own;
mod send;
mod stanza;
mod trust;

/// The messages a test client's stream received, in order, once it asked to keep them
/// ([`AdminSession::keep_messages`]); until then (and always on the gateway's own streams)
/// messages are dropped and counted like any unsolicited stanza.
#[cfg(feature = "test-client")]
type Inbox = Arc<std::sync::Mutex<Option<Vec<tokio_xmpp::parsers::message::Message>>>>;
#[cfg(test)]
mod bytes_tests;
#[cfg(test)]
mod tests;

/// The largest stanza written when the session is not told otherwise: under Prosody's and
/// ejabberd's default c2s limits (256 KiB each), which end the stream of a client that writes
/// a larger one (`--max-stanza-bytes`).
pub const DEFAULT_MAX_STANZA: usize = 240 * 1024;

/// How long `close` waits for the stream to end (the driver's own polite close takes at most
/// [`driver::FOOTER_WAIT`]); past it the driver is stopped and the stream dropped unclosed.
pub const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// How a close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The driver sent `</stream:stream>` and stopped within [`CLOSE_BOUND`].
    Closed,
    /// It did not (the server stopped reading, or the queue was stuck): the driver was
    /// stopped and the connection dropped without a footer.
    Abandoned,
}

/// The answer to an IQ: its payload on success, the stanza error otherwise.
#[derive(Debug, Clone)]
pub enum IqReply {
    Result(Option<Element>),
    /// The error; the echoed request some servers add (ejabberd's, passwords included) is
    /// dropped here so that nothing downstream can leak it.
    Error(Box<StanzaError>),
}

/// Whether an IQ reads or changes.
#[derive(Debug, Clone, Copy)]
pub enum IqKind {
    Get,
    Set,
}

/// One IQ to send, already written, and where its answer goes.
struct OutIq {
    to: Jid,
    /// Its id (random, see `trust::fresh_id`), under which the answer is awaited.
    id: String,
    bytes: Vec<u8>,
    reply: Reply,
    /// Its place among the stream's IQs in flight, given back when the answer comes.
    permit: OwnedSemaphorePermit,
}

/// A stanza the gateway may write without awaiting an answer: a message, or a subscription
/// presence. Never an available, unavailable or directed presence, which would make the
/// account's shared stream receive messages or reveal its resource: the type cannot hold one.
#[derive(Debug)]
pub struct OneWay(Box<Stanza>);

impl OneWay {
    /// A message, sent as the account (its `from` is left to the server).
    pub fn message(mut message: Message) -> OneWay {
        message.from = None;
        OneWay(Box::new(Stanza::Message(message)))
    }

    /// A presence of type subscribe, subscribed, unsubscribe or unsubscribed with a `to`;
    /// nothing for anything else.
    pub fn subscription(mut p: Presence) -> Option<OneWay> {
        use presence::Type;
        let subscription = matches!(
            p.type_,
            Type::Subscribe | Type::Subscribed | Type::Unsubscribe | Type::Unsubscribed
        );
        if !subscription || p.to.is_none() {
            return None;
        }
        p.from = None;
        Some(OneWay(Box::new(Stanza::Presence(p))))
    }
}

enum Outgoing {
    /// IQs written back to back, in this order, in one flush.
    Iqs(Vec<OutIq>),
    /// One stanza already written (a [`OneWay`]'s bytes); `written` is answered once it is
    /// flushed to the server.
    OneWay(Vec<u8>, oneshot::Sender<()>),
    /// Only test clients send presence (the `test-client` feature): the gateway's own
    /// streams never do, and its binary cannot.
    #[cfg(feature = "test-client")]
    Presence(Presence),
    Close(oneshot::Sender<()>),
}

/// A handle on one c2s stream of one account.
pub struct AdminSession {
    jid: FullJid,
    tx: mpsc::Sender<Outgoing>,
    /// IQs awaiting an answer at once on this stream; further ones queue here, one place per
    /// IQ, each given back when its answer comes.
    in_flight: Arc<Semaphore>,
    /// How many places `in_flight` has in all.
    places: u32,
    /// The largest stanza written, in bytes as written: a larger one is refused before it is
    /// queued, since the server would end the whole stream for it.
    max_stanza: usize,
    alive: Arc<AtomicBool>,
    /// Stanzas dropped because they did not come from whom the gateway asked.
    dropped: Arc<AtomicU64>,
    closed: watch::Receiver<bool>,
    /// Stops the driver when a close does not finish in time.
    driver: AbortHandle,
    #[cfg(feature = "test-client")]
    inbox: Inbox,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("account", &self.jid.to_bare())
            .finish_non_exhaustive()
    }
}

/// Whether a stream that died of `e` died with its server (rather than for its account: a
/// stream error such as `conflict` or `not-authorized` is the server, alive, ending one stream).
fn server_gone(e: &UpstreamError) -> bool {
    match e {
        UpstreamError::Closed(_) | UpstreamError::Stream(_) | UpstreamError::Unreachable(_) => true,
        UpstreamError::StreamError { condition, .. } => {
            matches!(
                condition.as_str(),
                "system-shutdown" | "remote-connection-failed"
            )
        }
        _ => false,
    }
}

impl AdminSession {
    /// Takes over a logged-in stream and starts the task that drives it; at most
    /// `max_in_flight` IQs await answers at once, later ones wait their turn.
    pub fn start(logged_in: LoggedIn, max_in_flight: usize) -> Self {
        let places = u32::try_from(max_in_flight.max(2)).unwrap_or(u32::MAX);
        let (tx, rx) = mpsc::channel(1024);
        let alive = Arc::new(AtomicBool::new(true));
        let dropped = Arc::new(AtomicU64::new(0));
        let (closed_tx, closed) = watch::channel(false);
        let driver = Driver::new(
            logged_in.io,
            logged_in.jid.clone(),
            logged_in.timeouts,
            rx,
            alive.clone(),
            dropped.clone(),
        );
        #[cfg(feature = "test-client")]
        let inbox = driver.inbox.clone();
        let own = own::Own::register(&logged_in.jid);
        let on = logged_in.on;
        let task = tokio::spawn(async move {
            // Known as the gateway's own until the driver has let the stream go.
            let _own = own;
            let died = driver.run().await;
            if let (Some(on), Some(e)) = (&on, died) {
                if server_gone(&e) {
                    on.lost();
                }
            }
            // Counted among its upstream's streams until here.
            drop(on);
            let _ = closed_tx.send(true);
        });
        Self {
            jid: logged_in.jid,
            tx,
            in_flight: Arc::new(Semaphore::new(places as usize)),
            places,
            max_stanza: DEFAULT_MAX_STANZA,
            alive,
            dropped,
            closed,
            driver: task.abort_handle(),
            #[cfg(feature = "test-client")]
            inbox,
        }
    }

    /// Refuses to write any stanza over `max` bytes as written (the server's c2s limit, less a
    /// margin); [`DEFAULT_MAX_STANZA`] until told.
    pub fn with_max_stanza(mut self, max: usize) -> Self {
        self.max_stanza = max;
        self
    }

    /// `Err(TooLarge)` when `bytes` are more than the server takes in one stanza.
    fn fits(&self, bytes: &[u8]) -> Result<(), UpstreamError> {
        if bytes.len() > self.max_stanza {
            return Err(UpstreamError::TooLarge {
                size: bytes.len(),
                max: self.max_stanza,
            });
        }
        Ok(())
    }

    /// The full JID of this stream.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// Stanzas dropped so far because they came from someone the gateway did not ask (forged
    /// replies, requests from other accounts).
    pub fn dropped_stanzas(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// False once the stream is known dead or closing.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Sends an IQ and waits for its answer. Fails at once when the stream dies; the caller
    /// bounds the wait.
    pub async fn iq(
        &self,
        to: Jid,
        kind: IqKind,
        payload: Element,
    ) -> Result<IqReply, UpstreamError> {
        let mut replies = self.iqs(vec![(to, kind, payload)]).await?;
        replies
            .pop()
            .unwrap_or_else(|| Err(UpstreamError::Closed("no answer".into())))
    }

    /// Writes one message or subscription presence; returns once it is flushed to the server
    /// (nothing comes back for it). It is written here, on the caller's task, and refused
    /// (`TooLarge`, nothing sent) when it is over the stanza limit.
    pub async fn send(&self, stanza: OneWay) -> Result<(), UpstreamError> {
        let mut bytes = Vec::new();
        stanza::bytes_of(&Element::from(*stanza.0), &mut bytes).map_err(UpstreamError::Stream)?;
        self.fits(&bytes)?;
        let (written, wait) = oneshot::channel();
        self.tx
            .send(Outgoing::OneWay(bytes, written))
            .await
            .map_err(|_| UpstreamError::Closed("the stream is closed".into()))?;
        wait.await
            .map_err(|_| UpstreamError::Closed("the stream closed before the write".into()))
    }

    /// Sends a presence (the gateway's own sessions never do; test clients do).
    #[cfg(feature = "test-client")]
    pub async fn send_presence(&self, presence: Presence) -> Result<(), UpstreamError> {
        self.tx
            .send(Outgoing::Presence(presence))
            .await
            .map_err(|_| UpstreamError::Closed("the stream is closed".into()))
    }

    /// Keeps the messages received from now on, for [`AdminSession::received`] (test clients
    /// only; the pool's streams never keep any).
    #[cfg(feature = "test-client")]
    pub fn keep_messages(&self) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Vec::new);
    }

    /// The messages received since [`AdminSession::keep_messages`] (test clients only).
    #[cfg(feature = "test-client")]
    pub fn received(&self) -> Vec<tokio_xmpp::parsers::message::Message> {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Resolves once no IQ awaits an answer on this stream; IQs sent later wait behind it.
    pub async fn idle(&self) {
        let _all = self.in_flight.acquire_many(self.places).await;
    }

    /// Resolves when the stream has ended, for whatever reason.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Closes the stream with `</stream:stream>` and waits (briefly) for the server's close;
    /// returns within [`CLOSE_BOUND`] whatever the server does. Requests still awaiting an
    /// answer fail with `Closed`.
    pub async fn close(&self) -> CloseOutcome {
        let polite = async {
            let (done, wait) = oneshot::channel();
            if self.tx.send(Outgoing::Close(done)).await.is_ok() {
                let _ = wait.await;
            }
            self.closed().await;
        };
        match tokio::time::timeout(CLOSE_BOUND, polite).await {
            Ok(()) => CloseOutcome::Closed,
            Err(_) => {
                tracing::info!(
                    account = %self.jid.to_bare(),
                    "the upstream stream did not close in time: dropped"
                );
                self.abandon();
                CloseOutcome::Abandoned
            }
        }
    }

    /// Stops the driver at once; the connection is dropped without a footer and every waiter
    /// fails.
    pub(crate) fn abandon(&self) {
        self.alive.store(false, Ordering::Release);
        self.driver.abort();
    }
}
