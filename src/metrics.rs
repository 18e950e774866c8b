//! The gateway's Prometheus metrics: one process-wide registry, recorded where things happen
//! (a request answered, a login ended, an IQ answered, a request throttled) and rendered for
//! `GET /metrics` on the admin listener. Names and labels are fixed (docs/deploy.md): labels
//! never carry an account or a JID, and the `node` label takes a bounded set of values.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a login to the XMPP server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok,
    /// The server refused the credentials.
    Refused,
    /// Anything else: unreachable, TLS, a stream error, a domain it does not serve.
    Error,
}

/// Why a stanza arriving on a warm stream was dropped unread (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Nested deeper than the framer keeps (skipped to its end, never parsed).
    TooDeep,
    /// Longer than the framer keeps (skipped to its end, never held whole).
    TooLarge,
    /// A result or error that answers no request of the stream's (unknown id, or not from
    /// whom the request went to).
    NotAsked,
    /// An IQ request from anyone but the server.
    ForeignRequest,
    /// A message or presence: nobody reads the gateway's streams' inbox.
    Unsolicited,
    /// A stanza whose tag, addressing or content could not be read.
    Unreadable,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::TooDeep => "too_deep",
            Dropped::TooLarge => "too_large",
            Dropped::NotAsked => "not_asked",
            Dropped::ForeignRequest => "foreign_request",
            Dropped::Unsolicited => "unsolicited",
            Dropped::Unreadable => "unreadable",
        }
    }
}

/// The values only the gateway knows at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub warm_sessions: usize,
    pub requests_in_flight: usize,
    pub http_connections: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    node: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
}

/// The `upstream` label: an entry of `--upstream` as configured (at most
/// [`MAX_UPSTREAMS`](crate::config::MAX_UPSTREAMS) values; an SRV entry's targets are counted
/// under its domain, never under what DNS named).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLoginLabels {
    upstream: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroppedLabels {
    reason: &'static str,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histogram,
    iq_duration: Histogram,
    logins: Family<LoginLabels, Counter>,
    upstream_logins: Family<UpstreamLoginLabels, Counter>,
    upstream_failovers: Family<UpstreamLabels, Counter>,
    upstream_streams: Family<UpstreamLabels, Gauge>,
    dropped: Family<DroppedLabels, Counter>,
    throttled: Counter,
    log_lines_dropped: Counter,
    access_file_reload_failures: Counter,
    warm_sessions: Gauge,
    in_flight: Gauge,
    connections: Gauge,
}

