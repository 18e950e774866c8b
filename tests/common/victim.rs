//! Victim clients: ordinary XMPP sessions (the gateway's own upstream code, as a client would
//! use it) that log in with a resource, send available presence and notice when the server
//! ends them.

use std::time::Duration;

use tokio_xmpp::parsers::presence::{Presence, Type};
use xmpp_rest_gateway::config::{UpstreamConfig, UpstreamTls};
use xmpp_rest_gateway::upstream::{AdminSession, Connector, IqKind};

use super::TestServer;

/// One connected client session.
pub struct Victim {
    pub jid: String,
    session: AdminSession,
}

impl Victim {
    /// Logs in as `local@domain.com/resource` with the account's harness password.
    pub async fn connect(server: &TestServer, local: &str, resource: &str) -> Victim {
        Self::connect_with(server, local, &server.password(local), resource).await
    }

    pub async fn connect_with(
        server: &TestServer,
        local: &str,
        password: &str,
        resource: &str,
    ) -> Victim {
        let connector = connector(server);
        let account = server.jid(local).parse().expect("account JID");
        let logged_in = connector
            .login(&account, password, resource)
            .await
            .unwrap_or_else(|e| panic!("{} victim {local}/{resource}: {e}", server.kind));
        let session = AdminSession::start(logged_in, 16);
        session.keep_messages();
        session
            .send_presence(Presence::new(Type::None))
            .await
            .expect("presence");
        Victim {
            jid: session.jid().to_string(),
            session,
        }
    }

