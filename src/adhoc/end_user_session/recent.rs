//! What end-user-session's handler ended lately, so that a session the server is still closing
//! is not claimed as ended twice (the handler's module documentation says why).

use std::time::Duration;

use tokio::time::Instant;
use tokio_xmpp::parsers::jid::BareJid;

use crate::expiring::ExpiringMap;

/// How long an ended session is remembered.
pub(super) const REMEMBER_ENDED: Duration = Duration::from_secs(10);

/// Accounts whose ended sessions are remembered at once.
const REMEMBER_BOUND: usize = 10_000;

/// Sessions this gateway ended lately: account -> (resource, when).
pub struct RecentKicks {
    ended: ExpiringMap<BareJid, Vec<(String, Instant)>>,
}

impl Default for RecentKicks {
    fn default() -> Self {
        Self {
            ended: ExpiringMap::new(REMEMBER_ENDED, REMEMBER_BOUND),
        }
    }
}

impl RecentKicks {
    pub(super) fn has_any(&self, account: &BareJid) -> bool {
        self.ended
            .get(account)
            .is_some_and(|v| v.iter().any(|(_, at)| at.elapsed() < REMEMBER_ENDED))
    }

    pub(super) fn recently_ended(&self, account: &BareJid, resource: &str) -> bool {
        self.ended.get(account).is_some_and(|v| {
            v.iter()
                .any(|(r, at)| r == resource && at.elapsed() < REMEMBER_ENDED)
        })
    }

    pub(super) fn record(&self, account: &BareJid, resources: &[String]) {
        if resources.is_empty() {
            return;
        }
        let now = Instant::now();
        self.ended.upsert(account.clone(), Vec::new, |list| {
            list.retain(|(r, at)| at.elapsed() < REMEMBER_ENDED && !resources.contains(r));
            list.extend(resources.iter().map(|r| (r.clone(), now)));
        });
    }

    /// Drops what is past remembering (the sweeper).
    pub(super) fn sweep(&self) {
        self.ended.sweep();
    }

    /// Accounts remembered (tests).
    #[cfg(test)]
    pub(super) fn accounts(&self) -> usize {
        self.ended.len()
    }
}
