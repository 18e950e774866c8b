use std::sync::atomic::Ordering;

use tokio::time::advance;

use super::*;

const TTL: Duration = Duration::from_secs(40);

fn looked_at<K, V>(m: &ExpiringMap<K, V>) -> usize {
    m.looked_at.load(Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_last_touch() {
    let m = ExpiringMap::new(TTL, 10);
    m.insert("a", 1);
    assert_eq!(m.get(&"a"), Some(1));
    advance(Duration::from_secs(25)).await;
    assert_eq!(m.update(&"a", |v| *v), Some(1), "a touch renews it");
    advance(Duration::from_secs(25)).await;
    assert_eq!(
        m.get(&"a"),
        Some(1),
        "50 s after the insert, 25 s after the touch"
    );
    assert_eq!(m.peek(&"a", |v| *v), Some(1));
    advance(Duration::from_secs(15)).await;
    assert_eq!(m.get(&"a"), None, "40 s after the touch");
    assert_eq!(m.sweep(), vec![("a", 1)]);
    assert!(m.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_bound_evicts_the_least_recently_touched() {
    let m = ExpiringMap::new(TTL, 2);
    assert!(m.insert(1, "one").is_none());
    assert!(m.insert(2, "two").is_none());
    m.update(&1, |_| ());
    assert_eq!(m.insert(3, "three"), Some((2, "two")));
    assert_eq!(m.len(), 2);
    assert_eq!(
        m.insert(3, "again"),
        Some((3, "three")),
        "replacing hands back the old value and makes no room"
    );
    assert_eq!(m.get(&1), Some("one"));
    // A look without a touch leaves the order alone.
    m.get(&1);
    m.peek(&1, |_| ());
    assert_eq!(m.upsert(4, || "four", |_| ()).1, Some((1, "one")));
}

#[tokio::test(start_paused = true)]
async fn upsert_creates_and_touches() {
    let m: ExpiringMap<&str, Vec<u8>> = ExpiringMap::new(TTL, 8);
    let (len, displaced) = m.upsert("k", Vec::new, |v| {
        v.push(1);
        v.len()
    });
    assert_eq!((len, displaced), (1, None));
    advance(Duration::from_secs(30)).await;
    let (len, _) = m.upsert("k", Vec::new, |v| {
        v.push(2);
        v.len()
    });
    assert_eq!(len, 2);
    advance(Duration::from_secs(30)).await;
    assert_eq!(m.get(&"k"), Some(vec![1, 2]), "the upsert touched it");
    assert_eq!(m.remove_if(&"k", |v| v.is_empty()), None);
    assert_eq!(m.remove_if(&"k", |v| v.len() == 2), Some(vec![1, 2]));
    assert!(m.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expired_entry_is_handed_back_never_dropped_unseen() {
    let m = ExpiringMap::new(TTL, 8);
    m.insert("a", 1);
    m.insert("b", 2);
    m.insert("c", 3);
    advance(TTL).await;
    // Lookups leave it where it is, for the sweeper.
    assert_eq!(m.update(&"a", |v| *v), None);
    assert_eq!(m.remove(&"a"), None);
    assert_eq!(m.remove_if(&"a", |_| true), None);
    assert_eq!(m.len(), 3);
    // A new value at its key hands the old one back.
    let (fresh, displaced) = m.upsert("b", || 20, |v| *v);
    assert_eq!((fresh, displaced), (20, Some(("b", 2))));
    assert_eq!(m.insert("c", 30), Some(("c", 3)));
    assert_eq!(m.sweep(), vec![("a", 1)]);
    assert_eq!((m.get(&"b"), m.get(&"c")), (Some(20), Some(30)));
}

#[tokio::test(start_paused = true)]
async fn the_sweep_looks_at_the_expired_entries_and_one_live_one() {
    let m = ExpiringMap::new(TTL, 10_000);
    for k in 0..10 {
        m.insert(k, ());
    }
    advance(Duration::from_secs(20)).await;
    for k in 10..5_000 {
        m.insert(k, ());
    }
    // 3 is touched: it lives on, and the sweep still stops at the first live entry.
    m.update(&3, |_| ());
    advance(Duration::from_secs(25)).await;
    let before = looked_at(&m);
    let gone: Vec<i32> = m.sweep().into_iter().map(|(k, _)| k).collect();
    assert_eq!(gone, [0, 1, 2, 4, 5, 6, 7, 8, 9], "oldest first");
    assert_eq!(looked_at(&m) - before, 10);
    assert_eq!(m.len(), 4_991);
    assert!(m.sweep().is_empty());
}

/// A client that sends new keys without end (addresses, account names) costs each insert one
/// eviction, never a look at every entry.
#[tokio::test(start_paused = true)]
async fn inserts_at_the_bound_stay_o1() {
    const BOUND: usize = 1_000;
    const INSERTS: usize = 100_000;
    let m = ExpiringMap::new(TTL, BOUND);
    let mut evicted = Vec::new();
    for k in 0..INSERTS {
        evicted.extend(m.insert(k, k).map(|(k, _)| k));
        if k % 7 == 0 {
            evicted.extend(m.upsert(k / 2, || 0, |_| ()).1.map(|(k, _)| k));
        }
    }
    assert_eq!(m.len(), BOUND);
    let upserts = INSERTS.div_ceil(7);
    assert!(
        looked_at(&m) <= INSERTS + upserts,
        "looked at {} entries for {INSERTS} inserts",
        looked_at(&m)
    );
    assert!(
        evicted.len() >= INSERTS - BOUND,
        "everything beyond the bound handed back"
    );
    assert_eq!(m.get(&(INSERTS - 1)), Some(INSERTS - 1), "the newest stays");
}

#[tokio::test(start_paused = true)]
async fn remove_where_takes_out_what_its_owner_calls_dead() {
    let m = ExpiringMap::new(TTL, 8);
    m.insert("alive", true);
    m.insert("dead", false);
    assert_eq!(m.remove_where(|alive| !alive), vec![("dead", false)]);
    assert_eq!(m.get(&"alive"), Some(true));
}
