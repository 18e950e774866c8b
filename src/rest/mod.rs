//! The REST document: the Tigase-shaped `command` the client sends and receives, and its XML
//! and JSON codecs. Pure: no I/O, no XMPP. `http` picks the [`Format`]; `adhoc` maps these
//! documents to and from XEP-0050 IQs.

#[cfg(test)]
mod conformance;
pub mod json;
pub mod resources;
pub mod xml;
pub mod xmlchar;

/// The two wire formats a client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

/// A value as a client wrote it: one string, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Single(String),
    List(Vec<String>),
}

impl FieldValue {
    /// The values as a list, whichever way they were written.
    pub fn as_slice(&self) -> &[String] {
        match self {
            FieldValue::Single(v) => std::slice::from_ref(v),
            FieldValue::List(v) => v,
        }
    }
}

/// One field of a request: `var` and its value(s). `value` is `None` when the client gave no
/// value (no `<value>` / no `"value"` key / JSON `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestField {
    pub var: String,
    pub value: Option<FieldValue>,
}

/// What a client POSTs. `jid` in the body is ignored (the URL decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandRequest {
    /// The command node; `None` when absent (a 400 decided by the caller).
    pub node: Option<String>,
    pub fields: Vec<RequestField>,
    /// The gateway's own session id of a multi-stage command being continued.
    pub sessionid: Option<String>,
    /// `execute`, `next`, `prev`, `complete`, `cancel`: checked by the caller.
    pub action: Option<String>,
}

/// One `{label, value}` choice of a list field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOption {
    pub label: Option<String>,
    pub value: String,
}

/// One field of a response, in the key order the contract fixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseField {
    pub var: String,
    pub label: Option<String>,
    /// The XEP-0004 type (`text-multi`, …) as the server sent it; `None` when it sent none.
    pub type_: Option<String>,
    pub values: Vec<String>,
    pub options: Vec<FieldOption>,
    pub required: bool,
    pub desc: Option<String>,
}

/// The XEP-0050 `<note>` of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `info`, `warn` or `error`.
    pub type_: String,
    pub value: String,
}

/// A column of a multi-item result (`<reported>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Column {
    pub var: String,
    pub label: Option<String>,
    pub type_: Option<String>,
}

/// One cell of a multi-item result row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub var: String,
    pub values: Vec<String>,
}

/// A multi-item result form: its columns and its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    pub columns: Vec<Column>,
    pub items: Vec<Vec<Cell>>,
}

/// What the gateway answers for a command (completed or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandResponse {
    /// The `{jid}` of the URL, as the client wrote it.
    pub jid: String,
    pub node: String,
    /// Only while not completed: `executing`, `canceled`.
    pub status: Option<String>,
    pub sessionid: Option<String>,
    pub actions: Vec<String>,
    pub fields: Vec<ResponseField>,
    pub title: Option<String>,
    pub instructions: Option<String>,
    pub note: Option<Note>,
    pub reported: Option<Reported>,
}

/// One command a target offers (disco#items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandItem {
    pub jid: String,
    pub node: String,
    pub name: Option<String>,
}

/// The body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub status: u16,
    /// The XMPP defined condition, or the gateway's own word (`bad-request`, `timeout`, …).
    pub condition: String,
    pub text: Option<String>,
    /// The request field a field-check failure is about.
    pub field: Option<String>,
}

/// Why a request body could not be decoded. The message is safe to show the client: it never
/// quotes the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the body is not well-formed: {0}")]
    Malformed(String),
    #[error("DTDs and entity declarations are not accepted")]
    Dtd,
    #[error("the body is nested deeper than any command needs")]
    TooDeep,
    #[error("unexpected document: {0}")]
    Shape(String),
}

/// Every XEP-0004 field type.
pub const FIELD_TYPES: [&str; 10] = [
    "boolean",
    "fixed",
    "hidden",
    "jid-multi",
    "jid-single",
    "list-multi",
    "list-single",
    "text-multi",
    "text-private",
    "text-single",
];

/// The field types that take several values, whose JSON value is therefore always an array.
pub const MULTI_TYPES: [&str; 3] = ["jid-multi", "list-multi", "text-multi"];

/// Whether a field of this type takes several values (`*-multi`); a field without a type does
/// not.
pub fn is_multi_type(type_: Option<&str>) -> bool {
    type_.is_some_and(|t| MULTI_TYPES.contains(&t))
}

/// Decodes a request body in `format`.
pub fn decode_request(format: Format, body: &[u8]) -> Result<CommandRequest, DecodeError> {
    match format {
        Format::Xml => xml::decode_request(body),
        Format::Json => json::decode_request(body),
    }
}

/// Encodes a command response in `format`.
pub fn encode_response(format: Format, doc: &CommandResponse) -> Vec<u8> {
    match format {
        Format::Xml => xml::encode_response(doc),
        Format::Json => json::encode_response(doc),
    }
}

/// Encodes a command list in `format`.
pub fn encode_items(format: Format, items: &[CommandItem]) -> Vec<u8> {
    match format {
        Format::Xml => xml::encode_items(items),
        Format::Json => json::encode_items(items),
    }
}

/// Encodes an error body in `format`.
pub fn encode_error(format: Format, err: &ErrorBody) -> Vec<u8> {
    match format {
        Format::Xml => xml::encode_error(err),
        Format::Json => json::encode_error(err),
    }
}
