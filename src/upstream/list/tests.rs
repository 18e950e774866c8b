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
    u.targets(i).await.remove(0)
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
    assert!(u.check_plaintext(&local).await.is_ok());
    // An operator's literal entry was checked at start.
    let literal = Target::new("192.0.2.1".into(), 5222, "192.0.2.1:5222".into(), false);
    assert!(u.check_plaintext(&literal).await.is_ok());
}
