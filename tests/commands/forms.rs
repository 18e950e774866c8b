//! Reading and filling forms, and checking what an execution answered.

use serde_json::{json, Value};

use crate::common::{self, victim::Victim};
use crate::tables::*;
use crate::walk::Walk;

pub(crate) fn cmd(name: &str) -> String {
    format!("{ADMIN_NS}{name}")
}

pub(crate) fn deny(node: &str) -> Option<&'static Deny> {
    DENY.iter().find(|d| d.node == node)
}

/// Where a command goes in the walk: the scratch account is created, its password changed
/// (then its client logs in), it is looked at, everything else runs, it is disabled and
/// re-enabled, its session ended, and it is deleted last.
pub(crate) fn rank(node: &str) -> u8 {
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
pub(crate) fn normalise(node: &str) -> (String, Option<String>) {
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

pub(crate) fn field_names(fields: &[Value]) -> Vec<&str> {
    fields.iter().filter_map(|f| f["var"].as_str()).collect()
}

pub(crate) fn field_signature(f: &Value) -> String {
    let var = f["var"].as_str().unwrap_or("?");
    let type_ = f["type"].as_str().unwrap_or("text-single");
    let req = if f["required"] == true { "*" } else { "" };
    format!("{var}:{type_}{req}")
}

/// A value for every field of `form` a client would fill: the scratch account for account
/// fields, `password` for passwords, the default where the form gives one, else the first
/// option, `0` for a boolean, `walk` for text.
pub(crate) fn fill(form: &[Value], scratch: &str, password: &str) -> Vec<Value> {
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
pub(crate) async fn check_result(
    w: &mut Walk<'_>,
    node: &str,
    doc: &Value,
    victim: Option<&Victim>,
) {
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
