//! `Policy`: admission by token, node and domain rules, account rules, reloads.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_xmpp::parsers::jid::BareJid;

use super::cli::new_secret;
use super::file_tests::EXAMPLE;
use super::watch::Taken;
use super::*;

const ADMIN: &str = "http://jabber.org/protocol/admin#";

fn jid(s: &str) -> BareJid {
    BareJid::new(s).expect("test JID")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn node(short: &str) -> String {
    format!("{ADMIN}{short}")
}

fn in_net() -> IpAddr {
    ip("192.0.2.10")
}

/// The documented example; its token's secret is "test".
fn example() -> Policy {
    Policy::from_text(EXAMPLE, false).expect("example")
}

fn forbidden(r: Result<impl std::fmt::Debug, Refusal>) -> String {
    match r {
        Err(Refusal::Forbidden(m)) => m,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

fn invalid(r: Result<impl std::fmt::Debug, Refusal>) -> String {
    match r {
        Err(Refusal::InvalidToken(m)) => m,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

#[test]
fn without_an_access_file_everything_is_todays_behaviour() {
    let p = Policy::open();
    let admin = jid("admin@example.org");
    let g = p
        .admit(None, Some("anything"), Some(&admin), in_net())
        .expect("ignored");
    assert_eq!(g.token, None);
    let g = p
        .admit(None, None, Some(&admin), in_net())
        .expect("allowed");
    assert_eq!(p.may_run(&g, &admin, &node("shutdown"), &["x.org"]), Ok(()));
    assert!(p.shows(&g, &admin, &node("delete-user")));
    assert_eq!(p.may_stream(&g), Ok(()));
    invalid(p.admit(Some("xrg_x"), None, None, in_net()));
    assert!(!p.reload());
}

#[test]
fn bearer_acts_as_the_tokens_account_under_its_rules() {
    let p = example();
    let g = p
        .admit(Some("test"), None, None, in_net())
        .expect("admitted");
    assert_eq!(g.token.as_deref(), Some("helpdesk"));
    let acting = jid("helpdesk@example.org");
    assert_eq!(g.bearer_account.as_ref(), Some(&acting));
    let eus = node("end-user-session");
    assert_eq!(p.may_run(&g, &acting, &eus, &["example.org"]), Ok(()));
    let m = forbidden(p.may_run(&g, &acting, &node("user-stats2"), &["example.org"]));
    assert!(m.contains("is not allowed for token helpdesk"), "{m}");
    forbidden(p.may_run(&g, &acting, &node("delete-user"), &["example.org"]));
    let m = forbidden(p.may_run(&g, &acting, &eus, &["example.org", "Other.org"]));
    assert!(m.contains("domain Other.org"), "{m}");
    assert!(p.shows(&g, &acting, &node("user-stats")));
    assert!(!p.shows(&g, &acting, &node("delete-user")));
    let m = forbidden(p.may_stream(&g));
    assert!(m.contains("POST /rest/stream/"), "{m}");
}

#[test]
fn unknown_tokens_are_invalid_and_the_message_has_no_secret() {
    let p = example();
    let m = invalid(p.admit(Some("xrg_wrong"), None, None, in_net()));
    assert!(!m.contains("xrg_wrong"), "{m}");
    invalid(p.admit(
        None,
        Some("xrg_wrong"),
        Some(&jid("helpdesk@example.org")),
        in_net(),
    ));
}

#[test]
fn a_client_outside_the_networks_is_forbidden() {
    let p = example();
    let m = forbidden(p.admit(Some("test"), None, None, ip("198.51.100.1")));
    assert!(m.contains("198.51.100.1") && m.contains("helpdesk"), "{m}");
    assert!(p
        .admit(Some("test"), None, None, ip("::ffff:192.0.2.1"))
        .is_ok());
    assert!(p.admit(Some("test"), None, None, ip("2001:db8::5")).is_ok());
}

fn one_token(extra: &str) -> (Policy, String) {
    let (secret, hash) = new_secret();
    let text = format!("[[token]]\nname = \"t1\"\nsecret_sha256 = \"{hash}\"\n{extra}\n");
    (Policy::from_text(&text, false).expect("policy"), secret)
}

#[test]
fn an_expired_token_is_invalid() {
    let (p, s) = one_token("account = \"a@b\"\nexpires = \"2001-01-01T00:00:00Z\"");
    let m = invalid(p.admit(Some(&s), None, None, in_net()));
    assert!(m.contains("t1 has expired"), "{m}");
    let (p, s) = one_token("account = \"a@b\"\nexpires = \"2999-01-01T00:00:00+02:00\"");
    assert!(p.admit(Some(&s), None, None, in_net()).is_ok());
}

#[test]
fn a_token_without_account_cannot_be_a_bearer_but_gates_any_basic_account() {
    let (p, s) = one_token("allow = [\"*\"]");
    let m = forbidden(p.admit(Some(&s), None, None, in_net()));
    assert!(m.contains("names no account"), "{m}");
    let admin = jid("admin@x.org");
    let g = p
        .admit(None, Some(&s), Some(&admin), in_net())
        .expect("api-key");
    assert_eq!(g.token.as_deref(), Some("t1"));
    assert_eq!(g.bearer_account, None);
}

#[test]
fn an_api_key_naming_an_account_must_go_with_that_basic_account() {
    let p = example();
    let right = jid("helpdesk@example.org");
    let g = p
        .admit(None, Some("test"), Some(&right), in_net())
        .expect("same account");
    assert_eq!(g.bearer_account, None);
    assert_eq!(g.token.as_deref(), Some("helpdesk"));
    let m = forbidden(p.admit(None, Some("test"), Some(&jid("ops@example.org")), in_net()));
    assert!(
        m.contains("names account helpdesk@example.org, not ops@example.org"),
        "{m}"
    );
    forbidden(p.admit(None, Some("test"), None, in_net()));
}

#[test]
fn the_token_without_allow_may_run_nothing() {
    let (p, s) = one_token("account = \"a@b\"");
    let g = p.admit(Some(&s), None, None, in_net()).expect("admitted");
    forbidden(p.may_run(&g, &jid("a@b"), &node("user-stats"), &[]));
    assert!(!p.shows(&g, &jid("a@b"), &node("user-stats")));
}

#[test]
fn require_api_key_refuses_basic_without_one() {
    let p = Policy::from_text(EXAMPLE, true).expect("policy");
    let ops = jid("ops@example.org");
    let m = invalid(p.admit(None, None, Some(&ops), in_net()));
    assert!(m.contains("api-key is required"), "{m}");
    assert!(p
        .admit(
            None,
            Some("test"),
            Some(&jid("helpdesk@example.org")),
            in_net()
        )
        .is_ok());
    assert!(p.admit(Some("test"), None, None, in_net()).is_ok());
}

#[test]
fn account_rules_apply_to_basic_and_to_tokens_acting_as_that_account() {
    let p = example();
    let ops = jid("ops@example.org");
    let g = p.admit(None, None, Some(&ops), in_net()).expect("basic");
    let m = forbidden(p.may_run(&g, &ops, &node("delete-user"), &["example.org"]));
    assert!(m.contains("not allowed for account ops@example.org"), "{m}");
    assert_eq!(
        p.may_run(&g, &ops, &node("user-stats"), &["any.org"]),
        Ok(())
    );
    assert!(!p.shows(&g, &ops, &node("shutdown")));
    // an account without [[account]] keeps today's behaviour
    let other = jid("admin@example.org");
    assert_eq!(p.may_run(&g, &other, &node("shutdown"), &[]), Ok(()));
    // token and account rules must both allow
    let text = format!(
        "[[token]]\nname = \"o\"\nsecret_sha256 = \"{}\"\naccount = \"ops@example.org\"\n\
         allow = [\"*\"]\n[[account]]\njid = \"ops@example.org\"\nallow = [\"*\"]\n\
         deny = [\"delete-user\"]\n",
        super::file_tests::HASH
    );
    let p = Policy::from_text(&text, false).expect("policy");
    let g = p.admit(Some("test"), None, None, in_net()).expect("bearer");
    forbidden(p.may_run(&g, &ops, &node("delete-user"), &[]));
    assert_eq!(p.may_run(&g, &ops, &node("shutdown"), &[]), Ok(()));
}

#[test]
fn a_rate_refuses_beyond_its_burst_with_the_wait() {
    let (p, s) = one_token("account = \"a@b\"\nrate = \"2/m\"");
    assert!(p.admit(Some(&s), None, None, in_net()).is_ok());
    assert!(p.admit(Some(&s), None, None, in_net()).is_ok());
    match p.admit(Some(&s), None, None, in_net()) {
        Err(Refusal::RateLimited(wait)) => {
            assert!(
                wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
                "{wait:?}"
            )
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // refused requests spend nothing of the budget
    let (p, s) = one_token("account = \"a@b\"\nrate = \"1/h\"\nfrom = [\"10.0.0.0/8\"]");
    forbidden(p.admit(Some(&s), None, None, in_net()));
    assert!(p.admit(Some(&s), None, None, ip("10.1.2.3")).is_ok());
}

fn temp_file(tag: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xrg-policy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    let p = d.join("access.toml");
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn load_names_the_file_and_a_bad_reload_keeps_the_old_rules() {
    let e = Policy::load(&PathBuf::from("/nonexistent/xrg-access.toml"), false)
        .expect_err("missing file");
    assert!(e.contains("/nonexistent/xrg-access.toml"), "{e}");
    let path = temp_file("reload", EXAMPLE);
    let p = Policy::load(&path, false).expect("loads");
    assert!(p.admit(Some("test"), None, None, in_net()).is_ok());
    std::fs::write(&path, "[[token]]\nnme = \"x\"\n").expect("break");
    let bad = Policy::load(&path, false).expect_err("bad file refused");
    assert!(bad.contains("nme") && bad.contains("access.toml"), "{bad}");
    assert!(!p.reload(), "a bad file is not applied");
    assert!(
        p.admit(Some("test"), None, None, in_net()).is_ok(),
        "old rules stay"
    );
    std::fs::remove_file(&path).expect("remove");
    assert!(!p.reload());
    assert!(
        p.admit(Some("test"), None, None, in_net()).is_ok(),
        "old rules stay"
    );
    std::fs::write(&path, "").expect("truncate");
    assert!(!p.reload(), "an empty file is refused");
    assert!(p.admit(Some("test"), None, None, in_net()).is_ok());
    std::fs::write(&path, " \n\t\n").expect("blank");
    assert!(!p.reload(), "white space alone is empty");
    assert!(p.admit(Some("test"), None, None, in_net()).is_ok());
    std::fs::write(&path, "# no tokens\n").expect("revoke all");
    assert!(p.reload(), "a comment alone means no rules");
    invalid(p.admit(Some("test"), None, None, in_net()));
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

#[test]
fn an_empty_file_is_refused_at_start() {
    for text in ["", "\n  \n"] {
        let path = temp_file("empty", text);
        let e = Policy::load(&path, false).expect_err("empty refused");
        assert!(e.contains("empty") && e.contains("access.toml"), "{e}");
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
    let path = temp_file("comment", "# nothing yet\n");
    assert!(Policy::load(&path, false).is_ok(), "a comment alone loads");
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

/// The settle time: a poll takes a changed file in only when the next poll finds it the same;
/// a truncated file, however long it stays, is refused once (logged, counted) and the rules
/// stay; the file written whole afterwards is taken in.
#[test]
fn a_changed_file_is_taken_in_only_once_it_has_settled() {
    let (secret, hash) = new_secret();
    let entry = |name: &str| {
        format!("[[token]]\nname = \"{name}\"\nsecret_sha256 = \"{hash}\"\naccount = \"a@b\"\n")
    };
    let path = temp_file("settle", &entry("one"));
    let p = Policy::load(&path, false).expect("loads");
    let name = |p: &Policy| p.admit(Some(&secret), None, None, in_net()).ok()?.token;
    assert_eq!(p.poll_now(), Taken::Unchanged);

    std::fs::write(&path, entry("two")).expect("write");
    assert_eq!(p.poll_now(), Taken::Settling, "first seen: not read yet");
    assert_eq!(name(&p).as_deref(), Some("one"));
    assert_eq!(p.poll_now(), Taken::Applied, "the same on the next poll");
    assert_eq!(name(&p).as_deref(), Some("two"));

    // A write in the middle of the settle time starts it again.
    std::fs::write(&path, entry("three")).expect("write");
    assert_eq!(p.poll_now(), Taken::Settling);
    std::fs::write(&path, entry("four")).expect("write");
    assert_eq!(p.poll_now(), Taken::Settling, "changed again: waits again");
    assert_eq!(name(&p).as_deref(), Some("two"));
    assert_eq!(p.poll_now(), Taken::Applied);
    assert_eq!(name(&p).as_deref(), Some("four"));

    std::fs::write(&path, "").expect("truncate");
    assert_eq!(p.poll_now(), Taken::Settling);
    assert_eq!(p.poll_now(), Taken::Refused, "logged and counted once");
    assert_eq!(p.poll_now(), Taken::Unchanged, "not again every second");
    assert_eq!(name(&p).as_deref(), Some("four"), "the rules in force stay");

    std::fs::write(&path, entry("five")).expect("write");
    assert_eq!(p.poll_now(), Taken::Settling);
    assert_eq!(p.poll_now(), Taken::Applied);
    assert_eq!(name(&p).as_deref(), Some("five"));
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

#[test]
fn a_fifo_in_place_of_the_access_file_is_refused_and_the_rules_stay() {
    let path = temp_file("fifo", EXAMPLE);
    let p = Policy::load(&path, false).expect("loads");
    std::fs::remove_file(&path).expect("remove");
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A blocking open would wait here for a writer that never comes.
    assert!(!p.reload(), "nothing is read from a FIFO");
    assert!(
        p.admit(Some("test"), None, None, in_net()).is_ok(),
        "old rules stay"
    );
    let e = Policy::load(&path, false).expect_err("a FIFO is no access file");
    assert!(e.contains("not a regular file"), "{e}");
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

/// Polling and SIGHUP in one test: a SIGHUP reaches every watcher in the process, so a
/// parallel test raising it would let a broken poll pass unnoticed.
#[tokio::test]
async fn watch_applies_a_revoke_within_three_seconds_and_at_once_on_sighup() {
    polling_applies_a_revoke_within_three_seconds().await;
    sighup_reloads_at_once().await;
}

async fn polling_applies_a_revoke_within_three_seconds() {
    let (secret, hash) = new_secret();
    let text = format!("[[token]]\nname = \"w\"\nsecret_sha256 = \"{hash}\"\naccount = \"a@b\"\n");
    let path = temp_file("watch", &text);
    let p = Arc::new(Policy::load(&path, false).expect("loads"));
    let watcher = tokio::spawn(p.clone().watch());
    assert!(p.admit(Some(&secret), None, None, in_net()).is_ok());
    // same length, so only the content hash (or mtime) tells the change
    std::fs::write(&path, text.replace("name = \"w\"", "name = \"v\"")).expect("rename");
    let started = Instant::now();
    loop {
        match p.admit(Some(&secret), None, None, in_net()) {
            Ok(g) if g.token.as_deref() == Some("v") => break,
            _ if started.elapsed() > Duration::from_millis(3_500) => panic!("change not seen"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    std::fs::write(&path, "# revoked\n").expect("revoke");
    let started = Instant::now();
    while p.admit(Some(&secret), None, None, in_net()).is_ok() {
        assert!(
            started.elapsed() < Duration::from_millis(3_500),
            "revoke not seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

async fn sighup_reloads_at_once() {
    // Our own SIGHUP listener first: from then on the signal cannot end the test process,
    // whatever the order in which the watcher starts.
    let mut own = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("SIGHUP listener");
    let (secret, hash) = new_secret();
    let text = format!("[[token]]\nname = \"h\"\nsecret_sha256 = \"{hash}\"\naccount = \"a@b\"\n");
    let path = temp_file("sighup", &text);
    let p = Arc::new(Policy::load(&path, false).expect("loads"));
    // Polling once an hour: only the signal can bring the change in during this test.
    let watcher = tokio::spawn(p.clone().watch_every(Duration::from_secs(3600)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&path, "# revoked\n").expect("revoke");
    assert!(p.admit(Some(&secret), None, None, in_net()).is_ok());
    // SAFETY: raise only sends a signal to this process; a handler is installed above.
    assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
    own.recv().await;
    let started = Instant::now();
    while p.admit(Some(&secret), None, None, in_net()).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

#[test]
fn account_jids_match_after_normalisation() {
    let p = Policy::from_text(
        "[[account]]\njid = \"Ops@Example.ORG\"\nallow = [\"*\"]\ndeny = [\"shutdown\"]\n",
        false,
    )
    .expect("policy");
    let ops = jid("ops@example.org");
    let g = p.admit(None, None, Some(&ops), in_net()).expect("basic");
    forbidden(p.may_run(&g, &ops, &node("shutdown"), &[]));
}

/// A final dot is stripped before any rule matches, whoever wrote it: the request's target,
/// the token's `domains`, an `[[account]]` JID.
#[test]
fn a_final_dot_never_changes_what_a_rule_matches() {
    let (secret, hash) = new_secret();
    let p = Policy::from_text(
        &format!(
            "[[token]]\nname = \"t\"\nsecret_sha256 = \"{hash}\"\nallow = [\"*\"]\n\
             domains = [\"Example.ORG.\"]\n\
             [[account]]\njid = \"ops@example.org.\"\nallow = [\"*\"]\ndeny = [\"shutdown\"]\n"
        ),
        false,
    )
    .expect("policy");
    let ops = jid("ops@example.org");
    let g = p
        .admit(None, Some(&secret), Some(&ops), in_net())
        .expect("api-key");
    for target in ["example.org", "example.org.", "EXAMPLE.org."] {
        assert!(
            p.may_run(&g, &ops, &node("user-stats"), &[target]).is_ok(),
            "{target}"
        );
    }
    forbidden(p.may_run(&g, &ops, &node("user-stats"), &["other.org."]));
    forbidden(p.may_run(&g, &ops, &node("shutdown"), &["example.org"]));
}
