use super::*;
use crate::adhoc::fake::{self, completed, executing, field, request, Ctx, Fake};

const NODE: &str = "http://jabber.org/protocol/admin#add-user";

/// No node has a handler that takes submissions: every step goes to the server.
fn no_handler(_: &str) -> Option<&'static dyn Handler> {
    None
}

/// A server with a two-stage command: a form, then completion (or cancellation).
fn server(jid: &str) -> Arc<Fake> {
    Fake::new(jid, |_, cmd| match cmd.action.as_deref() {
        Some("cancel") => {
            let mut reply = completed(NODE, vec![])?;
            reply.status = Status::Canceled;
            Ok(reply)
        }
        _ if cmd.sessionid.is_none() => executing(
            NODE,
            "upstream-7",
            vec![field("accountjid", "jid-single", &[])],
        ),
        _ => completed(NODE, vec![]),
    })
}

/// Opens a kept session through the public path and returns its gateway id.
fn open(stages: &Stages, ctx: &Ctx) -> String {
    let reply = executing(
        NODE,
        "upstream-7",
        vec![field("accountjid", "jid-single", &[])],
    )
    .unwrap();
    let doc = stages.keep(&ctx.call(true), &reply).unwrap().doc;
    let id = doc.sessionid.unwrap();
    assert_eq!(
        id.len(),
        32,
        "the gateway's own random id, never upstream-7"
    );
    id
}

fn resume_req(id: &str, action: Option<&str>) -> crate::rest::CommandRequest {
    let mut req = request(NODE, &[("accountjid", &["new@x.test"])]);
    req.sessionid = Some(id.into());
    req.action = action.map(str::to_string);
    req
}

#[tokio::test]
async fn a_kept_session_continues_to_its_result_once() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    let doc = stages
        .resume(&ctx.call(true), &resume_req(&id, None), &no_handler)
        .await
        .unwrap()
        .doc;
    assert!(doc.status.is_none() && doc.sessionid.is_none(), "completed");
    let (_, cmd) = fake.sent().pop().unwrap();
    assert_eq!(cmd.sessionid.as_deref(), Some("upstream-7"));
    assert_eq!(cmd.action.as_deref(), Some("complete"));
    let again = stages
        .resume(&ctx.call(true), &resume_req(&id, None), &no_handler)
        .await;
    assert!(
        matches!(again, Err(CommandError::UnknownSession)),
        "{again:?}"
    );
}

#[tokio::test]
async fn unknown_and_foreign_ids_are_alike() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    let unknown = stages
        .resume(&ctx.call(true), &resume_req("0123", None), &no_handler)
        .await;
    assert!(matches!(unknown, Err(CommandError::UnknownSession)));
    let mut other = Ctx::new(&fake);
    other.account = "mallory@x.test".parse().unwrap();
    let foreign = stages
        .resume(&other.call(true), &resume_req(&id, None), &no_handler)
        .await;
    assert!(matches!(foreign, Err(CommandError::UnknownSession)));
    assert!(fake.sent().is_empty(), "nothing reached the server");
    // The owner still has it.
    assert!(stages
        .resume(&ctx.call(true), &resume_req(&id, None), &no_handler)
        .await
        .is_ok());
}

#[tokio::test]
async fn cancel_ends_the_session_upstream() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    let doc = stages
        .resume(
            &ctx.call(true),
            &resume_req(&id, Some("cancel")),
            &no_handler,
        )
        .await
        .unwrap()
        .doc;
    assert_eq!(doc.status.as_deref(), Some("canceled"));
    let (_, cmd) = fake.sent().pop().unwrap();
    assert_eq!(
        (cmd.action.as_deref(), cmd.form.is_none()),
        (Some("cancel"), true)
    );
}

