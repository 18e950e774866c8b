use tokio::time::{advance, timeout, Instant};
use tokio_xmpp::minidom::Element;

use super::*;
use crate::upstream::fake::{Behaviour, FakeUpstream};
use crate::upstream::session::CLOSE_BOUND;
use crate::upstream::{IqKind, IqReply};

fn cfg() -> PoolConfig {
    crate::upstream::fake::pool_config()
}

fn pool(cfg: PoolConfig) -> (Arc<SessionPool<Arc<FakeUpstream>>>, Arc<FakeUpstream>) {
    let fake = FakeUpstream::new();
    (Arc::new(SessionPool::new(fake.clone(), cfg)), fake)
}

fn acct(s: &str) -> BareJid {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_warm_match_needs_no_login() {
    let (pool, fake) = pool(cfg());
    let a = acct("admin@example.org");
    let first = pool.login(&a, "pw").await.unwrap();
    let warm = pool.warm(&a, "pw").expect("warm");
    assert!(Arc::ptr_eq(&first, &warm));
    // A login queued behind another one with the same password takes its session.
    let again = pool.login(&a, "pw").await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!((fake.logins(), pool.logins()), (1, 1));
}

#[tokio::test]
async fn another_password_logs_in_afresh_and_replaces_the_session() {
    let (pool, fake) = pool(cfg());
    let a = acct("admin@example.org");
    let first = pool.login(&a, "one").await.unwrap();
    assert!(pool.warm(&a, "two").is_none());
    let second = pool.login(&a, "two").await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(pool.warm(&a, "one").is_none());
    assert!(pool.warm(&a, "two").is_some());
    assert_eq!(fake.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_password_is_proved_again_after_the_reauth_interval() {
    let (pool, fake) = pool(PoolConfig {
        reauth_interval: Duration::from_secs(300),
        ..cfg()
    });
    let a = acct("admin@example.org");
    pool.login(&a, "pw").await.unwrap();
    advance(Duration::from_secs(299)).await;
    assert!(pool.warm(&a, "pw").is_some());
    advance(Duration::from_secs(1)).await;
    assert!(pool.warm(&a, "pw").is_none());
    pool.login(&a, "pw").await.unwrap();
    assert_eq!(fake.logins(), 2);
    assert!(pool.warm(&a, "pw").is_some());
}

#[tokio::test]
async fn a_dead_session_is_not_warm() {
    let (pool, fake) = pool(cfg());
    let a = acct("admin@example.org");
    let s = pool.login(&a, "pw").await.unwrap();
    s.close().await;
    assert!(pool.warm(&a, "pw").is_none());
    pool.login(&a, "pw").await.unwrap();
    assert_eq!(fake.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn beyond_max_sessions_the_least_recently_used_is_closed() {
    let (pool, _fake) = pool(PoolConfig {
        max_sessions: 2,
        ..cfg()
    });
    let (a, b, c) = (
        acct("a@example.org"),
        acct("b@example.org"),
        acct("c@example.org"),
    );
    let sa = pool.login(&a, "pw").await.unwrap();
    advance(Duration::from_millis(5)).await;
    let sb = pool.login(&b, "pw").await.unwrap();
    advance(Duration::from_millis(5)).await;
    // a is used again, so b is now the least recently used.
    assert!(pool.warm(&a, "pw").is_some());
    advance(Duration::from_millis(5)).await;
    pool.login(&c, "pw").await.unwrap();
    timeout(CLOSE_BOUND, sb.closed())
        .await
        .expect("b's stream closed");
    assert!(pool.warm(&b, "pw").is_none());
    assert!(sa.is_alive());
    assert!(pool.warm(&a, "pw").is_some());
    assert!(pool.warm(&c, "pw").is_some());
}

#[tokio::test(start_paused = true)]
async fn an_evicted_stream_answers_its_requests_before_it_closes() {
    let (pool, fake) = pool(PoolConfig {
        max_sessions: 1,
        ..cfg()
    });
    fake.set_behaviour(Behaviour::AnswerAfter(Duration::from_millis(300)));
    let a = pool.login(&acct("a@example.org"), "pw").await.unwrap();
    let asked = tokio::spawn({
        let a = a.clone();
        async move {
            let payload = Element::builder("q", "urn:xrg:test").build();
            a.iq(fake_domain(), IqKind::Get, payload).await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pool.login(&acct("b@example.org"), "pw").await.unwrap();
    let reply = asked.await.unwrap();
    assert!(matches!(reply, Ok(IqReply::Result(_))), "{reply:?}");
    timeout(CLOSE_BOUND, a.closed())
        .await
        .expect("a's stream closed once idle");
}

#[tokio::test(start_paused = true)]
async fn one_login_at_a_time_per_account() {
    let (pool, fake) = pool(cfg());
    fake.set_delay(Duration::from_millis(100));
    let a = acct("admin@example.org");
    let logins: Vec<_> = (0..5)
        .map(|_| {
            let (pool, a) = (pool.clone(), a.clone());
            tokio::spawn(async move { pool.login(&a, "pw").await })
        })
        .collect();
    let mut sessions = Vec::new();
    for l in logins {
        sessions.push(l.await.unwrap().unwrap());
    }
    assert_eq!(fake.most_at_once(), 1);
    // The queued ones found the first one's session warm.
    assert_eq!(fake.logins(), 1);
    assert!(sessions.iter().all(|s| Arc::ptr_eq(s, &sessions[0])));
}

#[tokio::test]
async fn a_proved_password_is_exempted_once_per_interval() {
    let (pool, _fake) = pool(cfg());
    let a = acct("admin@example.org");
    assert!(!pool.take_exemption(&a, "pw"), "nothing proved yet");
    pool.login(&a, "pw").await.unwrap();
    assert!(!pool.take_exemption(&a, "wrong"));
    assert!(pool.take_exemption(&a, "pw"));
    assert!(!pool.take_exemption(&a, "pw"), "spent for this interval");
    pool.forget_proof(&a);
    assert!(!pool.proof_matches(&a, "pw"));
    assert!(pool.warm(&a, "pw").is_none());
}

#[tokio::test]
async fn requests_in_flight_per_account_are_capped() {
    let (pool, _fake) = pool(PoolConfig {
        max_in_flight_per_account: 2,
        ..cfg()
    });
    let (a, b) = (acct("a@example.org"), acct("b@example.org"));
    let first = pool.request_place(&a).expect("first place");
    let _second = pool.request_place(&a).expect("second place");
    assert!(pool.request_place(&a).is_none());
    assert!(
        pool.request_place(&b).is_some(),
        "another account's own places"
    );
    drop(first);
    assert!(pool.request_place(&a).is_some());
}

#[tokio::test(start_paused = true)]
async fn close_all_is_bounded_when_the_servers_hang() {
    let (pool, fake) = pool(cfg());
    // One server reads nothing (a large IQ stalls the write), one never closes its side.
    fake.set_behaviour(Behaviour::Deaf);
    let deaf = pool.login(&acct("a@example.org"), "pw").await.unwrap();
    fake.set_behaviour(Behaviour::Mute);
    let mute = pool.login(&acct("b@example.org"), "pw").await.unwrap();
    let large = Element::builder("q", "urn:xrg:test")
        .append("x".repeat(4096))
        .build();
    let stuck = tokio::spawn({
        let deaf = deaf.clone();
        async move { deaf.iq(fake_domain(), IqKind::Set, large).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    pool.close_all().await;
    let took = started.elapsed();
    assert!(took < CLOSE_ALL_BOUND, "close_all took {took:?}");
    assert!(!deaf.is_alive() && !mute.is_alive());
    let reply = timeout(Duration::from_secs(1), stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(reply, Err(UpstreamError::Closed(_))), "{reply:?}");
    assert!(pool.warm(&acct("b@example.org"), "pw").is_none());
}

fn accounts<L>(pool: &SessionPool<L>) -> usize {
    pool.accounts.lock().unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn an_account_whose_login_failed_leaves_nothing_behind() {
    let (pool, fake) = pool(cfg());
    fake.refuse("guess");
    for i in 0..50 {
        let r = pool
            .login(&acct(&format!("u{i}@example.org")), "guess")
            .await;
        assert!(matches!(r, Err(UpstreamError::AuthFailed(_))), "{r:?}");
    }
    assert_eq!((fake.logins(), accounts(&pool)), (50, 0));
    // Refused before connecting (the throttle's gate).
    let throttled = pool
        .login_gated(&acct("t@example.org"), "pw", || {
            Err::<(), _>(UpstreamError::Throttled(Duration::from_secs(1)))
        })
        .await;
    assert!(matches!(throttled, Err(UpstreamError::Throttled(_))));
    // Dropped half-way (the request's timeout).
    fake.set_delay(Duration::from_secs(10));
    let dropped = timeout(
        Duration::from_secs(1),
        pool.login(&acct("d@example.org"), "pw"),
    )
    .await;
    assert!(dropped.is_err());
    assert_eq!(accounts(&pool), 0);
    // Queued logins of one account: the slot stays until the last one ends.
    fake.set_delay(Duration::from_millis(100));
    let queued: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.login(&acct("q@example.org"), "guess").await })
        })
        .collect();
    for q in queued {
        assert!(q.await.unwrap().is_err());
    }
    assert_eq!(accounts(&pool), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_login_keeps_the_accounts_session() {
    let (pool, fake) = pool(cfg());
    let a = acct("admin@example.org");
    pool.login(&a, "pw").await.unwrap();
    fake.refuse("guess");
    assert!(pool.login(&a, "guess").await.is_err());
    assert!(pool.warm(&a, "pw").is_some());
    assert_eq!(accounts(&pool), 1);
    // Its password changed on the server: the proof goes, and the slot with it.
    pool.forget_proof(&a);
    assert_eq!(accounts(&pool), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slot_with_requests_in_flight_stays() {
    let (pool, fake) = pool(cfg());
    let a = acct("admin@example.org");
    pool.login(&a, "pw").await.unwrap();
    let place = pool.request_place(&a).expect("a place");
    pool.forget_proof(&a);
    fake.refuse("guess");
    assert!(pool.login(&a, "guess").await.is_err());
    assert_eq!(
        accounts(&pool),
        1,
        "the place is counted against the same slot"
    );
    drop(place);
    assert!(pool.login(&a, "guess").await.is_err());
    assert_eq!(accounts(&pool), 0);
}

fn fake_domain() -> tokio_xmpp::parsers::jid::Jid {
    "example.org".parse().unwrap()
}
