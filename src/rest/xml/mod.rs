//! The XML codec of the REST document (Tigase's `<command>` shape): [`decode`] reads a request
//! body, [`encode`] writes responses, command lists and errors.

mod decode;
mod encode;
#[cfg(test)]
pub(super) mod tests;

pub use decode::{check_element, decode_request, decode_resource};
pub use encode::{encode_error, encode_items, encode_resource, encode_response};

/// Whether XML 1.0 can carry `c` at all (its `Char` production). Upstream streams are XML 1.0,
/// so the JSON codec refuses the same characters this one does.
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
