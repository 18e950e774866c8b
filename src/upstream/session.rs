//! One logged-in c2s stream with many IQs in flight. A single task owns the stream: it writes
//! what callers queue, matches replies to waiters, answers the server's pings, probes an idle
//! stream, and when the stream dies fails every waiter at once. Dropping the last handle
//! closes the stream with `</stream:stream>`.
//!
//! Other accounts can send stanzas to the gateway's resource, so nothing arriving is trusted
//! for being there: a reply is accepted only from the JID its request went to, under an id
//! nobody can guess (random per stream and per IQ); IQ requests are answered only for the
//! server. Anything else is dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
use tokio_xmpp::Stanza;

use super::connect::{LoggedIn, Stream};
use super::UpstreamError;

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

/// One IQ to send, and where its answer goes.
struct OutIq {
    to: Jid,
    kind: IqKind,
    payload: Element,
    reply: Waiter,
    /// Its place among the stream's IQs in flight, given back when the answer comes.
    permit: OwnedSemaphorePermit,
}

/// An IQ awaiting its answer.
struct Pending {
    /// Whom it was sent to: only they may answer.
    to: Jid,
    reply: Waiter,
    _permit: OwnedSemaphorePermit,
}

enum Outgoing {
    /// IQs written back to back, in this order, in one flush.
    Iqs(Vec<OutIq>),
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
    alive: Arc<AtomicBool>,
    /// Stanzas dropped because they did not come from whom the gateway asked.
    dropped: Arc<AtomicU64>,
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("account", &self.jid.to_bare())
            .finish_non_exhaustive()
    }
}

impl AdminSession {
    /// Takes over a logged-in stream and starts the task that drives it; at most
    /// `max_in_flight` IQs await answers at once, later ones wait their turn.
    pub fn start(logged_in: LoggedIn, max_in_flight: usize) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let alive = Arc::new(AtomicBool::new(true));
        let dropped = Arc::new(AtomicU64::new(0));
        let (closed_tx, closed) = watch::channel(false);
        let driver = Driver {
            stream: logged_in.stream,
            jid: logged_in.jid.clone(),
            rx,
            pending: HashMap::new(),
            alive: alive.clone(),
            dropped: dropped.clone(),
            close_requested: None,
        };
        tokio::spawn(async move {
            driver.run().await;
            let _ = closed_tx.send(true);
        });
        Self {
            jid: logged_in.jid,
            tx,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(2))),
            alive,
            dropped,
            closed,
        }
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

    /// Sends IQs back to back in this order (the server handles a stream's stanzas in
    /// order) and waits for all their answers: several round trips' work in about one. Each IQ
    /// takes a place among the stream's IQs in flight; when none is free, what is ready goes
    /// out and the rest waits for answers, so no batch ever exceeds the bound.
    pub async fn iqs(
        &self,
        requests: Vec<(Jid, IqKind, Element)>,
    ) -> Result<Vec<Result<IqReply, UpstreamError>>, UpstreamError> {
        let closed = || UpstreamError::Closed("the stream is closed".into());
        let mut receivers = Vec::with_capacity(requests.len());
        let mut batch = Vec::new();
        for (to, kind, payload) in requests {
            let permit = match self.in_flight.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if !batch.is_empty() {
                        let ready = std::mem::take(&mut batch);
                        self.tx
                            .send(Outgoing::Iqs(ready))
                            .await
                            .map_err(|_| closed())?;
                    }
                    self.in_flight
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| closed())?
                }
            };
            let (reply, rx) = oneshot::channel();
            receivers.push(rx);
            batch.push(OutIq {
                to,
                kind,
                payload,
                reply,
                permit,
            });
        }
        if !batch.is_empty() {
            self.tx
                .send(Outgoing::Iqs(batch))
                .await
                .map_err(|_| closed())?;
        }
        let mut replies = Vec::with_capacity(receivers.len());
        for rx in receivers {
            replies.push(rx.await.unwrap_or_else(|_| {
                Err(UpstreamError::Closed(
                    "the stream closed before the answer".into(),
                ))
            }));
        }
        Ok(replies)
    }

    /// Sends a presence (the gateway's own sessions never do; test clients do).
    pub async fn send_presence(&self, presence: Presence) -> Result<(), UpstreamError> {
        self.tx
            .send(Outgoing::Presence(presence))
            .await
            .map_err(|_| UpstreamError::Closed("the stream is closed".into()))
    }

    /// Resolves when the stream has ended, for whatever reason.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Closes the stream with `</stream:stream>` and waits (briefly) for the server's close.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Outgoing::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
        self.closed().await;
    }
}

