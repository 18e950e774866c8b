//! The seam between `adhoc` and `upstream`: a logged-in stream that runs commands and returns
//! their answers, in the crate's own command types. The real one is the pool's
//! [`AdminSession`]; the tests script a fake (`adhoc::fake`) that answers as Prosody or
//! ejabberd would and records what was sent.

use std::future::Future;
use std::pin::Pin;

use tokio_xmpp::parsers::disco::{DiscoItemsQuery, DiscoItemsResult};
use tokio_xmpp::parsers::jid::{FullJid, Jid};

use super::wire::{read_reply, write_command};
use super::xep0050::{Command, CommandReply, NS_COMMANDS};
use super::CommandError;
use crate::upstream::{AdminSession, IqKind, IqReply};

/// A future a stream hands back (boxed, so that handlers can hold any stream).
pub type StreamFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer to one command: the server's reply, or its IQ error as a [`CommandError`].
pub type Answer = Result<CommandReply, CommandError>;

/// A command the target lists (disco#items on the commands node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub node: String,
    pub name: Option<String>,
}

/// A logged-in stream of one account.
pub trait CommandStream: Send + Sync {
    /// The full JID the stream is bound to (its resource is the gateway's own session).
    fn jid(&self) -> &FullJid;

    /// False once the stream is known dead or closing.
    fn is_alive(&self) -> bool;

    /// Sends the commands back to back in this order (the server handles a stream's stanzas
    /// in order) and returns each one's answer, in the same order; `Err` when the stream
    /// itself failed before any answer could be had.
    fn run(
        &self,
        batch: Vec<(Jid, Command)>,
    ) -> StreamFuture<'_, Result<Vec<Answer>, CommandError>>;

    /// The commands `to` lists for the account.
    fn list<'a>(&'a self, to: &'a Jid) -> StreamFuture<'a, Result<Vec<Listed>, CommandError>>;
}

/// Runs one command and returns its answer.
pub async fn run_one(stream: &dyn CommandStream, to: &Jid, cmd: Command) -> Answer {
    stream
        .run(vec![(to.clone(), cmd)])
        .await?
        .pop()
        .unwrap_or_else(|| Err(CommandError::Malformed("no answer".into())))
}

impl CommandStream for AdminSession {
    fn jid(&self) -> &FullJid {
        AdminSession::jid(self)
    }

    fn is_alive(&self) -> bool {
        AdminSession::is_alive(self)
    }

