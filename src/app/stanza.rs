//! `POST /rest/stream/`: one serialized stanza (Tigase's endpoint), sent on the account's warm
//! stream; the HTTP side hands over the body's bytes and gets back [`Relayed`]. That stream is shared by every request of the account, so nothing a client sends may
//! break it or change what the gateway is: a `from` other than the account's bare JID is
//! refused, an `iq` goes out under the gateway's own id (the answer is mapped back to the
//! client's) and only when its payload is on the allow-list ([`IqAllowList`]), presence only
//! of the subscription types, one stanza per request, at most `--stream-rate` per account.

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::Presence;

mod allow;
mod command;
mod rates;

pub use allow::{IqAllowList, ANSWER_ONLY};
pub use rates::StreamRates;

use command::{command_node, form_domains, form_jids};

use super::{App, Caller, Failure};
use crate::adhoc::CommandError;
use crate::rest;
use crate::upstream::{IqKind, IqReply, OneWay};

/// What became of a relayed stanza.
#[derive(Debug)]
pub enum Relayed {
    /// A message or presence, written to the server (which sends nothing back for it).
    Sent,
    /// An IQ's answer, as the server sent it but under the client's id; `failure` is the
    /// error's meaning when the answer is an error.
    Answer {
        stanza: Vec<u8>,
        failure: Option<Failure>,
    },
}

/// What a body asks the gateway to send.
#[derive(Debug)]
enum Outbound {
    Iq {
        /// The client's id, restored on the answer.
        id: String,
        to: Jid,
        kind: IqKind,
        payload: Element,
    },
    OneWay {
        stanza: OneWay,
        to: Option<Jid>,
    },
}

impl App {
    /// Relays one stanza (the body of `POST /rest/stream/`) on the caller's warm stream, after
    /// its rules: the stream permission, or a command's node rules; `--stream-rate`. `to`: the
    /// path's JID (`/rest/stream/{to_jid}`), which becomes the stanza's `to`.
    pub async fn relay(
        &self,
        caller: &Caller,
        body: &[u8],
        to: Option<&str>,
    ) -> Result<Relayed, Failure> {
        let to = to.map(path_jid).transpose()?;
        relay(self, caller, body, to.as_ref()).await
    }
}

/// The path's JID: any JID a client may name (bare, full, or a domain).
fn path_jid(written: &str) -> Result<Jid, Failure> {
    crate::adhoc::address::parse_jid(written)
        .ok_or_else(|| Failure::BadRequest(format!("{written:?} in the path is not a JID")))
}

async fn relay(
    gw: &App,
    caller: &Caller,
    body: &[u8],
    path_to: Option<&Jid>,
) -> Result<Relayed, Failure> {
    let outbound = parse(body, &caller.account, path_to)?;
    if let Outbound::Iq { kind, payload, .. } = &outbound {
        gw.stream_iq_allow.check(*kind, payload)?;
    }
    crate::audit::note_action(match &outbound {
        Outbound::Iq { .. } => "iq",
        Outbound::OneWay { .. } => "send",
    });
    // Refused before a login: the rules and the rate cost the server nothing.
    let to = match &outbound {
        Outbound::Iq { to, payload, .. } => {
            match command_node(payload)? {
                Some(node) => {
                    crate::audit::note_node(node);
                    crate::audit::note_subjects(form_jids(payload).iter().map(String::as_str));
                    // The target and every JID-valued field of the submitted form, as for
                    // /rest/adhoc.
                    let domains = form_domains(to, payload);
                    let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
                    caller.may_run(gw, node, &domains)?
                }
                None => {
                    crate::audit::note_subjects([to.to_string().as_str()]);
                    gw.policy.may_stream(&caller.grant)?
                }
            }
            Some(to)
        }
        Outbound::OneWay { to, .. } => {
            crate::audit::note_subjects(to.as_ref().map(|t| t.to_string()).as_deref());
            gw.policy.may_stream(&caller.grant)?;
            if to.as_ref().is_some_and(|t| t.node().is_none()) {
                // The server's own JIDs take messages as commands (ejabberd's
                // `domain/announce/...` broadcasts and sets the MOTD): those go through
                // /rest/announce and /rest/adhoc, under their node rules.
                return Err(Failure::BadRequest(
                    "a message or presence to the server itself is not sent: use \
                     /rest/announce or /rest/adhoc"
                        .into(),
                ));
            }
            to.as_ref()
        }
    };
    let domain = to.map_or(caller.account.domain(), |t| t.domain());
    caller.may_address(gw, &[domain.as_str()])?;
    gw.stream_rates.take(&caller.account)?;
    let admitted = caller.stream(gw).await?;
    match outbound {
        Outbound::OneWay { stanza, .. } => {
            admitted.session.send(stanza).await?;
            Ok(Relayed::Sent)
        }
        Outbound::Iq {
            id,
            to,
            kind,
            payload,
        } => {
            let reply = admitted.session.iq(to.clone(), kind, payload).await?;
            answer_stanza(id, to, reply)
        }
    }
}

