//! The task that owns one stream: it writes what the handle queues, matches replies to
//! waiters, answers the server's pings, probes an idle stream, and when the stream dies fails
//! every waiter at once. Every wait it makes is bounded: reads by the stream's timeouts
//! (probe, then give up), writes by [`WRITE_BOUND`], the closing handshake by [`FOOTER_WAIT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
use tokio_xmpp::Stanza;

use super::trust::{answers_for, fresh_id, from_server};
use super::{IqKind, IqReply, OutIq, Outgoing};
use crate::upstream::connect::{stream_timeouts, Stream};
use crate::upstream::UpstreamError;

/// How long the server may take to accept what the driver writes: a server that stops
/// reading is as dead as one that stops answering (the read side's probe allows as long).
pub(super) fn write_bound() -> Duration {
    stream_timeouts().response_timeout
}

/// How long a polite close waits, in all, to write `</stream:stream>` and read the server's.
pub(super) const FOOTER_WAIT: Duration = Duration::from_secs(2);

pub(super) type Waiter = oneshot::Sender<Result<IqReply, UpstreamError>>;

/// An IQ awaiting its answer.
struct Pending {
    /// Whom it was sent to: only they may answer.
    to: Jid,
    reply: Waiter,
    _permit: OwnedSemaphorePermit,
}

pub(super) struct Driver {
    stream: Stream,
    jid: FullJid,
    rx: mpsc::Receiver<Outgoing>,
    pending: HashMap<String, Pending>,
    alive: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    close_requested: Option<oneshot::Sender<()>>,
    /// The id of the ping probing an idle stream, whose answer is nobody's reply.
    probe: Option<String>,
    /// Messages a test client received (the gateway's own streams drop them).
    #[cfg(feature = "test-client")]
    pub(super) inbox: super::Inbox,
}

/// Why the driver stopped.
enum End {
    /// Every handle is gone or close was asked: close politely.
    Close(Option<oneshot::Sender<()>>),
    /// The stream failed.
    Dead(UpstreamError),
}

impl Driver {
    pub(super) fn new(
        stream: Stream,
        jid: FullJid,
        rx: mpsc::Receiver<Outgoing>,
        alive: Arc<AtomicBool>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self {
            stream,
            jid,
            rx,
            pending: HashMap::new(),
            alive,
            dropped,
            close_requested: None,
            probe: None,
            #[cfg(feature = "test-client")]
            inbox: Default::default(),
        }
    }

    pub(super) async fn run(mut self) {
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
                        if let Err(e) = bounded(self.write(out)).await {
                            return End::Dead(e);
                        }
                        if let Some(done) = self.close_requested.take() {
                            return End::Close(Some(done));
                        }
                    }
                },
                el = self.stream.next() => {
                    if let Err(e) = bounded(self.read(el)).await {
                        return End::Dead(e);
                    }
                }
            }
        }
    }

    /// Queues one element and everything else already waiting, then flushes once.
    async fn write(&mut self, first: Outgoing) -> Result<(), UpstreamError> {
        let mut next = Some(first);
        let mut written = Vec::new();
        while let Some(out) = next.take() {
            match out {
                Outgoing::Iqs(batch) => {
                    for out in batch {
                        self.feed_iq(out).await?;
                    }
                }
                Outgoing::OneWay(stanza, done) => {
                    self.feed(*stanza.0).await?;
                    written.push(done);
                }
                #[cfg(feature = "test-client")]
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
            .map_err(|e| UpstreamError::Stream(e.to_string()))?;
        for done in written {
            let _ = done.send(());
        }
        Ok(())
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
            #[cfg(feature = "test-client")]
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(Stanza::Message(m))))) => {
                self.inbox.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                Ok(())
            }
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                Err(crate::upstream::connect::refused(e.0, ""))
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
                self.probe = Some(id.clone());
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
        if self.probe.as_deref() == Some(id) && answers_for(&self.jid, &self.domain(), from) {
            // The server answered the idle probe: the stream lives, and nobody awaits it.
            self.probe = None;
            return;
        }
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

    /// Sends `</stream:stream>` and gives the server a moment to close its side, within
    /// [`FOOTER_WAIT`] in all (a server that no longer reads cannot hold the footer's write).
    async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(FOOTER_WAIT, async {
            if self.stream.shutdown().await.is_err() {
                return;
            }
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

/// Work that writes to the server, failed as a dead stream if the server takes no data for
/// [`write_bound`].
async fn bounded(
    work: impl std::future::Future<Output = Result<(), UpstreamError>>,
) -> Result<(), UpstreamError> {
    let bound = write_bound();
    tokio::time::timeout(bound, work).await.unwrap_or_else(|_| {
        Err(UpstreamError::Stream(format!(
            "the server took no data for {bound:?}"
        )))
    })
}
