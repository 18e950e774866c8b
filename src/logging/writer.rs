//! The writer behind the log: lines go into a bounded queue in memory and a thread of their
//! own writes them to stderr, so a slow or stuck stderr (a full pipe, a paused `docker logs`
//! reader, a terminal scrolled back) never stalls the runtime.
//!
//! - An ordinary line that does not fit (the queue holds [`CAPACITY`] bytes queued or being
//!   written) is dropped and counted (`xrg_log_lines_dropped_total` in `/metrics`).
//! - An audit line (target `audit`) is never dropped: it is always queued. The audit layer
//!   first awaits [`room`](LineWriter::room) (asynchronously: the answer waits, the runtime
//!   does not), then writes its line at once, with no await in between; so the queue exceeds
//!   its bound by at most one audit line per runtime thread. A request dropped before its
//!   answer (its line written from a `Drop`, where nothing can be awaited) is queued
//!   without waiting: one line per open connection at most.
//!
//! Why not `tracing-appender`'s `non_blocking`: it is lossy or blocking per writer, and its
//! blocking mode blocks the calling thread (the runtime's); it offers no way to await room,
//! and a second writer for audit lines would interleave with the first on stderr.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The bound on bytes queued or being written: about a thousand lines.
pub const CAPACITY: usize = 256 * 1024;

/// The target of audit lines ([`crate::audit`]), which are never dropped.
const AUDIT: &str = "audit";

/// A handle on the queue and its writing thread; cheap to clone.
#[derive(Clone)]
pub struct LineWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writing thread when it is idle and a line is queued.
    queued: Condvar,
    /// Wakes [`LineWriter::flush`] when everything is written.
    written: Condvar,
    /// Wakes the answers awaiting room.
    room: tokio::sync::Notify,
    capacity: usize,
    dropped: Counter,
}