/// 1 ms to about 33 s: the request timeout's default (30 s) falls in the last bucket.
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let m = Metrics {
        requests: Family::default(),
        request_duration: Histogram::new(duration_buckets()),
        iq_duration: Histogram::new(duration_buckets()),
        logins: Family::default(),
        upstream_logins: Family::default(),
        upstream_failovers: Family::default(),
        upstream_streams: Family::default(),
        dropped: Family::default(),
        throttled: Counter::default(),
        log_lines_dropped: Counter::default(),
        access_file_reload_failures: Counter::default(),
        warm_sessions: Gauge::default(),
        in_flight: Gauge::default(),
        connections: Gauge::default(),
        registry: Registry::default(),
    };
    // Counters are registered without `_total`: the encoder appends it.
    registry.register(
        "xrg_http_requests",
        "/rest/* requests answered, by status and command node",
        m.requests.clone(),
    );
    registry.register(
        "xrg_http_request_duration_seconds",
        "Time from a /rest/* request's head to its answer",
        m.request_duration.clone(),
    );
    registry.register(
        "xrg_upstream_iq_duration_seconds",
        "Time from an IQ sent to the XMPP server to its answer",
        m.iq_duration.clone(),
    );
    registry.register(
        "xrg_upstream_logins",
        "Logins to the XMPP server, by outcome (ok, refused, error)",
        m.logins.clone(),
    );
    registry.register(
        "xrg_upstream_entry_logins",
        "Logins tried on each --upstream entry, by outcome: ok, refused (the server refused \
         the credentials), error (its connect, TLS or stream header failed or timed out, or \
         the login failed otherwise)",
        m.upstream_logins.clone(),
    );
    registry.register(
        "xrg_upstream_failovers",
        "Logins that went on to the next target after this --upstream entry's failed",
        m.upstream_failovers.clone(),
    );
    registry.register(
        "xrg_upstream_streams",
        "Open c2s streams (warm or closing) on each --upstream entry",
        m.upstream_streams.clone(),
    );
    registry.register(
        "xrg_upstream_dropped_stanzas",
        "Stanzas arriving on a warm stream that were dropped unread, by reason (too_deep, \
         too_large, not_asked, foreign_request, unsolicited, unreadable)",
        m.dropped.clone(),
    );
    registry.register(
        "xrg_throttled",
        "Requests refused 429: the failed-login budgets, a token's rate, the stream's rate",
        m.throttled.clone(),
    );
    registry.register(
        "xrg_log_lines_dropped",
        "Log lines not written because stderr was slower than the gateway (never an audit line)",
        m.log_lines_dropped.clone(),
    );
    registry.register(
        "xrg_access_file_reload_failures",
        "Changed access files not taken in (empty, not a regular file, unreadable, or failing its checks); the rules in force stayed",
        m.access_file_reload_failures.clone(),
    );
    registry.register(
        "xrg_warm_sessions",
        "Accounts with a live warm c2s stream",
        m.warm_sessions.clone(),
    );
    registry.register(
        "xrg_requests_in_flight",
        "Requests holding a place in flight",
        m.in_flight.clone(),
    );
    registry.register(
        "xrg_http_connections",
        "Open HTTP connections on the main listener",
        m.connections.clone(),
    );
    registry.register(
        "xrg_build",
        "The gateway's version",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    Metrics { registry, ..m }
});

/// Counts one `/rest/*` request and its duration; `node` from [`node_label`].
pub fn request(status: u16, node: &'static str, elapsed: Duration) {
    let m = &*METRICS;
    m.requests
        .get_or_create(&RequestLabels { status, node })
        .inc();
    m.request_duration.observe(elapsed.as_secs_f64());
}

/// Counts one login to the XMPP server by how it ended.
pub fn login(outcome: LoginOutcome) {
    let outcome = match outcome {
        LoginOutcome::Ok => "ok",
        LoginOutcome::Refused => "refused",
        LoginOutcome::Error => "error",
    };
    METRICS.logins.get_or_create(&LoginLabels { outcome }).inc();
}

/// Counts one login tried on the `--upstream` entry `upstream` by how it ended there.
pub fn upstream_login(upstream: &str, outcome: LoginOutcome) {
    let outcome = match outcome {
        LoginOutcome::Ok => "ok",
        LoginOutcome::Refused => "refused",
        LoginOutcome::Error => "error",
    };
    METRICS
        .upstream_logins
        .get_or_create(&UpstreamLoginLabels {
            upstream: upstream.to_string(),
            outcome,
        })
        .inc();
}

/// Counts one login that went on past the entry `upstream` after it failed.
pub fn failover(upstream: &str) {
    METRICS
        .upstream_failovers
        .get_or_create(&UpstreamLabels {
            upstream: upstream.to_string(),
        })
        .inc();
}

/// One stream opened (`1`) or ended (`-1`) on the entry `upstream`.
pub fn upstream_streams(upstream: &str, by: i64) {
    METRICS
        .upstream_streams
        .get_or_create(&UpstreamLabels {
            upstream: upstream.to_string(),
        })
        .inc_by(by);
}

/// Counts one stanza a warm stream dropped unread.
pub fn dropped_stanza(reason: Dropped) {
    METRICS
        .dropped
        .get_or_create(&DroppedLabels {
            reason: reason.label(),
        })
        .inc();
}

/// Counts one request refused 429 (a failed-login budget, a token's or the stream's rate).
pub fn throttled() {
    METRICS.throttled.inc();
}

/// The counter of log lines dropped by the log's writer (`logging`), which counts into it.
pub fn log_lines_dropped() -> Counter {
    METRICS.log_lines_dropped.clone()
}

/// Counts one changed access file not taken in (`policy::watch`).
pub fn access_file_reload_failed() {
    METRICS.access_file_reload_failures.inc();
}

