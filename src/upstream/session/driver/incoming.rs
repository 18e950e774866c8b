//! The driver's read side: the stanzas framed in what was read, a reply handed to its waiter
//! (as bytes, or as a tree), the server's requests answered, everything else dropped and
//! counted. Only the server's own stream error, its footer and broken framing end the stream:
//! whatever another entity sends (a flood of messages, a stanza too deep or too large to keep)
//! is dropped after reading at most its top-level tag.

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::parsers::stream_error::StreamError;

use super::super::frame::{Frame, Skip};
use super::super::stanza::{head, tree, Head, Kind};
use super::super::trust::{answers_for, from_server};
use super::super::IqReply;
use super::{closed, Driver, Reply};
use crate::metrics::Dropped;
use crate::upstream::UpstreamError;

/// Read-buffer capacity kept at most once the stanzas in it are handled.
const SHRINK_ABOVE: usize = 256 * 1024;

impl Driver {
    /// Handles every complete stanza read so far.
    pub(super) async fn on_input(&mut self) -> Result<(), UpstreamError> {
        let input = std::mem::take(&mut self.input);
        let result = self.frames(&input).await;
        self.input = input;
        let keep = self.framer.keep_from();
        self.input.drain(..keep);
        self.framer.shift(keep);
        // A large stanza once read does not hold its buffer for the stream's life.
        if self.input.capacity() > SHRINK_ABOVE && self.input.len() < SHRINK_ABOVE / 2 {
            self.input.shrink_to(SHRINK_ABOVE / 2);
        }
        result
    }

    async fn frames(&mut self, input: &[u8]) -> Result<(), UpstreamError> {
        loop {
            match self.framer.next(input) {
                Err(e) => return Err(closed(&format!("unparseable stream: {e}"))),
                Ok(None) => return Ok(()),
                Ok(Some(Frame::Footer)) => return Err(closed("the server closed the stream")),
                Ok(Some(Frame::Stanza(range))) => self.on_stanza(&input[range]).await?,
                Ok(Some(Frame::Skipped { head, why })) => {
                    self.on_skipped(head.map(|r| &input[r]), why)
                }
            }
        }
    }

    /// A stanza too deep or too large to keep: dropped, unless its top-level tag shows it is
    /// the answer to a request of ours, whose waiter is then failed rather than left waiting.
    fn on_skipped(&mut self, head_bytes: Option<&[u8]>, why: Skip) {
        let reason = match why {
            Skip::TooDeep => Dropped::TooDeep,
            Skip::TooLarge => Dropped::TooLarge,
        };
        let head = head_bytes.and_then(head).unwrap_or_default();
        let from = head.from.as_deref().and_then(|f| f.parse::<Jid>().ok());
        let reply = head.is_reply();
        let id = head.id.unwrap_or_default();
        let answers = reply
            && self
                .pending
                .get(&id)
                .is_some_and(|p| answers_for(&self.jid, &p.to, from.as_ref()));
        if answers {
            if let Some(p) = self.pending.remove(&id) {
                let what = match why {
                    Skip::TooDeep => "nested too deep to read",
                    Skip::TooLarge => "too large to read",
                };
                p.reply
                    .fail(UpstreamError::Stream(format!("the answer was {what}")));
            }
        }
        self.drop_stanza(reason, from.as_ref());
    }

    async fn on_stanza(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        let head = head(bytes).unwrap_or_default();
        if head.is_reply() {
            self.on_reply(head, bytes);
            return Ok(());
        }
        // What other entities send is dropped on its top-level tag alone: no tree is built
        // for a flood of messages to the gateway's resource.
        match head.kind {
            Kind::Message | Kind::Presence => {
                #[cfg(feature = "test-client")]
                if head.kind == Kind::Message && self.keep_in_inbox(bytes) {
                    return Ok(());
                }
                let from = head.from.as_deref().and_then(|f| f.parse::<Jid>().ok());
                self.drop_stanza(Dropped::Unsolicited, from.as_ref());
                return Ok(());
            }
            Kind::Iq => {
                let from = match head.from.as_deref().map(str::parse::<Jid>) {
                    None => None,
                    Some(Ok(f)) => Some(f),
                    Some(Err(_)) => {
                        self.drop_stanza(Dropped::Unreadable, None);
                        return Ok(());
                    }
                };
                if !from_server(&self.jid, from.as_ref()) {
                    // Another account probing the gateway's resource learns nothing, not even
                    // that it is there.
                    self.drop_stanza(Dropped::ForeignRequest, from.as_ref());
                    return Ok(());
                }
            }
            Kind::Other => {}
        }
        let el = match tree(bytes) {
            Ok(el) => el,
            Err(e) => {
                tracing::debug!(error = %e, "unparseable stanza from the upstream ignored");
                self.drop_stanza(Dropped::Unreadable, None);
                return Ok(());
            }
        };
        if el.is("error", tokio_xmpp::parsers::ns::STREAM) {
            return match StreamError::try_from(el) {
                Ok(e) => Err(crate::upstream::connect::refused(e, "")),
                Err(_) => Err(closed("the server sent a stream error")),
            };
        }
        if el.is("iq", tokio_xmpp::parsers::ns::JABBER_CLIENT) {
            return match Iq::try_from(el) {
                Ok(iq) => self.on_request(iq).await,
                Err(e) => {
                    tracing::debug!(error = %e, "unparseable IQ from the upstream ignored");
                    self.drop_stanza(Dropped::Unreadable, None);
                    Ok(())
                }
            };
        }
        self.drop_stanza(Dropped::Unreadable, None);
        Ok(())
    }

