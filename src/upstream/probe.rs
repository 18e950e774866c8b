//! Readiness: whether the XMPP server answers a stream, probed at most once per freshness
//! period whatever the number of callers, the answer cached in between. The probe itself is
//! [`Connector::probe`] (never a login), one per entry of the upstream list.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Connector, UpstreamError};

/// How long a probe's answer stands before the next caller probes again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// The last probe's answer and the turn that keeps probes one at a time.
pub struct Readiness<T = Result<(), String>> {
    fresh_for: Duration,
    last: Mutex<Option<(Instant, T)>>,
    /// Callers that find the answer stale queue here; the first probes, the others read its
    /// answer, so a burst of health checks costs the server one connection.
    turn: tokio::sync::Mutex<()>,
}

impl<T: Clone> Readiness<T> {
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            last: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// The cached answer while fresh, else `probe`'s (awaited by one caller at a time, and
    /// bounded by the probe's own timeout).
    pub async fn check<F, Fut>(&self, probe: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some(answer) = self.fresh() {
            return answer;
        }
        let _turn = self.turn.lock().await;
        if let Some(answer) = self.fresh() {
            return answer;
        }
        let answer = probe().await;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), answer.clone()));
        }
        answer
    }

    fn fresh(&self) -> Option<T> {
        let last = self.last.lock().ok()?;
        let (at, answer) = last.as_ref()?;
        (at.elapsed() < self.fresh_for).then(|| answer.clone())
    }
}

impl Connector {
    /// Whether entry `entry` of the upstream list answers a stream for `domain` (TCP, TLS as
    /// configured and verified against `domain`, the stream header and its features): its
    /// targets in order until one does, all of them (and a domain's SRV lookup) within one
    /// connect timeout (a probe of a domain with many silent targets takes no longer than one
    /// of an address); back-offs
    /// neither skipped nor changed. Never a login: the readiness probe costs the server no
    /// SASL and no failed-login budget.
    pub async fn probe(&self, entry: usize, domain: &str) -> Result<(), UpstreamError> {
        let bound = self.config().connect_timeout;
        let mut last = None;
        // The SRV lookup of a domain entry is inside the bound too: readiness answers within
        // one connect timeout whatever the DNS does.
        let walk = async {
            let targets = self.upstreams().targets(entry).await?;
            for target in &targets {
                match self.open_at(target, domain).await {
                    Ok((_, mut stream)) => {
                        // The footer is a courtesy: the answer is already in.
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                        return Ok(());
                    }
                    // It answered the stream: it serves, if not that name (`Access::probe`).
                    Err(e @ UpstreamError::HostUnknown(_)) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            Err(last
                .clone()
                .unwrap_or_else(|| UpstreamError::Unreachable("no target to connect to".into())))
        };
        match tokio::time::timeout(bound, walk).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(UpstreamError::Unreachable(match last {
                Some(e) => format!("no stream within {bound:?} (before: {e})"),
                None => format!("no stream within {bound:?}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn counting(
        probes: &Arc<AtomicUsize>,
        answer: Result<(), UpstreamError>,
    ) -> impl FnOnce() -> std::future::Ready<Result<(), String>> {
        let probes = probes.clone();
        move || {
            probes.fetch_add(1, Ordering::SeqCst);
            std::future::ready(answer.map_err(|e| e.to_string()))
        }
    }

    #[tokio::test]
    async fn an_answer_is_reused_while_fresh() {
        let r = Readiness::new(Duration::from_secs(3600));
        let probes = Arc::new(AtomicUsize::new(0));
        assert_eq!(r.check(counting(&probes, Ok(()))).await, Ok(()));
        let down = UpstreamError::Unreachable("refused".into());
        // Still fresh: the failing probe is not run and the cached success stands.
        assert_eq!(r.check(counting(&probes, Err(down))).await, Ok(()));
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failure_is_cached_too() {
        let r = Readiness::new(Duration::from_secs(3600));
        let probes = Arc::new(AtomicUsize::new(0));
        let down = UpstreamError::Unreachable("refused".into());
        assert_eq!(
            r.check(counting(&probes, Err(down.clone()))).await,
            Err(down.to_string())
        );
        // A down server is not hammered by health checks.
        assert_eq!(
            r.check(counting(&probes, Ok(()))).await,
            Err(down.to_string())
        );
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_answer_is_probed_again() {
        let r = Readiness::new(Duration::ZERO);
        let probes = Arc::new(AtomicUsize::new(0));
        let down = UpstreamError::Unreachable("refused".into());
        assert_eq!(r.check(counting(&probes, Ok(()))).await, Ok(()));
        assert_eq!(
            r.check(counting(&probes, Err(down.clone()))).await,
            Err(down.to_string())
        );
        assert_eq!(r.check(counting(&probes, Ok(()))).await, Ok(()));
        assert_eq!(probes.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn callers_at_once_share_one_probe() {
        let r: Arc<Readiness> = Arc::new(Readiness::new(Duration::from_secs(3600)));
        let probes = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (r, probes) = (r.clone(), probes.clone());
            tasks.push(tokio::spawn(async move {
                r.check(|| async move {
                    probes.fetch_add(1, Ordering::SeqCst);
                    // Long enough for every other caller to arrive and queue.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(())
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok(()));
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }
}
