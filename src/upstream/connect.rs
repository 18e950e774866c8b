//! Opening a c2s stream as an account: TCP, TLS (STARTTLS, direct, or none on loopback), SASL
//! and resource binding. tokio-xmpp's `Client` retries a wrong password forever in the
//! background, so the gateway drives tokio-xmpp's lower layers (`xmlstream`, `client_login`)
//! itself and gets a failed login back as an error.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::error::{AuthError, Error as XmppError};
use tokio_xmpp::parsers::bind::{BindQuery, BindResponse};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, FullJid};
use tokio_xmpp::parsers::stream_error::{DefinedCondition as StreamCondition, StreamError};
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::parsers::{ns, starttls};
use tokio_xmpp::xmlstream::{
    initiate_stream, FallibleStreamElement, ReadError, RecvFeaturesError, StreamHeader, Timeouts,
    XmppStream, XmppStreamElement,
};
use tokio_xmpp::Stanza;

use super::list::{StreamOn, Target, Upstreams};
use super::UpstreamError;
use crate::config::{UpstreamConfig, UpstreamTls};
use crate::metrics::LoginOutcome;
pub use transport::{LoggedIn, Transport};

/// An authenticated, bound c2s stream, boxed so that TLS and plain streams share one type.
pub type Stream = XmppStream<Box<dyn AsyncReadAndWrite + Send>>;

/// How often an idle stream is probed, and how long the probe may go unanswered.
pub fn stream_timeouts() -> Timeouts {
    Timeouts {
        read_timeout: std::time::Duration::from_secs(60),
        response_timeout: std::time::Duration::from_secs(20),
    }
}

/// What the gateway needs to open streams: where (the upstream list and its back-offs,
/// shared by the clones), how, and whom to trust.
#[derive(Clone)]
pub struct Connector {
    cfg: UpstreamConfig,
    tls: Option<TlsConnector>,
    upstreams: Arc<Upstreams>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("cfg", &self.cfg).finish()
    }
}

impl Connector {
    /// Builds the TLS trust store once: the operator's CA file, else the system's roots.
    pub fn new(cfg: UpstreamConfig) -> Result<Self, UpstreamError> {
        let tls = match cfg.tls {
            UpstreamTls::None => None,
            _ => Some(TlsConnector::from(Arc::new(client_config(&cfg)?))),
        };
        let upstreams = Arc::new(Upstreams::new(&cfg.entries, cfg.tls));
        Ok(Self {
            cfg,
            tls,
            upstreams,
        })
    }

    /// The upstream settings this connector was built from.
    pub fn config(&self) -> &UpstreamConfig {
        &self.cfg
    }

    /// The same connector, its `DOMAIN` entries looked up with `resolver` (SRV).
    pub fn with_resolver(mut self, resolver: super::srv::Resolver) -> Self {
        self.upstreams =
            Arc::new(Upstreams::new(&self.cfg.entries, self.cfg.tls).with_resolver(resolver));
        self
    }

