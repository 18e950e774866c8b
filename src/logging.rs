//! The log: `tracing` events to stderr, chosen by `RUST_LOG` (default `info`), as text or one
//! JSON object per line (`--log-format`), with the libraries that see credentials or stanza
//! bytes withheld at every level.
//!
//! The gateway carries secrets it must never write down: the HTTP Basic password, the SASL
//! exchange made from it, and the `text-private` fields of commands (add-user,
//! change-user-password), which servers may echo back in error replies (ejabberd returns the
//! whole submitted form). The XMPP libraries trace every stanza they send and receive
//! (`tokio_xmpp::xmlstream::capture`), every XML event they parse
//! (`tokio_xmpp::xmlstream::common`), and print unexpected stanzas with `{:?}` in warnings. No
//! `RUST_LOG` can turn these on: the withheld crates are refused by a layer in front of every
//! other, and their `log` records are dropped before they become events. This fails closed: a
//! new target those crates add later is withheld too. There is no switch for raw stanza
//! capture; the gateway's own events (`xmpp_rest_gateway`) say what happened upstream.
//!
//! Characters that end or reorder a line in some reader without being a newline (U+2028,
//! U+2029, U+0085 and the other C1 controls, bidi and invisible format characters) are
//! escaped in every line, whatever wrote them (`escape.rs`): `\u2028` in JSON, `\u{2028}` in
//! text, so what a client sent cannot forge or hide part of a line.
//!
//! Lines reach stderr through [`writer::LineWriter`], a bounded queue written by a thread of
//! its own: a slow stderr drops (and counts) ordinary lines instead of stalling requests, and
//! makes an answer wait for room before its audit line, which is never dropped.

mod escape;
mod writer;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::{Event, Metadata, Subscriber};
use tracing_log::{AsLog, NormalizeEvent};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, fields as `key=value`.
    #[default]
    Text,
    /// One JSON object per line (for journald, Loki, `docker logs` collectors).
    Json,
}

/// Whether the installed subscriber writes JSON: the audit line writes its empty values as
/// `-` in text only.
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether lines are written as JSON.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Crates whose events never reach the log, whatever their level and whatever `RUST_LOG`
/// says: they hold credentials or the bytes of stanzas and HTTP requests.
pub const WITHHELD: &[&str] = &[
    // The XMPP stream, its XML reader and writer, SASL: stanzas and SASL payloads.
    "tokio_xmpp",
    "xso",
    "rxml",
    "minidom",
    "xmpp_parsers",
    "sasl",
    // The HTTP wire and the REST body's XML parser: `Authorization` and request bodies.
    "hyper",
    "hyper_util",
    "h2",
    "httparse",
    "quick_xml",
];

/// The writer [`init`] installed, for [`room`].
static STDERR: OnceLock<writer::LineWriter> = OnceLock::new();

/// How long the exit waits for queued lines to reach a stuck stderr.
const FLUSH_AT_EXIT: Duration = Duration::from_millis(500);

/// Held by `main` for the process's life: dropped, it waits (at most [`FLUSH_AT_EXIT`]) for
/// the lines still queued to be written.
#[must_use = "dropping it at once flushes the log at once"]
pub struct Flush(Option<writer::LineWriter>);

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(w) = &self.0 {
            w.flush(FLUSH_AT_EXIT);
        }
    }
}

/// Resolves once the log's queue has room, at once when it has (or when [`init`] did not
/// install it): the audit layer awaits it before writing an audit line, so that a line that
/// must not be dropped never grows the queue past its bound while stderr is slow.
pub async fn room() {
    if let Some(w) = STDERR.get() {
        w.room().await;
    }
}

