//! The command list (`GET /rest/adhoc/{jid}`) follows the account that asks.

use crate::common::doc::parse_xml;
use crate::common::rest::*;
use crate::common::{self, basic, http, ServerKind};
use crate::gateway;

on_both_servers!(the_command_list_follows_the_account);

async fn the_command_list_follows_the_account(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    // The admin sees the admin commands, in JSON when asked with `?type=`.
    let path = "/rest/adhoc/sess-man@domain.com?type=application/json";
    let r = http(gw.addr, "GET", path, &[("authorization", &admin())], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(
        items.iter().any(|i| i["node"] == END_USER_SESSION),
        "{items:?}"
    );
    assert!(items.iter().all(|i| i["jid"] == "sess-man@domain.com"));
    // A non-admin sees what the server shows it, in XML by default.
    let auth = basic("nonadmin@domain.com", &s.password("nonadmin"));
    let r = http(
        gw.addr,
        "GET",
        "/rest/adhoc/domain.com",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    let items = parse_xml(&r.body);
    assert_eq!(items.name, "items");
    let nodes: Vec<&str> = items
        .children
        .iter()
        .map(|i| i.child("node").unwrap().text.as_str())
        .collect();
    assert!(
        !nodes.is_empty() && !nodes.contains(&END_USER_SESSION),
        "{nodes:?}"
    );
    assert!(items
        .children
        .iter()
        .all(|i| i.child("jid").unwrap().text == "domain.com"));
    // A target the server does not serve is an error with a body, not a hang.
    let r = http(
        gw.addr,
        "GET",
        "/rest/adhoc/elsewhere.example?type=application/json",
        &[("authorization", &admin())],
        b"",
    )
    .await;
    // Both servers refuse to route it (neither has s2s here), each with its own condition.
    assert_eq!(r.status, 403, "{}", r.text());
    let condition = match kind {
        ServerKind::Prosody => "not-allowed",
        ServerKind::Ejabberd => "forbidden",
    };
    assert_eq!(error_of(&r)["condition"], condition, "{}", r.text());
}
