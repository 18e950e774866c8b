//! The module invariants of docs/ARCHITECTURE.md, checked on the source: Rust's visibility
//! cannot keep a sibling module from naming a `pub` one (the integration tests need `upstream`
//! and `adhoc` public), so these tests read what each module's non-test code names.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, test files (`*tests.rs`, `tests/`) left out.
fn sources(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                // `tests/` and `rest/conformance/` are test-only modules.
                if name != "tests" && name != "conformance" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    walk(&root, &mut out);
    assert!(!out.is_empty(), "no sources under {}", root.display());
    out
}

/// The non-test code of a file: everything before its first `#[cfg(test)]` module, comments
/// dropped (a doc comment may name what the code must not).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = match text.find("#[cfg(test)]\nmod") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The places in `dir`'s code that name any of `forbidden`.
fn naming(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in sources(dir) {
        for (n, line) in code(&path).lines().enumerate() {
            for f in forbidden {
                if line.contains(f) {
                    found.push(format!("{}:{}: {f}", path.display(), n + 1));
                }
            }
        }
    }
    found
}

#[test]
fn http_speaks_only_http() {
    let forbidden = [
        "upstream::",
        "adhoc::",
        "policy::",
        "tokio_xmpp",
        "xmpp_parsers",
        "minidom",
        "jabber:",
        "protocol/admin",
        "urn:xmpp",
    ];
    let found = naming("http", &forbidden);
    assert!(found.is_empty(), "http names the XMPP side: {found:#?}");
}

/// The places in `dir`'s code that name the crate outside `allowed` (a path under `crate::`).
fn naming_crate_outside(dir: &str, allowed: &str) -> Vec<String> {
    let mut found = Vec::new();
    for path in sources(dir) {
        for (n, line) in code(&path).lines().enumerate() {
            if line
                .split("crate::")
                .skip(1)
                .any(|rest| !rest.starts_with(allowed))
            {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn rest_imports_nothing_of_the_crate() {
    let found = naming_crate_outside("rest", "rest");
    assert!(found.is_empty(), "rest names the crate: {found:#?}");
}

#[test]
fn upstream_knows_nothing_of_commands_documents_or_http() {
    let forbidden = ["crate::adhoc", "crate::rest", "crate::http", "crate::app"];
    let found = naming("upstream", &forbidden);
    assert!(
        found.is_empty(),
        "upstream names a module above it: {found:#?}"
    );
}

#[test]
fn the_checks_see_what_they_forbid() {
    // Each check finds a name where one is: a check that finds nothing anywhere cannot fail.
    assert!(!naming("app", &["upstream::"]).is_empty());
    assert!(!naming("adhoc", &["jabber:"]).is_empty());
    assert!(!naming_crate_outside("app", "rest").is_empty());
}
