//! The decoders a client reaches, as fuzz targets: request bodies, the negotiation headers, the
//! Basic header and the query string. Each asserts what must hold of any answer, beyond not
//! panicking; a failed assertion is reported (and saved) like any other panic.

use std::path::Path;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use serde_json::{json, Map, Value};
use xmpp_rest_gateway::http::auth::credentials;
use xmpp_rest_gateway::http::negotiate::{body_format, response_format};
use xmpp_rest_gateway::http::query::{parse_query, QueryParams};
use xmpp_rest_gateway::rest::{self, CommandRequest, FieldValue, Format};

use super::engine::{fnv, Outcome};

/// The seeds of a target: every file in `tests/fixtures/fuzz/<name>/`, plus `extra` files
/// (paths relative to the crate).
pub fn seeds(name: &str, extra: &[&str]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/fixtures/fuzz").join(name);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    paths.extend(extra.iter().map(|p| root.join(p)));
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A signature for an error message: digits (byte offsets) dropped, so that one kind of error
/// is one signature wherever it happens.
pub fn message_signature(kind: u64, message: &str) -> u64 {
    let digitless: Vec<u8> = message.bytes().filter(|b| !b.is_ascii_digit()).collect();
    fnv(&digitless) ^ kind
}

// ---------------------------------------------------------------------------------------------
// Request bodies

pub const XML_TOKENS: &[&[u8]] = &[
    b"<!DOCTYPE command [<!ENTITY a \"b\">]>",
    b"<!ENTITY x SYSTEM \"file:///etc/passwd\">",
    b"&a;",
    b"&#0;",
    b"&#x1F600;",
    b"&#xD800;",
    b"&#x110000;",
    b"&#65;",
    b"&amp;",
    b"&lt;",
    b"<![CDATA[",
    b"]]>",
    b"<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
    b"<!--",
    b"-->",
    b"<?pi x?>",
    b"<command>",
    b"</command>",
    b"<node>",
    b"</node>",
    b"<fields>",
    b"<item>",
    b"</item>",
    b"<var>",
    b"<value>",
    b"</value>",
    b"<value/>",
    b"<sessionid>",
    b"<action>",
    b"<x:item xmlns:x='urn:x'>",
    b" a='1'",
    b" a=",
    b"<a>",
    b"</a>",
    b"/>",
];

pub const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"command\":",
    b"\"node\":",
    b"\"fields\":",
    b"\"var\":",
    b"\"value\":",
    b"\"sessionid\":",
    b"\"action\":",
    b"null",
    b"true",
    b"false",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"\\udc00\\ud800\"",
    b"\"\\uFFFE\"",
    b"\\\"",
    b"-0.0e-0",
    b"1.7976931348623157e309",
    b"123456789012345678901234567890.5e-400",
    b"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{}}}}}}}",
];

/// XML or JSON body -> `rest::decode_request`. A decoded request, written again as JSON (and,
/// when it came from XML, as XML), must decode to the same request: nothing the decoders accept
/// is lost or changed by the other codec's rules.
pub fn body(format: Format, input: &[u8]) -> Outcome {
    match rest::decode_request(format, input) {
        Ok(req) => {
            let json = request_as_json(&req);
            assert_eq!(
                rest::decode_request(Format::Json, &json).as_ref(),
                Ok(&req),
                "JSON re-encoding: {}",
                String::from_utf8_lossy(&json)
            );
            if format == Format::Xml {
                let xml = request_as_xml(&req);
                assert_eq!(
                    rest::decode_request(Format::Xml, xml.as_bytes()).as_ref(),
                    Ok(&req),
                    "XML re-encoding: {xml}"
                );
            }
            Outcome::Accepted(request_shape(&req))
        }
        Err(e) => Outcome::Refused(message_signature(1, &e.to_string())),
    }
}

