//! Reloading the access file: on SIGHUP and when it changes, keeping the rules in force
//! whenever the new file cannot be read or checked.
//!
//! The runtime never touches the file: each look (every second, and on SIGHUP) reads it,
//! hashes it and, when it changed, compiles it on a thread of its own
//! ([`crate::file_read::off_runtime`]); only swapping the compiled rules in happens on the
//! runtime. The watcher awaits one look at a time, so a look stuck on the file (a hung mount)
//! holds at most one thread and delays only the next look; the watcher is aborted at shutdown
//! without waiting for it. Anything but a regular file (a FIFO, a device) is refused by
//! `fstat` after a non-blocking open, and the rules in force stay.
//!
//! The settle time: a poll that finds the file changed does not take it in; the next poll
//! (a second later) does, if it finds the file exactly as before (mtime, size, content hash).
//! A file being written in place (an editor, a configuration tool, `: > access.toml` followed
//! by a write) is so never read half-written unless the writer pauses a full second midway; a
//! SIGHUP is the operator saying the file is ready and is taken in at once. An empty file, a
//! file that is not a regular file, or one that does not parse or check is logged and counted
//! (`xrg_access_file_reload_failures_total`), and the rules in force stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::rules::Rules;
use super::{compile_bytes, lock, sha256, Policy};
use crate::file_read::{self, Contents, ReadError};

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

pub(super) fn stamp_of(contents: &Contents) -> Stamp {
    Stamp {
        modified: contents.modified,
        len: contents.bytes.len() as u64,
        digest: sha256(&contents.bytes),
    }
}

/// What one look at the file found.
enum Look {
    /// The same file as `seen`: nothing to compile.
    Unchanged,
    /// A poll found a file other than `seen` and other than the one the poll before found:
    /// it is looked at again on the next poll (the settle time).
    Settling(Stamp),
    /// A different file, and its rules or why they cannot be used.
    Changed(Stamp, Result<Rules, String>),
    Unreadable(ReadError),
}

/// What a look came to (tests read it; `reload` says whether it was `Applied`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    Unchanged,
    Settling,
    Applied,
    /// Logged and counted; the rules in force stay.
    Refused,
    /// Refused as before: neither logged nor counted again.
    StillRefused,
}

/// Reads the file and, unless its stamp is `seen`, compiles it; when `settling` is given (a
/// poll), only if the file is the one the poll before found. Blocking: on the watcher's
/// thread, or at a test's call of [`Policy::reload`].
fn look(path: &Path, seen: Option<&Stamp>, settling: Option<Option<&Stamp>>) -> Look {
    match file_read::regular(path) {
        Ok(contents) => {
            let stamp = stamp_of(&contents);
            if seen == Some(&stamp) {
                return Look::Unchanged;
            }
            if let Some(before) = settling {
                if before != Some(&stamp) {
                    return Look::Settling(stamp);
                }
            }
            let rules = compile_bytes(path, &contents.bytes);
            Look::Changed(stamp, rules)
        }
        Err(e) => Look::Unreadable(e),
    }
}

/// Why the file was looked at: a SIGHUP reports every fault, a poll each fault once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Hangup,
    Poll,
}

impl Policy {
    /// Re-reads the file on the calling thread (blocking: tests); on any error logs it
    /// (without secrets) and keeps the rules in force. Returns whether new rules took effect.
    pub fn reload(&self) -> bool {
        let Some(path) = self.path.as_deref() else {
            return false;
        };
        let found = look(path, None, None);
        self.take(path, found, Why::Hangup) == Taken::Applied
    }

    /// One poll on the calling thread (blocking: tests), as the watcher polls.
    #[cfg(test)]
    pub(super) fn poll_now(&self) -> Taken {
        let Some(path) = self.path.as_deref() else {
            return Taken::Unchanged;
        };
        let (seen, settling) = (lock(&self.seen).clone(), lock(&self.settling).clone());
        let found = look(path, seen.as_ref(), Some(settling.as_ref()));
        self.take(path, found, Why::Poll)
    }

    /// One look off the runtime (see the module's doc).
    async fn look_off_runtime(&self, path: &Path, why: Why) -> Taken {
        let (seen, settling) = match why {
            Why::Hangup => (None, None),
            Why::Poll => (lock(&self.seen).clone(), Some(lock(&self.settling).clone())),
        };
        let owned = path.to_path_buf();
        let found = file_read::off_runtime(move || {
            look(&owned, seen.as_ref(), settling.as_ref().map(Option::as_ref))
        })
        .await
        .unwrap_or_else(Look::Unreadable);
        self.take(path, found, why)
    }

    /// Applies what a look found, on the runtime: a swap of the rules, nothing more.
    fn take(&self, path: &Path, found: Look, why: Why) -> Taken {
        let settling = match &found {
            Look::Settling(stamp) => Some(stamp.clone()),
            _ => None,
        };
        *lock(&self.settling) = settling;
        match found {
            Look::Unchanged => Taken::Unchanged,
            Look::Settling(_) => Taken::Settling,
            Look::Changed(stamp, compiled) => {
                *lock(&self.seen) = Some(stamp);
                self.apply(path, compiled)
            }
            // An unreadable file keeps the rules in force (a missing file must not lift
            // `[[account]]` rules), with one error per change when polled, not one per second.
            Look::Unreadable(e) => {
                let mut seen = lock(&self.seen);
                if why == Why::Hangup || seen.as_ref() != Some(&Stamp::UNREADABLE) {
                    *seen = Some(Stamp::UNREADABLE);
                    crate::metrics::access_file_reload_failed();
                    tracing::error!(
                        "cannot read the access file {}: {e}; the previous rules stay in force",
                        path.display()
                    );
                    Taken::Refused
                } else {
                    Taken::StillRefused
                }
            }
        }
    }

    fn apply(&self, path: &Path, compiled: Result<Rules, String>) -> Taken {
        match compiled {
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
                Taken::Applied
            }
            Err(e) => {
                crate::metrics::access_file_reload_failed();
                tracing::error!("{e}; the previous rules stay in force");
                Taken::Refused
            }
        }
    }

    /// Reloads on SIGHUP and when the file changes (checked every second: mtime, size, and a
    /// content hash; taken in once two polls in a row find it the same), until
    /// dropped/aborted. Only meaningful after `load`.
    pub async fn watch(self: Arc<Self>) {
        self.watch_every(Duration::from_secs(1)).await
    }

    /// [`Policy::watch`] polling every `period`.
    pub(super) async fn watch_every(self: Arc<Self>, period: Duration) {
        let Some(path): Option<PathBuf> = self.path.clone() else {
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
        // A look that took longer than the period (a slow mount) is not followed by a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            // One look at a time: the next tick or SIGHUP waits for this look to end.
            tokio::select! {
                _ = tick.tick() => {
                    self.look_off_runtime(&path, Why::Poll).await;
                }
                got = hangup => match got {
                    Some(()) => {
                        tracing::info!("SIGHUP: reloading the access file {}", path.display());
                        self.look_off_runtime(&path, Why::Hangup).await;
                    }
                    // The signal stream ended: polling alone goes on.
                    None => hup = None,
                },
            }
        }
    }
}