/// Records how long one IQ took to be answered.
pub fn iq(elapsed: Duration) {
    METRICS.iq_duration.observe(elapsed.as_secs_f64());
}

/// Every metric in the OpenMetrics text format, the gauges set to `now` first.
pub fn render(now: Gauges) -> String {
    let m = &*METRICS;
    let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.warm_sessions.set(as_i64(now.warm_sessions));
    m.in_flight.set(as_i64(now.requests_in_flight));
    m.connections.set(as_i64(now.http_connections));
    let mut out = String::new();
    // Writing into a String cannot fail; an error could only come from a label's encoder.
    if prometheus_client::encoding::text::encode(&mut out, &m.registry).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// The XEP-0133 commands whose short name is a `node` label value.
const ADMIN_COMMANDS: &[&str] = &[
    "add-user",
    "delete-user",
    "disable-user",
    "reenable-user",
    "end-user-session",
    "get-user-password",
    "change-user-password",
    "get-user-roster",
    "get-user-lastlogin",
    "user-stats",
    "edit-blacklist",
    "edit-whitelist",
    "get-registered-users-num",
    "get-disabled-users-num",
    "get-online-users-num",
    "get-active-users-num",
    "get-idle-users-num",
    "get-registered-users-list",
    "get-disabled-users-list",
    "get-online-users-list",
    "get-online-users",
    "get-active-users",
    "get-idle-users",
    "announce",
    "set-motd",
    "edit-motd",
    "delete-motd",
    "set-welcome",
    "delete-welcome",
    "edit-admin",
    "restart",
    "shutdown",
];

/// The `node` label of a command node: its XEP-0133 short name, else `other`. Bounded, so a
/// client cannot grow the metrics by naming nodes.
pub fn node_label(node: &str) -> &'static str {
    node.strip_prefix(crate::policy::rules::ADMIN_PREFIX)
        .and_then(|short| ADMIN_COMMANDS.iter().find(|c| **c == short))
        .copied()
        .unwrap_or("other")
}

/// The `node` label of a request that runs no command.
pub const NO_NODE: &str = "none";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_nodes_are_labelled_by_their_short_name() {
        let full = "http://jabber.org/protocol/admin#end-user-session";
        assert_eq!(node_label(full), "end-user-session");
        assert_eq!(
            node_label("http://jabber.org/protocol/admin#get-online-users-num"),
            "get-online-users-num"
        );
    }

    #[test]
    fn other_nodes_are_other() {
        for node in [
            "end-user-session",
            "http://jabber.org/protocol/admin#no-such-command",
            "http://jabber.org/protocol/admin#end-user-session-2",
            "http://jabber.org/protocol/admin#",
            "ping",
            "",
            "alice@example.org",
            "http://jabber.org/protocol/admin#END-USER-SESSION",
        ] {
            assert_eq!(node_label(node), "other", "{node:?}");
        }
    }

    #[test]
    fn render_names_every_metric() {
        request(200, "end-user-session", Duration::from_millis(3));
        login(LoginOutcome::Refused);
        upstream_login("b.example:5222", LoginOutcome::Error);
        failover("b.example:5222");
        upstream_streams("example.org", 1);
        let text = render(Gauges {
            warm_sessions: 2,
            requests_in_flight: 1,
            http_connections: 7,
        });
        for line in [
            "xrg_http_requests_total{status=\"200\",node=\"end-user-session\"} ",
            "xrg_upstream_logins_total{outcome=\"refused\"} ",
            "xrg_upstream_entry_logins_total{upstream=\"b.example:5222\",outcome=\"error\"} ",
            "xrg_upstream_failovers_total{upstream=\"b.example:5222\"} ",
            "xrg_upstream_streams{upstream=\"example.org\"} ",
            "xrg_warm_sessions 2\n",
            "xrg_requests_in_flight 1\n",
            "xrg_http_connections 7\n",
            "xrg_throttled_total ",
            "xrg_log_lines_dropped_total ",
            "xrg_http_request_duration_seconds_count ",
            "xrg_upstream_iq_duration_seconds_count ",
            &format!(
                "xrg_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.contains(line), "{line:?} missing in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
