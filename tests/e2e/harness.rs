//! Checks the e2e harness itself, without the gateway: each server starts, answers a stream
//! header with STARTTLS offered, and completes a STARTTLS handshake that trusts only the
//! harness CA (and fails for a name the certificate does not carry).

use crate::common::{self, xmpp, TestServer};
use std::time::Duration;

async fn check(server: &TestServer) {
    let features = xmpp::stream_features(server.c2s_port, &server.domain, Duration::from_secs(5))
        .expect("stream features");
    assert!(
        features.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'"),
        "{} offers no STARTTLS: {features}",
        server.kind
    );

    let mut tls = xmpp::starttls(server, "domain.com")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "STARTTLS with the harness CA failed on {}: {e}",
                server.kind
            )
        });
    let inner = xmpp::features_after_tls(&mut tls, &server.domain)
        .await
        .expect("features in TLS");
    assert!(
        inner.contains("<mechanism>SCRAM-SHA-1</mechanism>"),
        "{}: {inner}",
        server.kind
    );

    let wrong = xmpp::starttls(server, "not-domain.example").await;
    assert!(
        wrong.is_err(),
        "{}: a certificate for another name was accepted",
        server.kind
    );

    assert_eq!(server.jid("user1"), "user1@domain.com");
    assert_eq!(server.password("admin"), "adminpass");
    assert_eq!(server.password("user1"), "pass-user1");
}

#[tokio::test]
async fn prosody_answers_with_starttls_under_the_harness_ca() {
    check(common::prosody()).await;
}

#[tokio::test]
async fn ejabberd_answers_with_starttls_under_the_harness_ca() {
    check(common::ejabberd()).await;
}

/// `scripts/demo` writes its headings in bold only to a terminal: into a pipe (a CI log, a
/// file), no escape code.
#[test]
fn the_demo_writes_no_colour_into_a_pipe() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = r#"eval "$(grep -E '^(if \[ -t 1 \]|say\(\))' scripts/demo)"; say hello"#;
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(root)
        .env_remove("NO_COLOR")
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("== hello"), "{text:?}");
    assert!(!out.stdout.contains(&0x1b), "{text:?}");
}
