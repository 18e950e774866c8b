//! Whom the gateway's stream believes: other accounts can send stanzas to its resource, so a
//! reply counts only from the JID its request went to, under an id nobody can guess, and IQ
//! requests are answered only when the server itself asks.

use tokio_xmpp::parsers::jid::{FullJid, Jid};

/// An IQ id nobody can guess, so that no other entity can answer in the server's name.
pub(super) fn fresh_id() -> String {
    format!("xrg-{:032x}", rand::random::<u128>())
}

/// Whether `from` may answer an IQ that the stream `own` sent to `to`: the addressee itself;
/// for the server's domain or the account's own bare JID (which the server answers for), also
/// a reply without `from`.
pub(super) fn answers_for(own: &FullJid, to: &Jid, from: Option<&Jid>) -> bool {
    match from {
        Some(f) => f == to,
        None => from_server(own, Some(to)),
    }
}

/// Whether a stanza `from` comes from the server itself (its domain, the account's bare JID, or
/// no `from`): the only party whose IQ requests the gateway answers.
pub(super) fn from_server(own: &FullJid, from: Option<&Jid>) -> bool {
    from.is_none_or(|f| {
        f.resource().is_none()
            && f.domain() == own.domain()
            && (f.node().is_none() || f.node() == own.node())
    })
}
