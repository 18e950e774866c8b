//! What the XMPP server sends back, as a fuzz target: a stanza's bytes -> the element the stream
//! reader would hand over -> the IQ -> `CommandReply::parse`, disco#items and stanza errors,
//! then the submit form the gateway would build from the reply; and the same bytes through the
//! tree-free reader (`adhoc::wire::read_reply`).

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::disco::DiscoItemsResult;
use tokio_xmpp::parsers::iq::Iq;
use xmpp_rest_gateway::adhoc::form;
use xmpp_rest_gateway::adhoc::wire::read_reply;
use xmpp_rest_gateway::adhoc::xep0050::{CommandReply, Form};
use xmpp_rest_gateway::adhoc::CommandError;
use xmpp_rest_gateway::rest::{FieldValue, RequestField};

use super::engine::{fnv, Outcome};
use super::targets::message_signature;

pub const REPLY_TOKENS: &[&[u8]] = &[
    b"<command xmlns='http://jabber.org/protocol/commands'",
    b"</command>",
    b"<x xmlns='jabber:x:data' type='form'>",
    b"</x>",
    b"<field var='accountjids' type='jid-multi'>",
    b"<field type='list-single'",
    b"</field>",
    b"<value>",
    b"</value>",
    b"<option label='x'><value>1</value></option>",
    b"<required/>",
    b"<reported>",
    b"<item>",
    b"<actions execute='complete'><next/><complete/></actions>",
    b"<note type='error'>",
    b" status='executing'",
    b" status='canceled'",
    b" sessionid='s'",
    b" node=''",
    b"<error type='cancel'>",
    b"<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>",
    b"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>",
    b"<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:a@b</gone>",
    b"<query xmlns='http://jabber.org/protocol/disco#items'",
    b"<item jid='example.test' node='n' name='N'/>",
    b" jid='a@b/c'",
    b" jid='@'",
    b" xml:lang='en'",
    b" type='result'",
    b" type='error'",
    b" type='get'",
    b" id=''",
    b" xmlns=''",
    b" xmlns:p='urn:p'",
    b"<p:command xmlns:p='http://jabber.org/protocol/commands'>",
    b"<!DOCTYPE iq>",
    b"&#0;",
    b"&#xFFFE;",
    b"&amp;",
    b"<![CDATA[x]]>",
];

/// One stanza's bytes, parsed as a child of a `jabber:client` stream.
pub fn reply(input: &[u8]) -> Outcome {
    let Ok(el) = Element::from_reader_with_prefixes(input, String::from("jabber:client")) else {
        return Outcome::Refused(0);
    };
    let mut shape = vec![el.name().len().min(16) as u8];
    // The gateway parses the `<command/>` payload; a bare one is tried as well as the children.
    for (i, candidate) in std::iter::once(&el).chain(el.children()).enumerate() {
        let parsed = command(candidate);
        if i < 4 {
            shape.push(parsed);
        }
    }
    match Iq::try_from(el) {
        Ok(Iq::Result {
            payload: Some(p), ..
        }) => {
            shape.push(command(&p));
            shape.push(match DiscoItemsResult::try_from(p) {
                Ok(items) => 10 + items.items.len().min(3) as u8,
                Err(_) => 9,
            });
            Outcome::Accepted(fnv(&shape))
        }
        Ok(Iq::Result { payload: None, .. }) => Outcome::Accepted(fnv(&shape) ^ 1),
        Ok(Iq::Error { error, .. }) => {
            // The condition, not the server's text: a signature per kind of error.
            let condition = match CommandError::from(error) {
                CommandError::Xmpp {
                    type_, condition, ..
                } => format!(
                    "{type_} {}",
                    xmpp_rest_gateway::adhoc::condition::condition_name(&condition)
                ),
                other => other.to_string(),
            };
            Outcome::Accepted(message_signature(fnv(&shape), &condition))
        }
        Ok(_) => Outcome::Accepted(fnv(&shape) ^ 2),
        // The error alone: with the shape too, refused inputs would crowd out the corpus.
        Err(e) => {
            let message: String = e.to_string().chars().take(32).collect();
            Outcome::Refused(message_signature(3, &message))
        }
    }
}

/// One stanza's bytes through the tree-free reader (`adhoc::wire`). Where the tree path also
/// reads a result's `<command/>`, the two must agree field for field.
pub fn pulled(input: &[u8]) -> Outcome {
    match read_reply(input) {
        Ok(r) => {
            if let Ok(el) = Element::from_reader_with_prefixes(input, String::from("jabber:client"))
            {
                if let Ok(Iq::Result {
                    payload: Some(p), ..
                }) = Iq::try_from(el)
                {
                    let tree = CommandReply::parse(&p);
                    if let (Some(t), Ok(pl)) = (&tree, &r.answer) {
                        assert_eq!(t, pl, "the pull reader and the tree path disagree");
                    }
                }
            }
            let shape = match &r.answer {
                Ok(reply) => vec![1, reply.status as u8, u8::from(reply.form.is_some())],
                Err(e) => e
                    .to_string()
                    .bytes()
                    .filter(|b| !b.is_ascii_digit())
                    .collect(),
            };
            Outcome::Accepted(fnv(&shape))
        }
        Err(e) => {
            let message: String = e.to_string().chars().take(32).collect();
            Outcome::Refused(message_signature(4, &message))
        }
    }
}

/// Reads `el` as a command reply and, when it carries a form, fills it as the gateway would:
/// with no client values (defaults only) and with two values for every field. The filled form,
/// made an element and read back, is the same form. Returns a shape for the signature.
fn command(el: &Element) -> u8 {
    let Some(reply) = CommandReply::parse(el) else {
        return 0;
    };
    let _ = reply.submit_action();
    let Some(form) = &reply.form else {
        return 1 + reply.status as u8;
    };
    let every: Vec<RequestField> = form
        .fields
        .iter()
        .filter_map(|f| f.var.clone())
        .map(|var| RequestField {
            var,
            value: Some(FieldValue::List(vec![
                "a@example.test".into(),
                String::new(),
            ])),
        })
        .collect();
    let mut filled = 0;
    // The default `--max-jids`, and a limit the two values given to every field exceed.
    for (client, max_jids) in [(&[][..], 100), (&every[..], 100), (&every[..], 1)] {
        if let Ok(submit) = form::fill(form, client, max_jids) {
            assert_eq!(
                Form::parse(&submit.to_element()),
                submit,
                "a submit form survives becoming an element"
            );
            filled += 1;
        }
    }
    4 + filled * 3 + reply.status as u8 + 16 * (form.fields.len().min(4) as u8)
}