/// The upstream sessions the fake was asked to cancel.
fn cancels(fake: &Fake) -> Vec<String> {
    fake.sent()
        .into_iter()
        .filter(|(_, c)| c.action.as_deref() == Some("cancel"))
        .filter_map(|(_, c)| c.sessionid)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_is_cancelled_by_the_sweeper_and_forgotten() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    tokio::time::advance(Duration::from_secs(59)).await;
    stages.sweep();
    fake::settle().await;
    assert!(fake.sent().is_empty(), "still live");
    tokio::time::advance(Duration::from_secs(1)).await;
    // Seen expired by a lookup first: a 404, and it stays for the sweeper to cancel.
    let late = stages
        .resume(&ctx.call(true), &resume_req(&id, None), &no_handler)
        .await;
    assert!(matches!(late, Err(CommandError::UnknownSession)));
    stages.sweep();
    fake::settle().await;
    assert_eq!(cancels(&fake), ["upstream-7"]);
    assert_eq!(fake.sent().len(), 1, "the cancel alone");
    assert_eq!(stages.open.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_session_displaced_at_the_bound_is_cancelled_upstream() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::bounded(Duration::from_secs(60), 2);
    let first = open(&stages, &ctx);
    open(&stages, &ctx);
    // Both expire unswept; a third makes room by taking out the oldest, and cancels it.
    tokio::time::advance(Duration::from_secs(60)).await;
    let third = open(&stages, &ctx);
    fake::settle().await;
    assert_eq!(cancels(&fake).len(), 1, "the displaced one, at once");
    stages.sweep();
    fake::settle().await;
    assert_eq!(
        cancels(&fake).len(),
        2,
        "the other expired one, by the sweeper"
    );
    assert_eq!(stages.open.len(), 1);
    let gone = stages
        .resume(&ctx.call(true), &resume_req(&first, None), &no_handler)
        .await;
    assert!(matches!(gone, Err(CommandError::UnknownSession)));
    assert!(stages
        .resume(&ctx.call(true), &resume_req(&third, None), &no_handler)
        .await
        .is_ok());
    // Each session came and went through the count.
    assert!(stages.held.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_account_holds_its_share_and_gets_it_back_as_sessions_end() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let ids: Vec<String> = (0..PER_ACCOUNT).map(|_| open(&stages, &ctx)).collect();
    let reply = executing(NODE, "upstream-8", vec![]).unwrap();
    let refused = stages.keep(&ctx.call(true), &reply);
    assert!(
        matches!(refused, Err(CommandError::TooManyStages(PER_ACCOUNT))),
        "{refused:?}"
    );
    fake::settle().await;
    assert_eq!(
        cancels(&fake),
        ["upstream-8"],
        "the refused one is not left open"
    );
    // Another account has its own share.
    let mut other = Ctx::new(&fake);
    other.account = "other@x.test".parse().unwrap();
    assert!(stages.keep(&other.call(true), &reply).is_ok());
    // One completes: a place is free again.
    stages
        .resume(&ctx.call(true), &resume_req(&ids[0], None), &no_handler)
        .await
        .unwrap();
    open(&stages, &ctx);
    assert!(stages.keep(&ctx.call(true), &reply).is_err());
    // They all expire: the sweeper frees every place.
    tokio::time::advance(Duration::from_secs(60)).await;
    stages.sweep();
    assert!(stages.held.lock().unwrap().is_empty());
    open(&stages, &ctx);
}

#[tokio::test]
async fn a_stage_does_not_keep_its_stream_and_dies_with_it() {
    let old = server("admin@x.test/xrg-old");
    let ctx = Ctx::new(&old);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    // The account's stream is replaced: the new one cannot go on with the old session.
    let new = server("admin@x.test/xrg-new");
    let next = Ctx::new(&new);
    let moved = stages
        .resume(&next.call(true), &resume_req(&id, None), &no_handler)
        .await;
    assert!(matches!(moved, Err(CommandError::UnknownSession)));
    drop(ctx);
    assert_eq!(
        Arc::strong_count(&old),
        1,
        "only the test holds the old stream"
    );
    old.kill();
    stages.sweep();
    assert_eq!(stages.open.len(), 0);
}

#[tokio::test]
async fn a_typo_costs_one_retry_not_the_session() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    let mut typo = resume_req(&id, None);
    typo.fields[0].var = "acountjid".into();
    match stages.resume(&ctx.call(true), &typo, &no_handler).await {
        Err(CommandError::Field(e)) => assert_eq!(e.field, "acountjid"),
        other => panic!("{other:?}"),
    }
    assert!(stages
        .resume(&ctx.call(true), &resume_req(&id, None), &no_handler)
        .await
        .is_ok());
}

#[tokio::test]
async fn a_step_that_fails_cancels_its_session_upstream() {
    let fake = Fake::new("admin@x.test/xrg-1", |_, cmd| match cmd.action.as_deref() {
        Some("cancel") => completed(NODE, vec![]),
        _ => Err(CommandError::Xmpp {
            type_: crate::adhoc::ErrorType::Wait,
            condition: crate::adhoc::DefinedCondition::ResourceConstraint,
            text: None,
        }),
    });
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let id = open(&stages, &ctx);
    let failed = stages
        .resume(&ctx.call(true), &resume_req(&id, None), &no_handler)
        .await;
    assert!(
        matches!(failed, Err(CommandError::Xmpp { .. })),
        "{failed:?}"
    );
    fake::settle().await;
    let actions: Vec<Option<String>> = fake.sent().into_iter().map(|(_, c)| c.action).collect();
    assert_eq!(actions, [Some("complete".into()), Some("cancel".into())]);
}

#[tokio::test]
async fn an_action_the_stage_does_not_offer_is_refused_without_sending_it() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    // The stage offers `complete` only (and, as every stage, `execute` and `cancel`).
    let id = open(&stages, &ctx);
    for action in ["prev", "next"] {
        match stages
            .resume(&ctx.call(true), &resume_req(&id, Some(action)), &no_handler)
            .await
        {
            Err(CommandError::BadRequest(text)) => {
                assert!(text.contains("complete, execute, cancel"), "{text}")
            }
            other => panic!("{action}: {other:?}"),
        }
    }
    assert!(fake.sent().is_empty(), "sent: {:?}", fake.sent());
    // Still counted in the account's share (else each refusal would free a place that is not
    // free, and the account could hold more than PER_ACCOUNT).
    assert_eq!(stages.held.lock().unwrap().get(&ctx.account), Some(&1));
    // The session is kept for an action it offers.
    let done = stages
        .resume(
            &ctx.call(true),
            &resume_req(&id, Some("complete")),
            &no_handler,
        )
        .await;
    assert!(done.is_ok(), "{done:?}");
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn a_stage_allows_what_it_offers_and_execute_and_cancel() {
    let mut reply = executing(NODE, "s", vec![]).unwrap();
    reply.actions = vec!["prev".into(), "next".into()];
    assert_eq!(
        allowed_actions(&reply),
        ["prev", "next", "execute", "cancel"]
    );
    reply.actions.clear();
    assert_eq!(allowed_actions(&reply), ["execute", "cancel"]);
}

/// A handler that takes submissions: it records the fields it was given and answers `answer`,
/// or never answers (`None`).
struct Taker {
    given: std::sync::Mutex<Vec<Vec<crate::rest::RequestField>>>,
    answer: Option<fn() -> Result<Answered, CommandError>>,
}

impl Handler for Taker {
    fn takes(&self, _: &Call<'_>, _: &CommandRequest) -> bool {
        true
    }
    fn run<'a>(
        &'a self,
        _: &'a Call<'_>,
        req: &'a CommandRequest,
    ) -> super::super::stream::StreamFuture<'a, Result<Answered, CommandError>> {
        self.given.lock().unwrap().push(req.fields.clone());
        Box::pin(async move {
            match self.answer {
                Some(answer) => answer(),
                None => std::future::pending().await,
            }
        })
    }
    fn takes_submission(&self) -> bool {
        true
    }
}

