//! Walks every ad-hoc command each server lists to an admin, through one gateway per server:
//! lists them, fetches every form, executes every command that is safe to run (in an order that
//! creates, uses and finally deletes a scratch account), checks each outcome, and writes
//! `docs/commands.md` from what both servers really answered.
//!
//! The two tests (one per server) run as threads of one process; each records its report in a
//! static and the one that finishes second writes the document, so `cargo test --test
//! commands` always leaves it describing one run. A filtered run (one server only) writes
//! nothing. Checks are gathered rather than asserted one by one, so the document is written
//! even when something differs; the test then fails listing every difference.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::victim::Victim;
use common::{basic, http, HttpResponse, ServerKind, TestGateway, TestServer};

const PATH: &str = "/rest/adhoc/sess-man@domain.com";
const LIST_PATH: &str = "/rest/adhoc/sess-man@domain.com?type=application/json";

const ADMIN_NS: &str = "http://jabber.org/protocol/admin#";
/// The scratch account the walk creates (add-user), uses and deletes (delete-user).
const SCRATCH: &str = "walk1";
/// The resource of the scratch account's own client while the walk runs.
const SCRATCH_RESOURCE: &str = "walk";
/// add-user's password, then change-user-password's. Distinctive, so a log search is exact.
const FIRST_PASSWORD: &str = "walk-first-Q7v2xk";
const SECOND_PASSWORD: &str = "walk-second-Z9k4mr";
/// How long the kicked scratch client may take to see its stream end.
const KICK_SEEN: Duration = Duration::from_secs(5);

/// Commands never executed, with the reason. `fetch` says whether asking for the form is safe
/// (the command answers a form before it does anything); where it is not, the form is not
/// fetched either. Nodes are normalised (ejabberd's Erlang node name is `{node}`).
struct Deny {
    node: &'static str,
    reason: &'static str,
    fetch: bool,
}