type Waiter = oneshot::Sender<Result<IqReply, UpstreamError>>;

struct Driver {
    stream: Stream,
    jid: FullJid,
    rx: mpsc::Receiver<Outgoing>,
    pending: HashMap<String, Pending>,
    alive: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    close_requested: Option<oneshot::Sender<()>>,
}

/// Why the driver stopped.
enum End {
    /// Every handle is gone or close was asked: close politely.
    Close(Option<oneshot::Sender<()>>),
    /// The stream failed.
    Dead(UpstreamError),
}

impl Driver {
    async fn run(mut self) {
        let end = self.drive().await;
        self.alive.store(false, Ordering::Release);
        match end {
            End::Close(done) => {
                self.fail_all(|| UpstreamError::Closed("the gateway closed the stream".into()));
                self.shutdown().await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            End::Dead(e) => {
                tracing::info!(account = %self.jid.to_bare(), error = %e, "upstream stream ended");
                self.fail_all(|| e.clone());
            }
        }
    }

    async fn drive(&mut self) -> End {
        loop {
            tokio::select! {
                out = self.rx.recv() => match out {
                    None => return End::Close(None),
                    Some(Outgoing::Close(done)) => return End::Close(Some(done)),
                    Some(out) => {
                        if let Err(e) = self.write(out).await {
                            return End::Dead(e);
                        }
                        if let Some(done) = self.close_requested.take() {
                            return End::Close(Some(done));
                        }
                    }
                },
                el = self.stream.next() => {
                    if let Err(e) = self.read(el).await {
                        return End::Dead(e);
                    }
                }
            }
        }
    }

    /// Queues one element and everything else already waiting, then flushes once.
    async fn write(&mut self, first: Outgoing) -> Result<(), UpstreamError> {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Outgoing::Iqs(batch) => {
                    for out in batch {
                        self.feed_iq(out).await?;
                    }
                }
                Outgoing::Presence(p) => self.feed(Stanza::Presence(p)).await?,
                Outgoing::Close(done) => {
                    // Seen while draining the queue: finish this batch, then close.
                    self.close_requested = Some(done);
                    break;
                }
            }
            if let Ok(more) = self.rx.try_recv() {
                next = Some(more);
            }
        }
        SinkExt::<&XmppStreamElement>::flush(&mut self.stream)
            .await
            .map_err(|e| UpstreamError::Stream(e.to_string()))
    }

    async fn feed_iq(&mut self, out: OutIq) -> Result<(), UpstreamError> {
        if out.reply.is_closed() {
            // The client hung up before the IQ left: it is not sent at all.
            return Ok(());
        }
        let id = fresh_id();
        let (from, to, iq_id) = (None, Some(out.to.clone()), id.clone());
        let iq = match out.kind {
            IqKind::Get => Iq::Get {
                from,
                to,
                id: iq_id,
                payload: out.payload,
            },
            IqKind::Set => Iq::Set {
                from,
                to,
                id: iq_id,
                payload: out.payload,
            },
        };
        self.pending.insert(
            id,
            Pending {
                to: out.to,
                reply: out.reply,
                _permit: out.permit,
            },
        );
        self.feed(Stanza::Iq(iq)).await
    }

    async fn feed(&mut self, stanza: Stanza) -> Result<(), UpstreamError> {
        self.stream
            .feed(&XmppStreamElement::Stanza(stanza))
            .await
            .map_err(|e| UpstreamError::Stream(e.to_string()))
    }

    fn domain(&self) -> Jid {
        Jid::from(BareJid::from_parts(None, self.jid.domain()))
    }

    fn drop_stanza(&self, what: &str, from: Option<&Jid>) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            account = %self.jid.to_bare(),
            from = %from.map(|f| f.to_string()).unwrap_or_default(),
            "{what} dropped"
        );
    }

    async fn read(
        &mut self,
        el: Option<Result<FallibleStreamElement, ReadError>>,
    ) -> Result<(), UpstreamError> {
        match el {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(Stanza::Iq(iq))))) => {
                self.on_iq(iq).await
            }
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                Err(super::connect::refused(e.0, ""))
            }
            Some(Ok(FallibleStreamElement::Ok(_))) => Ok(()),
            Some(Ok(FallibleStreamElement::Err(e))) => {
                tracing::debug!(error = %e, "unparseable stanza from the upstream ignored");
                self.fail_unparseable(e);
                Ok(())
            }
            Some(Err(ReadError::SoftTimeout)) => {
                // Silence: prove the stream is alive with a ping; the hard timeout follows
                // if nothing comes back. Forget waiters whose clients went away meanwhile.
                self.pending.retain(|_, p| !p.reply.is_closed());
                let id = fresh_id();
                let ping = Iq::from_get(id, Ping).with_to(self.domain());
                self.feed(Stanza::Iq(ping)).await?;
                SinkExt::<&XmppStreamElement>::flush(&mut self.stream)
                    .await
                    .map_err(|e| UpstreamError::Stream(e.to_string()))
            }
            Some(Err(ReadError::HardError(e))) => Err(UpstreamError::Closed(e.to_string())),
            Some(Err(ReadError::ParseError(e))) => {
                Err(UpstreamError::Closed(format!("unparseable stream: {e}")))
            }
            Some(Err(ReadError::StreamFooterReceived)) | None => {
                Err(UpstreamError::Closed("the server closed the stream".into()))
            }
        }
    }

    async fn on_iq(&mut self, iq: Iq) -> Result<(), UpstreamError> {
        match iq {
            Iq::Result {
                id, from, payload, ..
            } => {
                self.resolve(&id, from.as_ref(), Ok(IqReply::Result(payload)));
                Ok(())
            }
            Iq::Error {
                id, from, error, ..
            } => {
                self.resolve(&id, from.as_ref(), Ok(IqReply::Error(Box::new(error))));
                Ok(())
            }
            Iq::Get {
                id, from, payload, ..
            }
            | Iq::Set {
                id, from, payload, ..
            } => {
                if !from_server(&self.jid, from.as_ref()) {
                    // Another account probing the gateway's resource learns nothing, not even
                    // that it is there.
                    self.drop_stanza("an IQ request from another entity", from.as_ref());
                    return Ok(());
                }
                // The server asks us something: a ping gets a result, anything else
                // service-unavailable, as RFC 6120 wants for unknown requests.
                let answer = if payload.is("ping", tokio_xmpp::parsers::ns::PING) {
                    Iq::empty_result(from.unwrap_or_else(|| self.domain()), id)
                } else {
                    let err = StanzaError::new(
                        ErrorType::Cancel,
                        DefinedCondition::ServiceUnavailable,
                        "en",
                        "",
                    );
                    let to = from.unwrap_or_else(|| self.domain());
                    Iq::from_error(id, err).with_to(to)
                };
                self.feed(Stanza::Iq(answer)).await?;
                SinkExt::<&XmppStreamElement>::flush(&mut self.stream)
                    .await
                    .map_err(|e| UpstreamError::Stream(e.to_string()))
            }
        }
    }

    /// Answers the waiter of `id` if `from` is whom it asked; anything else is dropped.
    fn resolve(&mut self, id: &str, from: Option<&Jid>, reply: Result<IqReply, UpstreamError>) {
        let genuine = self
            .pending
            .get(id)
            .is_some_and(|p| answers_for(&self.jid, &p.to, from));
        if !genuine {
            self.drop_stanza("a reply that answers no request of ours", from);
            return;
        }
        if let Some(p) = self.pending.remove(id) {
            let _ = p.reply.send(reply);
        }
    }

    /// A reply the parser could not read still answers its waiter, as an error.
    fn fail_unparseable(&mut self, e: tokio_xmpp::xmlstream::StreamElementError) {
        if let tokio_xmpp::xmlstream::StreamElementError::InvalidStanza { header, .. } = &e {
            if let Some(id) = header.id.clone() {
                let from = header.from.as_deref().and_then(|f| f.parse::<Jid>().ok());
                self.resolve(
                    &id,
                    from.as_ref(),
                    Err(UpstreamError::Stream(format!("unreadable answer: {e}"))),
                );
            }
        }
    }

    fn fail_all(&mut self, e: impl Fn() -> UpstreamError) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(e()));
        }
    }

    /// Sends `</stream:stream>` and gives the server a moment to close its side.
    async fn shutdown(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match self.stream.next().await {
                    None | Some(Err(ReadError::StreamFooterReceived)) => break,
                    Some(Err(ReadError::HardError(_))) => break,
                    _ => continue,
                }
            }
        })
        .await;
    }
}

