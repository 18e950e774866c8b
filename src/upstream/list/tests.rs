//! The order a login tries the targets in and the back-off, on tokio's paused clock.

use super::*;

fn list(entries: &[(&str, u16)]) -> Upstreams {
    let entries: Vec<UpstreamEntry> = entries
        .iter()
        .map(|(h, p)| UpstreamEntry::Addr {
            host: h.to_string(),
            port: *p,
        })
        .collect();
    Upstreams::new(&entries, UpstreamTls::Starttls)
}

async fn order(u: &Upstreams) -> Vec<String> {
    u.plan().await.iter().map(|t| t.addr()).collect()
}

async fn target(u: &Upstreams, i: usize) -> Arc<Target> {
    u.targets(i).await.expect("targets").remove(0)
}

#[tokio::test(start_paused = true)]
async fn targets_are_tried_in_the_lists_order() {
    let u = list(&[("a", 5222), ("b", 5222), ("::1", 5223)]);
    assert_eq!(order(&u).await, ["a:5222", "b:5222", "[::1]:5223"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_target_is_skipped_for_its_backoff_then_tried_again() {
    let u = list(&[("a", 5222), ("b", 5222)]);
    let a = target(&u, 0).await;
    u.failed(&a);
    assert_eq!(order(&u).await, ["b:5222"]);
    tokio::time::advance(BACKOFF_FIRST - Duration::from_millis(1)).await;
    assert_eq!(order(&u).await, ["b:5222"]);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(order(&u).await, ["a:5222", "b:5222"]);
}

#[tokio::test(start_paused = true)]
async fn the_backoff_doubles_up_to_its_bound_and_a_success_resets_it() {
    let u = list(&[("a", 5222), ("b", 5222)]);
    let a = target(&u, 0).await;
    // 1, 2, 4, 8, 16, then 30 s however often it fails.
    for secs in [1u64, 2, 4, 8, 16, 30, 30, 30] {
        u.failed(&a);
        tokio::time::advance(Duration::from_secs(secs) - Duration::from_millis(1)).await;
        assert!(a.in_backoff(), "after {secs} s less 1 ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!a.in_backoff(), "after {secs} s");
    }
    a.succeeded();
    u.failed(&a);
    tokio::time::advance(BACKOFF_FIRST).await;
    assert!(!a.in_backoff(), "a success starts the doubling over");
}

#[tokio::test(start_paused = true)]
async fn when_every_target_is_in_backoff_all_are_tried_in_order() {
    let u = list(&[("a", 5222), ("b", 5222)]);
    let (a, b) = (target(&u, 0).await, target(&u, 1).await);
    u.failed(&b);
    u.failed(&a);
    assert_eq!(order(&u).await, ["a:5222", "b:5222"]);
    // The first out of back-off comes alone again.
    u.failed(&b);
    tokio::time::advance(BACKOFF_FIRST).await;
    assert_eq!(order(&u).await, ["a:5222"]);
}

#[tokio::test(start_paused = true)]
async fn a_domain_without_records_falls_back_to_its_port_5222() {
    let entries = [UpstreamEntry::Srv {
        domain: "example.org".into(),
    }];
    let u = Upstreams::new(&entries, UpstreamTls::Starttls);
    let plan = u.plan().await;
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].addr(), "example.org:5222");
    assert_eq!(&*plan[0].label, "example.org");
}

#[tokio::test(start_paused = true)]
async fn plaintext_to_a_looked_up_target_needs_a_loopback_address() {
    let u = Upstreams::new(&[], UpstreamTls::None);
    let remote = Target::new("192.0.2.1".into(), 5222, "example.org".into(), true);
    assert!(matches!(
        u.check_plaintext(&remote).await,
        Err(UpstreamError::Config(_))
    ));
    let local = Target::new("127.0.0.1".into(), 5222, "example.org".into(), true);
    assert!(matches!(u.check_plaintext(&local).await, Ok(None)));
    // A name: the addresses checked are those the connection goes to.
    let named = Target::new("localhost".into(), 5222, "example.org".into(), true);
    let checked = u
        .check_plaintext(&named)
        .await
        .expect("loopback")
        .expect("resolved");
    assert!(
        !checked.is_empty()
            && checked
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 5222)
    );
    // An operator's literal entry was checked at start.
    let literal = Target::new("192.0.2.1".into(), 5222, "192.0.2.1:5222".into(), false);
    assert!(u.check_plaintext(&literal).await.is_ok());
}

// The same responder `upstream::srv`'s tests load: a file of the e2e harness, so a module
// of each test module that uses it.
#[allow(clippy::duplicate_mod)]
#[path = "../../../tests/common/dns.rs"]
mod dns;

/// The loopback responder's records for `example.test`: `a` first, then `b`, for 10 minutes.
fn srv_list() -> (dns::DnsResponder, Upstreams) {
    let records = vec![
        dns::Srv::new(0, 0, 5222, "a.example.test."),
        dns::Srv::new(1, 0, 5222, "b.example.test."),
    ];
    let responder = dns::DnsResponder::start([(
        "_xmpp-client._tcp.example.test".to_string(),
        dns::Answer::Srv { ttl: 600, records },
    )]);
    let resolver = Resolver::new(Some(responder.addr())).expect("a resolver");
    let entries = [UpstreamEntry::Srv {
        domain: "example.test".into(),
    }];
    let u = Upstreams::new(&entries, UpstreamTls::Starttls).with_resolver(resolver);
    (responder, u)
}

// The lookups run on the real clock (the responder answers in real time); the clock is paused
// only to pass the time a re-lookup waits for.
#[tokio::test]
async fn a_domains_targets_are_kept_then_looked_up_again_once_every_one_failed() {
    let (responder, u) = srv_list();
    let both = ["a.example.test:5222", "b.example.test:5222"];
    assert_eq!(order(&u).await, both);
    assert_eq!(order(&u).await, both);
    assert_eq!(responder.queries(), 1, "kept for the records' TTL");
    let targets = u.targets(0).await.expect("targets");
    assert!(targets.iter().all(|t| &*t.label == "example.test"));
    u.failed(&targets[0]);
    assert_eq!(order(&u).await, ["b.example.test:5222"]);
    assert_eq!(responder.queries(), 1, "one target left: no lookup");

    tokio::time::pause();
    u.failed(&targets[1]);
    // Every target failed: tried all the same, and looked up again once the answer is
    // `MIN_TTL` old, not at every login.
    assert_eq!(order(&u).await, both);
    assert_eq!(responder.queries(), 1);
    tokio::time::advance(srv::MIN_TTL).await;
    tokio::time::resume();
    assert_eq!(order(&u).await, both);
    assert_eq!(responder.queries(), 2);
    // The same targets kept their state across the lookup.
    let again = u.targets(0).await.expect("targets");
    assert!(Arc::ptr_eq(&again[0], &targets[0]));
}

#[tokio::test]
async fn a_domain_whose_records_say_no_service_has_no_target() {
    let responder = dns::DnsResponder::start([(
        "_xmpp-client._tcp.example.test".to_string(),
        dns::Answer::Srv {
            ttl: 600,
            records: vec![dns::Srv::new(0, 0, 0, ".")],
        },
    )]);
    let resolver = Resolver::new(Some(responder.addr())).expect("a resolver");
    let entries = [
        UpstreamEntry::Srv {
            domain: "example.test".into(),
        },
        UpstreamEntry::Addr {
            host: "127.0.0.1".into(),
            port: 5222,
        },
    ];
    let u = Upstreams::new(&entries, UpstreamTls::Starttls).with_resolver(resolver);
    assert!(matches!(
        u.targets(0).await,
        Err(UpstreamError::Unreachable(_))
    ));
    assert_eq!(order(&u).await, ["127.0.0.1:5222"]);
}

// A later SRV entry is looked up only once the walk reaches it: its DNS never delays a login
// an earlier entry serves.
#[tokio::test]
async fn a_later_domain_is_looked_up_only_when_the_walk_reaches_it() {
    let (responder, srv_only) = srv_list();
    drop(srv_only);
    let resolver = Resolver::new(Some(responder.addr())).expect("a resolver");
    let entries = [
        UpstreamEntry::Addr {
            host: "first".into(),
            port: 5222,
        },
        UpstreamEntry::Srv {
            domain: "example.test".into(),
        },
    ];
    let u = Upstreams::new(&entries, UpstreamTls::Starttls).with_resolver(resolver);
    let mut walk = u.walk();
    let first = walk.next().await.expect("a target");
    assert_eq!(first.addr(), "first:5222");
    assert_eq!(
        responder.queries(),
        0,
        "no lookup before the first target failed"
    );
    u.failed(&first);
    assert_eq!(
        walk.next().await.map(|t| t.addr()).as_deref(),
        Some("a.example.test:5222")
    );
    assert_eq!(responder.queries(), 1);
    assert_eq!(
        walk.next().await.map(|t| t.addr()).as_deref(),
        Some("b.example.test:5222")
    );
    assert!(
        walk.next().await.is_none(),
        "first is in back-off, b was tried"
    );
}
