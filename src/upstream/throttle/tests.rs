use super::*;

fn throttle() -> LoginThrottle {
    LoginThrottle::new(ThrottleConfig {
        pair: 3,
        wide: 5,
        total: 8,
        window: Duration::from_secs(60),
    })
}

fn jid(s: &str) -> BareJid {
    s.parse().unwrap()
}

/// `n` failed logins, each for another account from another address.
fn spray(t: &LoginThrottle, n: u8) {
    for i in 0..n {
        let account = jid(&format!("u{i}@x"));
        t.failed(&account, IpAddr::from([10, 0, 1, i]), Failure::Login);
    }
}

#[test]
fn the_pair_locks_after_its_budget_and_a_success_clears_it() {
    let t = throttle();
    let (a, ip) = (jid("a@x"), "10.0.0.1".parse().unwrap());
    for _ in 0..3 {
        assert!(t.check_pair(&a, ip).is_ok());
        t.failed(&a, ip, Failure::Login);
    }
    let wait = t.check_pair(&a, ip).unwrap_err();
    assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
    t.succeeded(&a, ip);
    assert!(t.check_pair(&a, ip).is_ok());
}

#[test]
fn another_address_is_not_locked_by_the_pair() {
    let t = throttle();
    let a = jid("a@x");
    for _ in 0..3 {
        t.failed(&a, "10.0.0.1".parse().unwrap(), Failure::Login);
    }
    assert!(t.check_pair(&a, "10.0.0.2".parse().unwrap()).is_ok());
}

#[test]
fn the_total_budget_covers_sprays_from_many_addresses() {
    let t = throttle();
    spray(&t, 8);
    let (fresh, ip) = (jid("fresh@x"), IpAddr::from([10, 0, 2, 1]));
    let wait = t.check_login(&fresh, ip, false).unwrap_err();
    assert!(
        wait > Duration::from_secs(3500),
        "counted over an hour: {wait:?}"
    );
    assert!(
        t.check_pair(&fresh, ip).is_ok(),
        "warm sessions still served"
    );
}

#[test]
fn the_wide_budgets_cover_sprays() {
    let t = throttle();
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    for i in 0..5 {
        t.failed(&jid(&format!("u{i}@x")), ip, Failure::Login);
    }
    let fresh = jid("fresh@x");
    assert!(
        t.check_pair(&fresh, ip).is_ok(),
        "warm sessions still served"
    );
    assert!(t.check_login(&fresh, ip, false).is_err());
}

#[test]
fn an_exempt_login_answers_to_the_pair_alone() {
    let t = throttle();
    spray(&t, 8);
    let (admin, ip) = (jid("admin@x"), IpAddr::from([10, 0, 2, 1]));
    assert!(t.check_login(&admin, ip, false).is_err(), "total spent");
    assert!(
        t.check_login(&admin, ip, true).is_ok(),
        "proved password passes"
    );
    for _ in 0..3 {
        t.failed(&admin, ip, Failure::Login);
    }
    assert!(
        t.check_login(&admin, ip, true).is_err(),
        "but never the pair"
    );
}

#[test]
fn failures_before_sasl_count_against_the_address_only() {
    let t = throttle();
    let ip: IpAddr = "10.0.0.9".parse().unwrap();
    for i in 0..5 {
        t.failed(&jid(&format!("a{i}@other")), ip, Failure::AddressOnly);
    }
    assert!(t.check_address(ip).is_err());
    let elsewhere: IpAddr = "10.0.0.10".parse().unwrap();
    assert!(t.check_login(&jid("a0@other"), elsewhere, false).is_ok());
}

#[test]
fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
    assert_eq!(
        bucket("2001:db8:1:2:aaaa::1".parse().unwrap()),
        "2001:db8:1:2::".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        bucket("::ffff:192.0.2.7".parse().unwrap()),
        "192.0.2.7".parse::<IpAddr>().unwrap()
    );
    let t = throttle();
    let a = jid("a@x");
    for i in 1..=3u16 {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, i));
        t.failed(&a, ip, Failure::Login);
    }
    let same_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 9, 9, 9, 9));
    assert!(t.check_pair(&a, same_64).is_err());
}

#[test]
fn logins_under_way_count_until_they_end() {
    let t = throttle();
    let (a, ip) = (jid("a@x"), IpAddr::from([10, 0, 3, 1]));
    let held: Vec<_> = (0..3)
        .map(|_| t.reserve_login(&a, ip, false).unwrap())
        .collect();
    assert!(
        t.reserve_login(&a, ip, false).is_err(),
        "the pair's 3 places are taken"
    );
    drop(held);
    assert!(
        t.reserve_login(&a, ip, false).is_ok(),
        "free once they ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_goes_its_longest_window_after_its_last_failure_however_often_checked() {
    let t = throttle();
    let (a, ip) = (jid("a@x"), IpAddr::from([10, 0, 4, 1]));
    for _ in 0..3 {
        t.failed(&a, ip, Failure::Login);
    }
    assert!(t.check_pair(&a, ip).is_err());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(t.check_pair(&a, ip).is_ok(), "free once its window passed");
    // Checked every ten minutes: a check only reads, so it renews nothing.
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(t.check_login(&a, ip, false).is_ok());
        t.sweep();
    }
    assert_eq!(t.failures.len(), 4, "pair, address, account, total");
    tokio::time::advance(TOTAL_WINDOW - Duration::from_secs(3060)).await;
    t.sweep();
    assert!(t.failures.is_empty(), "an hour after the last failure");
}
