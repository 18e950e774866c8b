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

    /// Whether this handler answers the submission of a kept session of its node (a step
    /// `execute`, `next` or `complete`, its fields already checked against the stage's form)
    /// instead of the stage sending it to the server as the client wrote it. `run` is then
    /// given the submitted form as the request's fields and its answer is the step's; the
    /// kept session ends (cancelled upstream), unless `run` answers a `Field` error, which
    /// must mean that nothing was sent: the stage then stays open for a corrected retry.
    fn takes_submission(&self) -> bool {
        false
    }

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
            let submission_to = |node: &str| {
                self.handlers
                    .get(node)
                    .map(|h| h.as_ref())
                    .filter(|h| h.takes_submission())
            };
            return self.stages.resume(call, req, &submission_to).await;
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
#[path = "registry_tests.rs"]
mod tests;