/// The answer's body: the reply under the client's id, from whom the IQ went to.
fn answer_stanza(id: String, to: Jid, reply: IqReply) -> Result<Relayed, Failure> {
    let (iq, failure) = match reply {
        IqReply::Result(payload) => (
            Iq::Result {
                from: Some(to),
                to: None,
                id,
                payload,
            },
            None,
        ),
        IqReply::Error(e) => {
            let failure = Failure::from(CommandError::from((*e).clone()));
            (
                Iq::Error {
                    from: Some(to),
                    to: None,
                    id,
                    error: *e,
                    payload: None,
                },
                Some(failure),
            )
        }
    };
    let mut stanza = Vec::new();
    let el = Element::from(iq);
    // Writing a tree the parser built into memory does not fail; should it, say so.
    el.write_to(&mut stanza)
        .map_err(|e| Failure::Upstream(format!("the answer could not be written: {e}")))?;
    Ok(Relayed::Answer { stanza, failure })
}

/// Reads the body into the stanza to send, or the 400 that says why it is not one, in the
/// gateway's own words (never the parser's, which name its Rust types). `path_to`: the path's
/// JID, the stanza's `to` (one in the body must be the same); an `iq` without an `id` gets one.
fn parse(body: &[u8], account: &BareJid, path_to: Option<&Jid>) -> Result<Outbound, Failure> {
    let bad = Failure::BadRequest;
    rest::xml::check_element(body).map_err(|e| bad(e.to_string()))?;
    let mut el = Element::from_reader_with_prefixes(body, Some(ns::DEFAULT_NS.to_string()))
        .map_err(|_| bad("the body is not one well-formed XML element".into()))?;
    if el.ns() != ns::DEFAULT_NS {
        return Err(bad(format!(
            "<{}> in {:?}: send one message, presence or iq in jabber:client",
            el.name(),
            el.ns()
        )));
    }
    check_from(&el, account)?;
    check_attributes(&el)?;
    if let Some(path_to) = path_to {
        match el.attr("to") {
            Some(to) if to.parse::<Jid>().ok().as_ref() != Some(path_to) => {
                return Err(bad(format!(
                    "to {to:?} differs from the path's {path_to}: give one, or the same"
                )))
            }
            _ => set_attr(&mut el, "to", path_to.to_string()),
        }
    }
    if el.name() == "iq" && el.attr("id").is_none_or(str::is_empty) {
        // RFC 6120 leaves the id to the sender; quick scripts leave it out. The answer comes
        // back under this one (the server's reply goes out under the gateway's own id anyway).
        set_attr(&mut el, "id", format!("xrg-{:016x}", rand::random::<u64>()));
    }
    let name = el.name().to_string();
    let unreadable = |_| {
        bad(format!(
            "the <{name}> is not one RFC 6120 allows: an attribute or child it does not take, \
             or one it needs missing"
        ))
    };
    match el.name() {
        "message" => {
            let m = Message::try_from(el.clone()).map_err(unreadable)?;
            Ok(Outbound::OneWay {
                to: m.to.clone(),
                stanza: OneWay::message(m),
            })
        }
        "presence" => {
            let p = Presence::try_from(el.clone()).map_err(unreadable)?;
            let to = p.to.clone();
            let stanza = OneWay::subscription(p).ok_or_else(|| {
                bad(
                    "only a presence of type subscribe, subscribed, unsubscribe or \
                     unsubscribed with a to is sent: the gateway's stream is never available"
                        .into(),
                )
            })?;
            Ok(Outbound::OneWay { stanza, to })
        }
        // The parser keeps the first payload of several; a request has exactly one.
        "iq" if el.children().count() != 1 => {
            Err(bad("an iq carries exactly one payload element".into()))
        }
        "iq" => match Iq::try_from(el.clone()).map_err(unreadable)? {
            Iq::Get {
                to, id, payload, ..
            } => iq(id, to, IqKind::Get, payload, account),
            Iq::Set {
                to, id, payload, ..
            } => iq(id, to, IqKind::Set, payload, account),
            Iq::Result { .. } | Iq::Error { .. } => Err(bad(
                "only an iq of type get or set is sent: nobody asked the gateway anything".into(),
            )),
        },
        other => Err(bad(format!(
            "<{other}> is not a stanza: send one message, presence or iq"
        ))),
    }
}

