//! `/console/`: the web console (docs/console.md), a few static files compiled into the binary
//! and served with a strict Content-Security-Policy. The console is no API: its pages call
//! `/rest/*` like any client, with credentials the page holds in memory, so every check, budget,
//! rule and audit line is the API's. With `--console off` none of these routes exists and the
//! router's fallback answers 404.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The policy of every console response: nothing but the gateway's own scripts, styles,
/// images and API; no inline script or style, no forms posted anywhere, no framing, and
/// Trusted Types required, so that a string assigned as markup throws instead of rendering.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'; require-trusted-types-for 'script'";

/// The console's files: path under `/console/`, content type, bytes.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("console/api.js"),
    ),
    (
        "fields.js",
        "text/javascript; charset=utf-8",
        include_str!("console/fields.js"),
    ),
    (
        "results.js",
        "text/javascript; charset=utf-8",
        include_str!("console/results.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("console/favicon.svg"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("console/dom.js"),
    ),
];

/// The console's routes, merged into the main router when `--console on`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/console", get(redirect));
    for &(name, content_type, body) in ASSETS {
        let path = format!("/console/{name}");
        router = router.route(&path, get(move || async move { asset(content_type, body) }));
    }
    router
}

/// The headers every console answer carries.
fn with_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    with_headers(response)
}

/// `/console` without its slash: the page's relative links need the directory.
async fn redirect() -> Response {
    let response = (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("/console/"))],
    )
        .into_response();
    with_headers(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_console_fits_its_budget() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total <= 150 * 1024, "the console is {total} bytes");
    }

    #[test]
    fn no_asset_writes_markup() {
        for (name, _, body) in ASSETS {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!body.contains(sink), "{name} uses {sink}");
            }
            for other in ["http://", "https://", "//cdn", "@import", "url("] {
                let body = body.replace("http://www.w3.org/2000/svg", "");
                assert!(!body.contains(other), "{name} names {other}");
            }
        }
    }
}
