//! What XML 1.0 allows, shared by every XML reader and writer of the crate: the REST
//! document's codec and the command codec on the upstream stream.

use quick_xml::events::BytesRef;

/// Whether XML 1.0 can carry `c` at all (its `Char` production). Upstream streams are XML 1.0,
/// so the JSON codec refuses the same characters the XML ones do.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Why a reference was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReference {
    /// A name other than the five predefined entities: without a DTD nothing else is declared,
    /// so it is an error rather than something to expand.
    Undeclared,
    /// A character reference that is not a number or names no character.
    Invalid,
    /// A character reference to a character XML does not allow (`&#0;`, `&#xFFFE;`).
    Forbidden,
}

impl BadReference {
    pub fn message(self) -> &'static str {
        match self {
            BadReference::Undeclared => "a reference to an undeclared entity",
            BadReference::Invalid => "an invalid character reference",
            BadReference::Forbidden => "a reference to a character XML does not allow",
        }
    }
}

/// Resolves a character reference or one of the five predefined entities.
pub fn resolve_reference(r: &BytesRef) -> Result<char, BadReference> {
    let c = match r.resolve_char_ref() {
        Ok(Some(c)) => c,
        Ok(None) => match &**r {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => return Err(BadReference::Undeclared),
        },
        Err(_) => return Err(BadReference::Invalid),
    };
    if is_xml_char(c) {
        Ok(c)
    } else {
        Err(BadReference::Forbidden)
    }
}
