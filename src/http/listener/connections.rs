//! The connection cap of one listener: which connections are open, where each is in its life,
//! and whom to close when a new one needs room; the idle keep-alive deadline and the deadline
//! for an answer the client does not take.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Closed connections after which freed heap is handed back to the system.
const TRIM_AFTER_CLOSED: u64 = 256;
/// At most one warning about the cap in this period (an attack would flood the log).
const WARN_EVERY: Duration = Duration::from_secs(10);
/// [`StageCell::write_waiting_since_ms`] while no write waits.
const NOT_WAITING: u64 = u64::MAX;

/// Where a connection is in its life, as the cap sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Accepted; no request head complete yet.
    Opened = 0,
    /// A request head is in; its body is still arriving.
    Receiving = 1,
    /// A whole request is in and is being worked on or answered.
    Working = 2,
    /// Answered; waiting for the next request (keep-alive).
    Idle = 3,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            0 => Stage::Opened,
            1 => Stage::Receiving,
            2 => Stage::Working,
            _ => Stage::Idle,
        }
    }
}

/// A connection's [`Stage`] and when it last changed, and whether a write of its waits for the
/// client to take bytes; shared by the connection's task (which moves it), its stream (which
/// reports waiting writes) and the registry (which reads it to choose whom to close).
#[derive(Debug)]
pub struct StageCell {
    stage: AtomicU8,
    /// Milliseconds since `epoch` at the last change.
    since_ms: AtomicU64,
    /// Milliseconds since `epoch` when a write began to wait for the client to take bytes,
    /// [`NOT_WAITING`] while none waits (a write that moves any byte ends the wait).
    write_waiting_since_ms: AtomicU64,
    epoch: Instant,
}

impl StageCell {
    fn new(epoch: Instant) -> Self {
        let cell = StageCell {
            stage: AtomicU8::new(Stage::Opened as u8),
            since_ms: AtomicU64::new(0),
            write_waiting_since_ms: AtomicU64::new(NOT_WAITING),
            epoch,
        };
        cell.touch();
        cell
    }

    pub fn get(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Acquire))
    }

    pub fn set(&self, stage: Stage) {
        self.touch();
        self.stage.store(stage as u8, Ordering::Release);
    }

    /// Moves to `to` only from `from`.
    pub fn advance(&self, from: Stage, to: Stage) {
        let moved =
            self.stage
                .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire);
        if moved.is_ok() {
            self.touch();
        }
    }

    /// A write could not move a byte: the client's receive window and our send buffer are
    /// full. Counts from the first such write since bytes last moved.
    pub fn write_waits(&self) {
        let ms = self.now_ms();
        // Only from "not waiting": a wait already running keeps its start.
        let _ = self.write_waiting_since_ms.compare_exchange(
            NOT_WAITING,
            ms,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// A write moved bytes: the client takes its answer.
    pub fn write_moved(&self) {
        // Most writes never waited: a load, not a store, leaves the cache line shared.
        if self.write_waiting_since_ms.load(Ordering::Acquire) != NOT_WAITING {
            self.write_waiting_since_ms
                .store(NOT_WAITING, Ordering::Release);
        }
    }

    /// How long a write has waited for the client at `now`, if one waits.
    pub fn write_waiting_for(&self, now: Instant) -> Option<Duration> {
        let ms = self.write_waiting_since_ms.load(Ordering::Acquire);
        (ms != NOT_WAITING)
            .then(|| now.saturating_duration_since(self.epoch + Duration::from_millis(ms)))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
    }

    fn unchanged_for(&self, now: Instant) -> Duration {
        let since = self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        now.saturating_duration_since(since)
    }

    fn standing(&self, now: Instant) -> Standing {
        Standing {
            stage: self.get(),
            write_waiting: self.write_waiting_for(now),
        }
    }
}

/// What the cap sees of one open connection when it chooses whom to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub stage: Stage,
    /// How long a write of its answer has waited for the client to take bytes, if one waits.
    pub write_waiting: Option<Duration>,
}

/// Whom to close, so that a new connection fits under the cap: the oldest connection still
/// waiting for a request to arrive (a stalled client: nothing complete yet, or a body still
/// coming), else the oldest idle keep-alive one, else the one whose answer has waited longest
/// for the client to take it (a client that does not read; a download in progress waits a
/// round trip at most, so it is the last such one chosen); `None` when every connection is
/// working on a request or sending an answer that moves, and the new one is to be closed
/// instead. `oldest_first` lists the open ones.
pub fn choose_victim(oldest_first: impl IntoIterator<Item = (u64, Standing)>) -> Option<u64> {
    let mut idle = None;
    let mut not_read: Option<(u64, Duration)> = None;
    for (id, seen) in oldest_first {
        match seen.stage {
            Stage::Opened | Stage::Receiving => return Some(id),
            Stage::Idle if idle.is_none() => idle = Some(id),
            Stage::Idle | Stage::Working => {}
        }
        if let Some(waited) = seen.write_waiting {
            if not_read.is_none_or(|(_, longest)| waited > longest) {
                not_read = Some((id, waited));
            }
        }
    }
    idle.or(not_read.map(|(id, _)| id))
}

