//! The headers and the query string as fuzz targets (negotiation, Basic, query), and what the
//! targets share (seeds, signatures). Each asserts what must hold of any answer, beyond not
//! panicking; a failed assertion is reported (and saved) like any other panic.

use std::path::Path;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use xmpp_rest_gateway::http::auth::credentials;
use xmpp_rest_gateway::http::negotiate::{body_format, response_format};
use xmpp_rest_gateway::http::query::{parse_query, QueryParams};
use xmpp_rest_gateway::rest::Format;

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
