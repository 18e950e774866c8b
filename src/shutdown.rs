//! How the gateway ends, on SIGTERM (what `docker stop` and init systems send) or SIGINT
//! (Ctrl-C): it drains. First, for `--drain-delay`, it says so and goes on serving: `/readyz`
//! answers 503 `draining` (so a load balancer's health check takes it out of rotation) and
//! every answer closes its connection (so the balancer's kept-alive connections move to other
//! replicas). A second signal ends the delay at once. Then the listener stops accepting, the
//! requests in flight finish (within `--drain-timeout`), and every upstream stream is closed
//! with `</stream:stream>` (`http::listener::serve`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where the signals that end the gateway come from: each `next` resolves at the next one.
pub trait Signals {
    fn next(&mut self) -> impl Future<Output = ()> + Send;
}

/// SIGTERM and SIGINT, listened for from the moment this is made: from then on neither ends
/// the process by itself.
pub struct OsSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl OsSignals {
    /// Listens for both (within the runtime); one that cannot be listened for is never
    /// reported (and keeps its default, ending the process).
    pub fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for {name} ({e}): it ends the gateway at once");
                None
            }
        };
        OsSignals {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            int: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }
}

impl Default for OsSignals {
    fn default() -> Self {
        Self::new()
    }
}

impl Signals for OsSignals {
    async fn next(&mut self) {
        async fn one(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    if s.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(self.term.as_mut()) => {},
            _ = one(self.int.as_mut()) => {},
        }
    }
}

/// Whether the gateway is draining: set once, at the first signal, and never cleared. Read by
/// `/readyz` (before its cached probe) and by each connection as it answers.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
}

impl Drain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the drain has begun (the gateway is on its way out).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Begins the drain: `/readyz` answers `draining` and every answer closes its connection
    /// from now on.
    pub fn begin(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            crate::metrics::draining();
        }
    }

    /// Resolves when the listener should stop accepting: `delay` after the first of
    /// `signals` (the drain begun at it), or at the second if that comes sooner.
    pub async fn stop_accepting(&self, mut signals: impl Signals, delay: Duration) {
        signals.next().await;
        self.begin();
        if delay.is_zero() {
            tracing::info!("shutting down: no longer accepting, finishing requests in flight");
            return;
        }
        tracing::info!(
            delay_secs = delay.as_secs_f64(),
            "draining: /readyz answers 503 draining; still serving meanwhile, each answer \
             closing its connection; a second SIGTERM or SIGINT ends the delay"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => tracing::info!(
                "drain delay over: no longer accepting, finishing requests in flight"
            ),
            _ = signals.next() => tracing::info!(
                "second signal: drain delay ended; no longer accepting, finishing requests in \
                 flight"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    /// Signals a test sends itself.
    impl Signals for mpsc::UnboundedReceiver<()> {
        async fn next(&mut self) {
            if self.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
    }

    const DELAY: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn nothing_drains_before_a_signal() {
        let drain = Drain::new();
        let (_tx, rx) = mpsc::unbounded_channel();
        let stop = drain.stop_accepting(rx, DELAY);
        let waited = tokio::time::timeout(Duration::from_secs(3600), stop).await;
        assert!(waited.is_err(), "stopped without a signal");
        assert!(!drain.is_draining());
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_signal_drains_at_once_and_accepting_stops_after_the_delay() {
        let drain = Drain::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = drain.stop_accepting(rx, DELAY);
        tokio::pin!(stop);
        tx.send(()).unwrap();
        let signalled = Instant::now();
        let early = tokio::time::timeout(DELAY - Duration::from_millis(1), &mut stop).await;
        assert!(early.is_err(), "stopped accepting before the delay's end");
        assert!(drain.is_draining(), "not draining during the delay");
        stop.await;
        assert_eq!(signalled.elapsed(), DELAY);
        assert!(drain.is_draining());
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_ends_the_delay_at_once() {
        let drain = Drain::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = drain.stop_accepting(rx, Duration::from_secs(3600));
        tokio::pin!(stop);
        tx.send(()).unwrap();
        let early = tokio::time::timeout(Duration::from_secs(60), &mut stop).await;
        assert!(early.is_err(), "stopped accepting before the delay's end");
        tx.send(()).unwrap();
        let signalled = Instant::now();
        stop.await;
        assert_eq!(signalled.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn no_delay_stops_accepting_at_the_signal_still_draining() {
        let drain = Drain::new();
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(()).unwrap();
        let signalled = Instant::now();
        drain.stop_accepting(rx, Duration::ZERO).await;
        assert_eq!(signalled.elapsed(), Duration::ZERO);
        assert!(drain.is_draining());
    }
}
