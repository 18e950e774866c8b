//! The characters no log line carries raw: they end a line for some readers without being a
//! newline (U+2028, U+2029, U+0085 NEL), or reorder or hide what follows on screen (bidi
//! overrides and isolates, invisible format characters). JSON encoders leave them raw (they
//! are valid in JSON strings); `tracing`'s text formatter writes a message as it is. Every
//! line goes through [`Escaping`], which writes each such character as an escape: `\u2028` in
//! JSON (JSON's own escape, so a reader gets the original value back), `\u{2028}` in text (as
//! the text format's `{:?}` values already do).
//!
//! In a JSON line these characters can only stand inside a string (the structure is ASCII), so
//! replacing them keeps the line valid.

use std::borrow::Cow;
use std::io::Write;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// Whether `c` is written escaped: C1 controls (U+0085 among them), the Arabic letter mark,
/// zero-width and directional marks, the line and paragraph separators, the bidi embeddings
/// and overrides, the word joiner, invisible operators and bidi isolates, the BOM.
pub fn must_escape(c: char) -> bool {
    matches!(
        c,
        '\u{80}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// `line` with every [`must_escape`] character escaped (borrowed when there is none: the
/// common case costs one scan for four lead bytes).
pub fn escape_line(line: &[u8], json: bool) -> Cow<'_, [u8]> {
    // The lead bytes of every character above in UTF-8.
    if !line.iter().any(|b| matches!(b, 0xc2 | 0xd8 | 0xe2 | 0xef)) {
        return Cow::Borrowed(line);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Cow::Borrowed(line);
    };
    if !text.chars().any(must_escape) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !must_escape(c) {
            out.push(c);
        } else if json {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out.into_bytes())
}

/// A `MakeWriter` whose writers escape what they are given (`tracing`'s formatter writes each
/// event whole, in one `write_all`).
pub struct Escaping<W> {
    pub inner: W,
    pub json: bool,
}

pub struct EscapingWriter<W> {
    inner: W,
    json: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(&escape_line(buf, self.json))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for Escaping<W> {
    type Writer = EscapingWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
            json: self.json,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer_for(meta),
            json: self.json,
        }
    }
}
