//! What a command came to, as a type. The HTTP side and the REST resources decide on these,
//! never on a server's or the gateway's own words. Where a server says an outcome only in words
//! (Prosody's notes), the one table of those words is here, beside the reading of the answer
//! ([`super::reply`]), and nowhere else is a server's text compared.

use tokio_xmpp::parsers::jid::FullJid;

use super::condition::DefinedCondition;
use crate::rest::CommandResponse;

/// A command's document and what it came to.
#[derive(Debug, Clone)]
pub struct Answered {
    pub doc: CommandResponse,
    pub outcome: Outcome,
}

/// What a command came to, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Completed. `says`: what the server's note means, where the server says it only in words
    /// (Prosody's delete-user completes with an info note naming the accounts it could not
    /// delete).
    Completed { says: Option<DefinedCondition> },
    /// Completed at once without taking the fields the client sent (their `var`s).
    IgnoredFields(Vec<String>),
    /// Canceled.
    Canceled,
    /// Still executing: a form (a stage) to fill.
    Form,
    /// end-user-session: the sessions it really ended, in the order reported.
    Ended(Vec<FullJid>),
}

impl Outcome {
    /// Whether the command did what it was asked, with nothing left undone or unread.
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Completed { says: None } | Outcome::Ended(_))
    }
}

/// Prosody 0.12's `mod_admin_adhoc` completes some refusals with a note instead of an IQ error
/// (`tests/fixtures/transcripts/prosody-j-account-management.xml`, recorded from Prosody;
/// the module's Lua source): what each note means as the condition ejabberd answers the same case with.
/// ejabberd says all of these with IQ errors, so it has no table.
const PROSODY_NOTES: &[(&str, DefinedCondition)] = &[
    // add-user of an account that exists (ejabberd: conflict).
    ("Account already exists", DefinedCondition::Conflict),
    // change-user-password, get-user-roster, user-stats of an unknown account (ejabberd:
    // item-not-found).
    ("User does not exist", DefinedCondition::ItemNotFound),
    // delete-user of an unknown account, in an info note (ejabberd: item-not-found).
    (
        "The following accounts could not be deleted",
        DefinedCondition::ItemNotFound,
    ),
];

/// ejabberd 23.01's get-user-lastlogin (`mod_configure`) answers an account it has no
/// last-activity record of with the word `Never` in its `lastlogin` field, and a registered
/// account with a time (`mod_last` records the registration) or `Online`: the words that mean
/// the server does not know the account. Measured on ejabberd 23.01 (`tests/e2e/resources.rs`).
const EJABBERD_LAST_LOGIN: &[(&str, DefinedCondition)] =
    &[("Never", DefinedCondition::ItemNotFound)];

/// What a get-user-lastlogin answer says of its account, where the table knows the words:
/// `ItemNotFound` for an account the server has never seen.
pub fn last_login_says(doc: &CommandResponse) -> Option<DefinedCondition> {
    let value = doc
        .fields
        .iter()
        .find(|f| f.var == "lastlogin")
        .and_then(|f| f.values.first())?;
    EJABBERD_LAST_LOGIN
        .iter()
        .find(|(words, _)| value == words)
        .map(|(_, c)| c.clone())
}

/// What a server's note means, where its table knows the words.
pub fn said(note: &str) -> Option<DefinedCondition> {
    PROSODY_NOTES
        .iter()
        .find(|(words, _)| note.contains(words))
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adhoc::xep0050::CommandReply;

    /// The notes of every completed answer in the recorded transcripts: (file, note text).
    fn recorded_notes(server: &str) -> Vec<(String, String)> {
        // A copy of ../shared/reference/transcripts/, so that the test runs from the tree alone.
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transcripts");
        let mut notes = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(server) && name.ends_with(".xml")
            })
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.split("\n<iq").skip(1) {
                let iq = format!("<iq{line}");
                let Some(start) = iq.find("<command") else {
                    continue;
                };
                let Some(end) = iq.rfind("</iq>") else {
                    continue;
                };
                let el: Result<tokio_xmpp::minidom::Element, _> = iq[start..end].parse();
                let Ok(el) = el else { continue };
                if let Some(reply) = CommandReply::parse(&el) {
                    for n in reply.notes {
                        let name = path.file_name().unwrap().to_string_lossy().to_string();
                        notes.push((name, n.text));
                    }
                }
            }
        }
        notes
    }

    #[test]
    fn prosodys_refusals_in_words_are_read_as_conditions() {
        let notes = recorded_notes("prosody-j");
        let says = |want: &str| {
            let (_, text) = notes
                .iter()
                .find(|(_, t)| t.starts_with(want))
                .unwrap_or_else(|| panic!("no recorded note {want:?} in {notes:?}"));
            said(text)
        };
        assert_eq!(
            says("Account already exists"),
            Some(DefinedCondition::Conflict)
        );
        assert_eq!(
            says("User does not exist"),
            Some(DefinedCondition::ItemNotFound)
        );
        assert_eq!(
            says("The following accounts could not be deleted"),
            Some(DefinedCondition::ItemNotFound)
        );
        // Successes say nothing the table knows.
        assert_eq!(says("Account successfully created"), None);
        assert_eq!(says("Password successfully changed"), None);
        assert_eq!(
            says("The following accounts were successfully deleted"),
            None
        );
    }

    fn last_login(value: &str) -> CommandResponse {
        CommandResponse {
            fields: vec![crate::rest::ResponseField {
                var: "lastlogin".into(),
                values: vec![value.into()],
                ..Default::default()
            }],
            ..CommandResponse::default()
        }
    }

    #[test]
    fn a_last_login_of_never_means_the_account_is_unknown() {
        assert_eq!(
            last_login_says(&last_login("Never")),
            Some(DefinedCondition::ItemNotFound)
        );
        for known in ["2026-12-06 15:22:34", "Online", ""] {
            assert_eq!(last_login_says(&last_login(known)), None, "{known:?}");
        }
        // Only the lastlogin field is read.
        let mut other = last_login("Never");
        other.fields[0].var = "accountjid".into();
        assert_eq!(last_login_says(&other), None);
    }

    #[test]
    fn no_note_of_ejabberd_is_in_the_table() {
        for (file, text) in recorded_notes("ejabberd") {
            assert_eq!(said(&text), None, "{file}: {text:?}");
        }
    }
}
