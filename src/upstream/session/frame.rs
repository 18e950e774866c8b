//! Finds where each of the stream's top-level elements (stanzas, `<stream:error/>`) begins and
//! ends in the bytes read so far, without parsing them: quotes, CDATA sections, empty elements
//! and nesting are tracked byte by byte, across reads. Well-formedness is left to whoever reads
//! a stanza's bytes (`adhoc::wire::read_reply`, or minidom for the rare ones); comments,
//! processing instructions and DTDs, which RFC 6120 forbids on a stream, end it here.

use std::ops::Range;

/// Elements nested deeper than this inside one stanza end the stream.
const MAX_DEPTH: usize = 64;

/// What the bytes hold next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// One complete top-level element, at this range of the buffer.
    Stanza(Range<usize>),
    /// `</stream:stream>`: the server closed its side.
    Footer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data (whitespace between stanzas, text inside one).
    Text,
    /// Just after `<`.
    Open,
    /// Inside a tag: `end` for `</...>`, `quote` the open attribute quote (0 when none),
    /// `slash` when the last byte outside quotes was `/`.
    Tag { end: bool, quote: u8, slash: bool },
    /// Inside `<![CDATA[` (`matched` bytes of it seen so far, from the `!`).
    CDataOpen { matched: usize },
    /// Inside a CDATA section, `brackets` of `]]` seen.
    CData { brackets: usize },
}

/// The scanner's state between reads; positions are offsets into the caller's buffer.
#[derive(Debug)]
pub(super) struct Framer {
    /// The next byte to look at.
    pos: usize,
    /// Where the stanza being read began, if one has.
    start: Option<usize>,
    depth: usize,
    state: State,
    max: usize,
}

impl Framer {
    /// A framer refusing any stanza longer than `max` bytes.
    pub(super) fn new(max: usize) -> Self {
        Self {
            pos: 0,
            start: None,
            depth: 0,
            state: State::Text,
            max,
        }
    }

    /// Where the stanza in progress begins, or where scanning stands: the bytes before it
    /// may be dropped by the caller (then [`Framer::shift`]).
    pub(super) fn keep_from(&self) -> usize {
        self.start.unwrap_or(self.pos)
    }

    /// The caller dropped the first `n` bytes of its buffer.
    pub(super) fn shift(&mut self, n: usize) {
        self.pos -= n;
        self.start = self.start.map(|s| s - n);
    }

    /// The next complete frame in `buf`, `None` when more bytes are needed; `Err` ends the
    /// stream (not XMPP's restricted XML, too deep, too long).
    pub(super) fn next(&mut self, buf: &[u8]) -> Result<Option<Frame>, String> {
        while self.pos < buf.len() {
            // Runs of bytes that cannot change the state (text inside a stanza, a quoted
            // attribute value, CDATA) are passed over at once rather than byte by byte.
            let next = match self.state {
                State::Text if self.depth > 0 => Some(b'<'),
                State::Tag { quote, .. } if quote != 0 => Some(quote),
                State::CData { brackets: 0 } => Some(b']'),
                _ => None,
            };
            if let Some(byte) = next {
                match memchr::memchr(byte, &buf[self.pos..]) {
                    Some(i) => self.pos += i,
                    None => {
                        self.pos = buf.len();
                        break;
                    }
                }
            }
            let b = buf[self.pos];
            let at = self.pos;
            self.pos += 1;
            match self.state {
                State::Text => {
                    if b == b'<' {
                        if self.depth == 0 {
                            self.start = Some(at);
                        }
                        self.state = State::Open;
                    } else if self.depth == 0 && !b.is_ascii_whitespace() {
                        return Err("text between stanzas".into());
                    }
                }
                State::Open => match b {
                    b'/' => {
                        self.state = State::Tag {
                            end: true,
                            quote: 0,
                            slash: false,
                        }
                    }
                    b'!' if self.depth > 0 => self.state = State::CDataOpen { matched: 1 },
                    b'!' | b'?' => return Err("a comment, DTD or processing instruction".into()),
                    _ => {
                        self.state = State::Tag {
                            end: false,
                            quote: 0,
                            slash: false,
                        }
                    }
                },
                State::CDataOpen { matched } => {
                    const OPEN: &[u8] = b"![CDATA[";
                    if b != OPEN[matched] {
                        return Err("a comment or DTD".into());
                    }
                    self.state = if matched + 1 == OPEN.len() {
                        State::CData { brackets: 0 }
                    } else {
                        State::CDataOpen {
                            matched: matched + 1,
                        }
                    };
                }
                State::CData { brackets } => {
                    self.state = match b {
                        b']' => State::CData {
                            brackets: (brackets + 1).min(2),
                        },
                        b'>' if brackets == 2 => State::Text,
                        _ => State::CData { brackets: 0 },
                    };
                }
                State::Tag { end, quote, slash } => {
                    if quote != 0 {
                        if b == quote {
                            self.state = State::Tag {
                                end,
                                quote: 0,
                                slash: false,
                            };
                        }
                    } else if b == b'\'' || b == b'"' {
                        self.state = State::Tag {
                            end,
                            quote: b,
                            slash: false,
                        };
                    } else if b == b'>' {
                        self.state = State::Text;
                        if let Some(frame) = self.tag_closed(end, slash)? {
                            return Ok(Some(frame));
                        }
                    } else {
                        self.state = State::Tag {
                            end,
                            quote: 0,
                            slash: b == b'/',
                        };
                    }
                }
            }
        }
        match self.start {
            Some(s) if buf.len() - s > self.max => {
                Err(format!("a stanza longer than {} bytes", self.max))
            }
            _ => Ok(None),
        }
    }