/// Installs the global subscriber (stderr through [`writer::LineWriter`], colours only on a
/// terminal) and routes the `log` records of dependencies into it, less the [`WITHHELD`]
/// crates'. `RUST_LOG` unset or unparseable means `info`. Fails only when the writing thread
/// cannot be started.
pub fn init(format: LogFormat) -> Result<Flush, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let dropped = crate::metrics::log_lines_dropped();
    let stderr = writer::LineWriter::spawn(std::io::stderr(), writer::CAPACITY, dropped)
        .map_err(|e| format!("cannot start the log's writing thread: {e}"))?;
    let installed =
        tracing::subscriber::set_global_default(subscriber(filter, stderr.clone(), ansi, format));
    if installed.is_err() || STDERR.set(stderr.clone()).is_err() {
        // Only a second call gets here; the first subscriber, withholding too, stays.
        return Ok(Flush(None));
    }
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let bridge = tracing_log::LogTracer::builder()
        .ignore_all(WITHHELD.iter().copied())
        .with_max_level(tracing::level_filters::LevelFilter::current().as_log());
    // A `log` logger set by someone else first would keep its own rules; nothing to add then.
    let _ = bridge.init();
    Ok(Flush(Some(stderr)))
}

/// The subscriber [`init`] installs, writing to `writer`: a formatter in `format` filtered by
/// `filter`, behind [`Withheld`]. JSON is never coloured.
pub fn subscriber<W>(
    filter: EnvFilter,
    writer: W,
    ansi: bool,
    format: LogFormat,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let writer = escape::Escaping {
        inner: writer,
        json: format == LogFormat::Json,
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => Box::new(fmt.with_ansi(ansi)),
        LogFormat::Json => Box::new(fmt.json().with_ansi(false)),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(Withheld)
}

/// Whether events of `target` are withheld: a [`WITHHELD`] crate or one of its modules.
pub fn is_withheld(target: &str) -> bool {
    WITHHELD.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The layer that refuses every span and event of a [`WITHHELD`] crate, for every layer
/// behind it. Events bridged from `log` carry the target `log` in their static metadata and
/// the real one in their fields, so both are looked at.
pub struct Withheld;

impl<S: Subscriber> Layer<S> for Withheld {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if is_withheld(meta.target()) {
            tracing::subscriber::Interest::never()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        !is_withheld(meta.target())
    }

    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let bridged = event.normalized_metadata();
        let meta = bridged.as_ref().unwrap_or_else(|| event.metadata());
        !is_withheld(meta.target())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the tests read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    /// Runs `f` under the production subscriber in `format` with `RUST_LOG` set to
    /// `directives`, and returns what it wrote.
    fn logged_as(format: LogFormat, directives: &str, f: impl FnOnce()) -> String {
        // The bridge as `init` installs it, but without its ignore list, so `log` records of
        // withheld crates reach the layer and the layer alone is tested.
        static BRIDGE: std::sync::Once = std::sync::Once::new();
        BRIDGE.call_once(|| {
            let _ = tracing_log::LogTracer::init();
        });
        let out = Captured::default();
        let filter = EnvFilter::try_new(directives).unwrap();
        tracing::subscriber::with_default(subscriber(filter, out.clone(), false, format), f);
        out.text()
    }

    fn logged(directives: &str, f: impl FnOnce()) -> String {
        logged_as(LogFormat::Text, directives, f)
    }

    #[test]
    fn stanza_capture_is_withheld_at_trace_whatever_rust_log_says() {
        for directives in [
            "trace",
            "xmpp_rest_gateway=trace,tokio_xmpp::xmlstream::capture=trace",
            "trace,tokio_xmpp=trace,sasl=trace,rxml=trace,xso=trace",
        ] {
            let out = logged(directives, || {
                tracing::trace!(target: "tokio_xmpp::xmlstream::capture", "SEND <value>SECRET-1</value>");
                tracing::error!(target: "tokio_xmpp", "stanza SECRET-2");
                tracing::trace!(target: "rxml::parser", "Text SECRET-3");
                tracing::debug!(target: "sasl::client", "SECRET-4");
                tracing::trace!(target: "hyper::proto::h1", "authorization: SECRET-5");
                tracing::trace!(target: "xmpp_rest_gateway::upstream", "an ordinary event");
            });
            assert!(!out.contains("SECRET"), "{directives}: {out}");
            assert!(out.contains("an ordinary event"), "{directives}: {out}");
        }
    }

    #[test]
    fn log_records_of_withheld_crates_are_withheld() {
        let out = logged("trace", || {
            log::trace!(target: "tokio_xmpp::xmlstream::capture", "SEND SECRET-6");
            log::warn!(target: "tokio_xmpp::stanzastream::connected", "unsupported SECRET-7");
            log::trace!(target: "rustls::conn", "an ordinary log record");
        });
        assert!(!out.contains("SECRET"), "{out}");
        assert!(out.contains("an ordinary log record"), "{out}");
    }

    #[test]
    fn spans_of_withheld_crates_are_withheld() {
        let out = logged("trace", || {
            let span = tracing::trace_span!(target: "xso::parse", "parse", text = "SECRET-8");
            let _in = span.enter();
            tracing::info!("inside");
        });
        assert!(!out.contains("SECRET"), "{out}");
        assert!(out.contains("inside"), "{out}");
    }

    #[test]
    fn ordinary_events_follow_rust_log() {
        let out = logged("info", || {
            tracing::debug!(target: "xmpp_rest_gateway::http", "a debug event");
            tracing::info!(target: "xmpp_rest_gateway::http", "an info event");
        });
        assert!(out.contains("an info event"), "{out}");
        assert!(!out.contains("a debug event"), "{out}");
    }

    #[test]
    fn withheld_means_the_crate_and_its_modules_only() {
        assert!(is_withheld("tokio_xmpp"));
        assert!(is_withheld("tokio_xmpp::xmlstream::capture"));
        assert!(is_withheld("sasl::client::mechanisms"));
        assert!(!is_withheld("saslprep"));
        assert!(!is_withheld("rustls::conn"));
        assert!(!is_withheld("xmpp_rest_gateway::upstream::session"));
    }

    #[test]
    fn json_lines_are_one_object_each_and_withhold_too() {
        let out = logged_as(LogFormat::Json, "trace", || {
            let span = tracing::info_span!("request", request_id = "r-1");
            let _in = span.enter();
            tracing::trace!(target: "tokio_xmpp::xmlstream::capture", "SEND SECRET-9");
            tracing::info!(target: "audit", account = "a@example.org", status = 200u16);
        });
        assert!(!out.contains("SECRET"), "{out}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert_eq!(lines[0]["target"], "audit");
        assert_eq!(lines[0]["fields"]["account"], "a@example.org");
        assert_eq!(lines[0]["span"]["request_id"], "r-1");
    }

    /// What a client may put in a value (a JID, a node, an error's text) cannot end, reorder
    /// or hide part of a line, in JSON (where the encoder leaves them raw) or in text.
    #[test]
    fn line_separators_and_bidi_controls_are_escaped_in_both_formats() {
        let hostile = "a\u{2028}b\u{2029}c\u{85}d\u{202e}e\u{2066}f\u{200f}g\u{feff}h";
        let json = logged_as(LogFormat::Json, "info", || {
            tracing::info!(target: "audit", jid = %hostile, "message {hostile}");
        });
        let text = logged_as(LogFormat::Text, "info", || {
            tracing::info!(target: "audit", jid = %hostile, "message {hostile}");
        });
        for raw in [
            '\u{2028}', '\u{2029}', '\u{85}', '\u{202e}', '\u{2066}', '\u{200f}', '\u{feff}',
        ] {
            assert!(!json.contains(raw), "{raw:?} in {json:?}");
            assert!(!text.contains(raw), "{raw:?} in {text:?}");
        }
        assert!(json.contains("a\\u2028b\\u2029c\\u0085d\\u202ee"), "{json}");
        assert!(text.contains("a\\u{2028}b"), "{text}");
        let line: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON object");
        assert_eq!(
            line["fields"]["jid"], hostile,
            "the value read back is the one logged"
        );
        assert_eq!(line["fields"]["message"], format!("message {hostile}"));
        // Other characters pass as they are.
        let plain = logged_as(LogFormat::Json, "info", || {
            tracing::info!("café ☃ \u{200d}")
        });
        assert!(plain.contains("café ☃"), "{plain}");
    }

    #[test]
    fn colour_only_when_asked_and_never_in_json() {
        let with = |format, ansi| {
            let out = Captured::default();
            let filter = EnvFilter::new("info");
            let sub = subscriber(filter, out.clone(), ansi, format);
            tracing::subscriber::with_default(sub, || tracing::info!("coloured?"));
            out.text()
        };
        assert!(with(LogFormat::Text, true).contains('\x1b'));
        assert!(!with(LogFormat::Text, false).contains('\x1b'));
        assert!(!with(LogFormat::Json, true).contains('\x1b'));
    }
}
