//! `GET /openapi.json`: served to anyone, the committed document byte for byte.

use crate::common::{self, http, ServerKind};
use crate::gateway;

/// The gateway binary's document is the committed one (a binary built from an older tree
/// would differ), served without credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_document_is_served_without_credentials() {
    common::started(ServerKind::Prosody).await;
    let gw = gateway(ServerKind::Prosody).await;
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
        .expect("docs/openapi.json");
    let r = http(gw.addr, "GET", "/openapi.json", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.body == committed,
        "the served document differs from docs/openapi.json"
    );
    assert_eq!(r.json()["openapi"], "3.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_get_405_naming_get() {
    common::started(ServerKind::Prosody).await;
    let gw = gateway(ServerKind::Prosody).await;
    let r = http(
        gw.addr,
        "POST",
        "/openapi.json?type=application/json",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(r.json()["error"]["condition"], "method-not-allowed");
}
