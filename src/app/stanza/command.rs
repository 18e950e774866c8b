//! What a command relayed through `POST /rest/stream/` carries: its node (a first `execute`
//! only), and the JIDs and domains its submitted form names, for the node and domain rules and
//! the audit line.

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::jid::Jid;

use crate::adhoc::xep0050::{NS_COMMANDS as COMMANDS, NS_DATA};
use crate::adhoc::END_USER_SESSION;
use crate::app::Failure;

/// The node of a XEP-0050 command payload, which the `/rest/adhoc` node rules govern. Only a
/// first `execute` is taken: a `sessionid` or another action would reach into command sessions
/// that other requests of the account hold on the shared stream (kept ones are `/rest/adhoc`'s).
pub(super) fn command_node(payload: &Element) -> Result<Option<&str>, Failure> {
    if !payload.is("command", COMMANDS) {
        return Ok(None);
    }
    let action = payload.attr("action").unwrap_or("execute");
    if payload.attr("sessionid").is_some() || action != "execute" {
        return Err(Failure::BadRequest(
            "a <command> here may only be a first execute, without sessionid: multi-stage \
             commands go through /rest/adhoc?keep=1"
                .into(),
        ));
    }
    match payload
        .attr("node")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        // Sent as written, its JIDs would reach the server unplanned: a bare JID or a marked
        // full JID would end a gateway's stream (this one's, or another replica's).
        Some(END_USER_SESSION) if payload.children().any(|x| x.is("x", NS_DATA)) => {
            Err(Failure::BadRequest(
                "end-user-session with a form is not relayed: use /rest/adhoc or \
                 /rest/sessions, which spare the gateways' own streams"
                    .into(),
            ))
        }
        Some(node) => Ok(Some(node)),
        None => Err(Failure::BadRequest("a <command> needs a node".into())),
    }
}

/// The values of the submitted form's JID fields, for the audit line: typed `jid-single` or
/// `jid-multi`, or XEP-0133's `accountjid(s)` left untyped; never another field's value.
pub(super) fn form_jids(payload: &Element) -> Vec<String> {
    let jid_field = |f: &&Element| match f.attr("type") {
        Some(t) => t == "jid-single" || t == "jid-multi",
        None => matches!(f.attr("var"), Some("accountjid" | "accountjids")),
    };
    form_fields(payload)
        .filter(jid_field)
        .flat_map(values)
        .collect()
}

/// The domains a command IQ addresses: its target's, and that of every JID-like value of the
/// form it submits (an account JID, or a bare domain with a dot in it).
pub(super) fn form_domains(to: &Jid, payload: &Element) -> Vec<String> {
    let mut domains = vec![to.domain().to_string()];
    for v in form_fields(payload).flat_map(values) {
        let v = v.trim();
        let jid =
            crate::adhoc::address::parse_jid(v).filter(|j| j.node().is_some() || v.contains('.'));
        if let Some(d) = jid.map(|j| j.domain().to_string()) {
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
    }
    domains
}

/// The `<field/>`s of the forms a command payload submits.
fn form_fields(payload: &Element) -> impl Iterator<Item = &Element> {
    payload
        .children()
        .filter(|x| x.is("x", NS_DATA))
        .flat_map(|x| x.children())
        .filter(|f| f.name() == "field")
}

/// A field's `<value/>`s, as text.
fn values(field: &Element) -> impl Iterator<Item = String> + '_ {
    field
        .children()
        .filter(|v| v.name() == "value")
        .map(|v| v.text())
}
