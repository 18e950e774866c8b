use super::*;

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn scram_is_chosen_over_plain() {
    let m = choose_mechanisms(&set(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"])).unwrap();
    assert_eq!(m, set(&["SCRAM-SHA-1"]));
    let m = choose_mechanisms(&set(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"])).unwrap();
    assert_eq!(m, set(&["SCRAM-SHA-1", "SCRAM-SHA-256"]));
}

#[test]
fn plain_only_without_scram() {
    assert_eq!(
        choose_mechanisms(&set(&["PLAIN"])).unwrap(),
        set(&["PLAIN"])
    );
}

#[test]
fn nothing_usable_is_an_error() {
    assert!(choose_mechanisms(&set(&["X-OAUTH2"])).is_err());
}
