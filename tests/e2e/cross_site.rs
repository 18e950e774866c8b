//! Cross-site requests and CORS against real Prosody and ejabberd: a web page of another site
//! cannot make an operator's browser run a command (counted at the server, through the reading
//! c2s proxy), while curl, scripts and the gateway's own pages run as before, and the origins
//! the operator allows get CORS answers they can read.

use crate::common::proxy::proxied;
use crate::common::rest::*;
use crate::common::{self, http, ServerKind};

on_both_servers!(
    a_cross_site_form_post_runs_nothing,
    an_allowed_origin_gets_cors_and_another_none,
);

const APP: &str = "https://app.example";

async fn a_cross_site_form_post_runs_nothing(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &[]).await;
    let form = FormPost {
        addr: gw.addr,
        auth: auth(s, "admin"),
        body: user_stats(&s.jid("test")).to_string(),
        request_id: format!("xsite-{}", common::random_hex(6)),
    };
    let seen = || proxy.seen(|s| (s.iqs, s.commands, s.connections));

    let before = seen();
    for (origin, fetch) in [
        (Some("https://evil.example"), Some("cross-site")),
        (Some("null"), Some("cross-site")),
        (None, Some("same-site")),
    ] {
        let r = form.send(origin, fetch).await;
        assert_eq!(r.status, 403, "{origin:?} {fetch:?}: {}", r.text());
        let condition = &r.json()["error"]["condition"];
        assert_eq!(condition, "cross-site-request", "{}", r.text());
    }
    let no_iq = "no IQ, no command, no login reached the server";
    assert_eq!(seen(), before, "{no_iq}");
    let log = gw
        .log_when(|l| l.lines().any(|l| l.contains(&form.request_id)))
        .await;
    let line = log.lines().find(|l| l.contains(&form.request_id));
    let line = line.unwrap_or_default();
    assert!(
        line.contains("status=403") && line.contains("condition=cross-site-request"),
        "the refusal's audit line: {line:?}\n{log}"
    );

    // The same request from the gateway's own origin, and from curl, runs as before.
    let own = format!("http://{}", gw.addr);
    for (origin, fetch) in [(Some(own.as_str()), Some("same-origin")), (None, None)] {
        let commands = proxy.commands();
        let r = form.send(origin, fetch).await;
        assert_eq!(r.status, 200, "{origin:?} {fetch:?}: {}", r.text());
        assert_eq!(r.json()["command"]["node"], USER_STATS, "{}", r.text());
        assert!(proxy.commands() > commands, "{origin:?} ran at the server");
    }
}

/// What an HTML form on any site can make a browser send with the Basic credentials it holds:
/// `text/plain` needs no preflight, and `?type=application/json` makes the gateway read the
/// body as JSON.
struct FormPost {
    addr: std::net::SocketAddr,
    auth: String,
    body: String,
    request_id: String,
}

impl FormPost {
    async fn send(&self, origin: Option<&str>, fetch: Option<&str>) -> common::HttpResponse {
        let mut h = vec![
            ("authorization", self.auth.as_str()),
            ("content-type", "text/plain"),
            ("x-request-id", self.request_id.as_str()),
        ];
        h.extend(origin.map(|o| ("origin", o)));
        h.extend(fetch.map(|f| ("sec-fetch-site", f)));
        let path = format!("{PATH}?type=application/json");
        http(self.addr, "POST", &path, &h, self.body.as_bytes()).await
    }
}

async fn an_allowed_origin_gets_cors_and_another_none(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = common::TestGateway::start(s, &["--cors-origin", APP]);
    let admin = auth(s, "admin");
    let body = user_stats(&s.jid("test")).to_string();
    let cors = |r: &common::HttpResponse| {
        r.headers
            .iter()
            .filter(|(k, _)| k.starts_with("access-control-"))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
    };

    let r = preflight(gw.addr, APP).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = r.header("access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.contains("authorization") && allowed.contains("x-api-key"),
        "{allowed}"
    );
    assert!(
        r.header("access-control-max-age").is_some(),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);

    let h = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
        ("origin", APP),
    ];
    let r = http(gw.addr, "POST", PATH, &h, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    // An error the page must be able to read.
    let h = [("content-type", "application/json"), ("origin", APP)];
    let r = http(gw.addr, "POST", PATH, &h, body.as_bytes()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));

    // Another origin: refused, preflight included, and told nothing of CORS.
    let r = preflight(gw.addr, "https://evil.example").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(cors(&r), Vec::<String>::new());
    // A script: as before, but the answer varies by Origin while CORS is on.
    let h = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
    ];
    let r = http(gw.addr, "POST", PATH, &h, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(cors(&r), Vec::<String>::new());
    assert_eq!(r.header("vary"), Some("Origin"));
}

/// A browser's preflight for a POST with credentials and a JSON body from `origin`.
async fn preflight(addr: std::net::SocketAddr, origin: &str) -> common::HttpResponse {
    let h = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type",
        ),
    ];
    http(addr, "OPTIONS", PATH, &h, b"").await
}