/// An IQ without `to` is the server's to answer for the account, as it is to the account's
/// bare JID. Whether its payload may go out is [`IqAllowList`]'s question, asked in `relay`.
fn iq(
    id: String,
    to: Option<Jid>,
    kind: IqKind,
    payload: Element,
    account: &BareJid,
) -> Result<Outbound, Failure> {
    Ok(Outbound::Iq {
        id,
        to: to.unwrap_or_else(|| Jid::from(account.clone())),
        kind,
        payload,
    })
}

/// Sets an attribute without namespace.
fn set_attr(el: &mut Element, name: &'static str, value: String) {
    // The names given here are constant and valid NCNames.
    use tokio_xmpp::minidom::rxml;
    let name = rxml::NcName::try_from(name).expect("constant attribute name");
    el.set_attr(rxml::Namespace::NONE, name, value);
}

/// What the parser would refuse in words of its own (its Rust types), said in ours first:
/// a `to` that is not a JID, a `type` the stanza does not take.
fn check_attributes(el: &Element) -> Result<(), Failure> {
    if let Some(to) = el.attr("to") {
        if to.parse::<Jid>().is_err() {
            return Err(Failure::BadRequest(format!("to {to:?} is not a JID")));
        }
    }
    let types: &[&str] = match el.name() {
        "message" => &["chat", "error", "groupchat", "headline", "normal"],
        "presence" => &[
            "error",
            "probe",
            "subscribe",
            "subscribed",
            "unavailable",
            "unsubscribe",
            "unsubscribed",
        ],
        "iq" => &["get", "set", "result", "error"],
        _ => return Ok(()),
    };
    match el.attr("type") {
        None if el.name() == "iq" => {
            Err(Failure::BadRequest("an iq needs a type: get or set".into()))
        }
        Some(t) if !types.contains(&t) => Err(Failure::BadRequest(format!(
            "<{} type={t:?}>: the types are {}",
            el.name(),
            types.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// A `from` may only say what the server would write anyway: the account's bare JID.
fn check_from(el: &Element, account: &BareJid) -> Result<(), Failure> {
    let Some(from) = el.attr("from") else {
        return Ok(());
    };
    match from.parse::<Jid>() {
        Ok(j) if j.resource().is_none() && j.to_bare() == *account => Ok(()),
        _ => Err(Failure::BadRequest(format!(
            "from {from:?}: a stanza is sent as {account}, and from may only name it"
        ))),
    }
}

#[cfg(test)]
#[path = "stanza_tests.rs"]
mod tests;
