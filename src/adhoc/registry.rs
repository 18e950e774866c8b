//! The dispatcher: a request goes to the handler registered for its node when that handler
//! takes it, else to the generic path; a `sessionid` goes back to its kept command. Handlers
//! own their state and semantics, so a command-specific behaviour (or a policy check) is a new
//! handler and one `register` line, never an edit here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::end_user_session::EndUserSession;
use super::generic::Generic;
use super::stages::Stages;
use super::stream::{CommandStream, StreamFuture};
use super::{Answered, Call, CommandError, DefinedCondition, Target, END_USER_SESSION};
use crate::rest::{self, CommandRequest};

/// A command with semantics of its own.
pub trait Handler: Send + Sync {
    /// Whether this handler answers `req` (its node already matched); the generic path
    /// answers what it declines.
    fn takes(&self, call: &Call<'_>, req: &CommandRequest) -> bool;

    /// Runs the command.
    fn run<'a>(
        &'a self,
        call: &'a Call<'_>,
        req: &'a CommandRequest,
    ) -> StreamFuture<'a, Result<Answered, CommandError>>;

    /// Drops what the handler keeps that has expired (called by the one sweeper).
    fn sweep(&self) {}
}

/// Every command the gateway runs: the registered handlers, the generic path, kept sessions.
pub struct Commands {
    handlers: HashMap<&'static str, Box<dyn Handler>>,
    generic: Generic,
    stages: Stages,
}

impl Commands {
    /// `command_idle`: how long a kept command session may sit unused.
    pub fn new(command_idle: Duration) -> Self {
        let mut commands = Self {
            handlers: HashMap::new(),
            generic: Generic::default(),
            stages: Stages::new(command_idle),
        };
        commands.register(END_USER_SESSION, Box::new(EndUserSession::default()));
        commands
    }

    /// Writes kept sessions' ids as `ids` does (naming this replica among replicas).
    pub fn with_sessionids(mut self, ids: crate::replica::SessionIds) -> Self {
        self.stages.set_ids(ids);
        self
    }

    /// Gives `node` its own handler.
    pub fn register(&mut self, node: &'static str, handler: Box<dyn Handler>) {
        self.handlers.insert(node, handler);
    }

    /// Runs the command a client asked for.
    pub async fn run(
        &self,
        call: &Call<'_>,
        req: &CommandRequest,
    ) -> Result<Answered, CommandError> {
        if req.sessionid.as_deref().is_some_and(|s| !s.is_empty()) {
            return self.stages.resume(call, req).await;
        }
        let node = req
            .node
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CommandError::BadRequest("the command has no node".into()))?;
        if req
            .action
            .as_deref()
            .is_some_and(|a| !a.is_empty() && a != "execute")
        {
            return Err(CommandError::BadRequest(
                "an action other than execute needs the sessionid of a kept command".into(),
            ));
        }
        (call.guard)(node)?;
        let result = match self.handlers.get(node).filter(|h| h.takes(call, req)) {
            Some(handler) => handler.run(call, req).await,
            None => self.generic.run(call, node, req, &self.stages).await,
        };
        match result {
            Err(CommandError::Xmpp {
                condition, text, ..
            }) if matches!(
                condition,
                DefinedCondition::ServiceUnavailable | DefinedCondition::FeatureNotImplemented
            ) && !is_listed(call.stream.as_ref(), call.target, node).await =>
            {
                Err(CommandError::NodeNotOffered {
                    node: node.to_string(),
                    condition,
                    text,
                })
            }
            other => other,
        }
    }

    /// Drops expired state: kept sessions (cancelled upstream), learnt forms, handlers' own.
    pub fn sweep(&self) {
        self.stages.sweep();
        self.generic.sweep();
        for h in self.handlers.values() {
            h.sweep();
        }
    }
}

