//! The one map type behind every cache the gateway keeps (failed logins, learnt forms, recently
//! ended sessions, kept command sessions): entries expire a fixed time after they were last
//! touched, and the map never holds more than its bound (the least recently touched entry
//! makes room). Expired entries are invisible at once and removed by one sweeper
//! (`App::sweep_every`), which hands them back so their owner can act on them (a kept command
//! session is cancelled upstream).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A bounded map whose entries expire `ttl` after their last touch.
pub struct ExpiringMap<K, V> {
    ttl: Duration,
    bound: usize,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

struct Entry<V> {
    value: V,
    touched: Instant,
}

impl<K: Eq + Hash + Clone, V> ExpiringMap<K, V> {
    /// `bound` is at least 1.
    pub fn new(ttl: Duration, bound: usize) -> Self {
        Self {
            ttl,
            bound: bound.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A clone of the live value at `key`, without touching it.
    pub fn get(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        let entries = self.lock();
        entries
            .get(key)
            .filter(|e| e.touched.elapsed() < self.ttl)
            .map(|e| e.value.clone())
    }

    /// Runs `f` on the live value at `key` (touching it); `None` when there is none.
    pub fn update<R>(&self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut entries = self.lock();
        let e = entries.get_mut(key)?;
        if e.touched.elapsed() >= self.ttl {
            entries.remove(key);
            return None;
        }
        e.touched = Instant::now();
        Some(f(&mut e.value))
    }

    /// Runs `f` on the value at `key`, made with `new` when there is none live (touching it).
    /// Returns what `f` returned and the entry evicted to make room, if any.
    pub fn upsert<R>(
        &self,
        key: K,
        new: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> (R, Option<(K, V)>) {
        let mut entries = self.lock();
        let now = Instant::now();
        let live = entries
            .get(&key)
            .is_some_and(|e| now.duration_since(e.touched) < self.ttl);
        let evicted = if live {
            None
        } else {
            entries.remove(&key);
            self.make_room(&mut entries)
        };
        let e = entries.entry(key).or_insert_with(|| Entry {
            value: new(),
            touched: now,
        });
        e.touched = now;
        (f(&mut e.value), evicted)
    }

    /// Puts `value` at `key`; returns the entry evicted to make room, if any.
    pub fn insert(&self, key: K, value: V) -> Option<(K, V)> {
        let mut entries = self.lock();
        let evicted = match entries.remove(&key) {
            Some(_) => None,
            None => self.make_room(&mut entries),
        };
        entries.insert(
            key,
            Entry {
                value,
                touched: Instant::now(),
            },
        );
        evicted
    }

    /// Takes the live value at `key` out.
    pub fn remove(&self, key: &K) -> Option<V> {
        let e = self.lock().remove(key)?;
        (e.touched.elapsed() < self.ttl).then_some(e.value)
    }

    /// Takes out the live value at `key` if `pred` accepts it; otherwise leaves it.
    pub fn remove_if(&self, key: &K, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        let mut entries = self.lock();
        let fits = entries
            .get(key)
            .is_some_and(|e| e.touched.elapsed() < self.ttl && pred(&e.value));
        fits.then(|| entries.remove(key)).flatten().map(|e| e.value)
    }

    /// How many live values `pred` accepts.
    pub fn count(&self, pred: impl Fn(&V) -> bool) -> usize {
        self.lock()
            .values()
            .filter(|e| e.touched.elapsed() < self.ttl && pred(&e.value))
            .count()
    }

    /// Removes and returns the expired entries, and those `dead` says are of no use any more.
    pub fn sweep(&self, dead: impl Fn(&V) -> bool) -> Vec<(K, V)> {
        let mut entries = self.lock();
        let now = Instant::now();
        let gone: Vec<K> = entries
            .iter()
            .filter(|(_, e)| now.duration_since(e.touched) >= self.ttl || dead(&e.value))
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| entries.remove(&k).map(|e| (k, e.value)))
            .collect()
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At the bound: drops what has expired, then the least recently touched entry.
    fn make_room(&self, entries: &mut HashMap<K, Entry<V>>) -> Option<(K, V)> {
        if entries.len() < self.bound {
            return None;
        }
        let now = Instant::now();
        entries.retain(|_, e| now.duration_since(e.touched) < self.ttl);
        if entries.len() < self.bound {
            return None;
        }
        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| e.touched)
            .map(|(k, _)| k.clone())?;
        entries.remove(&oldest).map(|e| (oldest, e.value))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_last_touch() {
        let m = ExpiringMap::new(Duration::from_millis(40), 10);
        m.insert("a", 1);
        assert_eq!(m.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(m.update(&"a", |v| *v), Some(1), "a touch renews it");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(m.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(45));
        assert_eq!(m.get(&"a"), None);
        assert_eq!(m.sweep(|_| false), vec![("a", 1)]);
        assert!(m.is_empty());
    }

    #[test]
    fn the_bound_evicts_the_least_recently_touched() {
        let m = ExpiringMap::new(Duration::from_secs(60), 2);
        assert!(m.insert(1, "one").is_none());
        std::thread::sleep(Duration::from_millis(2));
        assert!(m.insert(2, "two").is_none());
        std::thread::sleep(Duration::from_millis(2));
        m.update(&1, |_| ());
        assert_eq!(m.insert(3, "three"), Some((2, "two")));
        assert_eq!(m.len(), 2);
        assert_eq!(m.insert(3, "again"), None, "replacing makes no room");
    }

    #[test]
    fn upsert_creates_touches_and_counts() {
        let m: ExpiringMap<&str, Vec<u8>> = ExpiringMap::new(Duration::from_secs(60), 8);
        let (len, evicted) = m.upsert("k", Vec::new, |v| {
            v.push(1);
            v.len()
        });
        assert_eq!((len, evicted), (1, None));
        let (len, _) = m.upsert("k", Vec::new, |v| {
            v.push(2);
            v.len()
        });
        assert_eq!(len, 2);
        assert_eq!(m.count(|v| v.len() == 2), 1);
        assert_eq!(m.remove_if(&"k", |v| v.is_empty()), None);
        assert_eq!(m.remove_if(&"k", |v| v.len() == 2), Some(vec![1, 2]));
    }

    #[test]
    fn sweep_takes_out_what_its_owner_calls_dead() {
        let m = ExpiringMap::new(Duration::from_secs(60), 8);
        m.insert("alive", true);
        m.insert("dead", false);
        assert_eq!(m.sweep(|alive| !alive), vec![("dead", false)]);
        assert_eq!(m.get(&"alive"), Some(true));
    }
}
