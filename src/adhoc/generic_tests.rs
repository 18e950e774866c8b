use super::*;
use crate::adhoc::fake::{self, completed, executing, field, noted, request, Ctx, Fake};
use crate::adhoc::xep0050::Field;

const NODE: &str = "http://jabber.org/protocol/admin#change-user-password";

fn password_form() -> Vec<Field> {
    vec![
        field("FORM_TYPE", "hidden", &["http://jabber.org/protocol/admin"]),
        required("accountjid", "jid-single"),
        required("password", "text-private"),
    ]
}

fn required(var: &str, type_: &str) -> Field {
    let mut f = field(var, type_, &[]);
    f.required = true;
    f
}

/// A server that asks for the form on a bare execute and completes a submission.
fn two_stage() -> std::sync::Arc<Fake> {
    Fake::new("admin@x.test/xrg-1", |_, cmd| {
        match (&cmd.form, &cmd.action) {
            (None, Some(a)) if a == "execute" => executing(NODE, "sid-1", password_form()),
            (None, _) => completed(NODE, vec![]), // a cancel
            (Some(_), _) => noted(NODE, "info", "Password successfully changed"),
        }
    })
}

const FIELDS: &[(&str, &[&str])] = &[("accountjid", &["u@x.test"]), ("password", &["s3cret"])];

#[tokio::test]
async fn a_remembered_form_makes_the_next_command_one_round_trip() {
    let fake = two_stage();
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let req = request(NODE, FIELDS);
    let doc = generic
        .run(&ctx.call(false), NODE, &req, &stages)
        .await
        .unwrap()
        .doc;
    assert_eq!(doc.note.unwrap().value, "Password successfully changed");
    assert_eq!(fake.sent().len(), 2, "execute, then the filled form");
    let submitted = &fake.sent()[1].1;
    assert_eq!(submitted.sessionid.as_deref(), Some("sid-1"));
    assert_eq!(fake::submitted(submitted, "password"), ["s3cret"]);

    generic
        .run(&ctx.call(false), NODE, &req, &stages)
        .await
        .unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 3, "one IQ the second time");
    assert!(sent[2].1.sessionid.is_none() && sent[2].1.form.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_form_unused_for_its_ttl_is_learnt_afresh() {
    let fake = two_stage();
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let req = request(NODE, FIELDS);
    let call = ctx.call(false);
    let run = || generic.run(&call, NODE, &req, &stages);
    run().await.unwrap();
    tokio::time::advance(FORM_TTL - Duration::from_secs(1)).await;
    run().await.unwrap();
    assert_eq!(fake.sent().len(), 3, "still known: one IQ");
    tokio::time::advance(FORM_TTL).await;
    generic.sweep();
    assert!(generic.forms.is_empty());
    run().await.unwrap();
    assert_eq!(
        fake.sent().len(),
        5,
        "forgotten: execute, then the filled form"
    );
}

#[tokio::test]
async fn a_command_that_takes_its_form_only_in_a_session_is_always_run_in_two_steps() {
    // Prosody's mod_announce: a submission without a session is answered with the form.
    let fake = Fake::new("admin@x.test/xrg-1", |_, cmd| {
        match (&cmd.form, &cmd.sessionid) {
            (Some(_), Some(_)) => noted(NODE, "info", "Announcement sent"),
            (None, Some(_)) => completed(NODE, vec![]), // a cancel
            (_, None) => executing(NODE, "sid-1", password_form()),
        }
    });
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let req = request(NODE, FIELDS);
    for round in 0..3 {
        let doc = generic
            .run(&ctx.call(false), NODE, &req, &stages)
            .await
            .unwrap()
            .doc;
        let note = doc.note.map(|n| n.value);
        assert_eq!(note.as_deref(), Some("Announcement sent"), "round {round}");
    }
    let sent = fake.sent();
    // Round 1: execute + submit (form learnt); round 2: the one-IQ submission is answered
    // with the form, which is then filled in its session; round 3: two steps at once.
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent[2].1.sessionid.is_none() && sent[2].1.form.is_some());
    assert_eq!(sent[3].1.sessionid.as_deref(), Some("sid-1"));
    assert!(sent[4].1.form.is_none() && sent[5].1.sessionid.is_some());
}

#[tokio::test]
async fn a_form_request_is_answered_and_its_session_cancelled() {
    let fake = two_stage();
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let doc = generic
        .run(&ctx.call(false), NODE, &request(NODE, &[]), &stages)
        .await
        .unwrap()
        .doc;
    assert_eq!(doc.status.as_deref(), Some("executing"));
    assert!(doc.sessionid.is_none(), "nothing kept");
    fake::settle().await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].1.action.as_deref(), Some("cancel"));
    assert_eq!(sent[1].1.sessionid.as_deref(), Some("sid-1"));
}

#[tokio::test]
async fn a_field_the_form_lacks_is_400_and_the_session_cancelled() {
    let fake = two_stage();
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let req = request(NODE, &[("accountjid", &["u@x.test"]), ("pasword", &["x"])]);
    match generic.run(&ctx.call(false), NODE, &req, &stages).await {
        Err(CommandError::Field(e)) => assert_eq!(e.field, "pasword"),
        other => panic!("{other:?}"),
    }
    fake::settle().await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "execute, then cancel; never a submission");
    assert_eq!(sent[1].1.action.as_deref(), Some("cancel"));
}

#[tokio::test]
async fn a_jid_list_over_the_bound_is_refused_before_submitting() {
    let node = "http://jabber.org/protocol/admin#delete-user";
    let fake = Fake::new("admin@x.test/xrg-1", move |_, cmd| match &cmd.form {
        None if cmd.action.as_deref() == Some("execute") => {
            executing(node, "sid-2", vec![required("accountjids", "jid-multi")])
        }
        _ => completed(node, vec![]),
    });
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let jids: Vec<String> = (0..101).map(|i| format!("u{i}@x.test")).collect();
    let jids: Vec<&str> = jids.iter().map(String::as_str).collect();
    let req = request(node, &[("accountjids", &jids)]);
    match generic.run(&ctx.call(false), node, &req, &stages).await {
        Err(CommandError::Field(e)) => assert_eq!(e.field, "accountjids"),
        other => panic!("{other:?}"),
    }
    fake::settle().await;
    assert!(
        fake.sent().iter().all(|(_, c)| c.form.is_none()),
        "nothing submitted"
    );
}

#[tokio::test]
async fn fields_sent_to_a_command_without_input_are_named_in_a_warning() {
    let node = "http://jabber.org/protocol/admin#get-online-users-num";
    let fake = Fake::new("admin@x.test/xrg-1", move |_, _| {
        completed(node, vec![field("onlineusersnum", "text-single", &["3"])])
    });
    let ctx = Ctx::new(&fake);
    let (generic, stages) = (Generic::default(), Stages::new(Duration::from_secs(60)));
    let req = request(node, &[("max_items", &["25"])]);
    let answered = generic
        .run(&ctx.call(false), node, &req, &stages)
        .await
        .unwrap();
    // The outcome says it as a type: nothing reads the note's words.
    assert_eq!(
        answered.outcome,
        crate::adhoc::Outcome::IgnoredFields(vec!["max_items".into()])
    );
    let without = generic
        .run(&ctx.call(false), node, &request(node, &[]), &stages)
        .await
        .unwrap();
    assert_eq!(
        without.outcome,
        crate::adhoc::Outcome::Completed { says: None }
    );
    let note = answered.doc.note.unwrap();
    assert_eq!(note.type_, "warn");
    assert!(note.value.contains("max_items"), "{}", note.value);
    assert_eq!(fake.sent().len(), 2);
}
