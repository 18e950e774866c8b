//! The task that owns one stream: it writes what the handle queues, matches replies to
//! waiters, answers the server's pings, probes an idle stream, and when the stream dies fails
//! every waiter at once. Every wait it makes is bounded: reads by the stream's timeouts
//! (probe, then give up), writes by [`write_bound`], the closing handshake by [`FOOTER_WAIT`].
//!
//! After bind the stream is bytes: IQs arrive already written (by the caller's task), replies
//! are framed here ([`super::frame`]) and a reply to an IQ sent as bytes goes back to its
//! waiter as bytes, after only its top-level tag was read. Nothing on that path builds a tree;
//! the rare stanzas are read with minidom ([`super::stanza`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::xmlstream::Timeouts;

use super::frame::{Frame, Framer};
use super::stanza::bytes_of;
use super::trust::fresh_id;
use super::{IqReply, OutIq, Outgoing};
use crate::metrics::Dropped;
use crate::upstream::connect::{stream_timeouts, Transport};
use crate::upstream::UpstreamError;

/// How long the server may take to accept what the driver writes: a server that stops
/// reading is as dead as one that stops answering (the read side's probe allows as long).
pub(super) fn write_bound() -> Duration {
    stream_timeouts().response_timeout
}

/// How long a polite close waits, in all, to write `</stream:stream>` and read the server's.
pub(super) const FOOTER_WAIT: Duration = Duration::from_secs(2);

/// The longest stanza kept whole (a registered-users list of a large server fits); a longer
/// one is passed over to its end without being kept, so the buffer never grows beyond it.
const MAX_STANZA: usize = 8 * 1024 * 1024;

/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

mod incoming;

pub(super) type Waiter = oneshot::Sender<Result<IqReply, UpstreamError>>;
pub(super) type RawWaiter = oneshot::Sender<Result<Vec<u8>, UpstreamError>>;

/// Where an answer goes: as a tree (`iq`, `iqs`) or as the reply's bytes (`iqs_written`).
pub(super) enum Reply {
    Tree(Waiter),
    Raw(RawWaiter),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Reply::Tree(w) => w.is_closed(),
            Reply::Raw(w) => w.is_closed(),
        }
    }

    fn fail(self, e: UpstreamError) {
        match self {
            Reply::Tree(w) => drop(w.send(Err(e))),
            Reply::Raw(w) => drop(w.send(Err(e))),
        }
    }
}

/// An IQ awaiting its answer.
struct Pending {
    /// Whom it was sent to: only they may answer.
    to: Jid,
    reply: Reply,
    _permit: OwnedSemaphorePermit,
}

pub(super) struct Driver {
    io: Transport,
    jid: FullJid,
    domain: Jid,
    timeouts: Timeouts,
    rx: mpsc::Receiver<Outgoing>,
    pending: HashMap<String, Pending>,
    alive: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    close_requested: Option<oneshot::Sender<()>>,
    /// The id of the ping probing an idle stream, whose answer is nobody's reply.
    probe: Option<String>,
    /// Bytes read and not yet framed into stanzas.
    input: Vec<u8>,
    framer: Framer,
    /// Bytes queued for the next flush.
    output: Vec<u8>,
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

fn closed(what: &str) -> UpstreamError {
    UpstreamError::Closed(what.into())
}

impl Driver {
    pub(super) fn new(
        io: Transport,
        jid: FullJid,
        timeouts: Timeouts,
        rx: mpsc::Receiver<Outgoing>,
        alive: Arc<AtomicBool>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Self {
            io,
            domain: Jid::from(BareJid::from_parts(None, jid.domain())),
            jid,
            timeouts,
            rx,
            pending: HashMap::new(),
            alive,
            dropped,
            close_requested: None,
            probe: None,
            input: Vec::new(),
            framer: Framer::new(MAX_STANZA),
            output: Vec::new(),
            #[cfg(feature = "test-client")]
            inbox: Default::default(),
        }
    }

    /// Drives the stream to its end: `None` when the gateway closed it, else what it died of.
    pub(super) async fn run(mut self) -> Option<UpstreamError> {
        let end = self.drive().await;
        self.alive.store(false, Ordering::Release);
        match end {
            End::Close(done) => {
                self.fail_all(|| closed("the gateway closed the stream"));
                self.shutdown().await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                None
            }
            End::Dead(e) => {
                tracing::info!(account = %self.jid.to_bare(), error = %e, "upstream stream ended");
                self.fail_all(|| e.clone());
                Some(e)
            }
        }
    }

