//! Reloading the access file: on SIGHUP and when it changes, keeping the rules in force
//! whenever the new file cannot be read or checked.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{compile_bytes, lock, sha256, Policy};

/// The file's identity for change detection: mtime, size and a hash of the content (an editor
/// can keep the size and land within the mtime's granularity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    digest: [u8; 32],
}

impl Stamp {
    const UNREADABLE: Stamp = Stamp {
        modified: None,
        len: u64::MAX,
        digest: [0; 32],
    };
}

pub(super) fn stamp_of(path: &Path, text: &[u8]) -> Stamp {
    let meta = std::fs::metadata(path).ok();
    Stamp {
        modified: meta.as_ref().and_then(|m| m.modified().ok()),
        len: text.len() as u64,
        digest: sha256(text),
    }
}

impl Policy {
    /// Re-reads the file; on any error logs it (without secrets) and keeps the rules in force.
    /// Returns whether new rules took effect.
    pub fn reload(&self) -> bool {
        let Some(path) = self.path.as_deref() else {
            return false;
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let stamp = stamp_of(path, &bytes);
                self.apply(path, &bytes, stamp)
            }
            Err(e) => {
                tracing::error!(
                    "cannot read the access file {}: {e}; the previous rules stay in force",
                    path.display()
                );
                false
            }
        }
    }

    fn apply(&self, path: &Path, bytes: &[u8], stamp: Stamp) -> bool {
        *lock(&self.seen) = Some(stamp);
        match compile_bytes(path, bytes) {
            Ok(rules) => {
                let names: Vec<&str> = rules.tokens.iter().map(|t| t.rules.name.as_str()).collect();
                lock(&self.buckets).retain(|name, _| names.contains(&name.as_str()));
                tracing::info!(
                    tokens = rules.tokens.len(),
                    accounts = rules.accounts.len(),
                    "access file {} loaded",
                    path.display()
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
                true
            }
            Err(e) => {
                tracing::error!("{e}; the previous rules stay in force");
                false
            }
        }
    }

    /// Reloads on SIGHUP and when the file changes (checked every second: mtime, size, and a
    /// content hash), until dropped/aborted. Only meaningful after `load`.
    pub async fn watch(self: Arc<Self>) {
        self.watch_every(Duration::from_secs(1)).await
    }

    /// [`Policy::watch`] polling every `period`.
    pub(super) async fn watch_every(self: Arc<Self>, period: Duration) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP ({e}); the access file is still watched");
                None
            }
        };
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => self.check_for_change(&path),
                got = hangup => match got {
                    Some(()) => {
                        tracing::info!("SIGHUP: reloading the access file {}", path.display());
                        self.reload();
                    }
                    // The signal stream ended: polling alone goes on.
                    None => hup = None,
                },
            }
        }
    }

    /// One poll of `watch`. An unreadable file keeps the rules in force (a missing file must
    /// not lift `[[account]]` rules), with one error per change, not one per second.
    fn check_for_change(&self, path: &Path) {
        match std::fs::read(path) {
            Ok(bytes) => {
                let stamp = stamp_of(path, &bytes);
                if lock(&self.seen).as_ref() != Some(&stamp) {
                    self.apply(path, &bytes, stamp);
                }
            }
            Err(e) => {
                let mut seen = lock(&self.seen);
                if seen.as_ref() != Some(&Stamp::UNREADABLE) {
                    *seen = Some(Stamp::UNREADABLE);
                    tracing::error!(
                        "cannot read the access file {}: {e}; the previous rules stay in force",
                        path.display()
                    );
                }
            }
        }
    }
}
