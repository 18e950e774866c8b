//! One framed stanza's bytes, read as little as the driver needs: the top-level tag's name and
//! addressing attributes (enough to hand a reply's bytes to its waiter unparsed), and a
//! minidom tree for the rare stanzas that take one (server pings, stream errors, a test
//! client's messages, replies to IQs sent as trees).

use quick_xml::events::Event;
use quick_xml::XmlVersion;
use tokio_xmpp::minidom::Element;

/// Which stanza a top-level tag opens: unprefixed, in the stream's default namespace
/// (`jabber:client`); anything else (a stream error, another namespace) is `Other`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Iq,
    Message,
    Presence,
    #[default]
    Other,
}

/// The top-level tag of a stanza.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub kind: Kind,
    pub type_: Option<String>,
    pub id: Option<String>,
    pub from: Option<String>,
}

impl Head {
    /// Whether this is an answer to an IQ (a result or an error).
    pub fn is_reply(&self) -> bool {
        self.kind == Kind::Iq && matches!(self.type_.as_deref(), Some("result" | "error"))
    }
}

/// The head of the stanza in `bytes`; `None` when its tag or attributes are not well-formed
/// (the stanza then goes the rare way, and fails there).
pub(super) fn head(bytes: &[u8]) -> Option<Head> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let start = match reader.read_event().ok()? {
        Event::Start(s) | Event::Empty(s) => s,
        _ => return None,
    };
    let mut head = Head {
        kind: match start.name().as_ref() {
            "iq" => Kind::Iq,
            "message" => Kind::Message,
            "presence" => Kind::Presence,
            _ => Kind::Other,
        },
        ..Head::default()
    };
    // quick-xml's duplicate check allocates per element: the keys read here are checked for
    // repeats by hand (a reply's bytes are read in full, and refused for any other repeat, by
    // `adhoc::wire::read_reply`; other stanzas by minidom).
    let mut seen = [false; 4];
    for a in start.attributes().with_checks(false) {
        let a = a.ok()?;
        let value = || {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        };
        let slot = match a.key.as_ref() {
            "type" => 0,
            "id" => 1,
            "from" => 2,
            "xmlns" => 3,
            _ => continue,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match slot {
            0 => head.type_ = Some(value()?),
            1 => head.id = Some(value()?),
            2 => head.from = Some(value()?),
            // A namespace other than the stream's default makes it no stanza of ours.
            _ => {
                if value()?.as_str() != tokio_xmpp::parsers::ns::JABBER_CLIENT {
                    head.kind = Kind::Other;
                }
            }
        }
    }
    Some(head)
}

/// The stanza as a tree, read as a child of the stream: `jabber:client` by default, `stream:`
/// bound to the streams namespace (the prefix every server uses; a stanza using another fails
/// here and is dropped).
pub(super) fn tree(bytes: &[u8]) -> Result<Element, String> {
    const OPEN: &str = "<stream:stream xmlns='jabber:client' \
                        xmlns:stream='http://etherx.jabber.org/streams'>";
    const CLOSE: &str = "</stream:stream>";
    let stanza = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut doc = String::with_capacity(OPEN.len() + stanza.len() + CLOSE.len());
    doc.push_str(OPEN);
    doc.push_str(stanza);
    doc.push_str(CLOSE);
    let mut root: Element = doc
        .parse()
        .map_err(|e: tokio_xmpp::minidom::Error| e.to_string())?;
    root.unshift_child().ok_or_else(|| "no element".to_string())
}

/// An element as bytes, for the stanzas the gateway still builds as trees.
pub(super) fn bytes_of(el: &Element, out: &mut Vec<u8>) -> Result<(), String> {
    el.write_to(out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_names_a_reply_and_whom_it_is_from() {
        let h = head(b"<iq type='result' id='a&amp;b' from=\"x@y/z\"><q/></iq>").unwrap();
        assert!(h.is_reply());
        assert_eq!(h.id.as_deref(), Some("a&b"));
        assert_eq!(h.from.as_deref(), Some("x@y/z"));
        assert!(!head(b"<iq type='get' id='a'/>").unwrap().is_reply());
        assert!(!head(b"<message type='result' id='a'/>").unwrap().is_reply());
        assert!(!head(b"<iq xmlns='urn:x' type='result' id='a'/>")
            .unwrap()
            .is_reply());
        assert!(head(b"<iq xmlns='jabber:client' type='error' id='a'/>")
            .unwrap()
            .is_reply());
        assert!(head(b"<iq type='result' type='error'/>").is_none());
        assert!(head(b"<iq id='a>").is_none());
    }

    #[test]
    fn a_rare_stanza_becomes_a_tree_in_the_streams_namespaces() {
        let el = tree(
            b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        )
        .unwrap();
        assert!(el.is("error", "http://etherx.jabber.org/streams"));
        let el = tree(b"<message to='a@b'><body>hi</body></message>").unwrap();
        assert!(el.is("message", "jabber:client"));
        assert!(tree(b"<x:iq/>").is_err());
        assert!(tree(b"<iq>").is_err());
    }
}
