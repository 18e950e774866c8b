//! Victim clients: ordinary XMPP sessions (the gateway's own upstream code, as a client would
//! use it) that log in with a resource, send available presence and notice when the server
//! ends them.

use std::time::Duration;

use tokio_xmpp::parsers::presence::{Presence, Type};
use xmpp_rest_gateway::config::{UpstreamConfig, UpstreamTls};
use xmpp_rest_gateway::upstream::{AdminSession, Connector};

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
        let connector = Connector::new(UpstreamConfig {
            host: "127.0.0.1".into(),
            port: server.c2s_port,
            tls: UpstreamTls::Starttls,
            ca: Some(server.ca_pem.clone()),
            connect_timeout: Duration::from_secs(10),
        })
        .expect("connector");
        let account = server.jid(local).parse().expect("account JID");
        let logged_in = connector
            .login(&account, password, resource)
            .await
            .unwrap_or_else(|e| panic!("{} victim {local}/{resource}: {e}", server.kind));
        let session = AdminSession::start(logged_in, 16);
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

    /// Ends the session politely.
    pub async fn close(self) {
        self.session.close().await;
    }
}
