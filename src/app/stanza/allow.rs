//! Which IQs `POST /rest/stream/` relays on an account's shared stream: an allow-list of
//! questions whose only answer is the IQ's result, commands, and what the operator adds.

use tokio_xmpp::minidom::Element;

use crate::adhoc::xep0050::NS_COMMANDS as COMMANDS;
use crate::app::Failure;
use crate::upstream::IqKind;

/// The IQ payload namespaces relayed on the shared stream without an operator's word: questions
/// whose only answer is the IQ's result, sent as a `get`. Anything else may change what the
/// server sends to the stream every request of the account shares (carbons, push, a MAM query
/// whose results arrive as messages, a roster get that makes it an interested resource, a
/// pubsub subscription, a MUC join...) or the stream itself (bind, privacy lists, blocking),
/// so it is refused unless the operator allows its namespace (`--stream-iq-allow`). XEP-0050
/// commands are relayed too, under the node rules (`command_node`).
pub const ANSWER_ONLY: [(&str, &str); 7] = [
    ("http://jabber.org/protocol/disco#info", "disco#info"),
    ("http://jabber.org/protocol/disco#items", "disco#items"),
    ("jabber:iq:version", "software version"),
    ("urn:xmpp:time", "entity time"),
    ("urn:xmpp:ping", "ping"),
    ("jabber:iq:last", "last activity"),
    ("vcard-temp", "vCard"),
];

/// Which IQ payloads `POST /rest/stream/` relays: [`ANSWER_ONLY`] as `get`, commands under
/// their node rules, and the namespaces the operator allows (`--stream-iq-allow`, get or set).
#[derive(Debug, Default)]
pub struct IqAllowList {
    operator: Vec<String>,
}

impl IqAllowList {
    pub fn new(operator: &[String]) -> Self {
        Self {
            operator: operator.to_vec(),
        }
    }

    /// `Ok` when an IQ of `kind` with this payload may go out on the shared stream; else the
    /// 400 that names the namespace and the flag.
    pub(in crate::app) fn check(&self, kind: IqKind, payload: &Element) -> Result<(), Failure> {
        let ns = payload.ns();
        if ns == COMMANDS || self.operator.contains(&ns) {
            return Ok(());
        }
        let get = matches!(kind, IqKind::Get);
        let answer_only = ANSWER_ONLY.iter().any(|(n, _)| *n == ns);
        if answer_only && get {
            return Ok(());
        }
        let what = if answer_only {
            format!("<{} xmlns='{ns}'> is relayed as a get only", payload.name())
        } else {
            format!(
                "<{} xmlns='{ns}'> is not relayed: it may change what the server sends to the \
                 stream every request of the account shares; relayed are the gets of {} and \
                 commands (under their node rules)",
                payload.name(),
                ANSWER_ONLY.map(|(_, name)| name).join(", ")
            )
        };
        Err(Failure::BadRequest(format!(
            "{what}; an operator may allow it with --stream-iq-allow {ns}"
        )))
    }
}