/// The open HTTP connections of one listener, under its cap.
#[derive(Debug)]
pub struct Connections {
    /// The listener's name in log lines (`api`, `admin`).
    listener: &'static str,
    max: usize,
    epoch: Instant,
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// Ids grow with accept order, so the map iterates oldest first.
    next_id: u64,
    open: BTreeMap<u64, Entry>,
    /// Connections whose task has ended, counted by [`Slot`]'s drop.
    closed: u64,
    trimmed_at: u64,
    evicted_since_warning: u64,
    refused_since_warning: u64,
    warned: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    stage: Arc<StageCell>,
    /// Tells the connection's task to close it.
    close: oneshot::Sender<()>,
}

/// A connection's place under the cap; dropping it (the connection's task ends) frees it.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    stage: Arc<StageCell>,
    conns: Arc<Connections>,
}

impl Slot {
    pub fn stage(&self) -> Arc<StageCell> {
        self.stage.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut reg = self.conns.lock();
        reg.open.remove(&self.id);
        reg.closed += 1;
    }
}

impl Connections {
    pub fn new(listener: &'static str, max: usize) -> Arc<Self> {
        Arc::new(Connections {
            listener,
            max: max.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Registry::default()),
        })
    }

    /// The listener's name in log lines.
    pub fn listener(&self) -> &'static str {
        self.listener
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding it; a poisoned map is still a consistent map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection, and the signal that closes it later to make room; at
    /// the cap another connection is closed first (see [`choose_victim`]), or `None`: close
    /// the new one.
    pub fn admit(self: &Arc<Self>) -> Option<(Slot, oneshot::Receiver<()>)> {
        let mut reg = self.lock();
        if reg.open.len() >= self.max {
            let now = Instant::now();
            let victim = choose_victim(reg.open.iter().map(|(id, e)| (*id, e.stage.standing(now))));
            let evicted = victim.and_then(|id| reg.open.remove(&id));
            match evicted {
                Some(_) => reg.evicted_since_warning += 1,
                None => reg.refused_since_warning += 1,
            }
            self.warn_at_cap(&mut reg);
            let _ = evicted?.close.send(());
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let stage = Arc::new(StageCell::new(self.epoch));
        let (close, closed) = oneshot::channel();
        reg.open.insert(
            id,
            Entry {
                stage: stage.clone(),
                close,
            },
        );
        let slot = Slot {
            id,
            stage,
            conns: self.clone(),
        };
        Some((slot, closed))
    }

    fn warn_at_cap(&self, reg: &mut Registry) {
        let now = Instant::now();
        if reg
            .warned
            .is_some_and(|w| now.duration_since(w) < WARN_EVERY)
        {
            return;
        }
        tracing::warn!(
            listener = self.listener,
            max_connections = self.max,
            closed_to_make_room = reg.evicted_since_warning,
            refused_all_busy = reg.refused_since_warning,
            "connection cap reached"
        );
        reg.warned = Some(now);
        reg.evicted_since_warning = 0;
        reg.refused_since_warning = 0;
    }

    /// Closes keep-alive connections idle for `idle`, and those whose answer has waited
    /// `write` for the client to take a byte; hands freed heap back to the system after many
    /// connections closed. Runs until aborted.
    pub async fn reap(self: Arc<Self>, idle: Duration, write: Duration) {
        let tick = (idle.min(write) / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if self.sweep(Instant::now(), idle, write) {
                let _ = tokio::task::spawn_blocking(release_free_heap).await;
            }
        }
    }

    /// Closes what is past its deadline at `now` (see [`reap`](Self::reap)); whether enough
    /// connections have closed since the last trim to hand heap back.
    fn sweep(&self, now: Instant, idle: Duration, write: Duration) -> bool {
        let mut reg = self.lock();
        let expired: Vec<u64> = reg
            .open
            .iter()
            .filter(|(_, e)| {
                let idle_out = e.stage.get() == Stage::Idle && e.stage.unchanged_for(now) >= idle;
                let unread = e.stage.write_waiting_for(now).is_some_and(|w| w >= write);
                idle_out || unread
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(entry) = reg.open.remove(&id) {
                let _ = entry.close.send(());
            }
        }
        let trim = reg.closed - reg.trimmed_at >= TRIM_AFTER_CLOSED;
        if trim {
            reg.trimmed_at = reg.closed;
        }
        trim
    }
}

/// glibc keeps freed heap of closed connections (and of their threads' arenas); give it back.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer is passed.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests;
