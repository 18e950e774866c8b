use super::*;
use crate::rest::{FieldValue, RequestField};

fn req(fields: Vec<(&str, FieldValue)>) -> CommandRequest {
    CommandRequest {
        node: Some(END_USER_SESSION.into()),
        fields: fields
            .into_iter()
            .map(|(var, v)| RequestField {
                var: var.into(),
                value: Some(v),
            })
            .collect(),
        ..CommandRequest::default()
    }
}

#[test]
fn both_field_names_are_read_in_order_without_repeats() {
    let r = req(vec![
        (
            "accountjids",
            FieldValue::List(vec!["b@x".into(), "a@x/r".into(), "b@x".into()]),
        ),
        ("accountjid", FieldValue::Single("c@x".into())),
        ("reason", FieldValue::Single("maintenance".into())),
    ]);
    let jids: Vec<String> = requested_jids(&r, 100)
        .unwrap()
        .iter()
        .map(|j| j.to_string())
        .collect();
    assert_eq!(jids, ["b@x", "a@x/r", "c@x"]);
}

#[test]
fn more_jids_than_the_bound_name_the_field() {
    let jids = |n: usize| FieldValue::List((0..n).map(|i| format!("u{i}@x")).collect());
    assert_eq!(
        requested_jids(&req(vec![("accountjids", jids(100))]), 100)
            .unwrap()
            .len(),
        100
    );
    match requested_jids(&req(vec![("accountjids", jids(101))]), 100) {
        Err(CommandError::Field(e)) => assert_eq!(e.field, "accountjids"),
        other => panic!("{other:?}"),
    }
    // Repeats are one JID: they cost nothing.
    let repeated = FieldValue::List(vec!["u@x".to_string(); 500]);
    assert_eq!(
        requested_jids(&req(vec![("accountjids", repeated)]), 100)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_bad_or_missing_jid_names_the_field() {
    let r = req(vec![("accountjid", FieldValue::Single("@@bad jid".into()))]);
    match requested_jids(&r, 100) {
        Err(CommandError::Field(e)) => assert_eq!(e.field, "accountjid"),
        other => panic!("{other:?}"),
    }
    let r = req(vec![("accountjids", FieldValue::List(vec![]))]);
    assert!(matches!(
        requested_jids(&r, 100),
        Err(CommandError::Field(_))
    ));
    let r = req(vec![(
        "accountjids",
        FieldValue::Single("domain.com".into()),
    )]);
    assert!(matches!(
        requested_jids(&r, 100),
        Err(CommandError::Field(_))
    ));
}

mod planning {
    use super::super::*;
    use crate::adhoc::fake::{self, completed, forbidden, request, user_stats, Ctx, Fake};
    use crate::adhoc::USER_STATS;
    use std::sync::{Arc, Mutex};

    /// A server where `online` lists each account's resources and end-user-session succeeds.
    fn server(own: &str, online: &'static [(&'static str, &'static [&'static str])]) -> Arc<Fake> {
        Fake::new(own, move |_, cmd| {
            if cmd.node == USER_STATS {
                let account = fake::submitted(cmd, "accountjid").concat();
                let listed = online
                    .iter()
                    .find(|(a, _)| *a == account)
                    .map(|(_, r)| *r)
                    .unwrap_or_default();
                user_stats(listed)
            } else {
                completed(END_USER_SESSION, vec![])
            }
        })
    }

    fn lines(doc: &CommandResponse) -> Vec<String> {
        doc.fields.iter().flat_map(|f| f.values.clone()).collect()
    }

    async fn end(fake: &Arc<Fake>, jids: &[&str]) -> Result<CommandResponse, CommandError> {
        let ctx = Ctx::new(fake);
        let recent = RecentKicks::default();
        run(
            &ctx.call(false),
            &request(END_USER_SESSION, &[("accountjids", jids)]),
            &recent,
        )
        .await
        .map(|a| a.doc)
    }

    #[tokio::test]
    async fn the_resources_listed_first_are_the_lines() {
        let fake = server("admin@x.test/xrg-1", &[("u@x.test", &["phone", "laptop"])]);
        let doc = end(&fake, &["u@x.test"]).await.unwrap();
        assert_eq!(
            lines(&doc),
            [
                "Operation successful for user u@x.test/phone",
                "Operation successful for user u@x.test/laptop"
            ]
        );
        assert_eq!(fake.batches(), [2], "user-stats and the command, pipelined");
        let sent = fake.sent();
        assert_eq!(sent[1].1.node, END_USER_SESSION);
        assert_eq!(fake::submitted(&sent[1].1, "accountjids"), ["u@x.test"]);
        assert_eq!(fake::submitted(&sent[1].1, "accountjid"), ["u@x.test"]);
    }

    #[tokio::test]
    async fn several_accounts_go_after_the_first_in_the_order_given() {
        let fake = server(
            "admin@x.test/xrg-1",
            &[
                ("a@x.test", &["r1"]),
                ("b@x.test", &["r2"]),
                ("c@x.test", &[]),
            ],
        );
        let doc = end(&fake, &["b@x.test", "c@x.test", "a@x.test", "b@x.test/r2"])
            .await
            .unwrap();
        assert_eq!(
            lines(&doc),
            [
                "Operation successful for user b@x.test/r2",
                "Operation successful for user a@x.test/r1"
            ]
        );
        let batches = fake.batches();
        assert_eq!(batches[..2], [2, 1], "b's pair alone, then its second JID");
        assert_eq!(batches.iter().sum::<usize>(), 7);
    }

    #[tokio::test]
    async fn the_admins_own_stream_is_spared() {
        let fake = server(
            "admin@x.test/xrg-1",
            &[("admin@x.test", &["xrg-1", "phone"])],
        );
        let doc = end(&fake, &["admin@x.test"]).await.unwrap();
        assert_eq!(
            lines(&doc),
            ["Operation successful for user admin@x.test/phone"]
        );
        let kicked: Vec<Vec<String>> = fake
            .sent()
            .iter()
            .filter(|(_, c)| c.node == END_USER_SESSION)
            .map(|(_, c)| fake::submitted(c, "accountjids"))
            .collect();
        assert_eq!(
            kicked,
            [["admin@x.test/phone"]],
            "never the bare account, never xrg-1"
        );
    }

    /// A server listing `online` (owned resources) whose end-user-session succeeds.
    fn listing(own: &str, online: Vec<(&'static str, Vec<String>)>) -> Arc<Fake> {
        Fake::new(own, move |_, cmd| {
            if cmd.node == USER_STATS {
                let account = fake::submitted(cmd, "accountjid").concat();
                let listed: Vec<&str> = online
                    .iter()
                    .filter(|(a, _)| *a == account)
                    .flat_map(|(_, r)| r.iter().map(String::as_str))
                    .collect();
                user_stats(&listed)
            } else {
                completed(END_USER_SESSION, vec![])
            }
        })
    }

    fn kicked(fake: &Fake) -> Vec<Vec<String>> {
        fake.sent()
            .iter()
            .filter(|(_, c)| c.node == END_USER_SESSION)
            .map(|(_, c)| fake::submitted(c, "accountjids"))
            .collect()
    }

    #[tokio::test]
    async fn every_replicas_stream_is_spared_and_a_forged_mark_is_not() {
        let key = b"0123456789abcdef0123456789abcdef";
        let key = crate::replica::ReplicaKey::parse(key).expect("key");
        let own = OwnStreams::new(Some(Arc::new(key)));
        // Streams another replica holding the same key bound: of a user, and of the admin the
        // command runs as.
        let users = own.resource(&"u@x.test".parse().unwrap());
        let admins = own.resource(&"admin@x.test".parse().unwrap());
        let forged = format!(
            "{}{}",
            &users[..21],
            if users.ends_with('0') { "1" } else { "0" }.repeat(16)
        );
        let online = vec![
            (
                "u@x.test",
                vec![
                    "phone".into(),
                    users.clone(),
                    forged.clone(),
                    "xrg-phone".into(),
                ],
            ),
            (
                "admin@x.test",
                vec!["xrg-1".into(), admins.clone(), "laptop".into()],
            ),
        ];
        let fake = listing("admin@x.test/xrg-1", online);
        let ctx = Ctx::new(&fake);
        let mut call = ctx.call(false);
        call.own = &own;
        let named = [
            "u@x.test".to_string(),
            "admin@x.test".into(),
            format!("u@x.test/{users}"),
            format!("admin@x.test/{admins}"),
        ];
        let named: Vec<&str> = named.iter().map(String::as_str).collect();
        let req = request(END_USER_SESSION, &[("accountjids", &named)]);
        let doc = run(&call, &req, &RecentKicks::default()).await.unwrap().doc;
        let line = |j: &str| format!("Operation successful for user {j}");
        assert_eq!(
            lines(&doc),
            [
                line("u@x.test/phone"),
                line(&format!("u@x.test/{forged}")),
                line("u@x.test/xrg-phone"),
                line("admin@x.test/laptop"),
            ]
        );
        let mut kicked = kicked(&fake).concat();
        kicked.sort();
        let mut expected = [
            "admin@x.test/laptop".to_string(),
            format!("u@x.test/{forged}"),
            "u@x.test/phone".into(),
            "u@x.test/xrg-phone".into(),
        ];
        expected.sort();
        assert_eq!(
            kicked, expected,
            "one full JID at a time, never a bare account, never a replica's stream"
        );
    }

    #[tokio::test]
    async fn without_a_key_this_process_s_other_stream_of_the_account_is_spared() {
        let online = vec![("own-kick@x.test", vec!["phone".into(), "xrg-77".into()])];
        let fake = listing("admin@x.test/xrg-1", online);
        let doc = end(&fake, &["own-kick@x.test"]).await.unwrap();
        assert_eq!(
            lines(&doc).len(),
            2,
            "no stream of this process's: the fast path"
        );
        assert_eq!(kicked(&fake), [["own-kick@x.test"]]);
        // A warm stream of that account in this process, not the one the command runs on.
        let warm = crate::upstream::session::own::Own::register(
            &"own-kick@x.test/xrg-77".parse().unwrap(),
        );
        let fake = listing(
            "admin@x.test/xrg-1",
            vec![("own-kick@x.test", vec!["phone".into(), "xrg-77".into()])],
        );
        let doc = end(&fake, &["own-kick@x.test"]).await.unwrap();
        drop(warm);
        assert_eq!(
            lines(&doc),
            ["Operation successful for user own-kick@x.test/phone"]
        );
        assert_eq!(kicked(&fake), [["own-kick@x.test/phone"]]);
    }

    #[tokio::test]
    async fn a_refusal_of_the_first_account_stops_the_fan_out() {
        let count = Arc::new(Mutex::new(0));
        let c = count.clone();
        let fake = Fake::new("user@x.test/xrg-1", move |_, _| {
            *c.lock().unwrap() += 1;
            forbidden()
        });
        let jids: Vec<String> = (0..50).map(|i| format!("u{i}@x.test")).collect();
        let jids: Vec<&str> = jids.iter().map(String::as_str).collect();
        match end(&fake, &jids).await {
            Err(CommandError::Xmpp { condition, .. }) => {
                assert_eq!(condition, crate::adhoc::DefinedCondition::Forbidden)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            *count.lock().unwrap(),
            2,
            "two IQs, whatever the number of accounts"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_ended_lately_is_not_claimed_twice() {
        let fake = server("admin@x.test/xrg-1", &[("u@x.test", &["phone"])]);
        let ctx = Ctx::new(&fake);
        let recent = RecentKicks::default();
        let req = request(END_USER_SESSION, &[("accountjids", &["u@x.test"])]);
        let first = run(&ctx.call(false), &req, &recent).await.unwrap().doc;
        assert_eq!(lines(&first).len(), 1);
        // The fake still lists `phone` (a session the server is closing): the careful path
        // re-reads for a while, then takes it for a new session under the same name.
        let second = run(&ctx.call(false), &req, &recent).await.unwrap().doc;
        assert_eq!(lines(&second).len(), 1);
        let stats = || {
            fake.sent()
                .iter()
                .filter(|(_, c)| c.node == USER_STATS)
                .count()
        };
        let rereads = (SETTLE_FOR.as_millis() / SETTLE_STEP.as_millis()) as usize;
        assert_eq!(
            stats(),
            2 + rereads,
            "re-read every {SETTLE_STEP:?} for {SETTLE_FOR:?} while it looked like the closing session"
        );
        // Long after the second kick, `phone` is taken for a new session at once.
        tokio::time::advance(REMEMBER_ENDED).await;
        run(&ctx.call(false), &req, &recent).await.unwrap();
        assert_eq!(stats(), 3 + rereads, "read once");
        // Remembered for a while after the third kick, then swept.
        recent.sweep();
        assert_eq!(recent.accounts(), 1);
        tokio::time::advance(REMEMBER_ENDED).await;
        recent.sweep();
        assert!(recent.accounts() == 0);
    }
}