    /// A test client that asked to keep its messages keeps this one; `false` when it did not
    /// ask (the message is then dropped as any other).
    #[cfg(feature = "test-client")]
    fn keep_in_inbox(&mut self, bytes: &[u8]) -> bool {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let Some(kept) = inbox.as_mut() else {
            return false;
        };
        let message = tree(bytes)
            .ok()
            .and_then(|el| tokio_xmpp::parsers::message::Message::try_from(el).ok());
        match message {
            Some(m) => kept.push(m),
            None => {
                drop(inbox);
                self.drop_stanza(Dropped::Unreadable, None);
            }
        }
        true
    }

    /// A result or error: to its waiter if it comes from whom that IQ went to, as bytes or
    /// as a tree as the waiter asked; anything else is dropped.
    fn on_reply(&mut self, head: Head, bytes: &[u8]) {
        let id = head.id.unwrap_or_default();
        let from = match head.from.as_deref().map(str::parse::<Jid>) {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(_)) => {
                self.drop_stanza(Dropped::Unreadable, None);
                return;
            }
        };
        let from = from.as_ref();
        if self.probe.as_deref() == Some(id.as_str()) && answers_for(&self.jid, &self.domain, from)
        {
            // The server answered the idle probe: the stream lives, and nobody awaits it.
            self.probe = None;
            return;
        }
        let genuine = self
            .pending
            .get(&id)
            .is_some_and(|p| answers_for(&self.jid, &p.to, from));
        if !genuine {
            self.drop_stanza(Dropped::NotAsked, from);
            return;
        }
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        match p.reply {
            Reply::Raw(w) => drop(w.send(Ok(bytes.to_vec()))),
            Reply::Tree(w) => drop(w.send(tree_reply(bytes))),
        }
    }

    /// An IQ request: answered only when the server asks (a ping gets a result, anything
    /// else service-unavailable, as RFC 6120 wants for unknown requests).
    async fn on_request(&mut self, iq: Iq) -> Result<(), UpstreamError> {
        let (id, from, payload) = match iq {
            Iq::Get {
                id, from, payload, ..
            }
            | Iq::Set {
                id, from, payload, ..
            } => (id, from, payload),
            // A reply the head did not take for one (an odd namespace declaration).
            _ => return Ok(()),
        };
        if !from_server(&self.jid, from.as_ref()) {
            // Caught on the head already; kept for an IQ whose head and tree disagree.
            self.drop_stanza(Dropped::ForeignRequest, from.as_ref());
            return Ok(());
        }
        let to = from.unwrap_or_else(|| self.domain.clone());
        let answer = if payload.is("ping", tokio_xmpp::parsers::ns::PING) {
            Iq::empty_result(to, id)
        } else {
            let err = StanzaError::new(
                ErrorType::Cancel,
                DefinedCondition::ServiceUnavailable,
                "en",
                "",
            );
            Iq::from_error(id, err).with_to(to)
        };
        self.queue(&Element::from(answer))?;
        self.flush().await
    }
}

/// A reply to an IQ sent as a tree, read as the tree path always has: a reply the parser
/// cannot read still answers its waiter, as an error.
fn tree_reply(bytes: &[u8]) -> Result<IqReply, UpstreamError> {
    let unreadable = |e: String| UpstreamError::Stream(format!("unreadable answer: {e}"));
    let iq =
        Iq::try_from(tree(bytes).map_err(unreadable)?).map_err(|e| unreadable(e.to_string()))?;
    match iq {
        Iq::Result { payload, .. } => Ok(IqReply::Result(payload)),
        Iq::Error { error, .. } => Ok(IqReply::Error(Box::new(error))),
        _ => Err(unreadable("not a reply".into())),
    }
}
