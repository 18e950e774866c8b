//! End-to-end: the gateway binary against real Prosody and ejabberd, driven over HTTP as an
//! operator's curl would. One test binary, so that each server starts once (the harness in
//! `tests/common` starts it on first use); one module per concern. Every behaviour is checked
//! on both servers (`connections` only on Prosody: the server makes no difference there).
//!
//! Tests run at once as threads of this process against the same two servers, so each test
//! uses accounts no concurrent test disturbs: a test that ends an account's sessions or counts
//! them owns that account (see `common::ACCOUNTS`).

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod audit;
mod auth;
mod commands_list;
mod connections;
mod console;
mod cross_site;
mod errors;
mod faults;
mod harness;
mod hostile;
mod observe;
mod openapi;
mod resources;
mod runtime;
mod secrets;
mod seed;
mod shared_stream;
mod stages;
mod stream;
mod tls;
mod tokens;
mod upstreams;

use std::sync::OnceLock;

use common::{ServerKind, TestGateway};

/// One gateway per server shared by the tests that need no special flags and count nothing:
/// ejabberd caps an account at ten streams, and every gateway keeps one for the admin.
async fn gateway(kind: ServerKind) -> &'static TestGateway {
    static PROSODY: OnceLock<TestGateway> = OnceLock::new();
    static EJABBERD: OnceLock<TestGateway> = OnceLock::new();
    let s = common::started(kind).await;
    let cell = match kind {
        ServerKind::Prosody => &PROSODY,
        ServerKind::Ejabberd => &EJABBERD,
    };
    cell.get_or_init(|| TestGateway::start(s, &[]))
}
