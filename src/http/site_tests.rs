use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use clap::Parser;

use super::*;
use crate::config::Cli;
use crate::http::audit::Condition;

fn sites(flags: &[&str]) -> Sites {
    let mut args = vec!["xmpp-rest-gateway"];
    args.extend_from_slice(flags);
    let cfg = Cli::try_parse_from(args).unwrap().into_config().unwrap();
    Sites::new(&cfg)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const PEER: &str = "192.0.2.7:4711";
const PROXY: &str = "10.0.0.2:4711";

fn judge(s: &Sites, peer: &str, pairs: &[(&str, &str)]) -> Site {
    let uri: Uri = "/rest/adhoc/sess-man@example.org".parse().unwrap();
    s.judge(Some(peer.parse().unwrap()), &headers(pairs), &uri)
}

#[test]
fn origins_compare_without_case_or_default_ports() {
    let o = |t| Origin::parse(t).unwrap();
    assert_eq!(o("http://h:80"), o("http://h"));
    assert_eq!(o("https://h:443"), o("HTTPS://H"));
    assert_eq!(
        o("HTTP://App.Example.ORG:8080"),
        o("http://app.example.org:8080")
    );
    assert_ne!(o("http://h"), o("https://h"));
    assert_ne!(o("http://h:443"), o("https://h"));
    assert_ne!(o("http://h:8080"), o("http://h"));
    assert_eq!(o("http://[0:0::1]:80"), o("http://[::1]"));
    assert_eq!(o("https://h:443").to_string(), "https://h");
    assert_eq!(o("http://[::1]:8080").to_string(), "http://[::1]:8080");
}

#[test]
fn only_exact_origins_are_origins() {
    use OriginError as E;
    for (text, why) in [
        ("*", E::Wildcard),
        ("https://*.example.org", E::Wildcard),
        ("null", E::NotAnOrigin),
        ("example.org", E::NotAnOrigin),
        ("ftp://example.org", E::NotAnOrigin),
        ("https://example.org/", E::Path),
        ("https://example.org/app", E::Path),
        ("https://example.org?x", E::Path),
        ("https://", E::Host),
        ("https://user@example.org", E::Host),
        ("https://exämple.org", E::Host),
        ("https://[::1", E::Host),
        ("https://example.org:0", E::Port),
        ("https://example.org:65536", E::Port),
        ("https://example.org:x", E::Port),
        ("https://example.org:", E::Port),
    ] {
        assert_eq!(Origin::parse(text), Err(why), "{text}");
    }
}

#[test]
fn the_own_origin_is_the_listeners_scheme_and_the_host() {
    let s = sites(&[]);
    let same = |origin| judge(&s, PEER, &[("host", "gw.example:8080"), ("origin", origin)]);
    assert_eq!(same("http://gw.example:8080"), Site::Same);
    assert_eq!(same("http://GW.example:8080"), Site::Same);
    assert_eq!(same("https://gw.example:8080"), Site::Cross);
    assert_eq!(same("http://gw.example"), Site::Cross);
    let default_port = judge(
        &s,
        PEER,
        &[("host", "gw.example:80"), ("origin", "http://gw.example")],
    );
    assert_eq!(default_port, Site::Same);
    let tls = sites(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]);
    let tls = |origin| judge(&tls, PEER, &[("host", "gw.example"), ("origin", origin)]);
    assert_eq!(tls("https://gw.example"), Site::Same);
    assert_eq!(tls("http://gw.example"), Site::Cross);
    let no_host = judge(&s, PEER, &[("origin", "http://gw.example")]);
    assert_eq!(no_host, Site::Cross);
}

#[test]
fn a_public_origin_is_the_own_origin_whatever_the_host() {
    let s = sites(&["--public-origin", "https://xrg.example.org"]);
    let j = |origin| judge(&s, PEER, &[("host", "127.0.0.1:8080"), ("origin", origin)]);
    assert_eq!(j("https://xrg.example.org"), Site::Same);
    assert_eq!(j("https://xrg.example.org:443"), Site::Same);
    assert_eq!(j("http://127.0.0.1:8080"), Site::Cross);
}

