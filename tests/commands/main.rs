//! Walks every ad-hoc command each server lists to an admin, through one gateway per server:
//! lists them, fetches every form, executes every command that is safe to run (in an order that
//! creates, uses and finally deletes a scratch account), checks each outcome, and renders
//! `docs/commands.md` from what both servers really answered.
//!
//! The two tests (one per server) run as threads of one process; each records its report in a
//! static and the one that finishes second renders the document and compares it with
//! `docs/commands.md` (the line naming the package versions aside): a stale document fails the
//! test. With `XRG_WRITE_COMMANDS_DOC=1` (`scripts/commands-doc`) it writes the document
//! instead. A filtered run (one server only) neither checks nor writes. Checks are gathered
//! rather than asserted one by one, so the document is rendered even when something differs;
//! the test then fails listing every difference.
//!
//! Modules: `tables` (what is expected), `walk` (the scenario), `forms` (filling forms and
//! checking answers), `render` (the reports and the document).

#[path = "../common/mod.rs"]
mod common;
mod forms;
mod render;
mod tables;
mod walk;

use common::ServerKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody() {
    walk::walk(ServerKind::Prosody).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd() {
    walk::walk(ServerKind::Ejabberd).await
}
