//! The access file's format: the documented example, the checks, and the atomic rewrite.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use tokio_xmpp::parsers::jid::BareJid;

use super::file::*;

pub(super) const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The example of issue 10 item 1, as docs show it.
pub(super) const EXAMPLE: &str = r#"
[[token]]
name = "helpdesk"                          # unique; [A-Za-z0-9_-]{1,64}
secret_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
account = "helpdesk@example.org"           # optional: the account a Bearer token acts as
allow = ["end-user-session", "user-stats"] # short names = http://jabber.org/protocol/admin#NAME;
deny = []                                  # full node strings also; `*` matches any run of characters
domains = ["example.org"]                  # optional: allowed target domains
expires = "2027-01-31T00:00:00Z"           # optional, RFC 3339
from = ["192.0.2.0/24", "2001:db8::/32"]   # optional client networks
stream = false                             # may it use POST /rest/stream/ (default false)
rate = "10/s"

[[account]]                                # rules for Basic credentials
jid = "ops@example.org"
allow = ["*"]
deny = ["shutdown", "restart", "delete-user"]
"#;

fn token_text(extra: &str) -> String {
    format!("[[token]]\nname = \"t\"\nsecret_sha256 = \"{HASH}\"\n{extra}\n")
}

fn error_of(text: &str) -> String {
    parse_and_compile(text).expect_err(text)
}

#[test]
fn the_documented_example_parses_with_every_field() {
    let (file, rules) = parse_and_compile(EXAMPLE).expect("example parses");
    assert_eq!(file.tokens.len(), 1);
    let t = &rules.tokens[0].rules;
    assert_eq!(t.name, "helpdesk");
    assert_eq!(
        t.account,
        Some(BareJid::new("helpdesk@example.org").expect("jid"))
    );
    assert_eq!(t.domains, Some(vec!["example.org".to_owned()]));
    assert_eq!(t.expires, Some(1_801_353_600));
    assert_eq!(t.from.as_ref().map(Vec::len), Some(2));
    assert!(!t.stream);
    assert_eq!(t.rate.map(|r| r.per), Some(10));
    assert_eq!(rules.tokens[0].digest[0], 0x9f);
    assert_eq!(rules.tokens[0].digest[31], 0x08);
    let ops = BareJid::new("ops@example.org").expect("jid");
    let acc = rules.accounts.get(&ops).expect("account rule");
    assert!(acc.permits("http://jabber.org/protocol/admin#end-user-session"));
    assert!(!acc.permits("http://jabber.org/protocol/admin#shutdown"));
}

#[test]
fn an_empty_file_has_no_rules() {
    let (_, rules) = parse_and_compile("").expect("empty parses");
    assert!(rules.tokens.is_empty() && rules.accounts.is_empty());
}

#[test]
fn unknown_keys_are_errors_so_typos_cannot_widen_access() {
    let e = error_of(&token_text("alow = [\"*\"]"));
    assert!(e.contains("alow"), "{e}");
    let e = error_of(&token_text("domain = [\"example.org\"]"));
    assert!(e.contains("domain"), "{e}");
    let e = error_of("[[account]]\njid = \"a@b\"\ndeny_ = [\"x\"]\n");
    assert!(e.contains("deny_"), "{e}");
    let e = error_of("[[tokens]]\nname = \"x\"\n");
    assert!(e.contains("tokens"), "{e}");
}

#[test]
fn token_names_are_checked_and_unique() {
    assert!(valid_name("helpdesk_2-a"));
    assert!(valid_name(&"a".repeat(64)));
    for bad in ["", "a b", "é", "a.b", "a/b"] {
        assert!(!valid_name(bad), "{bad:?}");
    }
    assert!(!valid_name(&"a".repeat(65)));
    let twice = format!(
        "{}[[token]]\nname = \"t\"\nsecret_sha256 = \"{}\"\n",
        token_text(""),
        "0".repeat(64)
    );
    assert!(error_of(&twice).contains("token t: the name is used twice"));
}