struct State {
    /// Whole lines not yet taken by the writing thread.
    queue: Vec<u8>,
    /// Bytes queued or being written: what [`Shared::capacity`] bounds.
    pending: usize,
    /// The writing thread waits for lines (only then is it woken: a wake is a syscall).
    idle: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LineWriter {
    /// Starts the thread writing to `sink`; lines beyond `capacity` bytes are counted in
    /// `dropped`. Fails only when no thread can be started.
    pub fn spawn<W: Write + Send + 'static>(
        sink: W,
        capacity: usize,
        dropped: Counter,
    ) -> std::io::Result<LineWriter> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Vec::new(),
                pending: 0,
                idle: false,
            }),
            queued: Condvar::new(),
            written: Condvar::new(),
            room: tokio::sync::Notify::new(),
            capacity,
            dropped,
        });
        let drainer = shared.clone();
        // Detached: at exit, `flush` waits a bounded time, then the process ends with it.
        std::thread::Builder::new()
            .name("xrg-log".into())
            .spawn(move || drain(&drainer, sink))?;
        Ok(LineWriter { shared })
    }

    /// Queues one whole line: an audit line always, another only if it fits.
    fn push(&self, line: &[u8], audit: bool) {
        let s = &*self.shared;
        let mut st = lock(&s.state);
        if !audit && st.pending + line.len() > s.capacity {
            drop(st);
            s.dropped.inc();
            return;
        }
        st.queue.extend_from_slice(line);
        st.pending += line.len();
        if st.idle {
            st.idle = false;
            s.queued.notify_one();
        }
    }

    /// Whether a line can be queued within the bound now.
    pub fn has_room(&self) -> bool {
        let s = &*self.shared;
        lock(&s.state).pending < s.capacity
    }

    /// Resolves once the queue is below its bound (at once when it is).
    pub async fn room(&self) {
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a drain between the two is not missed.
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until everything queued is written, at most `within`; whether it was.
    pub fn flush(&self, within: Duration) -> bool {
        let s = &*self.shared;
        let deadline = Instant::now() + within;
        let mut st = lock(&s.state);
        while st.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match s.written.wait_timeout(st, left) {
                Ok((st, _)) => st,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

/// The writing thread: takes everything queued, writes it in one go, frees its room.
fn drain<W: Write>(s: &Shared, mut sink: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut st = lock(&s.state);
            while st.queue.is_empty() {
                st.idle = true;
                st = s.queued.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            batch.clear();
            std::mem::swap(&mut st.queue, &mut batch);
        }
        if sink.write_all(&batch).and_then(|()| sink.flush()).is_err() {
            // stderr is gone (closed, EPIPE): these lines are lost, and counted.
            let lines = batch.iter().filter(|b| **b == b'\n').count();
            s.dropped.inc_by(lines.max(1) as u64);
        }
        {
            let mut st = lock(&s.state);
            st.pending = st.pending.saturating_sub(batch.len());
            if st.pending == 0 {
                s.written.notify_all();
            }
        }
        s.room.notify_waiters();
        // Lines that come meanwhile wait for the next batch without waking this thread (it is
        // not idle): under load one wake-up and one write per LINGER, not per line. A wake-up
        // per audit line cost the gateway about a fifth more CPU per request in the benchmark
        // (docs/benchmarks.md); a line is still written within LINGER of its request's end.
        std::thread::sleep(LINGER);
    }
}

/// How long the writing thread lets lines gather after a write before it looks again.
const LINGER: Duration = Duration::from_millis(2);

/// One line as the formatter writes it, queued whole when done.
pub struct Line<'a> {
    writer: &'a LineWriter,
    bytes: Vec<u8>,
    audit: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            self.writer.push(&self.bytes, self.audit);
        }
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            writer: self,
            bytes: Vec::new(),
            audit: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            writer: self,
            bytes: Vec::new(),
            audit: meta.target() == AUDIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// A sink that writes nothing until opened, like a pipe nobody reads.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Gate {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut open = self.open.0.lock().unwrap();
            while !*open {
                open = self.open.1.wait(open).unwrap();
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer of `capacity` bytes on a closed gate.
    fn stuck(capacity: usize) -> (LineWriter, Gate, Counter) {
        let gate = Gate::default();
        let dropped = Counter::default();
        let w = LineWriter::spawn(gate.clone(), capacity, dropped.clone()).unwrap();
        (w, gate, dropped)
    }

    fn log(w: &LineWriter, f: impl FnOnce()) {
        let filter = tracing_subscriber::EnvFilter::new("info");
        let sub = super::super::subscriber(filter, w.clone(), false, super::super::LogFormat::Text);
        tracing::subscriber::with_default(sub, f);
    }

    #[test]
    fn ordinary_lines_beyond_the_bound_are_dropped_and_counted() {
        let (w, gate, dropped) = stuck(10);
        w.push(b"line 0001\n", false);
        w.push(b"line 0002\n", false);
        w.push(b"line 0003\n", false);
        assert_eq!(dropped.get(), 2);
        assert!(!w.has_room());
        gate.open();
        assert!(w.flush(Duration::from_secs(10)));
        assert_eq!(gate.text(), "line 0001\n");
        // Room again: the next line is written.
        w.push(b"line 0004\n", false);
        assert!(w.flush(Duration::from_secs(10)));
        assert_eq!(gate.text(), "line 0001\nline 0004\n");
        assert_eq!(dropped.get(), 2);
    }

    #[test]
    fn audit_lines_are_never_dropped_when_full() {
        let (w, gate, dropped) = stuck(200);
        log(&w, || {
            for i in 0..50 {
                tracing::info!("ordinary {i}");
            }
            for i in 0..20 {
                let r = crate::audit::Record::new(format!("r{i}"), "::1".into(), "-".into(), "GET");
                r.emit(200, "");
            }
        });
        assert!(dropped.get() > 0, "the bound was reached");
        gate.open();
        assert!(w.flush(Duration::from_secs(10)));
        let text = gate.text();
        for i in 0..20 {
            assert!(text.contains(&format!("request_id=r{i} ")), "{i}: {text}");
        }
        let ordinary = text.lines().filter(|l| l.contains("ordinary")).count();
        assert_eq!(ordinary as u64 + dropped.get(), 50, "{text}");
    }

    #[tokio::test]
    async fn an_answer_awaits_room_without_blocking_and_goes_on_once_written() {
        let (w, gate, _) = stuck(10);
        w.push(b"0123456789", false);
        let waiting = w.room();
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none(), "full: it waits");
        gate.open();
        waiting.await;
        assert!(w.has_room());
    }
}
