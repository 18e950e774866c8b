//! The connection cap: which connections are open, where each is in its life, and whom to
//! close when a new one needs room; the idle keep-alive deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Closed connections after which freed heap is handed back to the system.
const TRIM_AFTER_CLOSED: u64 = 256;
/// At most one warning about the cap in this period (an attack would flood the log).
const WARN_EVERY: Duration = Duration::from_secs(10);

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

/// A connection's [`Stage`] and when it last changed, shared by the connection's task (which
/// moves it) and the registry (which reads it to choose whom to close).
#[derive(Debug)]
pub struct StageCell {
    stage: AtomicU8,
    /// Milliseconds since `epoch` at the last change.
    since_ms: AtomicU64,
    epoch: Instant,
}

impl StageCell {
    fn new(epoch: Instant) -> Self {
        let cell = StageCell {
            stage: AtomicU8::new(Stage::Opened as u8),
            since_ms: AtomicU64::new(0),
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

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.since_ms.store(ms, Ordering::Release);
    }

    fn unchanged_for(&self, now: Instant) -> Duration {
        let since = self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        now.saturating_duration_since(since)
    }
}

/// Whom to close, so that a new connection fits under the cap: the oldest connection still
/// waiting for a request to arrive (a stalled client: nothing complete yet, or a body still
/// coming), else the oldest idle keep-alive one; `None` when every connection is working on
/// a request, and the new one is to be closed instead. `oldest_first` lists the open ones.
pub fn choose_victim(oldest_first: impl IntoIterator<Item = (u64, Stage)>) -> Option<u64> {
    let mut idle = None;
    for (id, stage) in oldest_first {
        match stage {
            Stage::Opened | Stage::Receiving => return Some(id),
            Stage::Idle if idle.is_none() => idle = Some(id),
            Stage::Idle | Stage::Working => {}
        }
    }
    idle
}

/// The open HTTP connections, under `--max-connections`.
#[derive(Debug)]
pub struct Connections {
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
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Connections {
            max: max.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Registry::default()),
        })
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
            let victim = choose_victim(reg.open.iter().map(|(id, e)| (*id, e.stage.get())));
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
            max_connections = self.max,
            closed_to_make_room = reg.evicted_since_warning,
            refused_all_busy = reg.refused_since_warning,
            "connection cap reached"
        );
        reg.warned = Some(now);
        reg.evicted_since_warning = 0;
        reg.refused_since_warning = 0;
    }

    /// Closes keep-alive connections idle for `keepalive`, and hands freed heap back to the
    /// system after many connections closed. Runs until aborted.
    pub async fn reap_idle(self: Arc<Self>, keepalive: Duration) {
        let tick = (keepalive / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            let trim = {
                let mut reg = self.lock();
                let expired: Vec<u64> = reg
                    .open
                    .iter()
                    .filter(|(_, e)| {
                        e.stage.get() == Stage::Idle && e.stage.unchanged_for(now) >= keepalive
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
            };
            if trim {
                let _ = tokio::task::spawn_blocking(release_free_heap).await;
            }
        }
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
mod tests {
    use super::*;
    use Stage::*;

    fn choose(stages: &[Stage]) -> Option<u64> {
        choose_victim(stages.iter().enumerate().map(|(i, s)| (i as u64, *s)))
    }

    #[test]
    fn the_oldest_stalled_connection_goes_first_even_before_an_older_idle_one() {
        assert_eq!(choose(&[Idle, Working, Receiving, Opened]), Some(2));
        assert_eq!(choose(&[Idle, Working, Opened, Receiving]), Some(2));
    }

    #[test]
    fn without_a_stalled_one_the_oldest_idle_keep_alive_goes() {
        assert_eq!(choose(&[Working, Idle, Working, Idle]), Some(1));
    }

    #[test]
    fn a_connection_working_on_a_request_is_never_chosen() {
        assert_eq!(choose(&[Working, Working]), None);
        assert_eq!(choose(&[]), None);
    }

    #[tokio::test]
    async fn at_the_cap_a_stalled_connection_makes_room_and_all_busy_refuses_the_new_one() {
        let conns = Connections::new(2);
        let (a, mut a_closed) = conns.admit().unwrap();
        let (b, _b_closed) = conns.admit().unwrap();
        b.stage().set(Working);
        let (c, _c_closed) = conns.admit().unwrap();
        assert!(
            a_closed.try_recv().is_ok(),
            "the stalled one was told to close"
        );
        assert_eq!(conns.open(), 2);
        c.stage().set(Working);
        assert!(conns.admit().is_none(), "every connection is working");
        drop(a);
        assert_eq!(conns.open(), 2, "a closed victim frees nothing twice");
        drop(b);
        assert_eq!(conns.open(), 1);
        assert!(conns.admit().is_some());
    }

    #[test]
    fn a_request_body_arriving_after_the_answer_never_undoes_idle() {
        let cell = StageCell::new(Instant::now());
        cell.set(Idle);
        cell.advance(Receiving, Working);
        assert_eq!(cell.get(), Idle);
        cell.set(Receiving);
        cell.advance(Receiving, Working);
        assert_eq!(cell.get(), Working);
    }
}