/// The commands `target` lists for the account (disco#items on the commands node).
pub async fn list_commands(
    stream: &Arc<dyn CommandStream>,
    target: &Target,
) -> Result<Vec<rest::CommandItem>, CommandError> {
    Ok(stream
        .list(&target.to)
        .await?
        .into_iter()
        .map(|l| rest::CommandItem {
            jid: target.written.clone(),
            node: l.node,
            name: l.name,
        })
        .collect())
}

/// Whether `node` is among the target's listed commands (errors count as not listed).
async fn is_listed(stream: &dyn CommandStream, target: &Target, node: &str) -> bool {
    stream
        .list(&target.to)
        .await
        .map(|items| items.iter().any(|i| i.node == node))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adhoc::fake::{completed, executing, field, request, user_stats, Ctx, Fake};
    use crate::adhoc::{CommandError, USER_STATS};

    #[tokio::test]
    async fn end_user_session_with_fields_goes_to_its_handler_without_to_the_generic_path() {
        let fake = Fake::new("admin@x.test/xrg-1", |_, cmd| match cmd.node.as_str() {
            USER_STATS => user_stats(&[]),
            n if cmd.form.is_none() => {
                executing(n, "s", vec![field("accountjids", "jid-multi", &[])])
            }
            n => completed(n, vec![]),
        });
        let ctx = Ctx::new(&fake);
        let commands = Commands::new(Duration::from_secs(60));
        let with = request(END_USER_SESSION, &[("accountjids", &["u@x.test"])]);
        commands.run(&ctx.call(false), &with).await.unwrap();
        assert_eq!(
            fake.sent()[0].1.node,
            USER_STATS,
            "the handler asks user-stats first"
        );
        let form = commands
            .run(&ctx.call(false), &request(END_USER_SESSION, &[]))
            .await
            .unwrap();
        assert_eq!(form.outcome, crate::adhoc::Outcome::Form);
        assert_eq!(
            form.doc.status.as_deref(),
            Some("executing"),
            "the form, generically"
        );
    }

    #[tokio::test]
    async fn a_node_the_target_does_not_list_is_not_offered() {
        let unavailable = || {
            Err(CommandError::Xmpp {
                type_: crate::adhoc::ErrorType::Cancel,
                condition: DefinedCondition::ServiceUnavailable,
                text: None,
            })
        };
        let fake = Fake::listing("admin@x.test/xrg-1", &["listed"], move |_, _| unavailable());
        let ctx = Ctx::new(&fake);
        let commands = Commands::new(Duration::from_secs(60));
        let r = commands.run(&ctx.call(false), &request("nope", &[])).await;
        assert!(
            matches!(r, Err(CommandError::NodeNotOffered { .. })),
            "{r:?}"
        );
        let r = commands
            .run(&ctx.call(false), &request("listed", &[]))
            .await;
        assert!(matches!(r, Err(CommandError::Xmpp { .. })), "{r:?}");
    }

    /// A handler of a test's own: registering it is all it takes.
    struct Refuse;

    impl Handler for Refuse {
        fn takes(&self, _: &Call<'_>, _: &CommandRequest) -> bool {
            true
        }
        fn run<'a>(
            &'a self,
            _: &'a Call<'_>,
            _: &'a CommandRequest,
        ) -> StreamFuture<'a, Result<Answered, CommandError>> {
            Box::pin(async { Err(CommandError::BadRequest("refused by policy".into())) })
        }
    }

    #[tokio::test]
    async fn a_registered_handler_takes_its_node_without_touching_the_dispatcher() {
        let fake = Fake::new("admin@x.test/xrg-1", |_, _| completed("n", vec![]));
        let ctx = Ctx::new(&fake);
        let mut commands = Commands::new(Duration::from_secs(60));
        commands.register("http://example.org/guarded", Box::new(Refuse));
        let r = commands
            .run(
                &ctx.call(false),
                &request("http://example.org/guarded", &[]),
            )
            .await;
        assert!(matches!(r, Err(CommandError::BadRequest(_))), "{r:?}");
        assert!(fake.sent().is_empty());
    }
}
