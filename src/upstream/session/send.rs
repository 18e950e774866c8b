//! Sending IQs on a stream: each drawn a random id and written to bytes on the caller's task
//! (as a tree serialised, or by the caller's own writer), queued to the driver within the
//! stream's places in flight, and each answer awaited.

use tokio::sync::oneshot;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::Jid;

use super::driver::Reply;
use super::trust::fresh_id;
use super::{AdminSession, IqKind, IqReply, OutIq, Outgoing};
use crate::upstream::UpstreamError;

impl AdminSession {
    /// Sends IQs back to back in this order (the server handles a stream's stanzas in
    /// order) and waits for all their answers: several round trips' work in about one. Each IQ
    /// takes a place among the stream's IQs in flight; when none is free, what is ready goes
    /// out and the rest waits for answers, so no batch ever exceeds the bound. An IQ over the
    /// stanza limit as written fails the whole call (`TooLarge`) before anything is sent.
    pub async fn iqs(
        &self,
        requests: Vec<(Jid, IqKind, Element)>,
    ) -> Result<Vec<Result<IqReply, UpstreamError>>, UpstreamError> {
        let started = std::time::Instant::now();
        let mut prepared = Vec::with_capacity(requests.len());
        let mut receivers = Vec::with_capacity(requests.len());
        for (to, kind, payload) in requests {
            let id = fresh_id();
            let (from, iq_to, iq_id) = (None, Some(to.clone()), id.clone());
            let iq = match kind {
                IqKind::Get => Iq::Get {
                    from,
                    to: iq_to,
                    id: iq_id,
                    payload,
                },
                IqKind::Set => Iq::Set {
                    from,
                    to: iq_to,
                    id: iq_id,
                    payload,
                },
            };
            let mut bytes = Vec::new();
            Element::from(iq)
                .write_to(&mut bytes)
                .map_err(|e| UpstreamError::Stream(e.to_string()))?;
            self.fits(&bytes)?;
            let (reply, rx) = oneshot::channel();
            receivers.push(rx);
            prepared.push((to, id, bytes, Reply::Tree(reply)));
        }
        self.dispatch(prepared).await?;
        let mut replies = Vec::with_capacity(receivers.len());
        for rx in receivers {
            replies.push(answered(rx.await, started));
        }
        Ok(replies)
    }

    /// Sends IQs that `write` writes itself, straight as bytes, and returns each answer's
    /// bytes for the caller to read: no tree on the way, and the writing and reading done on
    /// the caller's task. `write(i, to, id, out)` appends the `i`th request's `<iq/>`
    /// addressed to `to` under `id` to `out`; when it fails for any request, or writes one over
    /// the stanza limit (`TooLarge`), nothing is sent.
    /// The driver checks only the answer's top-level tag: that it is a result or an error
    /// under the id, from whom the IQ went to.
    pub async fn iqs_written<E: From<UpstreamError>>(
        &self,
        to: Vec<Jid>,
        mut write: impl FnMut(usize, &str, &str, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Vec<Result<Vec<u8>, UpstreamError>>, E> {
        let started = std::time::Instant::now();
        let mut prepared = Vec::with_capacity(to.len());
        let mut receivers = Vec::with_capacity(to.len());
        for (i, to) in to.into_iter().enumerate() {
            let id = fresh_id();
            // A user-stats IQ with its form is about 450 bytes: one allocation, no growth.
            let mut bytes = Vec::with_capacity(1024);
            write(i, to.as_str(), &id, &mut bytes)?;
            self.fits(&bytes)?;
            let (reply, rx) = oneshot::channel();
            receivers.push(rx);
            prepared.push((to, id, bytes, Reply::Raw(reply)));
        }
        self.dispatch(prepared).await?;
        let mut replies = Vec::with_capacity(receivers.len());
        for rx in receivers {
            replies.push(answered(rx.await, started));
        }
        Ok(replies)
    }

    /// Queues written IQs to the driver, each holding a place among the stream's IQs in
    /// flight; when none is free, what is ready goes out and the rest waits for answers.
    async fn dispatch(
        &self,
        prepared: Vec<(Jid, String, Vec<u8>, Reply)>,
    ) -> Result<(), UpstreamError> {
        let closed = || UpstreamError::Closed("the stream is closed".into());
        let mut batch = Vec::with_capacity(prepared.len());
        for (to, id, bytes, reply) in prepared {
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
            batch.push(OutIq {
                to,
                id,
                bytes,
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
        Ok(())
    }
}

/// An answer as its waiter got it (a dropped sender is a stream that closed first), counted
/// in the IQ latency metric when it came.
fn answered<T>(
    got: Result<Result<T, UpstreamError>, oneshot::error::RecvError>,
    started: std::time::Instant,
) -> Result<T, UpstreamError> {
    let reply = got.unwrap_or_else(|_| {
        Err(UpstreamError::Closed(
            "the stream closed before the answer".into(),
        ))
    });
    if reply.is_ok() {
        crate::metrics::iq(started.elapsed());
    }
    reply
}
