//! What the walk knows in advance: the scratch account, the commands never run and why, the
//! failures each server is expected to answer, and what each server lists.

use std::time::Duration;

use crate::common::ServerKind;

pub(crate) const PATH: &str = "/rest/adhoc/sess-man@domain.com";
pub(crate) const LIST_PATH: &str = "/rest/adhoc/sess-man@domain.com?type=application/json";

pub(crate) const ADMIN_NS: &str = "http://jabber.org/protocol/admin#";
/// The scratch account the walk creates (add-user), uses and deletes (delete-user).
pub(crate) const SCRATCH: &str = "walk1";
/// The resource of the scratch account's own client while the walk runs.
pub(crate) const SCRATCH_RESOURCE: &str = "walk";
/// add-user's password, then change-user-password's. Distinctive, so a log search is exact.
pub(crate) const FIRST_PASSWORD: &str = "walk-first-Q7v2xk";
pub(crate) const SECOND_PASSWORD: &str = "walk-second-Z9k4mr";
/// How long the kicked scratch client may take to see its stream end.
pub(crate) const KICK_SEEN: Duration = Duration::from_secs(5);

/// Commands never executed, with the reason. `fetch` says whether asking for the form is safe
/// (the command answers a form before it does anything); where it is not, the form is not
/// fetched either. Nodes are normalised (ejabberd's Erlang node name is `{node}`).
pub(crate) struct Deny {
    pub(crate) node: &'static str,
    pub(crate) reason: &'static str,
    pub(crate) fetch: bool,
}

#[rustfmt::skip]
pub(crate) const DENY: &[Deny] = &[
    Deny { node: "http://jabber.org/protocol/admin#shutdown", reason: "stops the server", fetch: true },
    Deny { node: "http://jabber.org/protocol/admin#restart", reason: "restarts the server", fetch: true },
    Deny { node: "http://prosody.im/protocol/config#reload", reason: "reloads the configuration", fetch: false },
    Deny { node: "http://prosody.im/protocol/hosts#deactivate", reason: "deactivates a host", fetch: true },
    Deny { node: "http://prosody.im/protocol/modules#reload", reason: "reloads modules", fetch: true },
    Deny { node: "http://prosody.im/protocol/modules#global-reload", reason: "reloads a module on every host", fetch: true },
    Deny { node: "http://prosody.im/protocol/modules#unload", reason: "unloads modules", fetch: true },
    Deny { node: "http://prosody.im/protocol/modules#global-unload", reason: "unloads a module from every host", fetch: true },
    Deny { node: "running nodes/{node}/backup/backup", reason: "writes a backup", fetch: true },
    Deny { node: "running nodes/{node}/backup/restore", reason: "restores a backup", fetch: true },
    Deny { node: "running nodes/{node}/backup/textfile", reason: "dumps the database to a file (a backup)", fetch: true },
    Deny { node: "running nodes/{node}/import/file", reason: "imports users from a file", fetch: true },
    Deny { node: "running nodes/{node}/import/dir", reason: "imports users from a directory", fetch: true },
    Deny { node: "running nodes/{node}/restart", reason: "restarts the server", fetch: true },
    Deny { node: "running nodes/{node}/shutdown", reason: "stops the server", fetch: true },
];

/// Words that make an unknown command too dangerous to run blind: a node listed by a server,
/// in neither [`DENY`] nor the known lists, whose node or name has one of these fails the test
/// before anything is sent for it.
pub(crate) const DANGEROUS: &[&str] = &[
    "shutdown",
    "shut down",
    "restart",
    "reload",
    "unload",
    "deactivate",
    "backup",
    "restore",
    "import",
    "stop",
    "delete",
    "disable",
    "purge",
    "remove",
    "drop",
    "clear",
];

/// An execution whose answer is not a plain success, and why that is right: an error status, or
/// a 200 whose note reports a failure. The walk fails if reality differs.
pub(crate) struct Expected {
    pub(crate) server: ServerKind,
    pub(crate) node: &'static str,
    pub(crate) status: u16,
    /// Found in the error's `condition` or `text`, or (for a 200) in the note.
    pub(crate) detail: &'static str,
    pub(crate) reason: &'static str,
}

