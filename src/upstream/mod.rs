//! The XMPP side, and the only code that speaks to the XMPP server: the upstream list, its
//! targets and their back-offs (`list`), opening and securing c2s streams and logging in
//! (`connect`), one stream with many IQs in flight (`session`), and the
//! warm sessions of the accounts that use the gateway (`pool`), and the entry point that hands a
//! request its stream within the failed-login budgets (`access`, `throttle`); where a domain's
//! c2s service is, from its SRV records (`srv`).

pub mod access;
pub mod connect;
#[cfg(test)]
pub(crate) mod fake;
pub mod list;
pub mod pool;
pub mod probe;
pub mod session;
pub mod srv;
pub mod throttle;

pub use access::{Access, AccessError, Admitted};
pub use connect::Connector;
pub use pool::SessionPool;
pub use session::{AdminSession, IqKind, IqReply, OneWay};

/// What can go wrong between the gateway and the XMPP server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP connection, or no login within the connect timeout.
    #[error("the XMPP server is unreachable: {0}")]
    Unreachable(String),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS to the XMPP server failed: {0}")]
    Tls(String),
    /// The stream broke or the server spoke nonsense.
    #[error("the XMPP stream failed: {0}")]
    Stream(String),
    /// The stream ended while an answer was awaited.
    #[error("the XMPP stream closed: {0}")]
    Closed(String),
    /// The server ended the stream with a stream error (its XML condition name and text).
    #[error("the XMPP server ended the stream: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StreamError {
        condition: String,
        text: Option<String>,
    },
    /// The server does not serve the account's domain (stream error `host-unknown`).
    #[error("the XMPP server does not serve the domain {0}")]
    HostUnknown(String),
    /// The server refused the credentials (SASL failure).
    #[error("the XMPP server refused the login ({0})")]
    AuthFailed(String),
    /// The failed-login budgets refuse this login; free again after this long.
    #[error("too many failed logins")]
    Throttled(std::time::Duration),
    /// A stanza the gateway was about to write is larger, as written, than the server would
    /// take (`--max-stanza-bytes`): nothing was sent, and the stream is untouched.
    #[error("the stanza is {size} bytes as written, over the limit of {max} (--max-stanza-bytes)")]
    TooLarge { size: usize, max: usize },
    /// The gateway's own upstream settings are unusable (CA file, …).
    #[error("upstream configuration: {0}")]
    Config(String),
}
