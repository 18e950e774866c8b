//! The gateway's own streams, known by value: the resources of every stream this process holds
//! open, per account, from the moment it is bound until its driver ends. `GET /rest/sessions`
//! hides exactly these (a user's own `xrg-phone` is listed), and a stream is hidden while it
//! closes too, until the server has let it go.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use tokio_xmpp::parsers::jid::{BareJid, FullJid};

fn streams() -> MutexGuard<'static, HashMap<BareJid, Vec<String>>> {
    static OWN: OnceLock<Mutex<HashMap<BareJid, Vec<String>>>> = OnceLock::new();
    OWN.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A stream of the gateway's, registered while this lives (its driver task holds it).
pub(crate) struct Own(FullJid);

impl Own {
    pub(crate) fn register(jid: &FullJid) -> Self {
        streams()
            .entry(jid.to_bare())
            .or_default()
            .push(jid.resource().to_string());
        Own(jid.clone())
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        let mut streams = streams();
        let bare = self.0.to_bare();
        if let Some(list) = streams.get_mut(&bare) {
            if let Some(i) = list.iter().position(|r| r == self.0.resource().as_str()) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                streams.remove(&bare);
            }
        }
    }
}

/// The resources of the gateway's open streams of `account`.
pub fn own_resources(account: &BareJid) -> Vec<String> {
    streams().get(account).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_known_while_it_lives_and_only_by_its_value() {
        let jid: FullJid = "own-test@example.test/xrg-0123".parse().unwrap();
        let account = jid.to_bare();
        assert!(own_resources(&account).is_empty());
        let own = Own::register(&jid);
        let other = Own::register(&"own-test@example.test/xrg-4567".parse().unwrap());
        let mut listed = own_resources(&account);
        listed.sort();
        assert_eq!(listed, ["xrg-0123", "xrg-4567"]);
        drop(own);
        assert_eq!(own_resources(&account), ["xrg-4567"]);
        drop(other);
        assert!(own_resources(&account).is_empty());
    }
}