fn request_shape(req: &CommandRequest) -> u64 {
    let mut shape = vec![
        u8::from(req.node.is_some()),
        u8::from(req.sessionid.is_some()),
        u8::from(req.action.is_some()),
    ];
    shape.extend(req.fields.iter().take(4).map(|f| match &f.value {
        None => 3,
        Some(FieldValue::Single(s)) => 4 + u8::from(s.is_empty()),
        Some(FieldValue::List(v)) => 6 + v.len().min(3) as u8,
    }));
    fnv(&shape)
}

fn request_as_json(req: &CommandRequest) -> Vec<u8> {
    let mut c = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            c.insert(k.into(), v.as_str().into());
        }
    };
    put("node", &req.node);
    put("sessionid", &req.sessionid);
    put("action", &req.action);
    let fields: Vec<Value> = req
        .fields
        .iter()
        .map(|f| match &f.value {
            None => json!({ "var": f.var }),
            Some(FieldValue::Single(v)) => json!({ "var": f.var, "value": v }),
            Some(FieldValue::List(v)) => json!({ "var": f.var, "value": v }),
        })
        .collect();
    c.insert("fields".into(), fields.into());
    serde_json::to_vec(&json!({ "command": c })).expect("a Value serializes")
}

fn request_as_xml(req: &CommandRequest) -> String {
    // `\r` as a reference: a literal one would be turned into `\n` by line-end normalisation.
    let esc = |s: &str| quick_xml::escape::escape(s).replace('\r', "&#13;");
    let mut x = String::from("<command>");
    let mut put = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            x.push_str(&format!("<{name}>{}</{name}>", esc(v)));
        }
    };
    put("node", &req.node);
    put("sessionid", &req.sessionid);
    put("action", &req.action);
    x.push_str("<fields>");
    for f in &req.fields {
        x.push_str(&format!("<item><var>{}</var>", esc(&f.var)));
        match &f.value {
            None => {}
            Some(FieldValue::Single(v)) => x.push_str(&format!("<value>{}</value>", esc(v))),
            // An empty list is a `<value>` with elements none of which is an `<item>`.
            Some(FieldValue::List(v)) if v.is_empty() => x.push_str("<value><none/></value>"),
            Some(FieldValue::List(v)) => {
                x.push_str("<value>");
                for i in v {
                    x.push_str(&format!("<item>{}</item>", esc(i)));
                }
                x.push_str("</value>");
            }
        }
        x.push_str("</item>");
    }
    x.push_str("</fields></command>");
    x
}

// ---------------------------------------------------------------------------------------------
// Negotiation headers

pub const NEGOTIATION_TOKENS: &[&[u8]] = &[
    b"application/json",
    b"application/xml",
    b"text/xml",
    b"text/*",
    b"application/*",
    b"*/*",
    b"~",
    b"\n",
    b";q=",
    b";q=0",
    b";q=1",
    b";Q=0.5",
    b";q=-1",
    b";q=1e40",
    b";q=NaN",
    b";q=inf",
    b";charset=utf-8",
    b"APPLICATION/JSON",
    b"\xc4\xb0",
    b"\xe1\xba\x9e",
];

/// Three lines: `?type=`, `Accept`, `Content-Type`; a line `~` (or a missing line) is absent.
pub fn negotiation(input: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let mut next = || lines.next().filter(|l| *l != "~");
    let (query, accept, content_type) = (next(), next(), next());
    let chosen = response_format(query, accept, content_type);
    let from_body = body_format(content_type);
    assert_eq!(
        response_format(None, None, content_type),
        Ok(from_body.unwrap_or(Format::Xml)),
        "without type or Accept, the body's format (else XML) answers"
    );
    if query.is_some() {
        assert_eq!(
            chosen,
            response_format(query, None, None),
            "type= decides alone"
        );
    } else if accept.is_none_or(|a| a.trim().is_empty()) {
        assert_eq!(chosen, response_format(None, None, content_type));
    }
    let code = |f: Option<Format>| match f {
        None => 0u8,
        Some(Format::Xml) => 1,
        Some(Format::Json) => 2,
    };
    let signature = fnv(&[
        code(chosen.as_ref().ok().copied()),
        code(from_body),
        u8::from(query.is_some()),
        u8::from(accept.is_some()),
    ]);
    match chosen {
        Ok(_) => Outcome::Accepted(signature),
        Err(_) => Outcome::Refused(signature),
    }
}

