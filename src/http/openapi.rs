//! `GET /openapi.json`: the OpenAPI 3.1 description of the HTTP API. The committed
//! docs/openapi.json is compiled in, so the served document and the committed one are the same
//! bytes; the tests below fail when it no longer names every route the router serves.

use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// Served to anyone: it holds nothing an anonymous client could not read in docs/api.md.
pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT,
    )
        .into_response()
}

/// 405 for any method but GET (and the HEAD axum derives from it).
pub async fn other_method(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let format = super::format_of(&uri, &headers);
    ApiError::method_not_allowed(method.as_str(), "GET").into_response_in(format)
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use serde_json::Value;

    /// The router's definition, read from the source so that a route added anywhere in it is
    /// seen here without a second list to keep up to date.
    const ROUTER_SOURCE: &str = include_str!("mod.rs");

    /// `{jid}` and `{anything}` alike: the router's parameter names need not be the document's.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                _ if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    }

    /// Each `.route("path", …)` of `pub fn router`, with the HTTP methods its handler chain
    /// names (`get(`, `.post(`, …).
    fn routes() -> Vec<(String, Vec<&'static str>)> {
        let start = ROUTER_SOURCE
            .find("pub fn router(")
            .expect("src/http/mod.rs has `pub fn router`");
        let body = &ROUTER_SOURCE[start..];
        let body = &body[..body.find("\n}\n").expect("the router function ends")];
        let mut out = Vec::new();
        for chunk in body.split(".route(").skip(1) {
            let chunk = chunk.trim_start();
            let rest = chunk
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("a route whose path is not a literal: {chunk:.60}"));
            let end = rest.find('"').expect("the path literal ends");
            let (path, handlers) = rest.split_at(end);
            let handlers = handlers
                .split(".route(")
                .next()
                .and_then(|h| h.split(".fallback(any(").next())
                .unwrap_or_default();
            let methods = ["get", "post", "put", "delete", "patch"]
                .into_iter()
                .filter(|m| {
                    handlers
                        .match_indices(&format!("{m}("))
                        .any(|(i, _)| i == 0 || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric())
                })
                .collect();
            out.push((path.to_string(), methods));
        }
        out
    }

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1_of_this_version() {
        let doc = document();
        let version = doc["openapi"].as_str().expect("an `openapi` string");
        assert!(version.starts_with("3.1."), "openapi {version}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }

    #[test]
    fn the_router_source_is_read() {
        let routes = routes();
        let adhoc = routes
            .iter()
            .find(|(p, _)| p == "/rest/adhoc/{jid}")
            .expect("the adhoc route is found");
        assert_eq!(adhoc.1, vec!["get", "post"]);
        assert!(routes
            .iter()
            .any(|(p, m)| p == "/openapi.json" && m == &["get"]));
    }

    #[test]
    fn every_route_and_method_is_documented() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, methods) in routes() {
            let item = paths
                .iter()
                .find(|(p, _)| shape(p) == shape(&path))
                .map(|(_, item)| item)
                .unwrap_or_else(|| panic!("docs/openapi.json does not describe {path}"));
            for m in methods {
                assert!(
                    item.get(m).is_some(),
                    "docs/openapi.json: no {m} for {path}"
                );
            }
        }
    }

    #[test]
    fn every_documented_path_is_served_or_listed_as_pending() {
        let served: Vec<String> = routes().iter().map(|(p, _)| shape(p)).collect();
        let doc = document();
        for path in doc["paths"].as_object().expect("paths").keys() {
            let path = shape(path);
            assert!(
                served.contains(&path),
                "{path} is documented but not served"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("a local $ref");
                        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                    }
                    m.values().for_each(|v| walk(v, doc));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, doc)),
                _ => {}
            }
        }
        let doc = document();
        walk(&doc, &doc);
    }
}
