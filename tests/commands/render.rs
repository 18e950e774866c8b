//! What a walk found, and the document made of both servers' walks: `docs/commands.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;

use crate::common::{HttpResponse, ServerKind};
use crate::forms::rank;
use crate::tables::*;

/// One command as one server answered it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommandReport {
    pub(crate) name: String,
    /// `var:type` of each form field, `*` after a required one; `None` when it completes at
    /// once (no form); `Err` when the form could not be fetched (or was not asked for).
    pub(crate) form: Option<Result<Vec<String>, String>>,
    /// Status code and summary, or why it was not run.
    pub(crate) outcome: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ServerReport {
    pub(crate) kind: ServerKind,
    pub(crate) version: String,
    /// By normalised node, in the server's listing order.
    pub(crate) commands: Vec<(String, CommandReport)>,
}

/// Both servers' reports; the second one recorded writes the document.
pub(crate) static REPORTS: Mutex<Vec<ServerReport>> = Mutex::new(Vec::new());

/// Set to `1` to write `docs/commands.md` rather than compare it (`scripts/commands-doc`).
const WRITE_ENV: &str = "XRG_WRITE_COMMANDS_DOC";
/// The document's one line that names the servers' package versions: a machine with other
/// packages renders it otherwise, and that alone does not make the document stale.
const VERSIONS_LINE: &str = "Servers: ";

/// Records a server's report; the second one recorded renders the document and writes it
/// (with [`WRITE_ENV`]) or compares it with the committed one. Returns why the committed
/// document is stale, if it is.
pub(crate) fn record(report: ServerReport) -> Option<String> {
    let mut reports = REPORTS.lock().unwrap_or_else(|e| e.into_inner());
    let kind = report.kind;
    reports.retain(|r| r.kind != kind);
    reports.push(report);
    if reports.len() < 2 {
        eprintln!(
            "[commands] {kind} recorded; docs/commands.md is checked once both servers' walks \
             ran in this process"
        );
        return None;
    }
    let doc = render_doc(&reports);
    let path = doc_path();
    if std::env::var(WRITE_ENV).is_ok_and(|v| v == "1") {
        std::fs::write(&path, doc).expect("writing docs/commands.md");
        eprintln!("[commands] wrote {}", path.display());
        return None;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    stale(&committed, &doc)
}

/// Where `committed` differs from `rendered`, the versions line aside.
fn stale(committed: &str, rendered: &str) -> Option<String> {
    let keep = |l: &&str| !l.starts_with(VERSIONS_LINE);
    let old: Vec<&str> = committed.lines().filter(keep).collect();
    let new: Vec<&str> = rendered.lines().filter(keep).collect();
    if old == new {
        return None;
    }
    let at = old.iter().zip(&new).position(|(a, b)| a != b);
    let at = at.unwrap_or(old.len().min(new.len()));
    // Table rows are long: show each side from a little before where they part.
    let (a, b) = (old.get(at).copied(), new.get(at).copied());
    let from = a
        .zip(b)
        .and_then(|(a, b)| a.chars().zip(b.chars()).position(|(x, y)| x != y))
        .map_or(0, |i| i.saturating_sub(40));
    let show = |line: Option<&str>| match line {
        None => "(end of file)".to_string(),
        Some(l) if from == 0 => clip(l, 160),
        Some(l) => format!("…{}", clip(&l.chars().skip(from).collect::<String>(), 160)),
    };
    Some(format!(
        "docs/commands.md is stale: it no longer says what the servers answered. Run \
         scripts/commands-doc and review `git diff docs/commands.md`. First difference, at \
         line {} (not counting the versions line):\n  committed: {}\n  now:       {}",
        at + 1,
        show(a),
        show(b)
    ))
}

pub(crate) fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/commands.md")
}

pub(crate) fn clip(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let cut: String = one_line.chars().take(n).collect();
        format!("{cut}…")
    }
}

pub(crate) fn error_summary(r: &HttpResponse) -> String {
    let e = &r.json()["error"];
    let cond = e["condition"].as_str().unwrap_or("?");
    match e["text"].as_str() {
        Some(t) => format!("{cond}: \"{}\"", clip(t, 60)),
        None => cond.to_string(),
    }
}

/// Status code and a short, run-independent summary of an execution's answer.
pub(crate) fn summarise(r: &HttpResponse, erlang_node: Option<&str>) -> String {
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
pub(crate) fn server_version(kind: ServerKind) -> String {
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

pub(crate) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn render_doc(reports: &[ServerReport]) -> String {
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
        "<!-- Generated by scripts/commands-doc (tests/commands/); do not edit by hand: \
         `cargo test` fails when this file no longer matches what the servers answer. -->\n\n",
    );
    d.push_str(
        "Generated by `scripts/commands-doc` (the walk in `tests/commands/`, writing this \
         file): do not edit it by hand. `cargo test` runs the same walk and fails when this \
         file no longer matches what the servers answer.\n\n",
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
