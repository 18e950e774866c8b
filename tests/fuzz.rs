//! Fuzzing the decoders on stable Rust: XML and JSON request bodies, the negotiation headers,
//! the Basic header, the query string and the server's XEP-0050 replies.
//!
//! `cargo test --test fuzz` runs a short pass (`XRG_FUZZ_ITERATIONS`, default 50,000 inputs per
//! target); `scripts/fuzz` runs a million per target in a release build. `XRG_FUZZ_SEED` picks
//! the PRNG seed; a panicking input is written to `target/fuzz-crashes/<target>-<hash>` and
//! replayed with `XRG_FUZZ_REPLAY=<that path>`. See docs/fuzzing.md.

#[path = "fuzz/bodies.rs"]
mod bodies;
#[path = "fuzz/engine.rs"]
mod engine;
#[path = "fuzz/replies.rs"]
mod replies;
#[path = "fuzz/targets.rs"]
mod targets;

use engine::{Outcome, Target};
use xmpp_rest_gateway::rest::Format;

/// Inputs per target in a plain `cargo test`: a few seconds in a debug build.
const DEFAULT_ITERATIONS: u64 = 50_000;

/// Fuzzes `target` and fails on any panic; with `XRG_FUZZ_REPLAY` set, only replays that input
/// if it is this target's.
fn check(target: Target) {
    if std::env::var_os("XRG_FUZZ_REPLAY").is_some() {
        engine::replay(&target);
        return;
    }
    let report = engine::fuzz(&target, engine::iterations(DEFAULT_ITERATIONS));
    println!("{}", engine::summary(target.name, &report));
    let crashes: Vec<String> = report
        .crashes
        .iter()
        .map(|(path, message)| format!("{}\n    {message}", path.display()))
        .collect();
    assert_eq!(
        report.panics,
        0,
        "{} of {} inputs panicked (seed {:#x}); inputs saved:\n{}",
        report.panics,
        report.inputs,
        engine::base_seed(),
        crashes.join("\n")
    );
}

#[test]
fn xml_body() {
    check(Target {
        name: "xml-body",
        seeds: targets::seeds("xml-body", &["tests/fixtures/seed/request.xml"]),
        tokens: bodies::XML_TOKENS,
        max_len: 4096,
        run: |input| bodies::body(Format::Xml, input),
    });
}

#[test]
fn json_body() {
    check(Target {
        name: "json-body",
        seeds: targets::seeds("json-body", &["tests/fixtures/seed/request.json"]),
        tokens: bodies::JSON_TOKENS,
        max_len: 4096,
        run: |input| bodies::body(Format::Json, input),
    });
}

#[test]
fn negotiation_headers() {
    check(Target {
        name: "negotiation",
        seeds: targets::seeds("negotiation", &[]),
        tokens: targets::NEGOTIATION_TOKENS,
        max_len: 1024,
        run: targets::negotiation,
    });
}

#[test]
fn basic_header() {
    check(Target {
        name: "basic-header",
        seeds: targets::seeds("basic-header", &[]),
        tokens: targets::BASIC_TOKENS,
        max_len: 1024,
        run: targets::basic_header,
    });
}

#[test]
fn basic_credentials() {
    check(Target {
        name: "basic-credentials",
        seeds: targets::seeds("basic-credentials", &[]),
        tokens: targets::BASIC_TOKENS,
        max_len: 1024,
        run: targets::basic_credentials,
    });
}

#[test]
fn query_string() {
    check(Target {
        name: "query",
        seeds: targets::seeds("query", &[]),
        tokens: targets::QUERY_TOKENS,
        max_len: 1024,
        run: targets::query,
    });
}

#[test]
fn xep0050_replies() {
    check(Target {
        name: "xep0050-reply",
        seeds: targets::seeds("xep0050-reply", &[]),
        tokens: replies::REPLY_TOKENS,
        max_len: 8192,
        run: replies::reply,
    });
}

#[test]
fn xep0050_replies_pulled() {
    check(Target {
        name: "xep0050-pull",
        seeds: targets::seeds("xep0050-reply", &[]),
        tokens: replies::REPLY_TOKENS,
        max_len: 8192,
        run: replies::pulled,
    });
}

/// The harness itself can fail: a target that panics on an input the mutations reach quickly
/// (a `<!DOCTYPE` token next to a seed) is reported, and its input saved where the report says.
#[test]
fn a_panicking_target_is_caught_and_its_input_saved() {
    let target = Target {
        name: "self-test",
        seeds: vec![b"<command/>".to_vec()],
        tokens: &[b"<!DOCTYPE"],
        max_len: 256,
        run: |input| {
            if input.windows(9).any(|w| w == b"<!DOCTYPE") {
                panic!("planted");
            }
            Outcome::Accepted(input.len() as u64)
        },
    };
    let report = engine::fuzz(&target, 2_000);
    assert!(report.panics > 0, "{report:?}");
    let (path, message) = &report.crashes[0];
    assert!(message.contains("planted"), "{message}");
    let saved = std::fs::read(path).expect("the crash file exists");
    assert!(saved.windows(9).any(|w| w == b"<!DOCTYPE"));
    for (path, _) in &report.crashes {
        std::fs::remove_file(path).expect("remove the planted crash");
    }
    let _ = std::fs::remove_file(engine::crash_dir().with_file_name("fuzz-slowest/self-test"));
}