#[rustfmt::skip]
const DENY: &[Deny] = &[
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
const DANGEROUS: &[&str] = &[
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
struct Expected {
    server: ServerKind,
    node: &'static str,
    status: u16,
    /// Found in the error's `condition` or `text`, or (for a 200) in the note.
    detail: &'static str,
    reason: &'static str,
}

#[rustfmt::skip]
const EXPECTED: &[Expected] = &[
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
const EXPECTED_MARK: &str = " — expected: ";

/// What each server lists to an admin with the harness's configuration (the same as
/// `transcripts/*-a-disco-items-commands.xml`), normalised.
#[rustfmt::skip]
const LISTED_PROSODY: &[&str] = &[
    "http://jabber.org/protocol/admin#add-user",
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
const LISTED_EJABBERD: &[&str] = &[
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody() {
    walk(ServerKind::Prosody).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd() {
    walk(ServerKind::Ejabberd).await
}

// ---------------------------------------------------------------------------------------------
// What a walk finds

/// One command as one server answered it.
#[derive(Debug, Clone, Default)]
struct CommandReport {
    name: String,
    /// `var:type` of each form field, `*` after a required one; `None` when it completes at
    /// once (no form); `Err` when the form could not be fetched (or was not asked for).
    form: Option<Result<Vec<String>, String>>,
    /// Status code and summary, or why it was not run.
    outcome: String,
}

#[derive(Debug, Clone)]
struct ServerReport {
    kind: ServerKind,
    version: String,
    /// By normalised node, in the server's listing order.
    commands: Vec<(String, CommandReport)>,
}

/// Both servers' reports; the second one recorded writes the document.
static REPORTS: Mutex<Vec<ServerReport>> = Mutex::new(Vec::new());

fn record(report: ServerReport) {
    let mut reports = REPORTS.lock().unwrap_or_else(|e| e.into_inner());
    let kind = report.kind;
    reports.retain(|r| r.kind != kind);
    reports.push(report);
    if reports.len() == 2 {
        let doc = render_doc(&reports);
        let path = doc_path();
        std::fs::create_dir_all(path.parent().unwrap()).expect("creating docs/");
        std::fs::write(&path, doc).expect("writing docs/commands.md");
        eprintln!("[commands] wrote {}", path.display());
    } else {
        eprintln!(
            "[commands] {} recorded; docs/commands.md is written once both servers' walks \
             ran in this process",
            kind
        );
    }
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/commands.md")
}

// ---------------------------------------------------------------------------------------------
// The walk

struct Walk<'a> {
    server: &'a TestServer,
    gw: TestGateway,
    auth: String,
    /// The Erlang node name in ejabberd's nodes, if any.
    erlang_node: Option<String>,
    problems: Vec<String>,
}

impl Walk<'_> {
    fn problem(&mut self, node: &str, what: impl AsRef<str>) {
        self.problems
            .push(format!("{} {node}: {}", self.server.kind, what.as_ref()));
    }

    /// POSTs `body` as the admin, in JSON. `COMMANDS_DUMP=1` prints request and answer.
    async fn post(&self, body: &Value) -> HttpResponse {
        let r = http(
            self.gw.addr,
            "POST",
            PATH,
            &[
                ("authorization", &self.auth),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .await;
        if std::env::var_os("COMMANDS_DUMP").is_some() {
            eprintln!(
                "[{}] >>> {body}\n<<< {} {}",
                self.server.kind,
                r.status,
                r.text()
            );
        }
        r
    }

    /// The node as the server names it (`{node}` put back).
    fn raw(&self, normal: &str) -> String {
        match &self.erlang_node {
            Some(n) => normal.replace("{node}", n),
            None => normal.to_string(),
        }
    }
}

async fn walk(kind: ServerKind) {
    let s = common::started(kind).await;
    let started = Instant::now();
    let mut w = Walk {
        server: s,
        gw: TestGateway::start(s, &[]),
        auth: basic(&s.jid("admin"), &s.password("admin")),
        erlang_node: None,
        problems: Vec::new(),
    };

    // 1. The list.
    let r = http(
        w.gw.addr,
        "GET",
        LIST_PATH,
        &[("authorization", &w.auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{kind} command list: {}", r.text());
    let items = r.json()["items"].as_array().expect("items").clone();
    let mut listed: Vec<(String, String)> = Vec::new(); // (normalised node, name)
    for item in &items {
        let node = item["node"].as_str().expect("node").to_string();
        if item["jid"] != "sess-man@domain.com" {
            w.problem(&node, format!("listed with jid {}", item["jid"]));
        }
        let (normal, erlang) = normalise(&node);
        if let Some(e) = erlang {
            w.erlang_node.get_or_insert(e);
        }
        let name = item["name"].as_str().unwrap_or_default().to_string();
        listed.push((normal, name));
    }
    let want: BTreeSet<&str> = match kind {
        ServerKind::Prosody => LISTED_PROSODY,
        ServerKind::Ejabberd => LISTED_EJABBERD,
    }
    .iter()
    .copied()
    .collect();
    let got: BTreeSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    if got != want {
        w.problem(
            "(list)",
            format!(
                "listed differently: new {:?}, missing {:?}",
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>()
            ),
        );
    }
    for (node, name) in &listed {
        // Ranked commands (delete-user, disable-user, …) only ever touch the scratch account.
        let known = want.contains(node.as_str()) || deny(node).is_some() || rank(node) != 4;
        let lower = format!("{node} {name}").to_lowercase();
        assert!(
            known || !DANGEROUS.iter().any(|d| lower.contains(d)),
            "{kind} lists {node:?} ({name:?}), which looks dangerous: add it to DENY, or to the \
             known list once checked"
        );
    }

    let mut reports: BTreeMap<String, CommandReport> = listed
        .iter()
        .map(|(n, name)| {
            let report = CommandReport {
                name: name.clone(),
                ..CommandReport::default()
            };
            (n.clone(), report)
        })
        .collect();

    // 2. Every form.
    let mut forms: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (node, _) in &listed {
        if deny(node).is_some_and(|d| !d.fetch) {
            let why = "not fetched: the command acts at its first execute, without a form";
            reports.get_mut(node).unwrap().form = Some(Err(why.to_string()));
            continue;
        }
        let r = w.post(&json!({"command": {"node": w.raw(node)}})).await;
        let form = if r.status != 200 {
            w.problem(node, format!("form: {} {}", r.status, r.text()));
            Some(Err(format!("{} {}", r.status, error_summary(&r))))
        } else {
            let doc = r.json()["command"].clone();
            match doc.get("status").and_then(Value::as_str) {
                Some("executing") => {
                    let fields = doc["fields"].as_array().cloned().unwrap_or_default();
                    if fields.is_empty() {
                        w.problem(node, "form: executing without fields");
                    }
                    if doc.get("sessionid").is_some() {
                        w.problem(node, "form: a sessionid without ?keep=1");
                    }
                    let shown = fields.iter().filter(|f| {
                        f["var"] != "FORM_TYPE" && f["var"] != "" && f["var"].is_string()
                    });
                    let vars = shown.map(field_signature).collect();
                    forms.insert(node.clone(), fields);
                    Some(Ok(vars))
                }
                None => None, // completed at once: no input
                Some(other) => {
                    w.problem(node, format!("form: status {other}: {}", r.text()));
                    Some(Err(format!("status {other}")))
                }
            }
        };
        reports.get_mut(node).unwrap().form = form;
    }

    // 3. Execute, in an order that creates the scratch account first and deletes it last.
    let mut order: Vec<&String> = listed.iter().map(|(n, _)| n).collect();
    order.sort_by_key(|n| (rank(n), n.to_string()));
    let mut victim: Option<Victim> = None;
    let mut password = FIRST_PASSWORD;
    for node in order {
        if let Some(d) = deny(node) {
            reports.get_mut(node).unwrap().outcome = format!("denied ({})", d.reason);
            continue;
        }
        if node == &cmd("change-user-password") {
            password = SECOND_PASSWORD;
        }
        let fields = match forms.get(node) {
            Some(form) => fill(form, &s.jid(SCRATCH), password),
            None => Vec::new(),
        };
        let body = if fields.is_empty() {
            json!({"command": {"node": w.raw(node)}})
        } else {
            json!({"command": {"node": w.raw(node), "fields": fields}})
        };
        if node == &cmd("end-user-session") && victim.is_none() {
            w.problem(node, "the scratch client is not online");
        }
        let r = w.post(&body).await;
        let mut outcome = summarise(&r, w.erlang_node.as_deref());
        let expected = EXPECTED
            .iter()
            .find(|e| e.server == kind && e.node == node.as_str());
        match expected {
            Some(e) => {
                let body = r.json();
                let found = if r.status == 200 {
                    body["command"]["note"]["value"]
                        .as_str()
                        .is_some_and(|t| t.contains(e.detail))
                } else {
                    let err = &body["error"];
                    err["condition"] == e.detail
                        || err["text"].as_str().is_some_and(|t| t.contains(e.detail))
                };
                if r.status != e.status || !found {
                    w.problem(
                        node,
                        format!(
                            "expected {} with {:?} ({}), got {} {}",
                            e.status,
                            e.detail,
                            e.reason,
                            r.status,
                            r.text()
                        ),
                    );
                }
                outcome = format!("{outcome}{EXPECTED_MARK}{}", e.reason);
            }
            None => {
                if r.status != 200 {
                    w.problem(node, format!("execute: {} {}", r.status, r.text()));
                } else if r.json()["command"].get("status").is_some() {
                    w.problem(node, format!("execute: not completed: {}", r.text()));
                } else {
                    let doc = r.json()["command"].clone();
                    check_result(&mut w, node, &doc, victim.as_ref()).await;
                }
            }
        }
        reports.get_mut(node).unwrap().outcome = outcome;

        // What the walk does between commands.
        if node == &cmd("change-user-password") && r.status == 200 {
            // The new password logs in: the scratch account's own client, for the commands
            // about online users and for end-user-session to end.
            victim =
                Some(Victim::connect_with(s, SCRATCH, SECOND_PASSWORD, SCRATCH_RESOURCE).await);
        }
        if node == &cmd("end-user-session") {
            if let Some(v) = victim.take() {
                if !v.closed_within(KICK_SEEN).await {
                    w.problem(node, "the scratch client's stream is still open");
                }
            }
        }
        if node == &cmd("delete-user") && r.status == 200 {
            // The account is gone: its password no longer logs in (a live account that is no
            // admin would be a 403).
            let auth = basic(&s.jid(SCRATCH), SECOND_PASSWORD);
            let body = json!({"command": {"node": cmd("user-stats")}}).to_string();
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            let r = http(w.gw.addr, "POST", PATH, &headers, body.as_bytes()).await;
            if r.status != 401 {
                w.problem(
                    node,
                    format!("the deleted account's login: {} {}", r.status, r.text()),
                );
            }
        }
    }
    if let Some(v) = victim {
        v.close().await;
    }

    // The passwords the walk set never reach the gateway's log.
    let log = w.gw.log();
    for p in [FIRST_PASSWORD, SECOND_PASSWORD, "adminpass"] {
        if log.contains(p) {
            w.problem("(log)", format!("the gateway log holds the password {p:?}"));
        }
    }

    let elapsed = started.elapsed();
    eprintln!(
        "[commands] {kind}: walked {} commands in {elapsed:?}",
        listed.len()
    );
    let commands = listed
        .iter()
        .map(|(n, _)| (n.clone(), reports.remove(n).unwrap()))
        .collect();
    record(ServerReport {
        kind,
        version: server_version(kind),
        commands,
    });
    assert!(
        w.problems.is_empty(),
        "{} difference(s):\n{}",
        w.problems.len(),
        w.problems.join("\n")
    );
}

fn cmd(name: &str) -> String {
    format!("{ADMIN_NS}{name}")
}

fn deny(node: &str) -> Option<&'static Deny> {
    DENY.iter().find(|d| d.node == node)
}

/// Where a command goes in the walk: the scratch account is created, its password changed
/// (then its client logs in), it is looked at, everything else runs, it is disabled and
/// re-enabled, its session ended, and it is deleted last.
fn rank(node: &str) -> u8 {
    let Some(name) = node.strip_prefix(ADMIN_NS) else {
        return 4;
    };
    match name {
        "add-user" => 0,
        "change-user-password" => 1,
        n if n.starts_with("get-user-") => 2,
        "user-stats" => 3,
        "disable-user" => 5,
        "reenable-user" => 6,
        "end-user-session" => 7,
        "delete-user" => 8,
        _ => 4,
    }
}

/// `running nodes/ejabberd@host/…` -> (`running nodes/{node}/…`, `ejabberd@host`).
fn normalise(node: &str) -> (String, Option<String>) {
    if let Some(rest) = node.strip_prefix("running nodes/") {
        let (erlang, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let normal = if tail.is_empty() {
            "running nodes/{node}".to_string()
        } else {
            format!("running nodes/{{node}}/{tail}")
        };
        return (normal, Some(erlang.to_string()));
    }
    (node.to_string(), None)
}

fn field_names(fields: &[Value]) -> Vec<&str> {
    fields.iter().filter_map(|f| f["var"].as_str()).collect()
}

fn field_signature(f: &Value) -> String {
    let var = f["var"].as_str().unwrap_or("?");
    let type_ = f["type"].as_str().unwrap_or("text-single");
    let req = if f["required"] == true { "*" } else { "" };
    format!("{var}:{type_}{req}")
}

/// A value for every field of `form` a client would fill: the scratch account for account
/// fields, `password` for passwords, the default where the form gives one, else the first
/// option, `0` for a boolean, `walk` for text.
fn fill(form: &[Value], scratch: &str, password: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for f in form {
        let var = f["var"].as_str().unwrap_or_default();
        let type_ = f["type"].as_str().unwrap_or("text-single");
        if var.is_empty() || var == "FORM_TYPE" || matches!(type_, "hidden" | "fixed") {
            continue;
        }
        let default = f.get("value").cloned();
        let first_option = f["options"]
            .as_array()
            .and_then(|o| o.first())
            .map(|o| o["value"].clone());
        let multi = matches!(type_, "jid-multi" | "list-multi" | "text-multi");
        let value = match (var, type_) {
            ("accountjid" | "accountjids", _) | (_, "jid-single" | "jid-multi") => {
                if multi {
                    json!([scratch])
                } else {
                    json!(scratch)
                }
            }
            ("password" | "password-verify", _) => json!(password),
            ("max_items", _) => first_option.or(default).unwrap_or(json!("25")),
            (_, "list-single" | "list-multi") => match default.or(first_option) {
                Some(v) if multi && !v.is_array() => json!([v]),
                Some(v) => v,
                None => continue,
            },
            (_, "boolean") => default.unwrap_or(json!("0")),
            (_, "text-multi") => default.unwrap_or(json!(["walk"])),
            _ => default.unwrap_or(json!("walk")),
        };
        out.push(json!({"var": var, "value": value}));
    }
    out
}

/// Checks that a completed result says what it should, where the walk knows what that is.
async fn check_result(w: &mut Walk<'_>, node: &str, doc: &Value, victim: Option<&Victim>) {
    let s = w.server;
    let scratch = s.jid(SCRATCH);
    let note = doc["note"].clone();
    if note["type"] == "error" {
        w.problem(node, format!("an error note with 200: {doc}"));
    }
    let fields = doc["fields"].as_array().cloned().unwrap_or_default();
    let field = |var: &str| fields.iter().find(|f| f["var"] == var).cloned();
    let values = |f: &Value| -> Vec<String> {
        match &f["value"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    };
    let all_text = doc.to_string();
    match node.strip_prefix(ADMIN_NS).unwrap_or(node) {
        "get-user-password" => match field("password") {
            Some(f) if values(&f) == [SECOND_PASSWORD] => {}
            Some(_) => w.problem(node, "the password is not the one set"),
            None => w.problem(
                node,
                format!("no password field: {:?}", field_names(&fields)),
            ),
        },
        "user-stats" => match field("onlineresources") {
            Some(f) if values(&f) == [SCRATCH_RESOURCE] => {}
            other => w.problem(node, format!("onlineresources: {other:?}")),
        },
        "get-online-users-list" | "get-registered-users-list" if !all_text.contains(&scratch) => {
            w.problem(node, format!("{scratch} not in the list: {doc}"));
        }
        n @ ("get-registered-users-num" | "get-online-users-num") => {
            // Registered: the harness's accounts and the scratch one. Online: at least the
            // gateway's admin stream and the scratch client.
            let count: Option<usize> = fields
                .iter()
                .filter(|f| f["type"] != "hidden")
                .find_map(|f| values(f).first().and_then(|v| v.parse().ok()));
            let ok = match n {
                "get-registered-users-num" => count == Some(common::ACCOUNTS.len() + 1),
                _ => count.is_some_and(|c| c >= 2),
            };
            if !ok {
                w.problem(node, format!("count {count:?}: {doc}"));
            }
        }
        "end-user-session" => {
            let want = format!("Operation successful for user {scratch}/{SCRATCH_RESOURCE}");
            let notes = field("Notes").map(|f| values(&f)).unwrap_or_default();
            if victim.is_some() && notes != [want] {
                w.problem(node, format!("Notes: {notes:?}"));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Summaries and the document

fn clip(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let cut: String = one_line.chars().take(n).collect();
        format!("{cut}…")
    }
}

fn error_summary(r: &HttpResponse) -> String {
    let e = &r.json()["error"];
    let cond = e["condition"].as_str().unwrap_or("?");
    match e["text"].as_str() {
        Some(t) => format!("{cond}: \"{}\"", clip(t, 60)),
        None => cond.to_string(),
    }
}

/// Status code and a short, run-independent summary of an execution's answer.
fn summarise(r: &HttpResponse, erlang_node: Option<&str>) -> String {
    let out = if r.status != 200 {
        format!("{} {}", r.status, error_summary(r))
    } else {
        let doc = r.json()["command"].clone();
        let mut parts = vec![match doc.get("status").and_then(Value::as_str) {
            Some(s) => format!("200 {s}"),
            None => "200 completed".to_string(),
        }];
        let vars: Vec<String> = doc["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter(|f| f["type"] != "hidden")
                    .map(|f| f["var"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        if !vars.is_empty() {
            parts.push(format!("fields {}", vars.join(", ")));
        }
        if let Some(cols) = doc["reported"]["columns"].as_array() {
            let cols: Vec<&str> = cols.iter().filter_map(|c| c["var"].as_str()).collect();
            parts.push(format!("reported [{}]", cols.join(", ")));
        }
        if let Some(t) = doc["note"]["type"].as_str() {
            let v = doc["note"]["value"].as_str().unwrap_or_default();
            // Prosody's uptime: "… 0 minutes (since Sat Nov 28 01:59:34 2026)".
            let v = match v.split_once(" (since ") {
                Some((head, _)) => format!("{head} (since …)"),
                None => v.to_string(),
            };
            let v = v.as_str();
            parts.push(format!("note {t} \"{}\"", clip(v, 80)));
        }
        if parts.len() == 1 {
            parts.push("no fields, no note".to_string());
        }
        parts.join("; ")
    };
    match erlang_node {
        Some(n) => out.replace(n, "{node}"),
        None => out,
    }
}

/// The package version (`dpkg-query`), else what the reference was recorded with.
fn server_version(kind: ServerKind) -> String {
    let (package, fallback) = match kind {
        ServerKind::Prosody => ("prosody", "0.12.x"),
        ServerKind::Ejabberd => ("ejabberd", "23.01"),
    };
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| fallback.to_string())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render_doc(reports: &[ServerReport]) -> String {
    let mut reports = reports.to_vec();
    reports.sort_by_key(|r| r.kind != ServerKind::Prosody);
    let mut nodes: Vec<String> = Vec::new();
    for r in &reports {
        for (n, _) in &r.commands {
            if !nodes.contains(n) {
                nodes.push(n.clone());
            }
        }
    }
    nodes.sort_by_key(|n| (!n.starts_with(ADMIN_NS), rank(n), n.clone()));

    let mut d = String::new();
    d.push_str("# Ad-hoc commands on Prosody and ejabberd, as the gateway runs them\n\n");
    d.push_str(
        "<!-- Generated by `cargo test --test commands` (tests/commands.rs); do not edit by \
         hand: the test rewrites this file on every run. -->\n\n",
    );
    d.push_str(
        "Generated by `cargo test --test commands` (`tests/commands.rs`), which rewrites this \
         file on every run: do not edit it by hand.\n\n",
    );
    let versions: Vec<String> = reports
        .iter()
        .map(|r| format!("{} {}", r.kind, r.version))
        .collect();
    let _ = writeln!(
        d,
        "Servers: {} (Debian bookworm packages), configured as the e2e harness does \
         (`tests/common/`): Prosody with `admin_adhoc`, ejabberd with `mod_adhoc` and \
         `mod_configure`.\n",
        versions.join(", ")
    );
    d.push_str(
        "For each server, as `admin@domain.com` through one gateway: the commands listed by \
         `GET /rest/adhoc/sess-man@domain.com`; each command's form, from a `POST` without \
         fields (`var:type`, `*` = required; `FORM_TYPE` left out; \"completes at once\" when \
         the command takes no input); and the outcome of executing it in one request with every \
         field filled (the scratch account `walk1@domain.com` for account fields, a password \
         for passwords, the form's default or first option, `0` for booleans, `walk` for \
         text). The walk runs add-user first (creating `walk1`), change-user-password next, \
         then logs `walk1/walk` in, runs the rest, and ends with end-user-session and \
         delete-user. Commands that stop, restart or reload the server, unload or deactivate \
         modules or hosts, back up, restore or import are not executed. ejabberd's node names \
         carry its Erlang node name, shown here as `{node}`.\n\n",
    );
    for r in &reports {
        let count = |p: fn(&str) -> bool| r.commands.iter().filter(|(_, c)| p(&c.outcome)).count();
        let denied = count(|o| o.starts_with("denied"));
        let expected = count(|o| o.contains(EXPECTED_MARK));
        let executed = r.commands.len() - denied;
        let _ = writeln!(
            d,
            "- {}: {} commands listed; {executed} executed, {} of them completing as checked \
             and {expected} failing the way the server is expected to (\"expected:\"); \
             {denied} not executed (\"denied\").",
            r.kind,
            r.commands.len(),
            executed - expected,
        );
    }
    d.push('\n');
    d.push_str("| command |");
    for r in &reports {
        let _ = write!(d, " {0} form | {0} outcome |", r.kind);
    }
    d.push_str("\n| --- |");
    for _ in &reports {
        d.push_str(" --- | --- |");
    }
    d.push('\n');
    for n in &nodes {
        let name = reports
            .iter()
            .find_map(|r| r.commands.iter().find(|(c, _)| c == n))
            .map(|(_, c)| c.name.clone())
            .unwrap_or_default();
        let _ = write!(d, "| `{}`<br>{} |", cell(n), cell(&name));
        for r in &reports {
            match r.commands.iter().find(|(c, _)| c == n) {
                None => d.push_str(" not listed | — |"),
                Some((_, c)) => {
                    let form = match &c.form {
                        None => "completes at once".to_string(),
                        Some(Ok(vars)) if vars.is_empty() => "(no fields)".to_string(),
                        Some(Ok(vars)) => vars
                            .iter()
                            .map(|v| format!("`{}`", cell(v)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        Some(Err(e)) => cell(e),
                    };
                    let _ = write!(d, " {form} | {} |", cell(&c.outcome));
                }
            }
        }
        d.push('\n');
    }
    d
}