fn taker(answer: Option<fn() -> Result<Answered, CommandError>>) -> Taker {
    Taker {
        given: Default::default(),
        answer,
    }
}

fn sent_actions(fake: &Fake) -> Vec<Option<String>> {
    fake.sent().into_iter().map(|(_, c)| c.action).collect()
}

#[tokio::test]
async fn a_handler_that_takes_submissions_answers_the_step_and_the_session_is_cancelled() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let done = taker(Some(|| {
        Ok(Answered {
            doc: crate::rest::CommandResponse::default(),
            outcome: crate::adhoc::Outcome::Ended(vec![]),
        })
    }));
    let to = |_: &str| Some(&done as &dyn Handler);
    let id = open(&stages, &ctx);
    let r = stages
        .resume(&ctx.call(true), &resume_req(&id, Some("complete")), &to)
        .await;
    assert_eq!(
        r.expect("answered").outcome,
        crate::adhoc::Outcome::Ended(vec![])
    );
    // The filled form: the client's field, as the stage's form has it.
    let given = done.given.lock().unwrap().clone();
    assert_eq!(given.len(), 1);
    let jid = given[0]
        .iter()
        .find(|f| f.var == "accountjid")
        .expect("the field");
    assert_eq!(
        jid.value.as_ref().map(|v| v.as_slice().to_vec()),
        Some(vec!["new@x.test".to_string()])
    );
    fake::settle().await;
    assert_eq!(
        sent_actions(&fake),
        [Some("cancel".into())],
        "nothing submitted, the session cancelled"
    );
    let again = stages
        .resume(&ctx.call(true), &resume_req(&id, None), &to)
        .await;
    assert!(
        matches!(again, Err(CommandError::UnknownSession)),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_handlers_field_error_keeps_the_session_and_a_cancel_still_reaches_the_server() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let refuses = taker(Some(|| {
        Err(crate::adhoc::form::FieldError {
            field: "accountjid".into(),
            text: "not an account JID".into(),
        }
        .into())
    }));
    let to = |_: &str| Some(&refuses as &dyn Handler);
    let id = open(&stages, &ctx);
    let r = stages
        .resume(&ctx.call(true), &resume_req(&id, None), &to)
        .await;
    assert!(matches!(r, Err(CommandError::Field(_))), "{r:?}");
    fake::settle().await;
    assert!(fake.sent().is_empty(), "{:?}", fake.sent());
    // Still open: a cancel goes to the server, not to the handler.
    let r = stages
        .resume(&ctx.call(true), &resume_req(&id, Some("cancel")), &to)
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(refuses.given.lock().unwrap().len(), 1);
    assert_eq!(sent_actions(&fake), [Some("cancel".into())]);
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_while_the_handler_works_cancels_the_session() {
    let fake = server("admin@x.test/xrg-1");
    let ctx = Ctx::new(&fake);
    let stages = Stages::new(Duration::from_secs(60));
    let stuck = taker(None);
    let to = |_: &str| Some(&stuck as &dyn Handler);
    let id = open(&stages, &ctx);
    let (call, req) = (ctx.call(true), resume_req(&id, None));
    let step = stages.resume(&call, &req, &to);
    let cut = tokio::time::timeout(Duration::from_secs(1), step).await;
    assert!(cut.is_err(), "the handler never answers");
    fake::settle().await;
    assert_eq!(sent_actions(&fake), [Some("cancel".into())]);
    assert_eq!(stages.open.len(), 0);
}
