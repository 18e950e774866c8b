//! `token add|list|revoke`: exact stdout, exit codes, and rewrites that keep the rest.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::cli::{expires_at, run_with, save, TokenCommand};
use super::file;

/// 2026-11-30T00:00:00Z
const NOW: i64 = 1_795_996_800;

#[derive(clap::Parser)]
struct TestCli {
    #[command(subcommand)]
    token: TokenCommand,
}

/// Runs `args` as the words after `token`: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (u8, String, String) {
    let argv = std::iter::once("token").chain(args.iter().copied());
    let cmd = TestCli::try_parse_from(argv)
        .expect("arguments parse")
        .token;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(cmd, &mut out, &mut err, NOW);
    let s = |v: Vec<u8>| String::from_utf8(v).expect("utf-8");
    (code, s(out), s(err))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xrg-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn add_prints_only_the_secret_and_stores_only_its_hash() {
    let d = temp_dir("add");
    let f = d.join("access.toml");
    let (code, out, err) = run(&[
        "add",
        "helpdesk",
        "--access-file",
        p(&f),
        "--account",
        "helpdesk@example.org",
        "--allow",
        "end-user-session",
        "--allow",
        "user-stats",
        "--deny",
        "x",
        "--domain",
        "example.org",
        "--expires",
        "30d",
        "--from",
        "192.0.2.0/24",
        "--from",
        "2001:db8::/32",
        "--stream",
        "--rate",
        "10/s",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    let secret = lines[0];
    assert!(
        secret.starts_with("xrg_") && secret.len() == 4 + 43,
        "{secret}"
    );
    assert!(secret[4..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(err.contains("added token helpdesk"), "{err}");
    let text = std::fs::read_to_string(&f).expect("file");
    assert!(!text.contains(secret), "the secret itself is never stored");
    let mode = std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let (access, rules) = file::read(&f).expect("the gateway accepts it");
    let t = &access.tokens[0];
    assert_eq!(t.expires.as_deref(), Some("2026-12-30T00:00:00Z"));
    assert_eq!(t.domains, Some(vec!["example.org".to_owned()]));
    assert!(t.stream);
    // the policy admits the printed secret
    let policy = super::Policy::load(&f, false).expect("loads");
    let g = policy
        .admit(Some(secret), None, None, "192.0.2.1".parse().expect("ip"))
        .expect("admitted");
    assert_eq!(g.token.as_deref(), Some("helpdesk"));
    assert_eq!(rules.tokens.len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn two_adds_give_different_secrets_and_an_existing_name_is_an_error() {
    let d = temp_dir("dup");
    let f = d.join("access.toml");
    let (c1, s1, _) = run(&["add", "a", "--access-file", p(&f)]);
    let (c2, s2, _) = run(&["add", "b", "--access-file", p(&f), "--allow", "*"]);
    assert_eq!((c1, c2), (0, 0));
    assert_ne!(s1, s2);
    let before = std::fs::read_to_string(&f).expect("file");
    let (code, out, err) = run(&["add", "a", "--access-file", p(&f)]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.contains("a token named a already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&f).expect("file"),
        before,
        "file untouched"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_arguments_are_errors_and_leave_the_file_alone() {
    let d = temp_dir("bad");
    let f = d.join("access.toml");
    for args in [
        &["add", "bad name", "--access-file", p(&f)][..],
        &["add", "t", "--access-file", p(&f), "--from", "nonsense"],
        &["add", "t", "--access-file", p(&f), "--rate", "5/d"],
        &["add", "t", "--access-file", p(&f), "--expires", "tomorrow"],
        &["add", "t", "--access-file", p(&f), "--expires", "0d"],
        &["add", "t", "--access-file", p(&f), "--account", "a@b/res"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(out, "", "{args:?}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    assert!(!f.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn list_shows_columns_and_json_lines_never_hashes() {
    let d = temp_dir("list");
    let f = d.join("access.toml");
    run(&[
        "add",
        "a",
        "--access-file",
        p(&f),
        "--allow",
        "user-stats",
        "--rate",
        "1/m",
    ]);
    run(&[
        "add",
        "b",
        "--access-file",
        p(&f),
        "--account",
        "b@x.org",
        "--allow",
        "*",
        "--deny",
        "shutdown",
        "--deny",
        "restart",
        "--domain",
        "x.org",
        "--expires",
        "2027-01-31T00:00:00Z",
        "--from",
        "10.0.0.0/8",
        "--stream",
    ]);
    let hashes: Vec<String> = file::read(&f)
        .expect("file")
        .0
        .tokens
        .into_iter()
        .map(|t| t.secret_sha256)
        .collect();
    let (code, out, _) = run(&["list", "--access-file", p(&f)]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "a\t-\tuser-stats\t-\t-\t-\t-\tfalse\t1/m\n\
         b\tb@x.org\t*\tshutdown,restart\tx.org\t2027-01-31T00:00:00Z\t10.0.0.0/8\ttrue\t-\n"
    );
    let (code, out, _) = run(&["list", "--access-file", p(&f), "--json"]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!({"name": "a", "account": null, "allow": ["user-stats"], "deny": [],
            "domains": null, "expires": null, "from": null, "stream": false, "rate": "1/m"})
    );
    assert_eq!(lines[1]["deny"], serde_json::json!(["shutdown", "restart"]));
    assert_eq!(lines[1]["stream"], serde_json::json!(true));
    for h in &hashes {
        assert!(!out.contains(h.as_str()));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn revoke_removes_one_token_and_keeps_the_rest_mode_included() {
    let d = temp_dir("revoke");
    let f = d.join("access.toml");
    std::fs::write(
        &f,
        "[[account]]\njid = \"ops@example.org\"\nallow = [\"*\"]\ndeny = [\"shutdown\"]\n",
    )
    .expect("write");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    run(&["add", "a", "--access-file", p(&f)]);
    run(&["add", "b", "--access-file", p(&f)]);
    let (code, out, err) = run(&["revoke", "a", "--access-file", p(&f)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (access, rules) = file::read(&f).expect("file");
    let names: Vec<&str> = access.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["b"]);
    assert_eq!(rules.accounts.len(), 1, "[[account]] rules kept");
    assert_eq!(access.accounts[0].deny, ["shutdown"]);
    let mode = std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode kept");
    let (code, _, err) = run(&["revoke", "a", "--access-file", p(&f)]);
    assert_eq!(code, 1);
    assert!(err.contains("no token named a"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_broken_file_is_not_overwritten() {
    let d = temp_dir("broken");
    let f = d.join("access.toml");
    std::fs::write(&f, "[[token]]\nnme = 1\n").expect("write");
    let (code, out, err) = run(&["add", "a", "--access-file", p(&f)]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("nme"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&f).expect("file"),
        "[[token]]\nnme = 1\n"
    );
    assert_eq!(run(&["list", "--access-file", p(&f)]).0, 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn expires_takes_rfc3339_or_a_lifetime() {
    assert_eq!(expires_at(None, NOW), Ok(None));
    assert_eq!(
        expires_at(Some("30d"), NOW),
        Ok(Some("2026-12-30T00:00:00Z".to_owned()))
    );
    assert_eq!(
        expires_at(Some("12h"), NOW),
        Ok(Some("2026-11-30T12:00:00Z".to_owned()))
    );
    assert_eq!(
        expires_at(Some("2027-01-31T00:00:00+01:00"), NOW),
        Ok(Some("2027-01-31T00:00:00+01:00".to_owned()))
    );
    for bad in ["0d", "-1d", "xd", "2027-01-31", "99999999999999d"] {
        assert!(expires_at(Some(bad), NOW).is_err(), "{bad}");
    }
    // A time already past (or now) would make a token that never works.
    for past in [
        "2026-11-29T23:59:59Z",
        "2026-11-30T00:00:00Z",
        "2001-01-01T00:00:00+02:00",
    ] {
        let e = expires_at(Some(past), NOW).expect_err(past);
        assert!(e.contains("not in the future"), "{e}");
    }
    assert!(expires_at(Some("2026-11-30T00:00:01Z"), NOW).is_ok());
}

#[test]
fn a_file_changed_since_it_was_read_is_not_overwritten() {
    let d = temp_dir("race");
    let f = d.join("access.toml");
    run(&["add", "a", "--access-file", p(&f)]);
    let read = std::fs::read(&f).expect("file");
    let (access, _) = file::read(&f).expect("parses");
    // another `token add` lands between our read and our write
    run(&["add", "b", "--access-file", p(&f)]);
    let e = save(&f, &access, Some(&read)).expect_err("stale read refused");
    assert!(e.contains("changed while this command ran"), "{e}");
    let (now, _) = file::read(&f).expect("parses");
    assert_eq!(now.tokens.len(), 2, "token b kept");
    assert!(save(&f, &now, Some(&std::fs::read(&f).expect("file"))).is_ok());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_past_expiry_is_refused_and_nothing_is_written() {
    let d = temp_dir("past");
    let f = d.join("access.toml");
    let (code, out, err) = run(&[
        "add",
        "old",
        "--access-file",
        p(&f),
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("not in the future"), "{err}");
    assert!(!f.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_empty_file_is_not_added_to_and_revoking_the_last_token_leaves_a_loadable_file() {
    let d = temp_dir("empty");
    let f = d.join("access.toml");
    std::fs::write(&f, "").expect("truncated");
    let (code, _, err) = run(&["add", "a", "--access-file", p(&f)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("empty"), "{err}");
    assert_eq!(std::fs::read(&f).expect("file"), b"", "left alone");
    std::fs::remove_file(&f).expect("remove");
    assert_eq!(run(&["add", "a", "--access-file", p(&f)]).0, 0);
    assert_eq!(run(&["revoke", "a", "--access-file", p(&f)]).0, 0);
    let text = std::fs::read_to_string(&f).expect("file");
    assert!(text.starts_with(file::HEADER), "{text:?}");
    assert!(crate::policy::Policy::load(&f, false).is_ok(), "{text:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The lock is a `flock` on a descriptor of each command's own, so threads of one process take
/// turns as processes do (tests/e2e/tokens.rs runs processes).
#[test]
fn twenty_adds_at_once_leave_twenty_tokens() {
    let d = temp_dir("concurrent");
    let f = d.join("access.toml");
    let codes: Vec<(u8, String)> = std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..20)
            .map(|i| {
                scope.spawn(move || {
                    let name = format!("t{i}");
                    let (code, _, err) = run(&["add", &name, "--access-file", p(f)]);
                    (code, err)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(codes.iter().all(|(c, _)| *c == 0), "{codes:?}");
    let (access, _) = file::read(&f).expect("parses");
    assert_eq!(access.tokens.len(), 20);
    assert!(d.join("access.toml.lock").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_revoke_racing_adds_always_sticks() {
    let d = temp_dir("revoke-race");
    let f = d.join("access.toml");
    for trial in 0..10 {
        let _ = std::fs::remove_file(&f);
        assert_eq!(run(&["add", "victim", "--access-file", p(&f)]).0, 0);
        let codes: Vec<u8> = std::thread::scope(|scope| {
            let f = &f;
            let revoke = scope.spawn(move || run(&["revoke", "victim", "--access-file", p(f)]).0);
            let adds: Vec<_> = (0..3)
                .map(|i| {
                    scope.spawn(move || {
                        let name = format!("n{trial}x{i}");
                        run(&["add", &name, "--access-file", p(f)]).0
                    })
                })
                .collect();
            std::iter::once(revoke)
                .chain(adds)
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(codes, [0, 0, 0, 0], "trial {trial}");
        let (access, _) = file::read(&f).expect("parses");
        let names: Vec<&str> = access.tokens.iter().map(|t| t.name.as_str()).collect();
        assert!(!names.contains(&"victim"), "trial {trial}: {names:?}");
        assert_eq!(names.len(), 3, "trial {trial}: {names:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
