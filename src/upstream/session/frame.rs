//! Finds where each of the stream's top-level elements (stanzas, `<stream:error/>`) begins and
//! ends in the bytes read so far, without parsing them: quotes, CDATA sections, empty elements
//! and nesting are tracked byte by byte, across reads. Well-formedness is left to whoever reads
//! a stanza's bytes (`adhoc::wire::read_reply`, or minidom for the rare ones); comments,
//! processing instructions and DTDs, which RFC 6120 forbids on a stream, end it here: that is
//! broken framing, which only the server can produce (it re-serialises what others send).
//!
//! A stanza too deep or too long to be kept is not the end of the stream: any account of the
//! server can send one to the gateway's resource. The framer reports it once ([`Frame::Skipped`],
//! with its top-level tag when that was read whole, so the caller can tell whose it was), then
//! passes over the rest of it without keeping its bytes (only the nesting depth, a counter, is
//! tracked) and resumes at its end.

use std::ops::Range;

/// Elements nested deeper than this inside one stanza make it skipped (no reader of the
/// gateway's builds a tree that deep).
const MAX_DEPTH: usize = 64;

/// Why a stanza was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// Elements nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Longer than the framer's bound.
    TooLarge,
}

/// What the bytes hold next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// One complete top-level element, at this range of the buffer.
    Stanza(Range<usize>),
    /// A stanza that will not be kept: its top-level start tag at this range of the buffer
    /// when it was read whole (only until the next call), its remaining bytes passed over.
    Skipped {
        head: Option<Range<usize>>,
        why: Skip,
    },
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
    /// Where the top-level start tag of the stanza being read ended (exclusive), once it has.
    head_end: Option<usize>,
    depth: usize,
    state: State,
    max: usize,
    /// Passing over a skipped stanza: nothing of it is kept, scanning goes on to its end.
    skipping: bool,
}

