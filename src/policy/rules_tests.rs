//! Rule matching: globs, short and full names, deny over allow, domains, networks, expiry, rate.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::rules::*;

const ADMIN: &str = "http://jabber.org/protocol/admin#";

fn node(short: &str) -> String {
    format!("{ADMIN}{short}")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rules(allow: &[&str], deny: &[&str]) -> NodeRules {
    NodeRules::new(&strings(allow), &strings(deny))
}

#[test]
fn star_matches_any_run_of_characters_including_slash_and_hash() {
    assert!(glob_matches("*", ""));
    assert!(glob_matches("*", "running nodes/ejabberd@localhost/stop"));
    assert!(glob_matches(
        "http://jabber.org/*#*-user",
        &node("delete-user")
    ));
    assert!(glob_matches(
        "running nodes/*/stop",
        "running nodes/a@b/stop"
    ));
    assert!(glob_matches("a*b*c", "aXXbYYc"));
    assert!(glob_matches("a*b*c", "abc"));
    assert!(!glob_matches("a*b*c", "aXXbYY"));
    assert!(!glob_matches("abc", "abcd"));
    assert!(!glob_matches("abc", "ab"));
    assert!(glob_matches("*c", "abcabc"));
    assert!(!glob_matches("*c", "abcab"));
}

#[test]
fn a_long_hostile_pattern_stays_fast() {
    let text = "a".repeat(10_000);
    let pattern = format!("{}b", "*a".repeat(50));
    let started = Instant::now();
    assert!(!glob_matches(&pattern, &text));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn short_names_mean_the_xep0133_node_and_full_names_stay() {
    assert_eq!(expand_pattern("user-stats"), node("user-stats"));
    assert_eq!(expand_pattern("*-user"), node("*-user"));
    assert_eq!(expand_pattern(&node("x")), node("x"));
    assert_eq!(
        expand_pattern("running nodes/*/stop"),
        "running nodes/*/stop"
    );
    assert_eq!(expand_pattern("urn:x:y"), "urn:x:y");
    assert_eq!(expand_pattern("*"), "*");
    assert_eq!(expand_pattern("*#get-*"), "*#get-*");
    assert_eq!(
        expand_pattern("*running nodes*shutdown*"),
        "*running nodes*shutdown*"
    );
}

#[test]
fn ejabberds_own_nodes_are_denied_by_their_full_pattern() {
    let r = rules(
        &["*"],
        &["running nodes/*/shutdown", "*running nodes*restart*"],
    );
    assert!(!r.permits("running nodes/ejabberd@localhost/shutdown"));
    assert!(!r.permits("running nodes/ejabberd@localhost/restart"));
    assert!(r.permits(&node("user-stats")));
}

#[test]
fn allow_by_short_and_by_full_name() {
    let r = rules(&["end-user-session", &node("user-stats")], &[]);
    assert!(r.permits(&node("end-user-session")));
    assert!(r.permits(&node("user-stats")));
    assert!(!r.permits(&node("delete-user")));
    // a short name does not match a literal node of that name elsewhere
    assert!(!r.permits("end-user-session"));
}

#[test]
fn deny_wins_over_allow() {
    let r = rules(&["*"], &["shutdown", "restart", "delete-user"]);
    assert!(r.permits(&node("end-user-session")));
    assert!(r.permits("running nodes/ejabberd@localhost/restart"));
    assert!(!r.permits(&node("shutdown")));
    assert!(!r.permits(&node("delete-user")));
    let r = rules(&["delete-user"], &["*"]);
    assert!(!r.permits(&node("delete-user")));
}

#[test]
fn an_empty_allow_list_allows_nothing() {
    let r = rules(&[], &[]);
    assert!(!r.permits(&node("user-stats")));
    assert!(!r.permits(""));
    assert!(!NodeRules::default().permits(&node("user-stats")));
}

#[test]
fn short_globs_stay_in_the_admin_namespace() {
    let r = rules(&["*-user"], &[]);
    assert!(r.permits(&node("delete-user")));
    assert!(!r.permits("urn:other#delete-user"));
}

#[test]
fn rates_parse_and_reject() {
    assert_eq!(
        Rate::parse("10/s"),
        Ok(Rate {
            per: 10,
            unit: Duration::from_secs(1)
        })
    );
    assert_eq!(
        Rate::parse("100/m").map(|r| r.unit),
        Ok(Duration::from_secs(60))
    );
    assert_eq!(Rate::parse("1000/h").map(|r| r.per), Ok(1000));
    for bad in ["0/s", "10", "10/d", "x/s", "-1/s", "/s", ""] {
        assert!(Rate::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn bucket_allows_a_burst_then_says_how_long_to_wait() {
    let rate = Rate::parse("2/s").expect("rate");
    let t0 = Instant::now();
    let mut b = Bucket::full(&rate, t0);
    assert_eq!(b.take(&rate, t0), Ok(()));
    assert_eq!(b.take(&rate, t0), Ok(()));
    let wait = b.take(&rate, t0).expect_err("third in the same instant");
    assert!(
        wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    assert_eq!(b.take(&rate, t0 + Duration::from_millis(500)), Ok(()));
    // refill never exceeds the burst
    let later = t0 + Duration::from_secs(100);
    assert_eq!(b.take(&rate, later), Ok(()));
    assert_eq!(b.take(&rate, later), Ok(()));
    assert!(b.take(&rate, later).is_err());
}

fn token(domains: Option<&[&str]>, from: Option<&[&str]>, expires: Option<i64>) -> TokenRules {
    TokenRules {
        name: "t".into(),
        account: None,
        nodes: NodeRules::default(),
        domains: domains.map(strings),
        expires,
        from: from.map(|f| {
            f.iter()
                .map(|n| super::file::parse_network(n).expect("network"))
                .collect()
        }),
        stream: false,
        rate: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn networks_v4_v6_and_v4_mapped() {
    let t = token(
        None,
        Some(&["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]),
        None,
    );
    assert!(t.admits_address(ip("192.0.2.9")));
    assert!(t.admits_address(ip("::ffff:192.0.2.9")));
    assert!(t.admits_address(ip("2001:db8::1")));
    assert!(t.admits_address(ip("198.51.100.7")));
    assert!(!t.admits_address(ip("198.51.100.8")));
    assert!(!t.admits_address(ip("192.0.3.1")));
    assert!(!t.admits_address(ip("::ffff:192.0.3.1")));
    assert!(!t.admits_address(ip("2001:db9::1")));
    assert!(token(None, None, None).admits_address(ip("203.0.113.1")));
    assert!(!token(None, Some(&[]), None).admits_address(ip("203.0.113.1")));
}

#[test]
fn every_target_domain_must_be_listed_case_insensitively() {
    let t = token(Some(&["example.org", "Other.ORG"]), None, None);
    assert_eq!(t.domain_outside(&["EXAMPLE.org", "other.org"]), None);
    assert_eq!(
        t.domain_outside(&["example.org", "evil.org"]),
        Some("evil.org")
    );
    assert_eq!(t.domain_outside(&[]), None);
    assert_eq!(
        token(None, None, None).domain_outside(&["anything.example"]),
        None
    );
}

#[test]
fn expiry_is_inclusive_of_the_instant() {
    let t = token(None, None, Some(1_000));
    assert!(!t.expired(999));
    assert!(t.expired(1_000));
    assert!(!token(None, None, None).expired(i64::MAX));
}