    /// Whether the server ended this session within `limit`.
    pub async fn closed_within(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.session.closed())
            .await
            .is_ok()
    }

    /// Whether the session is still up.
    pub fn is_alive(&self) -> bool {
        self.session.is_alive()
    }

    /// Resolves once the server has handled everything this client sent so far (its
    /// presence included): it handles a stream's stanzas in order, so a ping's answer says so.
    pub async fn settled(&self) {
        let domain =
            tokio_xmpp::parsers::jid::BareJid::from_parts(None, self.session.jid().domain());
        let ping = tokio_xmpp::minidom::Element::from(tokio_xmpp::parsers::ping::Ping);
        self.session
            .iq(domain.into(), IqKind::Get, ping)
            .await
            .unwrap_or_else(|e| panic!("{} ping: {e}", self.jid));
    }

    /// The body of the first message received within `limit` whose body contains `needle`.
    pub async fn message_containing(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found = self
                .session
                .received()
                .into_iter()
                .find_map(|m| m.bodies.into_values().find(|b| b.contains(needle)));
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sender (full JID) of the first message received within `limit` whose body contains
    /// `needle`.
    pub async fn sender_of(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found = self.session.received().into_iter().find_map(|m| {
                m.bodies
                    .values()
                    .any(|b| b.contains(needle))
                    .then(|| m.from.map(|f| f.to_string()))
                    .flatten()
            });
            if found.is_some() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends an IQ get of `payload` to `to`; whether any answer came within `limit`.
    pub async fn answered_within(
        &self,
        to: &str,
        payload: tokio_xmpp::minidom::Element,
        limit: Duration,
    ) -> bool {
        let to: tokio_xmpp::parsers::jid::Jid = to.parse().expect("JID");
        tokio::time::timeout(limit, self.session.iq(to, IqKind::Get, payload))
            .await
            .is_ok()
    }

    /// Sends a chat message to `to` with `body` and `payload` beside it, as this client.
    pub async fn send_message(
        &self,
        to: &str,
        body: &str,
        payload: Option<tokio_xmpp::minidom::Element>,
    ) {
        self.try_send_message(to, body, payload)
            .await
            .unwrap_or_else(|e| panic!("{} message: {e}", self.jid));
    }

    /// As [`Victim::send_message`], the stream's failure returned.
    pub async fn try_send_message(
        &self,
        to: &str,
        body: &str,
        payload: Option<tokio_xmpp::minidom::Element>,
    ) -> Result<(), xmpp_rest_gateway::upstream::UpstreamError> {
        let to: tokio_xmpp::parsers::jid::Jid = to.parse().expect("recipient JID");
        let mut m = tokio_xmpp::parsers::message::Message::new(Some(to));
        m.bodies.insert(Default::default(), body.to_string());
        m.payloads.extend(payload);
        self.session
            .send(xmpp_rest_gateway::upstream::OneWay::message(m))
            .await
    }

    /// Ends the session politely.
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// A stream-management session left hibernating: its client vanished without closing the
/// stream, so the server keeps it (listed, resumable) for a while.
pub struct Hibernated {
    pub resource: String,
    previd: tokio_xmpp::parsers::sm::StreamId,
}

/// The gateway's own upstream connector, aimed at `server` and trusting only its CA.
pub fn connector(server: &TestServer) -> Connector {
    Connector::new(UpstreamConfig::single(
        "127.0.0.1",
        server.c2s_port,
        UpstreamTls::Starttls,
        Some(server.ca_pem.clone()),
        Duration::from_secs(10),
    ))
    .expect("connector")
}

/// The next stream-management element, skipping anything else (with a time limit).
async fn next_sm(stream: &mut xmpp_rest_gateway::upstream::connect::Stream) -> sm::Nonza {
    use futures_util::StreamExt;
    use tokio_xmpp::xmlstream::{FallibleStreamElement, StreamElementError, XmppStreamElement};
    let wait = async {
        loop {
            match stream.next().await {
                Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::SM(n)))) => return n,
                // xmpp-parsers 0.23 insists on `h`, which Prosody leaves out of a `<failed/>`
                // for an unknown session.
                Some(Ok(FallibleStreamElement::Err(StreamElementError::InvalidNonza {
                    qname,
                    ..
                }))) if qname.1.as_str() == "failed" => {
                    return sm::Nonza::Failed(sm::Failed {
                        h: None,
                        error: None,
                    })
                }
                Some(Ok(_)) => {}
                Some(Err(tokio_xmpp::xmlstream::ReadError::SoftTimeout)) => {}
                other => panic!("stream ended before a stream-management answer: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a stream-management answer")
}

async fn send(stream: &mut xmpp_rest_gateway::upstream::connect::Stream, el: XmppStreamElement) {
    use futures_util::SinkExt;
    stream.send(&el).await.expect("send");
}

use tokio_xmpp::parsers::sm;
use tokio_xmpp::xmlstream::XmppStreamElement;

impl Hibernated {
    /// Logs in as `local/resource`, enables resumable stream management, sends presence and
    /// drops the connection without closing the stream.
    pub async fn start(server: &TestServer, local: &str, resource: &str) -> Hibernated {
        let account = server.jid(local).parse().expect("account JID");
        let (mut owned, _) = connector(server)
            .login_xml(&account, &server.password(local), resource)
            .await
            .expect("login");
        let stream = &mut owned;
        send(
            stream,
            XmppStreamElement::SM(sm::Nonza::Enable(sm::Enable::new().with_resume())),
        )
        .await;
        let previd = match next_sm(stream).await {
            sm::Nonza::Enabled(e) if e.resume => e.id.expect("a resumption id"),
            other => panic!("stream management not enabled: {other:?}"),
        };
        let presence = tokio_xmpp::Stanza::Presence(Presence::new(Type::None));
        send(stream, XmppStreamElement::Stanza(presence)).await;
        send(stream, XmppStreamElement::SM(sm::Nonza::Ack(sm::A::new(0)))).await;
        drop(owned); // TCP closed, no </stream:stream>: the server hibernates the session
        Hibernated {
            resource: resource.to_string(),
            previd,
        }
    }

    /// Tries to resume the session; `true` if the server resumed it.
    pub async fn resume(&self, server: &TestServer, local: &str) -> bool {
        let account = server.jid(local).parse().expect("account JID");
        let mut stream = connector(server)
            .authenticate(&account, &server.password(local))
            .await
            .expect("authenticate");
        let resume = sm::Resume {
            h: 0,
            previd: self.previd.clone(),
        };
        send(
            &mut stream,
            XmppStreamElement::SM(sm::Nonza::Resume(resume)),
        )
        .await;
        match next_sm(&mut stream).await {
            sm::Nonza::Resumed(_) => true,
            sm::Nonza::Failed(_) => false,
            other => panic!("unexpected answer to resume: {other:?}"),
        }
    }
}

/// A client that reads what reaches it: logged in with available presence on a raw stream
/// (an `AdminSession` drops messages), for tests that prove a stanza arrived.
pub struct Inbox {
    pub jid: String,
    stream: xmpp_rest_gateway::upstream::connect::Stream,
}

impl Inbox {
    /// Logs in as `local` (with `password`) at `resource` and becomes available.
    pub async fn connect(
        server: &TestServer,
        local: &str,
        password: &str,
        resource: &str,
    ) -> Inbox {
        let account = server.jid(local).parse().expect("account JID");
        let (mut stream, jid) = connector(server)
            .login_xml(&account, password, resource)
            .await
            .unwrap_or_else(|e| panic!("{} inbox {local}/{resource}: {e}", server.kind));
        let presence = tokio_xmpp::Stanza::Presence(Presence::new(Type::None));
        send(
            &mut stream,
            tokio_xmpp::xmlstream::XmppStreamElement::Stanza(presence),
        )
        .await;
        Inbox {
            jid: jid.to_string(),
            stream,
        }
    }

    /// The first stanza `wanted` accepts within `limit`, skipping the others; panics without one.
    pub async fn next(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&tokio_xmpp::Stanza) -> bool,
    ) -> tokio_xmpp::Stanza {
        use futures_util::StreamExt;
        use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
        let wait = async {
            loop {
                match self.stream.next().await {
                    Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(s)))) => {
                        if wanted(&s) {
                            return s;
                        }
                    }
                    Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                    other => panic!("the inbox's stream ended: {other:?}"),
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or_else(|_| panic!("nothing wanted reached {} within {limit:?}", self.jid))
    }
}
