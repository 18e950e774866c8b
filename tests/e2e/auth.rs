//! Logins: a wrong password (401, then 429 without asking the server), a non-admin (403), a
//! warm session reused, a changed password tried afresh. Logins are counted where the server
//! sees them: the gateway talks to it through a reading proxy, one connection per login.

use std::time::Duration;

use crate::common::doc::parse_xml;
use crate::common::proxy::proxied;
use crate::common::rest::*;
use crate::common::{self, basic, ServerKind};
use crate::gateway;

on_both_servers!(
    wrong_password_is_401_and_throttled_to_429,
    a_non_admin_is_403,
    a_warm_session_serves_without_logging_in_again,
    a_changed_password_is_tried_with_a_fresh_login,
);

async fn wrong_password_is_401_and_throttled_to_429(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &["--throttle-pair", "3"]).await;
    let wrong = basic("throttle1@domain.com", "wrong");
    for _ in 0..3 {
        let r = post(
            gw.addr,
            PATH,
            &wrong,
            "application/xml",
            IDLE_SEED_XML.as_str(),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm="));
        let e = parse_xml(&r.body);
        assert_eq!(e.child("condition").unwrap().text, "unauthorized");
    }
    // Locked for the pair, whatever the password, and the upstream is not asked.
    let right = basic("throttle1@domain.com", &s.password("throttle1"));
    let r = post(
        gw.addr,
        PATH,
        &right,
        "application/xml",
        IDLE_SEED_XML.as_str(),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 300);
    assert_eq!(
        proxy.connections(),
        3,
        "one login per 401, none for the 429"
    );
    // Other accounts from the same address are not locked out.
    let r = idle_seed_as_admin(gw.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.connections(), 4);
    // Passwords reach no log.
    assert!(!gw.log().contains(&s.password("throttle1")));
    assert!(!gw.log().contains("adminpass"));
}

async fn a_non_admin_is_403(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = gateway(kind).await;
    let auth = basic("nonadmin@domain.com", &s.password("nonadmin"));
    let r = post(
        gw.addr,
        PATH,
        &auth,
        "application/json",
        IDLE_SEED_JSON.as_str(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(error_of(&r)["condition"], "forbidden");
    assert!(error_of(&r)["text"].as_str().is_some_and(|t| !t.is_empty()));
}

async fn a_warm_session_serves_without_logging_in_again(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &[]).await;
    let auth = basic("Admin@Domain.com", "adminpass");
    for _ in 0..5 {
        let r = post(
            gw.addr,
            PATH,
            &auth,
            "application/xml",
            IDLE_SEED_XML.as_str(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(proxy.connections(), 1, "logins");
}

async fn a_changed_password_is_tried_with_a_fresh_login(kind: ServerKind) {
    let s = common::started(kind).await;
    let (proxy, gw) = proxied(s, &["--reauth-interval", "1"]).await;
    let body = seed_for(SEED_REQUEST_XML, "user6");
    let ok = post(gw.addr, PATH, &admin(), "application/xml", &body).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Another password for a warm account is a fresh login (refused), not the warm session.
    let wrong = basic("admin@domain.com", "not-the-password");
    let r = post(gw.addr, PATH, &wrong, "application/xml", &body).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        proxy.connections(),
        2,
        "the other password is a login of its own"
    );
    // Past the re-auth interval even the right password is proved again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post(gw.addr, PATH, &admin(), "application/xml", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        proxy.connections(),
        3,
        "the right password proved again by a login"
    );
}