impl Framer {
    /// A framer refusing any stanza longer than `max` bytes.
    pub(super) fn new(max: usize) -> Self {
        Self {
            pos: 0,
            start: None,
            head_end: None,
            depth: 0,
            state: State::Text,
            max,
            skipping: false,
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
        self.head_end = self.head_end.map(|h| h - n);
    }

    /// The next complete frame in `buf`, `None` when more bytes are needed; `Err` ends the
    /// stream (bytes that are not XMPP's restricted XML at the stream's level).
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
            Some(s) if buf.len() - s > self.max => Ok(Some(self.skip(Skip::TooLarge))),
            _ => Ok(None),
        }
    }

    /// Starts passing over the stanza in progress: reported once, with its head if it was
    /// read whole; from here on its bytes may be dropped as they are scanned.
    fn skip(&mut self, why: Skip) -> Frame {
        let head = self
            .start
            .take()
            .zip(self.head_end.take())
            .map(|(s, e)| s..e);
        self.skipping = true;
        Frame::Skipped { head, why }
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
            if self.depth == 1 && !self.skipping {
                self.head_end = Some(self.pos);
            }
            if self.depth > MAX_DEPTH && !self.skipping {
                return Ok(Some(self.skip(Skip::TooDeep)));
            }
        }
        if self.depth > 0 {
            return Ok(None);
        }
        if std::mem::take(&mut self.skipping) {
            // The end of a skipped stanza: reported when it began.
            self.head_end = None;
            return Ok(None);
        }
        if self.pos - self.start.unwrap_or(0) > self.max {
            // Read whole in one go: reported, and already passed over.
            let frame = self.skip(Skip::TooLarge);
            self.skipping = false;
            return Ok(Some(frame));
        }
        self.head_end = None;
        let start = self.start.take().unwrap_or(0);
        Ok(Some(Frame::Stanza(start..self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`frames_kept`] saw: every frame of the input (a skipped stanza as `SKIPPED`, its
    /// reason and its head), and the most bytes the buffer held at once.
    struct Seen {
        frames: Vec<String>,
        most_held: usize,
    }

    /// Every frame of `input` fed in chunks of `chunk` bytes, the buffer drained as the driver
    /// drains it, to a framer keeping stanzas of up to `max` bytes.
    fn frames_kept(input: &str, chunk: usize, max: usize) -> Result<Seen, String> {
        let mut framer = Framer::new(max);
        let mut buf = Vec::new();
        let mut seen = Seen {
            frames: Vec::new(),
            most_held: 0,
        };
        for piece in input.as_bytes().chunks(chunk) {
            buf.extend_from_slice(piece);
            seen.most_held = seen.most_held.max(buf.len());
            while let Some(frame) = framer.next(&buf)? {
                seen.frames.push(match frame {
                    Frame::Stanza(r) => String::from_utf8(buf[r].to_vec()).unwrap(),
                    Frame::Skipped { head, why } => format!(
                        "SKIPPED {why:?} {}",
                        head.map(|r| String::from_utf8(buf[r].to_vec()).unwrap())
                            .unwrap_or_default()
                    ),
                    Frame::Footer => "FOOTER".into(),
                });
            }
            let keep = framer.keep_from();
            buf.drain(..keep);
            framer.shift(keep);
        }
        Ok(seen)
    }

    fn frames(input: &str, chunk: usize) -> Result<Vec<String>, String> {
        frames_kept(input, chunk, 1024).map(|s| s.frames)
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
    fn only_what_restricted_xml_forbids_ends_the_stream() {
        for bad in [
            "x<iq/>",
            "<!-- c --><iq/>",
            "<?pi?>",
            "<iq><!-- c --></iq>",
            "<iq><!DOCTYPE x></iq>",
        ] {
            assert!(frames(bad, 1000).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stanza_nested_too_deep_is_skipped_to_its_end_and_the_next_one_read() {
        let head = "<message from='other@example.org/x' to='admin@example.org/xrg-1'>";
        let deep = format!(
            "{head}{}<![CDATA[</message>]]>{}</message>",
            "<a x='>'>".repeat(70),
            "</a>".repeat(70)
        );
        let input = format!("<presence/>{deep}<iq type='result' id='n'/></stream:stream>");
        let want = [
            "<presence/>".to_string(),
            format!("SKIPPED TooDeep {head}"),
            "<iq type='result' id='n'/>".to_string(),
            "FOOTER".to_string(),
        ];
        for chunk in 1..=input.len() {
            assert_eq!(frames(&input, chunk).unwrap(), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_stanza_too_large_is_skipped_without_being_held() {
        let max = 1024;
        let head = "<message from='other@example.org/x'>";
        let body = "<b>x &amp; y</b>".repeat(10_000);
        let large = format!("{head}{body}</message>");
        let input = format!("{large}<iq type='result' id='n'/>{large}<presence/>");
        let want = [
            format!("SKIPPED TooLarge {head}"),
            "<iq type='result' id='n'/>".to_string(),
            format!("SKIPPED TooLarge {head}"),
            "<presence/>".to_string(),
        ];
        for chunk in [1, 7, 100, 4096, 16 * 1024] {
            let seen = frames_kept(&input, chunk, max).unwrap();
            assert_eq!(seen.frames, want, "chunks of {chunk}");
            // Never more than the bound and one read, though each stanza is 160 KB.
            assert!(
                seen.most_held <= max + 2 * chunk,
                "held {} bytes in chunks of {chunk}",
                seen.most_held
            );
        }
        // Read whole in one go, it is still reported, not kept.
        let seen = frames_kept(&input, input.len(), max).unwrap();
        assert_eq!(seen.frames, want);
        // A start tag too large to report is skipped without one.
        let attr = format!(
            "<message a='{}'><b/></message><presence/>",
            "v".repeat(5000)
        );
        assert_eq!(
            frames_kept(&attr, 100, max).unwrap().frames,
            ["SKIPPED TooLarge ", "<presence/>"]
        );
    }
}