#[test]
fn forwarded_proto_and_host_only_from_a_trusted_proxy() {
    let s = sites(&["--trusted-proxy", "10.0.0.2"]);
    let forwarded = [
        ("host", "127.0.0.1:8080"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "xrg.example.org"),
        ("origin", "https://xrg.example.org"),
    ];
    assert_eq!(judge(&s, PROXY, &forwarded), Site::Same);
    assert_eq!(judge(&s, PEER, &forwarded), Site::Cross);
    let direct = [
        ("host", "127.0.0.1:8080"),
        ("origin", "http://127.0.0.1:8080"),
    ];
    assert_eq!(judge(&s, PEER, &direct), Site::Same);
    // From the proxy without its headers: the listener's scheme and the Host.
    assert_eq!(judge(&s, PROXY, &direct), Site::Same);
    // A chain: the value the nearest proxy wrote, the last.
    let chain = [
        ("host", "127.0.0.1:8080"),
        ("x-forwarded-proto", "http, https"),
        ("x-forwarded-host", "evil.example, xrg.example.org"),
        ("origin", "https://xrg.example.org"),
    ];
    assert_eq!(judge(&s, PROXY, &chain), Site::Same);
}

#[test]
fn null_and_unreadable_origins_are_cross_site() {
    let s = sites(&["--cors-origin", "https://app.example"]);
    let host = ("host", "127.0.0.1:8080");
    for origin in ["null", "https://app.example/", "*", "app.example"] {
        assert_eq!(
            judge(&s, PEER, &[host, ("origin", origin)]),
            Site::Cross,
            "{origin}"
        );
    }
    let two = [
        host,
        ("origin", "https://app.example"),
        ("origin", "https://app.example"),
    ];
    assert_eq!(judge(&s, PEER, &two), Site::Cross);
}

#[test]
fn without_origin_sec_fetch_site_decides() {
    let s = sites(&[]);
    let host = ("host", "127.0.0.1:8080");
    for (value, site) in [
        ("cross-site", Site::Cross),
        ("Cross-Site", Site::Cross),
        ("same-site", Site::Cross),
        ("same-origin", Site::Unstated),
        ("none", Site::Unstated),
        ("something-new", Site::Unstated),
    ] {
        assert_eq!(
            judge(&s, PEER, &[host, ("sec-fetch-site", value)]),
            site,
            "{value}"
        );
    }
    assert_eq!(judge(&s, PEER, &[host]), Site::Unstated);
    assert_eq!(judge(&s, PEER, &[]), Site::Unstated);
    // An Origin says more than Sec-Fetch-Site.
    let same = [
        host,
        ("origin", "http://127.0.0.1:8080"),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(judge(&s, PEER, &same), Site::Same);
}

#[test]
fn allowed_origins_are_exact() {
    let s = sites(&["--cors-origin", "https://app.example,http://localhost:3000"]);
    let j = |origin| judge(&s, PEER, &[("host", "127.0.0.1:8080"), ("origin", origin)]);
    assert_eq!(j("https://app.example"), Site::Allowed);
    assert_eq!(j("https://APP.example:443"), Site::Allowed);
    assert_eq!(j("http://localhost:3000"), Site::Allowed);
    assert_eq!(j("http://app.example"), Site::Cross);
    assert_eq!(j("https://sub.app.example"), Site::Cross);
    assert_eq!(j("http://localhost:3001"), Site::Cross);
}

/// A router with one `/rest` route that counts its calls and answers `status`, and one route
/// outside `/rest`, under the check.
fn app(flags: &[&str], status: StatusCode) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let handler = move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            r
        }
    };
    let router = Router::new()
        .route(
            "/rest/adhoc/{jid}",
            post(handler.clone()).get(handler.clone()),
        )
        .route("/healthz", axum::routing::get(handler))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(sites(flags)),
            layer,
        ));
    (router, calls)
}

async fn send(router: &Router, method: &str, path: &str, pairs: &[(&str, &str)]) -> Response {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in pairs {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::from("{}")).unwrap();
    req.extensions_mut().insert(Peer(PEER.parse().unwrap()));
    router.clone().oneshot(req).await.unwrap()
}