/// An IQ id nobody can guess, so that no other entity can answer in the server's name.
fn fresh_id() -> String {
    format!("xrg-{:032x}", rand::random::<u128>())
}

/// Whether `from` may answer an IQ that the stream `own` sent to `to`: the addressee itself;
/// for the server's domain or the account's own bare JID (which the server answers for), also
/// a reply without `from`.
fn answers_for(own: &FullJid, to: &Jid, from: Option<&Jid>) -> bool {
    match from {
        Some(f) => f == to,
        None => from_server(own, Some(to)),
    }
}

/// Whether a stanza `from` comes from the server itself (its domain, the account's bare JID, or
/// no `from`): the only party whose IQ requests the gateway answers.
fn from_server(own: &FullJid, from: Option<&Jid>) -> bool {
    from.is_none_or(|f| {
        f.resource().is_none()
            && f.domain() == own.domain()
            && (f.node().is_none() || f.node() == own.node())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Jid {
        s.parse().unwrap()
    }

    fn own() -> FullJid {
        "admin@example.org/xrg-1".parse().unwrap()
    }

    #[test]
    fn only_the_addressee_answers() {
        let to = j("conference.example.org");
        assert!(answers_for(&own(), &to, Some(&to)));
        assert!(!answers_for(&own(), &to, None));
        assert!(!answers_for(&own(), &to, Some(&j("test@example.org/x"))));
        assert!(!answers_for(&own(), &to, Some(&j("example.org"))));
    }

    #[test]
    fn the_server_answers_for_its_domain_and_the_account_without_from() {
        let domain = j("example.org");
        assert!(answers_for(&own(), &domain, None));
        assert!(answers_for(&own(), &domain, Some(&domain)));
        assert!(!answers_for(&own(), &domain, Some(&j("test@example.org"))));
        assert!(!answers_for(
            &own(),
            &domain,
            Some(&j("test@example.org/res"))
        ));
        assert!(!answers_for(&own(), &domain, Some(&j("other.org"))));
        let me = j("admin@example.org");
        assert!(answers_for(&own(), &me, None));
        assert!(answers_for(&own(), &me, Some(&me)));
    }

    #[test]
    fn requests_are_answered_for_the_server_only() {
        assert!(from_server(&own(), None));
        assert!(from_server(&own(), Some(&j("example.org"))));
        assert!(from_server(&own(), Some(&j("admin@example.org"))));
        assert!(!from_server(&own(), Some(&j("test@example.org/x"))));
        assert!(!from_server(&own(), Some(&j("admin@example.org/other"))));
        assert!(!from_server(&own(), Some(&j("conference.example.org"))));
    }

    #[test]
    fn ids_are_unpredictable() {
        let (a, b) = (fresh_id(), fresh_id());
        assert_ne!(a, b);
        assert!(a.len() >= 32, "{a}");
    }
}