    async fn drive(&mut self) -> End {
        // Silence for `read_timeout` sends a ping; silence for `response_timeout` after it
        // gives the stream up. Any byte from the server proves it alive.
        let mut deadline = Instant::now() + self.timeouts.read_timeout;
        let mut probing = false;
        loop {
            self.input.reserve(READ_CHUNK);
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
                read = self.io.read_buf(&mut self.input) => match read {
                    Ok(0) => return End::Dead(closed("the server closed the stream")),
                    Err(e) => return End::Dead(closed(&e.to_string())),
                    Ok(_) => {
                        deadline = Instant::now() + self.timeouts.read_timeout;
                        probing = false;
                        if let Err(e) = bounded(self.on_input()).await {
                            return End::Dead(e);
                        }
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    if probing {
                        return End::Dead(closed("the server stopped answering"));
                    }
                    probing = true;
                    deadline = Instant::now() + self.timeouts.response_timeout;
                    if let Err(e) = bounded(self.send_probe()).await {
                        return End::Dead(e);
                    }
                }
            }
        }
    }

    /// Queues one batch and everything else already waiting, then writes and flushes once.
    async fn write(&mut self, first: Outgoing) -> Result<(), UpstreamError> {
        let mut next = Some(first);
        let mut written = Vec::new();
        while let Some(out) = next.take() {
            match out {
                Outgoing::Iqs(batch) => {
                    for out in batch {
                        self.queue_iq(out);
                    }
                }
                Outgoing::OneWay(bytes, done) => {
                    self.output.extend_from_slice(&bytes);
                    written.push(done);
                }
                #[cfg(feature = "test-client")]
                Outgoing::Presence(p) => self.queue(&Element::from(p))?,
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
        self.flush().await?;
        for done in written {
            let _ = done.send(());
        }
        Ok(())
    }

    fn queue_iq(&mut self, out: OutIq) {
        if out.reply.is_closed() {
            // The client hung up before the IQ left: it is not sent at all.
            return;
        }
        self.output.extend_from_slice(&out.bytes);
        self.pending.insert(
            out.id,
            Pending {
                to: out.to,
                reply: out.reply,
                _permit: out.permit,
            },
        );
    }

    fn queue(&mut self, el: &Element) -> Result<(), UpstreamError> {
        bytes_of(el, &mut self.output).map_err(UpstreamError::Stream)
    }

    async fn flush(&mut self) -> Result<(), UpstreamError> {
        let out = std::mem::take(&mut self.output);
        let result = async {
            self.io.write_all(&out).await?;
            self.io.flush().await
        }
        .await;
        self.output = out;
        self.output.clear();
        result.map_err(|e| UpstreamError::Stream(e.to_string()))
    }

    /// Proves a silent stream alive with a ping; forgets waiters whose clients went away.
    async fn send_probe(&mut self) -> Result<(), UpstreamError> {
        self.pending.retain(|_, p| !p.reply.is_closed());
        let id = fresh_id();
        self.probe = Some(id.clone());
        let ping = Iq::from_get(id, Ping).with_to(self.domain.clone());
        self.queue(&Element::from(ping))?;
        self.flush().await
    }

    /// Counts a stanza dropped unread (on this stream, and in the metrics by reason).
    fn drop_stanza(&self, reason: Dropped, from: Option<&Jid>) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        crate::metrics::dropped_stanza(reason);
        tracing::debug!(
            account = %self.jid.to_bare(),
            from = %from.map(|f| f.to_string()).unwrap_or_default(),
            ?reason,
            "a stanza dropped"
        );
    }

    fn fail_all(&mut self, e: impl Fn() -> UpstreamError) {
        for (_, p) in self.pending.drain() {
            p.reply.fail(e());
        }
    }

    /// Sends `</stream:stream>` and gives the server a moment to close its side, within
    /// [`FOOTER_WAIT`] in all (a server that no longer reads cannot hold the footer's write).
    async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(FOOTER_WAIT, async {
            if self.io.write_all(b"</stream:stream>").await.is_err()
                || self.io.shutdown().await.is_err()
            {
                return;
            }
            loop {
                self.input.reserve(READ_CHUNK);
                match self.io.read_buf(&mut self.input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                loop {
                    match self.framer.next(&self.input) {
                        Ok(Some(Frame::Stanza(_) | Frame::Skipped { .. })) => continue,
                        Ok(None) => break,
                        Ok(Some(Frame::Footer)) | Err(_) => return,
                    }
                }
                let keep = self.framer.keep_from();
                self.input.drain(..keep);
                self.framer.shift(keep);
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
