//! The command IQ on the wire, without element trees: [`write_command`] writes an outgoing
//! `<iq type='set'><command/></iq>` straight into bytes with quick-xml's `Writer`, and
//! [`read_reply`] pulls one reply `<iq/>` straight into the crate's command model with
//! quick-xml's namespace-aware reader. Both stand beside the minidom path (`xep0050`'s
//! `to_element`/`parse`, built only for the tests, the fuzz targets and the examples) and answer
//! the same: the tests hold the two to the same model on every reply the servers were recorded
//! sending. In the gateway's binary these are the only command codec.
//!
//! The tree path builds a minidom element per stanza, then an xso `Iq`, then walks the tree
//! again into `CommandReply`; on the hot path (a user-stats or end-user-session request) that
//! is most of the session task's XML cost. Stream setup, SASL and rare stanzas keep the trees.

mod pull;
mod read;
mod write;

#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod write_tests;

pub use read::{read_reply, ReplyIq};
pub use write::write_command;

/// Elements nested deeper than this are refused rather than walked (a reply is a few levels
/// deep: iq, command, x, field, option, value).
pub const MAX_DEPTH: usize = 32;

/// Why bytes could not be written or read as a command IQ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A value holds a character XML 1.0 does not allow (controls other than tab, line feed
    /// and carriage return, U+FFFE, U+FFFF): no escape can carry it, so nothing is written.
    #[error("a character XML does not allow (U+{0:04X})")]
    ForbiddenChar(u32),
    /// The bytes are not one well-formed `<iq/>` (truncated, bad references, duplicate
    /// attributes, mismatched tags, not UTF-8, ...).
    #[error("not well-formed: {0}")]
    Syntax(String),
    /// Elements nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    /// Well-formed, but not an answer to an IQ (another stanza, a request, no id).
    #[error("not an IQ reply: {0}")]
    NotAReply(String),
}
