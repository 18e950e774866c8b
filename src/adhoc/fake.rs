//! A scripted [`CommandStream`] for in-process tests: it answers each command with what its
//! script says (built to look like Prosody's and ejabberd's answers in
//! ../shared/reference/transcripts/) and records what was sent, in which batches, so tests assert
//! on the IQs that would reach the server rather than on log lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_xmpp::parsers::jid::{FullJid, Jid};

use super::stream::{Answer, CommandStream, Listed, StreamFuture};
use super::xep0050::{Command, CommandReply, Field, Form, Note, Status};
use super::CommandError;

type Script = Box<dyn FnMut(&Jid, &Command) -> Answer + Send>;

/// A stream whose server is a script.
pub struct Fake {
    jid: FullJid,
    alive: AtomicBool,
    script: Mutex<Script>,
    listed: Vec<Listed>,
    sent: Mutex<Vec<(Jid, Command)>>,
    batches: Mutex<Vec<usize>>,
}

impl Fake {
    /// A stream bound to `jid` whose server answers with `script`.
    pub fn new(
        jid: &str,
        script: impl FnMut(&Jid, &Command) -> Answer + Send + 'static,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            jid: jid.parse().expect("a full JID"),
            alive: AtomicBool::new(true),
            script: Mutex::new(Box::new(script)),
            listed: Vec::new(),
            sent: Mutex::new(Vec::new()),
            batches: Mutex::new(Vec::new()),
        })
    }

    /// The same, listing `nodes` as the target's commands.
    pub fn listing(
        jid: &str,
        nodes: &[&str],
        script: impl FnMut(&Jid, &Command) -> Answer + Send + 'static,
    ) -> Arc<Fake> {
        let mut fake = Arc::try_unwrap(Fake::new(jid, script)).ok().expect("fresh");
        fake.listed = nodes
            .iter()
            .map(|n| Listed {
                node: n.to_string(),
                name: None,
            })
            .collect();
        Arc::new(fake)
    }

    /// Every command sent so far, in order.
    pub fn sent(&self) -> Vec<(Jid, Command)> {
        self.sent.lock().unwrap().clone()
    }

    /// How many commands went out in each batch.
    pub fn batches(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }

    /// The stream dies.
    pub fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl CommandStream for Fake {
    fn jid(&self) -> &FullJid {
        &self.jid
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn run(
        &self,
        batch: Vec<(Jid, Command)>,
    ) -> StreamFuture<'_, Result<Vec<Answer>, CommandError>> {
        Box::pin(async move {
            self.batches.lock().unwrap().push(batch.len());
            let mut answers = Vec::with_capacity(batch.len());
            for (to, cmd) in batch {
                answers.push((self.script.lock().unwrap())(&to, &cmd));
                self.sent.lock().unwrap().push((to, cmd));
            }
            Ok(answers)
        })
    }

    fn list<'a>(&'a self, _to: &'a Jid) -> StreamFuture<'a, Result<Vec<Listed>, CommandError>> {
        Box::pin(async move { Ok(self.listed.clone()) })
    }
}

/// A field with values.
pub fn field(var: &str, type_: &str, values: &[&str]) -> Field {
    Field {
        var: Some(var.into()),
        type_: Some(type_.into()),
        values: values.iter().map(|v| v.to_string()).collect(),
        ..Field::default()
    }
}

/// A completed answer with these result fields.
pub fn completed(node: &str, fields: Vec<Field>) -> Answer {
    Ok(CommandReply {
        node: node.into(),
        sessionid: None,
        status: Status::Completed,
        actions: vec![],
        default_action: None,
        notes: vec![],
        form: (!fields.is_empty()).then(|| Form {
            type_: "result".into(),
            fields,
            ..Form::default()
        }),
    })
}

/// A completed answer carrying one note (Prosody's way of reporting).
pub fn noted(node: &str, type_: &str, text: &str) -> Answer {
    let mut reply = completed(node, vec![])?;
    reply.notes.push(Note {
        type_: type_.into(),
        text: text.into(),
    });
    Ok(reply)
}

/// An `executing` answer asking for this form, under upstream session `sid`.
pub fn executing(node: &str, sid: &str, fields: Vec<Field>) -> Answer {
    Ok(CommandReply {
        node: node.into(),
        sessionid: Some(sid.into()),
        status: Status::Executing,
        actions: vec!["complete".into()],
        default_action: Some("complete".into()),
        notes: vec![],
        form: Some(Form {
            type_: "form".into(),
            title: Some("A form".into()),
            fields,
            ..Form::default()
        }),
    })
}

/// An IQ error, as both servers answer a non-admin (`auth/forbidden`).
pub fn forbidden() -> Answer {
    Err(CommandError::Xmpp {
        type_: crate::adhoc::ErrorType::Auth,
        condition: crate::adhoc::DefinedCondition::Forbidden,
        text: Some("You don't have permission to execute this command".into()),
    })
}

/// user-stats' answer listing these online resources.
pub fn user_stats(resources: &[&str]) -> Answer {
    completed(
        super::USER_STATS,
        vec![
            field("FORM_TYPE", "hidden", &["http://jabber.org/protocol/admin"]),
            field("rostersize", "text-single", &["0"]),
            field("onlineresources", "text-multi", resources),
        ],
    )
}

/// The value of field `var` of a command's submitted form.
pub fn submitted(cmd: &Command, var: &str) -> Vec<String> {
    cmd.form
        .as_ref()
        .and_then(|f| f.field(var))
        .map(|f| f.values.clone())
        .unwrap_or_default()
}

/// What a test's call needs to borrow: the stream, the account (the stream's own) and a
/// target (`sess-man@x.test`, sent to `x.test`).
pub struct Ctx {
    pub stream: Arc<dyn CommandStream>,
    pub account: tokio_xmpp::parsers::jid::BareJid,
    pub target: super::Target,
}

impl Ctx {
    pub fn new(fake: &Arc<Fake>) -> Ctx {
        Ctx {
            account: fake.jid.to_bare(),
            stream: fake.clone(),
            target: super::Target::resolve("sess-man@x.test", &["sess-man".into()])
                .expect("target"),
        }
    }

    /// A call as the stream's account, keeping multi-stage commands when `keep`.
    pub fn call(&self, keep: bool) -> super::Call<'_> {
        super::Call {
            stream: &self.stream,
            account: &self.account,
            target: &self.target,
            keep,
            max_jids: 100,
            guard: &super::unguarded,
            own: &crate::upstream::session::own::OwnStreams::BY_VALUE,
        }
    }
}

/// A request for `node` with these fields.
pub fn request(node: &str, fields: &[(&str, &[&str])]) -> crate::rest::CommandRequest {
    use crate::rest::{FieldValue, RequestField};
    crate::rest::CommandRequest {
        node: Some(node.into()),
        fields: fields
            .iter()
            .map(|(var, values)| RequestField {
                var: var.to_string(),
                value: Some(match values {
                    [one] => FieldValue::Single(one.to_string()),
                    many => FieldValue::List(many.iter().map(|v| v.to_string()).collect()),
                }),
            })
            .collect(),
        ..Default::default()
    }
}

/// Lets background tasks (cancels) run.
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
