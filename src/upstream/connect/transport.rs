//! What a login hands the session: the bound stream's transport, taken out of tokio-xmpp.

use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::parsers::jid::FullJid;
use tokio_xmpp::xmlstream::Timeouts;

#[cfg(feature = "test-client")]
use tokio_xmpp::parsers::jid::BareJid;

use super::Stream;
use crate::upstream::UpstreamError;

/// The byte stream under a bound XMPP stream (TLS or TCP, with its buffers).
pub type Transport = Box<dyn AsyncReadAndWrite + Send>;

/// A bound stream, taken out of tokio-xmpp as bytes (the session frames its stanzas itself),
/// the full JID the server gave it, and when an idle one is probed and given up.
pub struct LoggedIn {
    pub io: Transport,
    pub jid: FullJid,
    pub timeouts: Timeouts,
    /// The upstream target the stream is on (none in tests' fakes).
    pub on: Option<crate::upstream::list::StreamOn>,
}

impl LoggedIn {
    /// Takes the transport out of a stream that has just read the bind result. tokio-xmpp
    /// drops only its parser's state: the bytes already read but not parsed stay in the
    /// transport's buffer, and right after a complete element the parser holds none of
    /// the next. It panics if an element were half read, which cannot be here; the panic
    /// is caught all the same and makes the login fail.
    pub(crate) fn new(
        stream: Stream,
        jid: FullJid,
        timeouts: Timeouts,
    ) -> Result<Self, UpstreamError> {
        let io = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stream.into_inner()))
            .map_err(|_| UpstreamError::Stream("the stream was mid-element after bind".into()))?;
        Ok(Self {
            io,
            jid,
            timeouts,
            on: None,
        })
    }
}

#[cfg(feature = "test-client")]
impl super::Connector {
    /// The same login, the stream left as tokio-xmpp's for a test client that speaks more than
    /// stanzas on it (stream management, a raw inbox). Test clients only.
    #[cfg(feature = "test-client")]
    pub async fn login_xml(
        &self,
        account: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<(Stream, FullJid), UpstreamError> {
        let mut stream = self.authenticate(account, password).await?;
        let jid = self
            .within_timeout(super::bind(&mut stream, resource))
            .await?;
        Ok((stream, jid))
    }
}
