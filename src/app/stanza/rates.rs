//! The accounts' stanza budgets for `POST /rest/stream/` (`--stream-rate`).

use std::time::Instant;

use tokio_xmpp::parsers::jid::BareJid;

use crate::app::Failure;
use crate::expiring::ExpiringMap;
use crate::policy::rules::{Bucket, Rate};

/// The accounts' stanza budgets (`--stream-rate`). A bucket untouched for a whole unit is full
/// again, so expiring it then loses nothing.
pub struct StreamRates {
    rate: Rate,
    buckets: ExpiringMap<BareJid, Bucket>,
}

impl StreamRates {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: ExpiringMap::new(rate.unit, 100_000),
        }
    }

    /// Takes one stanza's worth of `account`'s budget, or 429 with the wait.
    pub(in crate::app) fn take(&self, account: &BareJid) -> Result<(), Failure> {
        let now = Instant::now();
        let (taken, _) = self.buckets.upsert(
            account.clone(),
            || Bucket::full(&self.rate, now),
            |b| b.take(&self.rate, now),
        );
        taken.map_err(Failure::StreamRate)
    }

    pub fn sweep(&self) {
        self.buckets.sweep();
    }
}
