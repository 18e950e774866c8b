//! xmpp-rest-gateway: an HTTP gateway beside Prosody or ejabberd that runs XEP-0050 ad-hoc
//! commands (XEP-0133 server administration) as the HTTP Basic account, in the REST shape of
//! Tigase XMPP Server's HTTP API.
//!
//! A request walks one way:
//! `http` (routes, admission, negotiation) -> `rest` (decode the document) -> `app` (the use
//! case) -> `adhoc` (the document becomes command IQs) -> `upstream` (send on the account's warm c2s stream, await)
//! -> `adhoc` (the IQ becomes a document) -> `rest` (encode) -> `http`.
//!
//! - [`config`]: every flag, its environment variable and default.
//! - [`app`]: the use cases as typed operations (callers, commands, stanzas, resources,
//!   readiness): the one thing `http` calls.
//! - [`rest`]: the REST document and its XML and JSON codecs; pure.
//! - [`adhoc`]: XEP-0050/XEP-0004 types, the generic command path, end-user-session.
//! - [`upstream`]: connect, TLS, SASL, the session with IQs in flight, the pool.
//! - [`http`]: the HTTP surface and the mapping of every error to a status.
//! - [`healthcheck`]: the `healthcheck` subcommand, a GET of `/readyz` for container healthchecks.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//! - [`file_read`]: reading the access file and the HTTPS pair without ever blocking the runtime.
//! - [`audit`]: the audit trail, one line per `/rest/*` request.
//! - [`metrics`]: the Prometheus metrics, recorded where things happen, rendered on the admin listener.
//! - [`logging`]: the log, with the crates that see secrets withheld at every level.
//! - [`policy`]: least privilege: the access file's tokens and rules, service credentials, `token` CLI.

pub mod adhoc;
pub mod app;
pub mod audit;
pub mod config;
pub mod expiring;
pub mod file_read;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod replica;
pub mod rest;
pub mod shutdown;
pub mod upstream;

#[cfg(test)]
mod architecture_tests;