#[test]
fn bad_values_are_errors_naming_the_token_not_the_hash() {
    let bad_hash = "[[token]]\nname = \"t\"\nsecret_sha256 = \"9f86d081884c7d65\"\n";
    let e = error_of(bad_hash);
    assert!(e.contains("token t") && e.contains("secret_sha256"), "{e}");
    assert!(!e.contains("9f86d081884c7d65"), "{e}");
    let nonhex = format!(
        "[[token]]\nname = \"t\"\nsecret_sha256 = \"{}\"\n",
        "g".repeat(64)
    );
    assert!(error_of(&nonhex).contains("token t"));
    for (extra, word) in [
        ("account = \"a@b/res\"", "account"),
        ("account = \"@@\"", "account"),
        ("expires = \"2027-01-31\"", "expires"),
        ("from = [\"192.0.2.0/33\"]", "from"),
        ("rate = \"10/d\"", "rate"),
        ("allow = [\"\"]", "empty"),
        ("domains = [\"\"]", "domain"),
        ("stream = \"yes\"", "line 4"),
    ] {
        let e = error_of(&token_text(extra));
        assert!(e.contains(word), "{extra}: {e}");
        assert!(!e.contains(HASH), "{extra}: {e}");
    }
}

#[test]
fn a_toml_syntax_error_gives_a_line_not_the_line() {
    let text = format!("[[token]]\nname = \"t\"\nsecret_sha256 = \"{HASH}\" oops\n");
    let e = error_of(&text);
    assert!(e.starts_with("line 3"), "{e}");
    assert!(!e.contains(HASH), "{e}");
}

#[test]
fn two_tokens_with_one_secret_are_refused() {
    let text = format!(
        "{}[[token]]\nname = \"u\"\nsecret_sha256 = \"{}\"\n",
        token_text(""),
        HASH.to_uppercase()
    );
    assert!(error_of(&text).contains("same secret_sha256"));
}

#[test]
fn accounts_are_bare_jids_listed_once() {
    assert!(error_of("[[account]]\njid = \"a@b/r\"\n").contains("jid"));
    let twice = "[[account]]\njid = \"a@b\"\n[[account]]\njid = \"a@b\"\nallow = [\"*\"]\n";
    assert!(error_of(twice).contains("listed twice"));
}

#[test]
fn rewriting_keeps_every_entry() {
    let (file, _) = parse_and_compile(EXAMPLE).expect("example");
    let text = file.to_toml().expect("serialises");
    let (again, rules) = parse_and_compile(&text).expect("reparses");
    assert_eq!(again, file);
    assert_eq!(rules.accounts.len(), 1);
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xrg-file-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn atomic_write_keeps_mode_and_owner_and_leaves_no_temp_file() {
    let d = temp_dir("atomic");
    let p = d.join("access.toml");
    std::fs::write(&p, "old").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let before = std::fs::metadata(&p).expect("meta");
    write_atomically(&p, "new").expect("rewrite");
    let after = std::fs::metadata(&p).expect("meta");
    assert_eq!(std::fs::read_to_string(&p).expect("read"), "new");
    assert_eq!(after.mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_ne!(
        after.ino(),
        before.ino(),
        "replaced by rename, not rewritten in place"
    );
    let names: Vec<_> = std::fs::read_dir(&d).expect("dir").collect();
    assert_eq!(names.len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_new_file_is_world_readable_it_holds_only_hashes() {
    let d = temp_dir("new");
    let p = d.join("access.toml");
    write_atomically(&p, "x").expect("create");
    let mode = std::fs::metadata(&p).expect("meta").mode() & 0o7777;
    assert_eq!(mode, 0o644);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_symlinked_file_keeps_its_link() {
    let d = temp_dir("link");
    let target = d.join("real.toml");
    let link = d.join("access.toml");
    std::fs::write(&target, "old").expect("write");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    write_atomically(&link, "new").expect("rewrite");
    let meta = std::fs::symlink_metadata(&link).expect("meta");
    assert!(meta.file_type().is_symlink(), "the link is still a link");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "new");
    let _ = std::fs::remove_dir_all(&d);
}