// ---------------------------------------------------------------------------------------------
// Basic header

pub const BASIC_TOKENS: &[&[u8]] = &[
    b"Basic ",
    b"basic ",
    b"BASIC\t",
    b"Bearer ",
    b"=",
    b"==",
    b"YWRtaW5AZXhhbXBsZS5vcmc6c2VjcmV0",
    b"Og==",
    b"@",
    b"/",
    b":",
    b"admin@example.org",
    b"example.org",
    b"[::1]",
    b"127.0.0.1",
    b"\xc3\x9f",
    b"\xef\xbc\xa0",
    b"\xe2\x80\x8b",
];

/// Raw `Authorization` header bytes -> `auth::credentials`. A value `HeaderValue` refuses never
/// reaches the gateway: skipped.
pub fn basic_header(input: &[u8]) -> Outcome {
    let Ok(value) = HeaderValue::from_bytes(input) else {
        return Outcome::Skipped;
    };
    check_credentials(value, None)
}

/// `user:password` bytes, sent base64-encoded as a valid Basic header: reaches JID parsing.
pub fn basic_credentials(input: &[u8]) -> Outcome {
    let encoded = base64::engine::general_purpose::STANDARD.encode(input);
    let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is ASCII");
    let password = std::str::from_utf8(input)
        .ok()
        .and_then(|s| s.split_once(':'))
        .map(|(_, p)| p);
    check_credentials(value, password)
}

fn check_credentials(value: HeaderValue, sent_password: Option<&str>) -> Outcome {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let without = credentials(&headers, None);
    let with = credentials(&headers, Some("example.org"));
    for c in [&without, &with].into_iter().flatten() {
        assert!(!c.password.is_empty());
        assert!(c.account.node().is_some(), "an account has a localpart");
        assert_eq!(
            format!("{c:?}"),
            format!("Credentials {{ account: {:?}, .. }}", c.account),
            "Debug shows the account only"
        );
        if let Some(p) = sent_password {
            assert_eq!(c.password, p);
        }
    }
    if let Ok(c) = &without {
        let d = with
            .as_ref()
            .expect("a full account needs no default domain");
        assert_eq!((&c.account, &c.password), (&d.account, &d.password));
    }
    match (&without, &with) {
        (Ok(_), _) => Outcome::Accepted(1),
        (Err(_), Ok(_)) => Outcome::Accepted(2),
        (Err(e), Err(_)) => {
            Outcome::Refused(message_signature(3, e.text.as_deref().unwrap_or_default()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Query string

pub const QUERY_TOKENS: &[&[u8]] = &[
    b"type=",
    b"keep=",
    b"api-key=",
    b"keep",
    b"&",
    b"&&",
    b"=",
    b"==",
    b"+",
    b"%2F",
    b"%26",
    b"%3D",
    b"%2B",
    b"%25",
    b"%FF",
    b"%f0%9f%98%80",
    b"type%3Dx",
    b"application/json",
    b"#",
];

/// Raw query string -> `query::parse_query`. What it decodes, percent-encoded again, decodes to
/// the same parameters.
pub fn query(input: &[u8]) -> Outcome {
    let raw = String::from_utf8_lossy(input);
    match parse_query(&raw) {
        Ok(q) => {
            let again = encode_query(&q);
            assert_eq!(parse_query(&again).as_ref(), Ok(&q), "re-encoded: {again}");
            let has = |v: &Option<String>| match v {
                None => 0u8,
                Some(s) if s.is_empty() => 1,
                Some(_) => 2,
            };
            Outcome::Accepted(fnv(&[has(&q.type_), has(&q.keep), has(&q.api_key)]))
        }
        Err(e) => Outcome::Refused(message_signature(4, &e)),
    }
}

fn encode_query(q: &QueryParams) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    [
        ("type", &q.type_),
        ("keep", &q.keep),
        ("api-key", &q.api_key),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", enc(v))))
    .collect::<Vec<_>>()
    .join("&")
}
