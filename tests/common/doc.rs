//! Comparing documents "equal after parsing", as the contract defines it: element and key order
//! and all text count; whitespace between elements does not.

use quick_xml::events::Event;
use quick_xml::Reader;

/// An XML element as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlNode {
    pub name: String,
    pub text: String,
    pub children: Vec<XmlNode>,
}

impl XmlNode {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parses `xml`, dropping whitespace-only text between elements.
pub fn parse_xml(xml: &[u8]) -> XmlNode {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<XmlNode> = Vec::new();
    let mut buf = Vec::new();
    let new = |name: &str| XmlNode {
        name: name.to_string(),
        text: String::new(),
        children: Vec::new(),
    };
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => stack.push(new(e.name().as_ref())),
            Ok(Event::Empty(e)) => {
                let node = new(e.name().as_ref());
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return node,
                }
            }
            Ok(Event::Text(t)) => {
                let text = t.xml10_content().into_owned();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                let name: String = r.to_string();
                let ch = match name.as_str() {
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "amp" => "&".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    n => {
                        let code = n
                            .strip_prefix("#x")
                            .map(|h| u32::from_str_radix(h, 16))
                            .or_else(|| n.strip_prefix('#').map(|d| d.parse()))
                            .expect("known entity")
                            .expect("char reference");
                        char::from_u32(code).expect("char").to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&ch);
                }
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Ok(Event::End(_)) => {
                let mut node = stack.pop().expect("balanced");
                if !node.children.is_empty() && node.text.trim().is_empty() {
                    node.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return node,
                }
            }
            Ok(Event::Eof) => panic!("no root element in {}", String::from_utf8_lossy(xml)),
            Ok(_) => {}
            Err(e) => panic!("not XML ({e}): {}", String::from_utf8_lossy(xml)),
        }
        buf.clear();
    }
}

/// Asserts two XML documents are equal after parsing.
pub fn assert_xml_eq(got: &[u8], want: &[u8]) {
    let (g, w) = (parse_xml(got), parse_xml(want));
    assert_eq!(
        g,
        w,
        "XML differs.\n--- got:\n{}\n--- want:\n{}",
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(want)
    );
}

/// Asserts two JSON documents are equal after parsing, key order included.
pub fn assert_json_eq(got: &[u8], want: &[u8]) {
    let g: serde_json::Value = serde_json::from_slice(got)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(got)));
    let w: serde_json::Value = serde_json::from_slice(want).expect("fixture JSON");
    assert_eq!(
        g.to_string(),
        w.to_string(),
        "JSON differs (order counts).\n--- got:\n{}",
        String::from_utf8_lossy(got)
    );
}
