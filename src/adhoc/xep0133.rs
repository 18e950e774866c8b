//! The XEP-0133 admin commands the gateway composes itself (end-user-session's user-stats and
//! kicks), and what it reads from their answers.

use tokio_xmpp::parsers::jid::{BareJid, Jid};

use super::xep0050::{Command, CommandReply, Field, Form};
use super::{END_USER_SESSION, USER_STATS};

const FORM_TYPE_ADMIN: &str = "http://jabber.org/protocol/admin";

/// The online resources user-stats lists (`onlineresources`). An account the server does not
/// know has none (Prosody answers an error note, ejabberd empty statistics).
pub fn online_resources(reply: CommandReply) -> Vec<String> {
    reply
        .form
        .as_ref()
        .and_then(|f| f.field("onlineresources"))
        .map(|f| f.values.iter().filter(|v| !v.is_empty()).cloned().collect())
        .unwrap_or_default()
}

pub fn user_stats_iq(to: &Jid, account: &BareJid) -> (Jid, Command) {
    let form = admin_form(vec![field("accountjid", "jid-single", account.as_str())]);
    (to.clone(), Command::execute(USER_STATS, Some(form)))
}

/// Both field names: `accountjids` (XEP-0133, Prosody) and `accountjid` (ejabberd).
pub fn end_session_iq(to: &Jid, jid: &Jid) -> (Jid, Command) {
    let form = admin_form(vec![
        field("accountjids", "jid-multi", jid.as_str()),
        field("accountjid", "jid-single", jid.as_str()),
    ]);
    (to.clone(), Command::execute(END_USER_SESSION, Some(form)))
}

fn admin_form(mut fields: Vec<Field>) -> Form {
    fields.insert(0, field("FORM_TYPE", "hidden", FORM_TYPE_ADMIN));
    Form::submit(fields)
}

fn field(var: &str, type_: &str, value: &str) -> Field {
    Field {
        var: Some(var.into()),
        type_: Some(type_.into()),
        values: vec![value.into()],
        ..Field::default()
    }
}