    /// The upstream list and its back-offs.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Connects to the first target of the upstream list that answers a stream (each within
    /// the connect timeout), then authenticates as `account` and binds `resource` there,
    /// within the connect timeout again. A login the server refuses, or that fails past the
    /// stream header, is not tried on another target: a refused password would be one failed
    /// login on every node.
    pub async fn login(
        &self,
        account: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<LoggedIn, UpstreamError> {
        let (target, features, stream) = self.open_any(account.domain().as_str()).await?;
        let logged_in = self
            .within_timeout(async {
                let mut stream = self
                    .authenticate_on(features, stream, account, password)
                    .await?;
                let jid = bind(&mut stream, resource).await?;
                LoggedIn::new(stream, jid, stream_timeouts())
            })
            .await;
        crate::metrics::upstream_login(
            &target.label,
            match &logged_in {
                Ok(_) => LoginOutcome::Ok,
                Err(UpstreamError::AuthFailed(_)) => LoginOutcome::Refused,
                Err(_) => LoginOutcome::Error,
            },
        );
        let mut logged_in = logged_in?;
        logged_in.on = Some(StreamOn::new(target));
        Ok(logged_in)
    }

    /// The first target, in the list's order less those in back-off, that answers a stream
    /// (TCP, TLS verified against `domain`, the stream header and its features), each within
    /// the connect timeout; one that fails is put in back-off and the next tried. A server
    /// that says it does not serve `domain` (`host-unknown`) has answered: no other is tried.
    async fn open_any(
        &self,
        domain: &str,
    ) -> Result<(Arc<Target>, StreamFeatures, Stream), UpstreamError> {
        let mut last = None;
        // The target that failed last: moving on from it to another is a failover.
        let mut failed: Option<Arc<Target>> = None;
        let mut walk = self.upstreams.walk();
        while let Some(target) = walk.next().await {
            if let Some(before) = failed.take() {
                crate::metrics::failover(&before.label);
            }
            match self.within_timeout(self.open_at(&target, domain)).await {
                Ok((features, stream)) => {
                    target.succeeded();
                    return Ok((target, features, stream));
                }
                Err(e @ UpstreamError::HostUnknown(_)) => {
                    target.succeeded();
                    crate::metrics::upstream_login(&target.label, LoginOutcome::Error);
                    return Err(e);
                }
                Err(e) => {
                    self.upstreams.failed(&target);
                    crate::metrics::upstream_login(&target.label, LoginOutcome::Error);
                    tracing::warn!(upstream = %target.addr(), error = %e, "upstream failed");
                    last = Some(e);
                    failed = Some(target);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            UpstreamError::Unreachable("no upstream target to connect to".into())
        }))
    }

    /// Connects, secures and authenticates as `account`, without binding a resource (what a
    /// client resuming a XEP-0198 session needs), within the connect timeout. Test clients
    /// only: the gateway always binds.
    #[cfg(feature = "test-client")]
    pub async fn authenticate(
        &self,
        account: &BareJid,
        password: &str,
    ) -> Result<Stream, UpstreamError> {
        let (_, features, stream) = self.open_any(account.domain().as_str()).await?;
        self.within_timeout(self.authenticate_on(features, stream, account, password))
            .await
    }

    pub(super) async fn within_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        tokio::time::timeout(self.cfg.connect_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Unreachable(format!(
                    "no login within {:?}",
                    self.cfg.connect_timeout
                )))
            })
    }

    /// SASL as `account` on a stream opened as far as its features, and the stream restarted
    /// after it.
    pub(super) async fn authenticate_on(
        &self,
        features: StreamFeatures,
        stream: Stream,
        account: &BareJid,
        password: &str,
    ) -> Result<Stream, UpstreamError> {
        let domain = account.domain().as_str();
        let mechanisms = choose_mechanisms(&features.sasl_mechanisms)?;
        let creds = Credentials::default()
            .with_username(account.node().map(|n| n.as_str()).unwrap_or_default())
            .with_password(password)
            .with_channel_binding(ChannelBinding::None);
        let stream = tokio_xmpp::client_login(stream, mechanisms, creds)
            .await
            .map_err(login_err)?;
        let (_, stream) = stream
            .send_header(header(domain))
            .await
            .map_err(stream_err)?
            .recv_features::<FallibleStreamElement>()
            .await
            .map_err(|e| features_err(e, domain))?;
        Ok(stream)
    }

    /// TCP to `target`, TLS as configured (verified against `domain`, whatever the target's
    /// host name: RFC 6120 §13.7.2.1) and the stream header: a stream as far as its features,
    /// nobody logged in yet.
    pub(super) async fn open_at(
        &self,
        target: &Target,
        domain: &str,
    ) -> Result<(StreamFeatures, Stream), UpstreamError> {
        let tcp = match self.upstreams.check_plaintext(target).await? {
            // The addresses the plaintext check saw, not a second look-up's.
            Some(checked) => TcpStream::connect(&checked[..]).await,
            None => TcpStream::connect((target.host.as_str(), target.port)).await,
        }
        .map_err(|e| UpstreamError::Unreachable(format!("{}: {e}", target.addr())))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn AsyncReadAndWrite + Send> = match self.cfg.tls {
            UpstreamTls::None => Box::new(BufStream::new(tcp)),
            UpstreamTls::Direct => Box::new(BufStream::new(self.handshake(tcp, domain).await?)),
            UpstreamTls::Starttls => {
                let tcp = starttls(tcp, domain).await?;
                Box::new(BufStream::new(self.handshake(tcp, domain).await?))
            }
        };
        let pending = initiate_stream(io, ns::JABBER_CLIENT, header(domain), stream_timeouts())
            .await
            .map_err(stream_err)?;
        pending
            .recv_features::<FallibleStreamElement>()
            .await
            .map_err(|e| features_err(e, domain))
    }

    /// TLS handshake verifying the certificate against the account's domain (also when the
    /// upstream was given as an IP address).
    async fn handshake(
        &self,
        tcp: TcpStream,
        domain: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, UpstreamError> {
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| UpstreamError::Tls("no TLS".into()))?;
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| UpstreamError::Tls(format!("{domain}: {e}")))?;
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| UpstreamError::Tls(e.to_string()))
    }
}

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    }
}

