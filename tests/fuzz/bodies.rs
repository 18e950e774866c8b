//! The request bodies as fuzz targets: XML and JSON through `rest::decode_request`.

use serde_json::{json, Map, Value};
use xmpp_rest_gateway::rest::{self, CommandRequest, FieldValue, Format};

use super::engine::{fnv, Outcome};
use super::targets::message_signature;

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
