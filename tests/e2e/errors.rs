//! Refusals: field checks that name the field, and every row of the status table.

use crate::common::doc::parse_xml;
use crate::common::rest::*;
use crate::common::{http, ServerKind};
use crate::gateway;

on_both_servers!(field_checks_name_the_field, errors_follow_the_status_table);

async fn field_checks_name_the_field(kind: ServerKind) {
    let gw = gateway(kind).await;
    let bad_jid = r#"{"command": {"node": "http://jabber.org/protocol/admin#end-user-session",
        "fields": [{"var": "accountjids", "value": ["@@bad jid"]}]}}"#;
    let r = post(gw.addr, PATH, &admin(), "application/json", bad_jid).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "accountjids");
    let unknown = r#"{"command": {"node": "http://jabber.org/protocol/admin#user-stats",
        "fields": [{"var": "accountjid", "value": "user7@domain.com"},
                   {"var": "colour", "value": "blue"}]}}"#;
    let r = post(gw.addr, PATH, &admin(), "application/json", unknown).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "colour");
    let missing = r#"{"command": {"node": "http://jabber.org/protocol/admin#user-stats",
        "fields": [{"var": "FORM_TYPE", "value": "http://jabber.org/protocol/admin"}]}}"#;
    let r = post(gw.addr, PATH, &admin(), "application/json", missing).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(error_of(&r)["field"], "accountjid");
}

async fn errors_follow_the_status_table(kind: ServerKind) {
    let gw = gateway(kind).await;
    let a = admin();
    let json = "application/json";
    // method, path, headers, body, status, condition
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            PATH,
            vec![("content-type", json)],
            "{not json",
            400,
            "bad-request",
        ),
        (
            "POST",
            PATH,
            vec![("content-type", json)],
            r#"{"command":{}}"#,
            400,
            "bad-request",
        ),
        (
            "POST",
            "/rest/adhoc/a@b@c",
            vec![("content-type", json)],
            IDLE_SEED_JSON.as_str(),
            400,
            "bad-request",
        ),
        (
            "POST",
            "/rest/adhoc/sess-man@domain.com%2Fres",
            vec![("content-type", json)],
            IDLE_SEED_JSON.as_str(),
            400,
            "bad-request",
        ),
        (
            "POST",
            PATH,
            vec![("content-type", "text/plain"), ("accept", json)],
            "x",
            415,
            "unsupported-media-type",
        ),
        (
            "POST",
            PATH,
            vec![("content-type", json), ("accept", "text/html")],
            IDLE_SEED_JSON.as_str(),
            406,
            "not-acceptable",
        ),
        (
            "PUT",
            PATH,
            vec![("content-type", json)],
            IDLE_SEED_JSON.as_str(),
            405,
            "method-not-allowed",
        ),
        (
            "POST",
            "/rest/nothing",
            vec![("content-type", json)],
            IDLE_SEED_JSON.as_str(),
            404,
            "not-found",
        ),
        (
            "POST",
            PATH,
            vec![("content-type", json)],
            r#"{"command":{"node":"http://jabber.org/protocol/admin#no-such-command","fields":[{"var":"x","value":"y"}]}}"#,
            404,
            "service-unavailable",
        ),
    ];
    for (method, path, mut headers, body, status, condition) in cases {
        headers.push(("authorization", &a));
        let r = http(gw.addr, method, path, &headers, body.as_bytes()).await;
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.text());
        let e = error_of(&r);
        assert_eq!(e["condition"], condition, "{method} {path}: {}", r.text());
        assert_eq!(e["status"], status);
    }
    // A DTD is refused before anything is expanded, with an XML error body.
    let dtd = "<!DOCTYPE c [<!ENTITY a \"b\">]><command><node>&a;</node></command>";
    let r = post(gw.addr, PATH, &a, "application/xml", dtd).await;
    assert_eq!(r.status, 400);
    assert_eq!(parse_xml(&r.body).child("status").unwrap().text, "400");
    // A body over --max-body.
    let big = format!("<command><node>{}</node></command>", "x".repeat(300 * 1024));
    let r = post(gw.addr, PATH, &a, "application/xml", &big).await;
    assert_eq!(r.status, 413);
    // No credentials.
    let r = http(gw.addr, "POST", PATH, &[("content-type", json)], b"{}").await;
    assert_eq!(r.status, 401);
    // The server's own refusals: ejabberd answers conflict (409), Prosody an error note (422).
    let add = r#"{"command":{"node":"http://jabber.org/protocol/admin#add-user","fields":[
        {"var":"accountjid","value":"user8@domain.com"},
        {"var":"password","value":"p"},{"var":"password-verify","value":"p"}]}}"#;
    let r = post(gw.addr, PATH, &a, json, add).await;
    let want = if kind == ServerKind::Ejabberd {
        409
    } else {
        422
    };
    assert_eq!(r.status, want, "{}", r.text());
    assert!(
        !r.text().contains("\"p\""),
        "a submitted password was echoed: {}",
        r.text()
    );
}
