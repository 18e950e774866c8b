//! The walk: lists a server's commands as the admin, fetches every form, executes what is
//! safe in an order that creates, uses and deletes a scratch account, and gathers every
//! difference from what is expected.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{json, Value};

use crate::common::victim::Victim;
use crate::common::{self, basic, http, HttpResponse, ServerKind, TestGateway, TestServer};
use crate::forms::*;
use crate::render::{
    error_summary, record, server_version, summarise, CommandReport, ServerReport,
};
use crate::tables::*;

pub(crate) struct Walk<'a> {
    pub(crate) server: &'a TestServer,
    pub(crate) gw: TestGateway,
    pub(crate) auth: String,
    /// The Erlang node name in ejabberd's nodes, if any.
    pub(crate) erlang_node: Option<String>,
    pub(crate) problems: Vec<String>,
}

impl Walk<'_> {
    pub(crate) fn problem(&mut self, node: &str, what: impl AsRef<str>) {
        self.problems
            .push(format!("{} {node}: {}", self.server.kind, what.as_ref()));
    }

    /// POSTs `body` as the admin, in JSON. `COMMANDS_DUMP=1` prints request and answer.
    pub(crate) async fn post(&self, body: &Value) -> HttpResponse {
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
    pub(crate) fn raw(&self, normal: &str) -> String {
        match &self.erlang_node {
            Some(n) => normal.replace("{node}", n),
            None => normal.to_string(),
        }
    }
}

pub(crate) async fn walk(kind: ServerKind) {
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
    let log = w.gw.log_settled().await;
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
    let stale = record(ServerReport {
        kind,
        version: server_version(kind),
        commands,
    });
    w.problems.extend(stale);
    assert!(
        w.problems.is_empty(),
        "{} difference(s):\n{}",
        w.problems.len(),
        w.problems.join("\n")
    );
}
