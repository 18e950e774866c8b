//! CPU per request of what issue 9 added to every `/rest/*` request, in this process, no
//! network: counting it in the metrics (`metrics::request`: the `{status,node}` counter and
//! the duration histogram), making its request id and its `request` span, and formatting its audit line in text and
//! in JSON through the gateway's own subscriber (withholding layer included) into a sink, so
//! the write to stderr itself is not counted here (`scripts/bench` with
//! `XRG_BENCH_GATEWAY_LOG=warn` against the default `info` measures the whole line, write
//! included). Run in release: `cargo run --release --example observe_cost`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use xmpp_rest_gateway::audit::{self, Record};
use xmpp_rest_gateway::logging::{self, LogFormat};
use xmpp_rest_gateway::metrics;

const ROUNDS: u32 = 200_000;

fn per_round(what: &str, mut f: impl FnMut()) -> f64 {
    for _ in 0..ROUNDS / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!("{what:<44} {us:>7.3} µs");
    us
}

fn record() -> Record {
    let mut r = Record::new(
        audit::new_request_id(),
        "192.0.2.10".into(),
        "sess-man@example.org".into(),
        "POST",
    );
    r.account = "admin@example.org".into();
    r.node = "http://jabber.org/protocol/admin#end-user-session".into();
    r.action = "execute".into();
    r.subjects = vec!["alice@example.org".into()];
    r
}

fn audit_line(format: LogFormat) -> f64 {
    let subscriber = logging::subscriber(EnvFilter::new("info"), std::io::sink, false, format);
    tracing::subscriber::with_default(subscriber, || {
        let r = record();
        per_round(
            &format!("audit line ({format:?}), written to a sink"),
            || black_box(&r).emit(200, ""),
        )
    })
}

fn request_span() -> f64 {
    let subscriber = logging::subscriber(
        EnvFilter::new("info"),
        std::io::sink,
        false,
        LogFormat::Text,
    );
    tracing::subscriber::with_default(subscriber, || {
        per_round("request span made, entered twice, closed", || {
            let span = tracing::info_span!("request", request_id = "0123456789abcdef");
            drop(span.enter());
            drop(span.enter());
        })
    })
}

fn main() {
    let metrics = per_round("metrics::request (counter + histogram)", || {
        metrics::request(
            black_box(200),
            black_box("end-user-session"),
            Duration::from_micros(150),
        )
    });
    let id = per_round("request id generated", || {
        black_box(audit::new_request_id());
    });
    let record = per_round("audit record made (7 strings)", || {
        black_box(record());
    });
    let span = request_span();
    let text = audit_line(LogFormat::Text);
    let json = audit_line(LogFormat::Json);
    println!(
        "per request: text {:.2} µs, json {:.2} µs (metrics + id + record + span + line)",
        metrics + id + record + span + text,
        metrics + id + record + span + json
    );
}