const FORM_POST: [(&str, &str); 5] = [
    ("host", "127.0.0.1:8080"),
    ("origin", "https://evil.example"),
    ("sec-fetch-site", "cross-site"),
    ("content-type", "text/plain"),
    ("authorization", "Basic YWRtaW5AZXhhbXBsZS5vcmc6cHc="),
];
const PATH: &str = "/rest/adhoc/sess-man@example.org?type=application/json";

#[tokio::test]
async fn a_cross_site_form_post_is_403_before_any_handler() {
    let (router, calls) = app(&[], StatusCode::OK);
    let mut r = send(&router, "POST", PATH, &FORM_POST).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // In the format asked for, with the condition the audit line takes.
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    let condition = r.extensions_mut().remove::<Condition>().unwrap();
    assert_eq!(condition.0, "cross-site-request");
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["condition"], "cross-site-request", "{body}");
    assert_eq!(body["error"]["status"], 403, "{body}");
}

#[tokio::test]
async fn same_origin_and_header_less_requests_run() {
    let (router, calls) = app(&[], StatusCode::OK);
    let same = [
        ("host", "127.0.0.1:8080"),
        ("origin", "http://127.0.0.1:8080"),
    ];
    let r = send(&router, "POST", PATH, &same).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!r.headers().contains_key(header::VARY), "no CORS, no Vary");
    let r = send(&router, "POST", PATH, &[("host", "127.0.0.1:8080")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Outside /rest nothing is checked.
    let r = send(&router, "GET", "/healthz", &FORM_POST).await;
    assert_eq!(r.status(), StatusCode::OK);
}

fn cors_headers(r: &Response) -> Vec<&str> {
    r.headers()
        .keys()
        .map(HeaderName::as_str)
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_on_the_preflight_and_the_answer() {
    let (router, calls) = app(&["--cors-origin", "https://app.example"], StatusCode::OK);
    let preflight = [
        ("host", "127.0.0.1:8080"),
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type",
        ),
    ];
    let r = send(&router, "OPTIONS", PATH, &preflight).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a preflight runs nothing");
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-methods"], "GET,POST,PUT,DELETE");
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type,x-api-key,x-request-id"
    );
    assert_eq!(h["access-control-max-age"], "3600");
    assert_eq!(h[header::VARY], "Origin");
    assert!(!h.contains_key("access-control-allow-credentials"));

    let real = [
        ("host", "127.0.0.1:8080"),
        ("origin", "https://app.example"),
    ];
    let r = send(&router, "POST", PATH, &real).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(
        h["access-control-expose-headers"],
        "x-request-id,retry-after"
    );
    assert_eq!(h[header::VARY], "Origin");
    assert!(!h.contains_key("access-control-allow-credentials"));
}

#[tokio::test]
async fn an_allowed_origin_can_read_error_answers() {
    let flags = ["--cors-origin", "https://app.example"];
    let (router, _) = app(&flags, StatusCode::UNAUTHORIZED);
    let real = [
        ("host", "127.0.0.1:8080"),
        ("origin", "https://app.example"),
    ];
    let r = send(&router, "POST", PATH, &real).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        r.headers()["access-control-expose-headers"],
        "x-request-id,retry-after"
    );
}

#[tokio::test]
async fn another_origin_gets_no_cors_and_every_answer_varies_by_origin() {
    let (router, calls) = app(&["--cors-origin", "https://app.example"], StatusCode::OK);
    let preflight = [
        ("host", "127.0.0.1:8080"),
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let r = send(&router, "OPTIONS", PATH, &preflight).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(cors_headers(&r), Vec::<&str>::new());
    assert_eq!(r.headers()[header::VARY], "Origin");
    let r = send(&router, "POST", PATH, &FORM_POST).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(cors_headers(&r), Vec::<&str>::new());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A script's request: no CORS headers, but the answer still varies by Origin.
    let r = send(&router, "POST", PATH, &[("host", "127.0.0.1:8080")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(cors_headers(&r), Vec::<&str>::new());
    assert_eq!(r.headers()[header::VARY], "Origin");
}
