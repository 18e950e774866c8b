use std::net::Ipv4Addr;

use tokio::time::advance;

use super::*;
use crate::config::PoolConfig;
use crate::upstream::fake::FakeUpstream;

fn pool_cfg() -> PoolConfig {
    crate::upstream::fake::pool_config()
}

/// Two failures lock a pair, three an address or an account.
fn throttle() -> ThrottleConfig {
    ThrottleConfig {
        pair: 2,
        wide: 3,
        total: 100,
        window: Duration::from_secs(60),
    }
}

fn access(pool: PoolConfig) -> (Access<Arc<FakeUpstream>>, Arc<FakeUpstream>) {
    let fake = FakeUpstream::new();
    let access = Access::new(SessionPool::new(fake.clone(), pool), throttle());
    (access, fake)
}

fn admin() -> BareJid {
    "admin@example.org".parse().unwrap()
}

fn addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
}

/// Spends the account's wide budget with wrong passwords from other addresses.
async fn spend_the_account_budget(access: &Access<Arc<FakeUpstream>>, fake: &FakeUpstream) {
    fake.refuse("guess");
    for n in 10..13 {
        let r = access.session(&admin(), "guess", addr(n)).await;
        assert!(matches!(r, Err(AccessError::Refused)), "{r:?}");
    }
}

#[tokio::test]
async fn a_warm_match_needs_no_login() {
    let (access, fake) = access(pool_cfg());
    let first = access.session(&admin(), "pw", addr(1)).await.unwrap();
    let second = access.session(&admin(), "pw", addr(2)).await.unwrap();
    assert!(Arc::ptr_eq(&first.session, &second.session));
    assert_eq!((fake.logins(), access.logins()), (1, 1));
}

#[tokio::test]
async fn another_password_logs_in_afresh() {
    let (access, fake) = access(pool_cfg());
    access.session(&admin(), "one", addr(1)).await.unwrap();
    access.session(&admin(), "two", addr(1)).await.unwrap();
    assert_eq!(fake.logins(), 2);
}

#[tokio::test]
async fn a_locked_pair_reaches_no_server_whatever_the_password() {
    let (access, fake) = access(pool_cfg());
    access.session(&admin(), "pw", addr(1)).await.unwrap();
    fake.refuse("bad");
    for _ in 0..2 {
        let r = access.session(&admin(), "bad", addr(2)).await;
        assert!(matches!(r, Err(AccessError::Refused)), "{r:?}");
    }
    let r = access.session(&admin(), "bad", addr(2)).await;
    assert!(matches!(r, Err(AccessError::Throttled(_))), "{r:?}");
    // Even the warm session's password learns nothing from the locked pair.
    let r = access.session(&admin(), "pw", addr(2)).await;
    assert!(matches!(r, Err(AccessError::Throttled(_))), "{r:?}");
    assert_eq!(fake.logins(), 3);
    access.session(&admin(), "pw", addr(1)).await.unwrap();
    assert_eq!(fake.logins(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_proved_password_passes_spent_budgets_once_per_interval() {
    let (access, fake) = access(PoolConfig {
        reauth_interval: Duration::from_secs(10),
        ..pool_cfg()
    });
    access.session(&admin(), "pw", addr(1)).await.unwrap();
    spend_the_account_budget(&access, &fake).await;
    let r = access.session(&admin(), "other", addr(1)).await;
    assert!(matches!(r, Err(AccessError::Throttled(_))), "{r:?}");
    assert_eq!(fake.logins(), 4);
    // The proof is stale, so this is a login: the budgets are spent, the proof exempts it.
    advance(Duration::from_secs(10)).await;
    let ok = access.session(&admin(), "pw", addr(1)).await.unwrap();
    assert_eq!(fake.logins(), 5);
    // Within the same interval a second login needing the exemption is refused.
    ok.session.close().await;
    let r = access.session(&admin(), "pw", addr(1)).await;
    assert!(matches!(r, Err(AccessError::Throttled(_))), "{r:?}");
    assert_eq!(fake.logins(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_proved_login_forgets_the_proof() {
    let (access, fake) = access(PoolConfig {
        reauth_interval: Duration::from_secs(10),
        ..pool_cfg()
    });
    access.session(&admin(), "pw", addr(1)).await.unwrap();
    spend_the_account_budget(&access, &fake).await;
    // The password was changed on the server.
    fake.refuse("pw");
    advance(Duration::from_secs(10)).await;
    let r = access.session(&admin(), "pw", addr(1)).await;
    assert!(matches!(r, Err(AccessError::Refused)), "{r:?}");
    assert_eq!(fake.logins(), 5);
    // A new interval, but no proof left to exempt the login.
    advance(Duration::from_secs(10)).await;
    let r = access.session(&admin(), "pw", addr(1)).await;
    assert!(matches!(r, Err(AccessError::Throttled(_))), "{r:?}");
    assert_eq!(fake.logins(), 5);
}

#[tokio::test]
async fn an_account_busy_beyond_its_requests_in_flight() {
    let (access, fake) = access(PoolConfig {
        max_in_flight_per_account: 2,
        ..pool_cfg()
    });
    let first = access.session(&admin(), "pw", addr(1)).await.unwrap();
    let _second = access.session(&admin(), "pw", addr(1)).await.unwrap();
    let r = access.session(&admin(), "pw", addr(1)).await;
    assert!(matches!(r, Err(AccessError::AccountBusy)), "{r:?}");
    drop(first);
    access.session(&admin(), "pw", addr(1)).await.unwrap();
    assert_eq!(fake.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_sent_at_once_reach_the_server_no_more_than_the_budgets_allow() {
    let (access, fake) = access(pool_cfg());
    fake.refuse("guess");
    // Slow logins, so that every request is in flight before any has failed.
    fake.set_delay(Duration::from_millis(50));
    let admin = admin();
    let one_account = (0..20).map(|_| access.session(&admin, "guess", addr(1)));
    let answers = futures_util::future::join_all(one_account).await;
    assert!(answers.iter().all(|r| r.is_err()));
    assert_eq!(
        fake.logins(),
        2,
        "the pair's budget, not one login per request"
    );

    let spray = (0..20u8).map(|i| {
        let account: BareJid = format!("u{i}@example.org").parse().unwrap();
        let access = &access;
        async move { access.session(&account, "guess", addr(2)).await }
    });
    futures_util::future::join_all(spray).await;
    assert_eq!(fake.logins() - 2, 3, "the address's budget across accounts");
}

#[test]
fn a_guessed_domain_the_server_does_not_serve_still_proves_it_serving() {
    let unknown = || Err(UpstreamError::HostUnknown("127.0.0.1".into()));
    assert!(probed(unknown(), true).is_ok());
    // --domain, or a domain an account logged in with: the server must serve it.
    assert!(matches!(
        probed(unknown(), false),
        Err(UpstreamError::HostUnknown(_))
    ));
    // Anything else is the answer whoever named the domain.
    let down = || Err(UpstreamError::Unreachable("refused".into()));
    assert!(probed(down(), true).is_err());
    assert!(probed(Ok(()), false).is_ok());
}
