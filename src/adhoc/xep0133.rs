//! The XEP-0133 admin commands the gateway composes itself (end-user-session's user-stats and
//! kicks), and what it reads from their answers.

/// The XEP-0133 nodes the gateway itself runs (the REST resources, end-user-session's own
/// path): the one place these strings are written.
pub const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";
pub const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";
pub const ADD_USER: &str = "http://jabber.org/protocol/admin#add-user";
pub const DELETE_USER: &str = "http://jabber.org/protocol/admin#delete-user";
pub const CHANGE_USER_PASSWORD: &str = "http://jabber.org/protocol/admin#change-user-password";
pub const ANNOUNCE: &str = "http://jabber.org/protocol/admin#announce";
/// Asked whether an account exists where user-stats does not tell (ejabberd): it reads no
/// password.
pub const GET_USER_LASTLOGIN: &str = "http://jabber.org/protocol/admin#get-user-lastlogin";

use tokio_xmpp::parsers::jid::{BareJid, Jid};

use super::xep0050::{Command, CommandReply, Field, Form};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kick_names_the_jid_in_both_field_names() {
        let (to, cmd) = end_session_iq(
            &"example.org".parse().unwrap(),
            &"u@example.org/r".parse().unwrap(),
        );
        assert_eq!(to.as_str(), "example.org");
        assert_eq!(cmd.node, END_USER_SESSION);
        let form = cmd.form.unwrap();
        let vars: Vec<_> = form.fields.iter().map(|f| f.var.clone().unwrap()).collect();
        assert_eq!(vars, ["FORM_TYPE", "accountjids", "accountjid"]);
        assert!(form.fields[1..]
            .iter()
            .all(|f| f.values == ["u@example.org/r"]));
    }

    #[test]
    fn online_resources_skip_empty_values_and_default_to_none() {
        let (_, cmd) = user_stats_iq(
            &"example.org".parse().unwrap(),
            &"u@example.org".parse().unwrap(),
        );
        assert_eq!(
            cmd.form.unwrap().field("accountjid").unwrap().values,
            ["u@example.org"]
        );
        let mut reply = CommandReply {
            node: USER_STATS.into(),
            sessionid: None,
            status: super::super::xep0050::Status::Completed,
            actions: vec![],
            default_action: None,
            notes: vec![],
            form: None,
        };
        assert!(
            online_resources(reply.clone()).is_empty(),
            "an unknown account"
        );
        reply.form = Some(Form {
            fields: vec![
                field("onlineresources", "text-multi", "phone"),
                field("x", "text-single", ""),
            ],
            ..Form::default()
        });
        reply.form.as_mut().unwrap().fields[0]
            .values
            .push(String::new());
        assert_eq!(online_resources(reply), ["phone"]);
    }
}