    /// A tag just ended at `self.pos - 1`.
    fn tag_closed(&mut self, end: bool, slash: bool) -> Result<Option<Frame>, String> {
        if end {
            if self.depth == 0 {
                self.start = None;
                return Ok(Some(Frame::Footer));
            }
            self.depth -= 1;
        } else if !slash {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!("elements nested deeper than {MAX_DEPTH}"));
            }
        }
        if self.depth > 0 {
            return Ok(None);
        }
        let start = self.start.take().unwrap_or(0);
        if self.pos - start > self.max {
            return Err(format!("a stanza longer than {} bytes", self.max));
        }
        Ok(Some(Frame::Stanza(start..self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame of `input` fed in chunks of `chunk` bytes, as the strings they span.
    fn frames(input: &str, chunk: usize) -> Result<Vec<String>, String> {
        let mut framer = Framer::new(1024);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = framer.next(&buf)? {
                out.push(match frame {
                    Frame::Stanza(r) => String::from_utf8(buf[r].to_vec()).unwrap(),
                    Frame::Footer => "FOOTER".into(),
                });
            }
            let keep = framer.keep_from();
            buf.drain(..keep);
            framer.shift(keep);
        }
        Ok(out)
    }

    #[test]
    fn stanzas_are_cut_at_their_top_level_end_whatever_the_chunks() {
        let input = " <iq id='a' type=\"result\" x='/>'><command a='>'><x/>t&amp;</command></iq>\n\
                     <message><body><![CDATA[</message> ]] ]>]]></body></message>\
                     <message a=\"'>\"><body><![CDATA[x]]]>y &lt; z</body></message>\
                     <presence/><stream:error><x xmlns='y'/></stream:error></stream:stream>";
        let want = [
            "<iq id='a' type=\"result\" x='/>'><command a='>'><x/>t&amp;</command></iq>",
            "<message><body><![CDATA[</message> ]] ]>]]></body></message>",
            "<message a=\"'>\"><body><![CDATA[x]]]>y &lt; z</body></message>",
            "<presence/>",
            "<stream:error><x xmlns='y'/></stream:error>",
            "FOOTER",
        ];
        // Every chunk size: a run passed over at once (text, a quoted value, CDATA) may end at
        // any byte of a read.
        for chunk in 1..=input.len() {
            assert_eq!(frames(input, chunk).unwrap(), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn what_restricted_xml_forbids_or_no_stanza_can_be_ends_the_stream() {
        for bad in [
            "x<iq/>",
            "<!-- c --><iq/>",
            "<?pi?>",
            "<iq><!-- c --></iq>",
            "<iq><!DOCTYPE x></iq>",
        ] {
            assert!(frames(bad, 1000).is_err(), "{bad}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(frames(&deep, 1000).is_err());
        let long = format!("<iq>{}</iq>", "x".repeat(2000));
        assert!(frames(&long, 100).is_err());
        assert!(frames(&long, 5000).is_err());
    }
}