#[rustfmt::skip]
pub(crate) const EXPECTED: &[Expected] = &[
    Expected {
        server: ServerKind::Ejabberd,
        node: "http://jabber.org/protocol/admin#get-user-password",
        status: 404,
        detail: "item-not-found",
        reason: "ejabberd keeps SCRAM hashes, not passwords (`auth_password_format: scram`, \
                 its default), so its handler crashes (`mod_configure:set_form/5`: no match of \
                 `false`, in error.log) and mod_adhoc answers item-not-found; with `plain` \
                 storage it would answer the password",
    },
    Expected {
        server: ServerKind::Prosody,
        node: "http://prosody.im/protocol/modules#load",
        status: 422,
        detail: "Failed to load module",
        reason: "there is no module `walk`; Prosody says so in an error note",
    },
    Expected {
        server: ServerKind::Prosody,
        node: "http://prosody.im/protocol/modules#global-load",
        status: 200,
        detail: "Failed to load the module walk",
        reason: "there is no module `walk`; Prosody reports this failure in an *info* note, so \
                 it is a 200",
    },
];

/// Separates an outcome from the reason it is expected, in the document.
pub(crate) const EXPECTED_MARK: &str = " — expected: ";

/// What each server lists to an admin with the harness's configuration (the same as
/// `transcripts/*-a-disco-items-commands.xml`, plus the commands of the announce modules the
/// harness enables for `/rest/announce`), normalised.
#[rustfmt::skip]
pub(crate) const LISTED_PROSODY: &[&str] = &[
    "http://jabber.org/protocol/admin#add-user",
    "http://jabber.org/protocol/admin#announce",
    "http://jabber.org/protocol/admin#change-user-password",
    "http://jabber.org/protocol/admin#delete-user",
    "http://jabber.org/protocol/admin#end-user-session",
    "http://jabber.org/protocol/admin#get-online-users-list",
    "http://jabber.org/protocol/admin#get-user-roster",
    "http://jabber.org/protocol/admin#shutdown",
    "http://jabber.org/protocol/admin#user-stats",
    "http://prosody.im/protocol/config#reload",
    "http://prosody.im/protocol/hosts#activate",
    "http://prosody.im/protocol/hosts#deactivate",
    "http://prosody.im/protocol/modules#global-load",
    "http://prosody.im/protocol/modules#global-reload",
    "http://prosody.im/protocol/modules#global-unload",
    "http://prosody.im/protocol/modules#list",
    "http://prosody.im/protocol/modules#load",
    "http://prosody.im/protocol/modules#reload",
    "http://prosody.im/protocol/modules#unload",
    "http://prosody.im/protocol/s2s#list",
    "uptime",
];

#[rustfmt::skip]
pub(crate) const LISTED_EJABBERD: &[&str] = &[
    "http://jabber.org/protocol/admin#announce",
    "http://jabber.org/protocol/admin#announce-all",
    "http://jabber.org/protocol/admin#set-motd",
    "http://jabber.org/protocol/admin#edit-motd",
    "http://jabber.org/protocol/admin#delete-motd",
    "http://jabber.org/protocol/admin#announce-allhosts",
    "http://jabber.org/protocol/admin#announce-all-allhosts",
    "http://jabber.org/protocol/admin#set-motd-allhosts",
    "http://jabber.org/protocol/admin#edit-motd-allhosts",
    "http://jabber.org/protocol/admin#delete-motd-allhosts",
    "http://jabber.org/protocol/admin#add-user",
    "http://jabber.org/protocol/admin#delete-user",
    "http://jabber.org/protocol/admin#end-user-session",
    "http://jabber.org/protocol/admin#get-user-password",
    "http://jabber.org/protocol/admin#change-user-password",
    "http://jabber.org/protocol/admin#get-user-lastlogin",
    "http://jabber.org/protocol/admin#user-stats",
    "http://jabber.org/protocol/admin#get-registered-users-list",
    "http://jabber.org/protocol/admin#get-registered-users-num",
    "http://jabber.org/protocol/admin#get-online-users-list",
    "http://jabber.org/protocol/admin#get-online-users-num",
    "running nodes/{node}/DB",
    "running nodes/{node}/backup/backup",
    "running nodes/{node}/backup/restore",
    "running nodes/{node}/backup/textfile",
    "running nodes/{node}/import/file",
    "running nodes/{node}/import/dir",
    "running nodes/{node}/restart",
    "running nodes/{node}/shutdown",
    "ping",
];