fn client_config(cfg: &UpstreamConfig) -> Result<ClientConfig, UpstreamError> {
    let mut roots = RootCertStore::empty();
    match &cfg.ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| UpstreamError::Config(format!("{}: {e}", path.display())))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|e| UpstreamError::Config(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| UpstreamError::Config(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(UpstreamError::Config(format!(
                    "{}: no certificate found",
                    path.display()
                )));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The SASL mechanisms the gateway will try, best first: SCRAM whenever the server offers it,
/// PLAIN only when it offers no SCRAM, so a server offering SCRAM never sees a clear password.
/// Channel binding (`-PLUS`) is not used: ejabberd 23.01 refuses the TLS 1.3 exporter binding
/// ("Invalid channel binding"), and the TLS below is already verified against the domain.
fn choose_mechanisms(offered: &BTreeSet<String>) -> Result<BTreeSet<String>, UpstreamError> {
    const SCRAM: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-1"];
    let scram: BTreeSet<String> = SCRAM
        .iter()
        .filter(|m| offered.contains(**m))
        .map(|m| m.to_string())
        .collect();
    if !scram.is_empty() {
        return Ok(scram);
    }
    if offered.contains("PLAIN") {
        // Over verified TLS, or over `--upstream-tls none`, which is refused unless on loopback.
        return Ok(BTreeSet::from(["PLAIN".to_string()]));
    }
    Err(UpstreamError::Stream(format!(
        "the server offers no usable SASL mechanism ({offered:?})"
    )))
}

/// Negotiates STARTTLS on a fresh TCP stream and hands the TCP stream back for the handshake.
async fn starttls(tcp: TcpStream, domain: &str) -> Result<TcpStream, UpstreamError> {
    let pending = initiate_stream(
        BufStream::new(tcp),
        ns::JABBER_CLIENT,
        header(domain),
        stream_timeouts(),
    )
    .await
    .map_err(stream_err)?;
    let (features, mut stream) = pending
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| features_err(e, domain))?;
    if !features.can_starttls() {
        return Err(UpstreamError::Tls(
            "the server does not offer STARTTLS (use --upstream-tls direct or none)".into(),
        ));
    }
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await
        .map_err(stream_err)?;
    loop {
        match next_element(&mut stream).await? {
            XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)) => break,
            XmppStreamElement::Starttls(_) => {
                return Err(UpstreamError::Tls("the server refused STARTTLS".into()))
            }
            _ => continue,
        }
    }
    Ok(stream.into_inner().into_inner())
}

/// Binds `resource` and returns the JID the server assigned.
async fn bind(stream: &mut Stream, resource: &str) -> Result<FullJid, UpstreamError> {
    const ID: &str = "bind-1";
    let iq = Iq::from_set(ID, BindQuery::new(Some(resource.to_string())));
    stream
        .send(&XmppStreamElement::Stanza(Stanza::Iq(iq)))
        .await
        .map_err(stream_err)?;
    loop {
        if let XmppStreamElement::Stanza(Stanza::Iq(iq)) = next_element(stream).await? {
            match iq {
                Iq::Result {
                    id,
                    payload: Some(p),
                    ..
                } if id == ID => {
                    let r = BindResponse::try_from(p)
                        .map_err(|e| UpstreamError::Stream(format!("bind: {e}")))?;
                    return Ok(r.jid);
                }
                Iq::Error { id, error, .. } if id == ID => {
                    return Err(UpstreamError::Stream(format!(
                        "bind refused: {:?}",
                        error.defined_condition
                    )))
                }
                _ => continue,
            }
        }
    }
}

/// The next parsed element, skipping soft timeouts and stanzas that do not parse.
pub(crate) async fn next_element<Io>(
    stream: &mut XmppStream<Io>,
) -> Result<XmppStreamElement, UpstreamError>
where
    Io: tokio::io::AsyncBufRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                return Err(refused(e.0, ""))
            }
            Some(Ok(FallibleStreamElement::Ok(el))) => return Ok(el),
            Some(Ok(FallibleStreamElement::Err(_))) | Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(ReadError::HardError(e))) => return Err(stream_err(e)),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(UpstreamError::Stream(format!("parse error: {e}")))
            }
            Some(Err(ReadError::StreamFooterReceived)) | None => {
                return Err(UpstreamError::Closed("the server closed the stream".into()))
            }
        }
    }
}

/// What the server said instead of its stream features.
fn features_err(e: RecvFeaturesError, domain: &str) -> UpstreamError {
    match e {
        RecvFeaturesError::StreamError(e) => refused(e.0, domain),
        RecvFeaturesError::Io(e) => UpstreamError::Stream(format!("stream features: {e}")),
    }
}

/// A stream error from the server, by its XML condition name; `host-unknown` for the
/// account's own domain is the server saying it does not serve that domain.
pub(crate) fn refused(e: StreamError, domain: &str) -> UpstreamError {
    if e.condition == StreamCondition::HostUnknown && !domain.is_empty() {
        return UpstreamError::HostUnknown(domain.to_string());
    }
    UpstreamError::StreamError {
        condition: stream_condition(&e.condition),
        text: e.texts.into_values().next().filter(|t| !t.is_empty()),
    }
}

/// The condition's XML name (`see-other-host` without its host).
fn stream_condition(c: &StreamCondition) -> String {
    let name = c.to_string();
    name.split(':').next().unwrap_or_default().to_string()
}

fn stream_err(e: std::io::Error) -> UpstreamError {
    UpstreamError::Stream(e.to_string())
}

fn login_err(e: XmppError) -> UpstreamError {
    match e {
        XmppError::Auth(AuthError::Fail(condition)) => {
            UpstreamError::AuthFailed(format!("{condition:?}"))
        }
        XmppError::Auth(AuthError::NoMechanism) => {
            UpstreamError::Stream("no common SASL mechanism".into())
        }
        XmppError::Auth(e) => UpstreamError::Stream(format!("SASL: {e}")),
        XmppError::Disconnected => UpstreamError::Closed("the server closed the stream".into()),
        other => UpstreamError::Stream(other.to_string()),
    }
}

mod transport;

#[cfg(test)]
mod tests;
