//! The one map type behind every cache the gateway keeps (failed logins, learnt forms, recently
//! ended sessions, kept command sessions, stanza budgets): entries expire a fixed time after
//! they were last touched, and the map never holds more than its bound (the least recently
//! touched entry makes room).
//!
//! Entries are kept in the order they were last touched. Every entry lives the same time after
//! its last touch, so that order is also the order in which they expire: making room takes the
//! oldest entry, and the sweep takes expired entries from the old end and stops at the first
//! live one. Lookups, inserts and evictions are O(1) whatever the number of entries, the sweep
//! is O(what it takes out), and only [`remove_where`](ExpiringMap::remove_where) looks at every
//! entry: a client sending new keys costs each insert nothing more.
//!
//! Expired entries are invisible at once but never dropped unseen: they stay until the sweeper
//! (`App::sweep_every`) or the bound takes them out, and both hand them back, so that their owner
//! can act on them (a kept command session is cancelled upstream). Time is tokio's, which
//! tests pause and advance.

use std::collections::hash_map::RandomState;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hashlink::linked_hash_map::Entry as Slot;
use hashlink::LinkedHashMap;
use tokio::time::Instant;

/// A bounded map whose entries expire `ttl` after their last touch.
pub struct ExpiringMap<K, V> {
    ttl: Duration,
    bound: usize,
    /// Least recently touched first. std's hasher (SipHash, randomly keyed): the keys come from
    /// clients.
    entries: Mutex<LinkedHashMap<K, Entry<V>, RandomState>>,
    /// Entries looked at to make room or sweep (what the tests count).
    #[cfg(test)]
    looked_at: std::sync::atomic::AtomicUsize,
}

struct Entry<V> {
    value: V,
    touched: Instant,
}

/// An entry the map let go of, handed back to its owner.
pub type Displaced<K, V> = Option<(K, V)>;

impl<K: Eq + Hash + Clone, V> ExpiringMap<K, V> {
    /// `bound` is at least 1.
    pub fn new(ttl: Duration, bound: usize) -> Self {
        Self {
            ttl,
            bound: bound.max(1),
            entries: Mutex::new(LinkedHashMap::with_hasher(RandomState::new())),
            #[cfg(test)]
            looked_at: Default::default(),
        }
    }

    /// A clone of the live value at `key`, without touching it.
    pub fn get(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        self.peek(key, V::clone)
    }

    /// Runs `f` on the live value at `key` without touching it (it expires as it would have).
    pub fn peek<R>(&self, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        let entries = self.lock();
        let e = entries.get(key)?;
        self.live(e, Instant::now()).then(|| f(&e.value))
    }

    /// Runs `f` on the live value at `key` (touching it); `None` when there is none.
    pub fn update<R>(&self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut entries = self.lock();
        let now = Instant::now();
        if !self.live(entries.get(key)?, now) {
            // Left for the sweeper, which hands it back.
            return None;
        }
        let e = entries.to_back(key)?;
        e.touched = now;
        Some(f(&mut e.value))
    }

    /// Runs `f` on the value at `key`, made with `new` when there is none live (touching it).
    /// Returns what `f` returned and the entry it displaced: the key's expired value, or the
    /// least recently touched entry when the map was full.
    pub fn upsert<R>(
        &self,
        key: K,
        new: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> (R, Displaced<K, V>) {
        let mut entries = self.lock();
        let now = Instant::now();
        let displaced = match entries.get(&key) {
            Some(e) if self.live(e, now) => None,
            Some(_) => entries.remove_entry(&key).map(|(k, e)| (k, e.value)),
            None => self.make_room(&mut entries),
        };
        let e = match entries.entry(key) {
            Slot::Occupied(mut o) => {
                o.to_back();
                let e = o.into_mut();
                e.touched = now;
                e
            }
            Slot::Vacant(v) => v.insert(Entry {
                value: new(),
                touched: now,
            }),
        };
        (f(&mut e.value), displaced)
    }

    /// Puts `value` at `key`. Returns the entry it displaced: the key's previous value (live or
    /// expired), or the least recently touched entry when the map was full.
    pub fn insert(&self, key: K, value: V) -> Displaced<K, V> {
        let mut entries = self.lock();
        let displaced = match entries.remove_entry(&key) {
            Some((k, e)) => Some((k, e.value)),
            None => self.make_room(&mut entries),
        };
        let touched = Instant::now();
        entries.insert(key, Entry { value, touched });
        displaced
    }

    /// Takes the live value at `key` out (an expired one is left for the sweeper).
    pub fn remove(&self, key: &K) -> Option<V> {
        self.remove_if(key, |_| true)
    }

    /// Takes out the live value at `key` if `pred` accepts it; otherwise leaves it.
    pub fn remove_if(&self, key: &K, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        let mut entries = self.lock();
        let e = entries.get(key)?;
        if !(self.live(e, Instant::now()) && pred(&e.value)) {
            return None;
        }
        entries.remove(key).map(|e| e.value)
    }

    /// Removes and returns the expired entries, oldest first: looks at those and at the first
    /// live one only.
    pub fn sweep(&self) -> Vec<(K, V)> {
        let mut entries = self.lock();
        let now = Instant::now();
        let mut gone = Vec::new();
        while let Some((_, e)) = entries.front() {
            self.look();
            if self.live(e, now) {
                break;
            }
            gone.extend(entries.pop_front().map(|(k, e)| (k, e.value)));
        }
        gone
    }

    /// Removes and returns the live entries `dead` says are of no use any more. Looks at every
    /// entry: for the sweeper of a small map, never for a request's path.
    pub fn remove_where(&self, dead: impl Fn(&V) -> bool) -> Vec<(K, V)> {
        let mut entries = self.lock();
        let gone: Vec<K> = entries
            .iter()
            .inspect(|_| self.look())
            .filter(|(_, e)| dead(&e.value))
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| entries.remove_entry(&k).map(|(k, e)| (k, e.value)))
            .collect()
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live(&self, e: &Entry<V>, now: Instant) -> bool {
        now.saturating_duration_since(e.touched) < self.ttl
    }

    /// At the bound, takes out the least recently touched entry (expired ones come first).
    fn make_room(&self, entries: &mut LinkedHashMap<K, Entry<V>, RandomState>) -> Displaced<K, V> {
        if entries.len() < self.bound {
            return None;
        }
        self.look();
        entries.pop_front().map(|(k, e)| (k, e.value))
    }

    fn look(&self) {
        #[cfg(test)]
        self.looked_at
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, LinkedHashMap<K, Entry<V>, RandomState>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
#[path = "expiring_tests.rs"]
mod tests;