    fn run(
        &self,
        batch: Vec<(Jid, Command)>,
    ) -> StreamFuture<'_, Result<Vec<Answer>, CommandError>> {
        Box::pin(async move {
            // Written and read on this task as bytes (`adhoc::wire`): no tree either way.
            let (to, cmds): (Vec<Jid>, Vec<Command>) = batch.into_iter().unzip();
            let replies = self
                .iqs_written(to, |i, to, id, out| match cmds.get(i) {
                    Some(cmd) => write_command(out, to, id, cmd).map_err(|e| {
                        CommandError::BadRequest(format!("the command cannot be sent: {e}"))
                    }),
                    None => Err(CommandError::Malformed("no such command".into())),
                })
                .await?;
            Ok(replies
                .into_iter()
                .map(|reply| {
                    let bytes = reply?;
                    read_reply(&bytes)
                        .map_err(|e| CommandError::Malformed(format!("unreadable answer: {e}")))?
                        .answer
                })
                .collect())
        })
    }

    fn list<'a>(&'a self, to: &'a Jid) -> StreamFuture<'a, Result<Vec<Listed>, CommandError>> {
        Box::pin(async move {
            let query = DiscoItemsQuery {
                node: Some(NS_COMMANDS.to_string()),
                rsm: None,
            };
            match self.iq(to.clone(), IqKind::Get, query.into()).await? {
                IqReply::Result(Some(payload)) => {
                    let items = DiscoItemsResult::try_from(payload)
                        .map_err(|e| CommandError::Malformed(format!("disco#items: {e}")))?;
                    Ok(items
                        .items
                        .into_iter()
                        .map(|i| Listed {
                            node: i.node.unwrap_or_default(),
                            name: i.name,
                        })
                        .collect())
                }
                IqReply::Result(None) => Ok(Vec::new()),
                IqReply::Error(e) => Err((*e).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_xmpp::minidom::Element;
    use tokio_xmpp::parsers::iq::Iq;
    use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

    use super::*;
    use crate::upstream::fake::{logged_in, FakeServer};

    async fn session() -> (Arc<AdminSession>, FakeServer) {
        let jid: FullJid = "admin@example.org/xrg-1".parse().unwrap();
        let (logged_in, server) = logged_in(&jid, 64 * 1024).await;
        (Arc::new(AdminSession::start(logged_in, 8)), server)
    }

    fn el(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    /// The server's answer to the next request: `payload` from its addressee.
    async fn answer(
        server: &mut FakeServer,
        answer: impl FnOnce(Option<Jid>, String) -> Iq,
    ) -> Element {
        match server.next_iq().await {
            Iq::Set {
                to, id, payload, ..
            }
            | Iq::Get {
                to, id, payload, ..
            } => {
                server.send(answer(to, id)).await;
                payload
            }
            other => panic!("not a request: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_goes_out_as_a_set_and_its_answer_comes_back_typed() {
        let (session, mut server) = session().await;
        let to: Jid = "example.org".parse().unwrap();
        let cmd = Command::execute("http://jabber.org/protocol/admin#user-stats", None);
        let run = run_one(session.as_ref(), &to, cmd);
        let serve = answer(&mut server, |to, id| Iq::Result {
            from: to,
            to: None,
            id,
            payload: Some(el("<command xmlns='http://jabber.org/protocol/commands' \
                 node='http://jabber.org/protocol/admin#user-stats' status='completed'>\
                 <x xmlns='jabber:x:data' type='result'><field var='onlineresources' \
                 type='text-multi'><value>phone</value></field></x></command>")),
        });
        let (reply, sent) = tokio::join!(run, serve);
        assert_eq!(sent.attr("action"), Some("execute"));
        let reply = reply.unwrap();
        let field = reply
            .form
            .unwrap()
            .field("onlineresources")
            .cloned()
            .unwrap();
        assert_eq!(field.values, ["phone"]);
    }

    #[tokio::test]
    async fn an_iq_error_becomes_the_xmpp_condition() {
        let (session, mut server) = session().await;
        let to: Jid = "example.org".parse().unwrap();
        let run = run_one(session.as_ref(), &to, Command::execute("n", None));
        let serve = answer(&mut server, |to, id| {
            let e = StanzaError::new(ErrorType::Auth, DefinedCondition::Forbidden, "en", "no");
            Iq::from_error(id, e).with_from(to.unwrap())
        });
        let (reply, _) = tokio::join!(run, serve);
        match reply {
            Err(CommandError::Xmpp {
                type_,
                condition,
                text,
            }) => {
                assert_eq!(
                    (type_, condition),
                    (
                        crate::adhoc::ErrorType::Auth,
                        crate::adhoc::DefinedCondition::Forbidden
                    )
                );
                assert_eq!(text.as_deref(), Some("no"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_command_list_is_read_from_disco_items() {
        let (session, mut server) = session().await;
        let to: Jid = "example.org".parse().unwrap();
        let list = session.list(&to);
        let serve = answer(&mut server, |to, id| Iq::Result {
            from: to,
            to: None,
            id,
            payload: Some(el("<query xmlns='http://jabber.org/protocol/disco#items' \
                 node='http://jabber.org/protocol/commands'>\
                 <item jid='example.org' node='uptime' name='Get uptime'/></query>")),
        });
        let (listed, asked) = tokio::join!(list, serve);
        assert_eq!(asked.attr("node"), Some(NS_COMMANDS));
        assert_eq!(
            listed.unwrap(),
            [Listed {
                node: "uptime".into(),
                name: Some("Get uptime".into())
            }]
        );
    }
}
