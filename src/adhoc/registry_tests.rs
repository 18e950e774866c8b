use super::*;
use crate::adhoc::fake::{
    completed, executing, field, request, settle, submitted, user_stats, Ctx, Fake,
};
use crate::adhoc::{CommandError, Outcome, USER_STATS};
use crate::upstream::session::own::OwnStreams;
use tokio_xmpp::parsers::jid::FullJid;

#[tokio::test]
async fn end_user_session_with_fields_goes_to_its_handler_without_to_the_generic_path() {
    let fake = Fake::new("admin@x.test/xrg-1", |_, cmd| match cmd.node.as_str() {
        USER_STATS => user_stats(&[]),
        n if cmd.form.is_none() => executing(n, "s", vec![field("accountjids", "jid-multi", &[])]),
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

/// A server with end-user-session's first stage as Prosody (`accountjids`, jid-multi,
/// next/complete) or ejabberd (`accountjid`, jid-single, complete) gives it, user-stats
/// listing `online`, and every other command completed (a cancel: canceled).
fn kicking_server(prosody: bool, online: Vec<(&'static str, Vec<String>)>) -> Arc<Fake> {
    use crate::adhoc::xep0050::Status;
    Fake::new("admin@x.test/xrg-1", move |_, cmd| {
        if cmd.node == USER_STATS {
            let account = submitted(cmd, "accountjid").concat();
            let listed: Vec<&str> = online
                .iter()
                .filter(|(a, _)| *a == account)
                .flat_map(|(_, r)| r.iter().map(String::as_str))
                .collect();
            return user_stats(&listed);
        }
        match (cmd.action.as_deref(), &cmd.form) {
            (Some("cancel"), _) => {
                let mut reply = completed(&cmd.node, vec![])?;
                reply.status = Status::Canceled;
                Ok(reply)
            }
            (_, None) if cmd.sessionid.is_none() => {
                let (var, type_) = if prosody {
                    ("accountjids", "jid-multi")
                } else {
                    ("accountjid", "jid-single")
                };
                let mut reply = executing(&cmd.node, "up-1", vec![field(var, type_, &[])])?;
                if let Some(form) = reply.form.as_mut() {
                    form.fields[0].required = true;
                }
                if prosody {
                    reply.actions = vec!["next".into(), "complete".into()];
                }
                Ok(reply)
            }
            _ => completed(&cmd.node, vec![]),
        }
    })
}

/// A replica key, and a resource another replica holding it bound for `account`.
fn replica(account: &str) -> (OwnStreams, String) {
    let key = crate::replica::ReplicaKey::parse(b"0123456789abcdef0123456789abcdef").expect("key");
    let own = OwnStreams::new(Some(Arc::new(key)));
    let theirs = own.resource(&account.parse().expect("a bare JID"));
    (own, theirs)
}

/// Opens a kept end-user-session (its form) and returns the gateway's id.
async fn kept(commands: &Commands, call: &Call<'_>) -> String {
    let form = commands
        .run(call, &request(END_USER_SESSION, &[]))
        .await
        .expect("the form");
    form.doc.sessionid.expect("kept")
}

fn step(id: &str, action: Option<&str>, fields: &[(&str, &[&str])]) -> CommandRequest {
    let mut req = request(END_USER_SESSION, fields);
    req.node = None;
    req.sessionid = Some(id.into());
    req.action = action.map(str::to_string);
    req
}

/// The end-user-session commands that went out: (upstream sessionid, JIDs they name).
fn kicks(fake: &Fake) -> Vec<(Option<String>, Vec<String>)> {
    fake.sent()
        .iter()
        .filter(|(_, c)| c.node == END_USER_SESSION && c.form.is_some())
        .map(|(_, c)| {
            let mut jids = submitted(c, "accountjids");
            jids.extend(submitted(c, "accountjid"));
            jids.dedup();
            (c.sessionid.clone(), jids)
        })
        .collect()
}

fn cancels(fake: &Fake) -> usize {
    fake.sent()
        .iter()
        .filter(|(_, c)| c.action.as_deref() == Some("cancel"))
        .count()
}

#[tokio::test]
async fn a_kept_sessions_submission_ends_full_jids_sparing_every_gateway_stream() {
    // Whichever action submits it: Prosody offers next and complete, execute is the default.
    for action in [None, Some("next"), Some("complete"), Some("execute")] {
        let (own, theirs) = replica("u@x.test");
        let online = vec![
            ("u@x.test", vec!["phone".into(), theirs.clone()]),
            ("v@x.test", vec!["desk".into(), "laptop".into()]),
        ];
        let fake = kicking_server(true, online);
        let ctx = Ctx::new(&fake);
        let mut call = ctx.call(true);
        call.own = &own;
        let commands = Commands::new(Duration::from_secs(60));
        let id = kept(&commands, &call).await;
        let named: &[&str] = &["u@x.test", "v@x.test/desk"];
        let done = commands
            .run(&call, &step(&id, action, &[("accountjids", named)]))
            .await
            .expect("completed");
        assert!(done.doc.status.is_none() && done.doc.sessionid.is_none());
        let ended = ["u@x.test/phone", "v@x.test/desk"];
        let lines: Vec<String> = ended
            .iter()
            .map(|j| format!("Operation successful for user {j}"))
            .collect();
        assert_eq!(done.doc.fields[0].values, lines);
        let full = |j: &str| j.parse::<FullJid>().expect("full");
        assert_eq!(
            done.outcome,
            Outcome::Ended(ended.iter().map(|j| full(j)).collect())
        );
        assert_eq!(
            kicks(&fake),
            [
                (None, vec!["u@x.test/phone".to_string()]),
                (None, vec!["v@x.test/desk".to_string()])
            ],
            "{action:?}: one full JID at a time outside the kept session; never u@x.test, never {theirs}"
        );
        settle().await;
        let cancel = fake.sent().pop().expect("a cancel");
        assert_eq!(
            (cancel.1.action.as_deref(), cancel.1.sessionid.as_deref()),
            (Some("cancel"), Some("up-1")),
            "the kept session is cancelled upstream"
        );
        let again = commands
            .run(&call, &step(&id, action, &[("accountjids", named)]))
            .await;
        assert!(
            matches!(again, Err(CommandError::UnknownSession)),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn on_ejabberds_form_a_mistake_keeps_the_session_and_nothing_is_sent() {
    let (own, theirs) = replica("u@x.test");
    let online = vec![("u@x.test", vec!["phone".into(), theirs.clone()])];
    let fake = kicking_server(false, online);
    let ctx = Ctx::new(&fake);
    let mut call = ctx.call(true);
    call.own = &own;
    let commands = Commands::new(Duration::from_secs(60));
    let id = kept(&commands, &call).await;
    let sent = fake.sent().len();
    // Prosody's field on ejabberd's form, a replica's full JID as a second value of a
    // single field, and a domain: each a 400 naming the field, the session still open.
    let replicas = format!("u@x.test/{theirs}");
    for fields in [
        vec![("accountjids", &["u@x.test"][..])],
        vec![("accountjid", &["u@x.test", replicas.as_str()][..])],
        vec![("accountjid", &["x.test"][..])],
    ] {
        let r = commands.run(&call, &step(&id, None, &fields)).await;
        assert!(matches!(r, Err(CommandError::Field(_))), "{r:?}");
    }
    settle().await;
    assert_eq!(fake.sent().len(), sent, "nothing sent, nothing cancelled");
    // A replica's own full JID ends nothing, and says so.
    let done = commands
        .run(
            &call,
            &step(&id, None, &[("accountjid", &[replicas.as_str()])]),
        )
        .await
        .expect("completed");
    assert!(done.doc.fields.is_empty(), "{:?}", done.doc);
    assert_eq!(done.outcome, Outcome::Ended(vec![]));
    assert!(kicks(&fake).is_empty(), "{:?}", kicks(&fake));
    settle().await;
    assert_eq!(cancels(&fake), 1);
}

#[tokio::test]
async fn a_kept_session_is_still_cancelled_by_the_server() {
    let fake = kicking_server(true, vec![]);
    let ctx = Ctx::new(&fake);
    let commands = Commands::new(Duration::from_secs(60));
    let id = kept(&commands, &ctx.call(true)).await;
    let r = commands
        .run(&ctx.call(true), &step(&id, Some("cancel"), &[]))
        .await
        .expect("canceled");
    assert_eq!(r.doc.status.as_deref(), Some("canceled"));
    assert_eq!(cancels(&fake), 1);
    assert!(kicks(&fake).is_empty());
}

#[tokio::test]
async fn kept_with_fields_at_once_the_handler_answers() {
    let (own, theirs) = replica("u@x.test");
    let online = vec![("u@x.test", vec!["phone".into(), theirs])];
    let fake = kicking_server(true, online);
    let ctx = Ctx::new(&fake);
    let mut call = ctx.call(true);
    call.own = &own;
    let commands = Commands::new(Duration::from_secs(60));
    let req = request(END_USER_SESSION, &[("accountjids", &["u@x.test"])]);
    let done = commands.run(&call, &req).await.expect("completed");
    assert!(done.doc.sessionid.is_none());
    assert_eq!(
        kicks(&fake),
        [(None, vec!["u@x.test/phone".to_string()])],
        "no form asked for, the replica's stream spared"
    );
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
