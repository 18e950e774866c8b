//! The gateway's own streams, and the one answer to "is this resource of this account one of
//! ours": this process's or, with a replica key, any replica's.
//!
//! Every stream this process holds open is known by value, per account, from the moment it is
//! bound until its driver ends (a stream is hidden while it closes too, until the server has
//! let it go). Without `--replica-key-file` that is all there is: resources are `xrg-<nonce>`
//! (16 hex digits) and only this process knows its own.
//!
//! With a replica key, every stream's resource carries a mark that every replica holding the
//! key recognises and nobody without it can make: `xrg-<nonce>-<tag>`, the tag being the first
//! 8 bytes (16 hex digits) of HMAC-SHA256(key, "resource", account bare JID, NUL, nonce). A
//! mark is bound to its account, so one copied onto another account is not recognised; a
//! resource that looks like a mark but whose tag is wrong is a user's like any other. 64 bits
//! are enough because nothing can be tried offline (the key never leaves the replicas) and each
//! guess online costs a bound resource at the server and an administrator's listing to learn
//! whether it was hidden: a chance of 2^-64 per such round. Recognising a mark is one HMAC per
//! secret of the key file (at most 8), no state.
//!
//! `GET /rest/sessions` hides exactly these (a user's own `xrg-phone` is listed), and
//! end-user-session never ends them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio_xmpp::parsers::jid::{BareJid, FullJid};

use crate::replica::ReplicaKey;

/// The purpose the replica key signs resources under.
const PURPOSE: &str = "resource";
/// The tag's length in bytes: 16 hex digits in the resource.
const TAG_BYTES: usize = 8;
/// Every resource of the gateway's starts so.
const PREFIX: &str = "xrg-";

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

/// Whether this process holds a stream of `account` bound to `resource`.
fn registered(account: &BareJid, resource: &str) -> bool {
    streams()
        .get(account)
        .is_some_and(|list| list.iter().any(|r| r == resource))
}

/// How the gateway names its streams' resources and knows them again: by value in this
/// process, and by their mark under the replica key when there is one.
#[derive(Clone, Default)]
pub struct OwnStreams {
    key: Option<Arc<ReplicaKey>>,
}

impl std::fmt::Debug for OwnStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnStreams")
            .field("marked", &self.key.is_some())
            .finish()
    }
}

impl OwnStreams {
    /// Known by value only (no replica key).
    pub const BY_VALUE: OwnStreams = OwnStreams { key: None };

    /// Marked under `key` (`--replica-key-file`), else known by value.
    pub fn new(key: Option<Arc<ReplicaKey>>) -> Self {
        Self { key }
    }

    /// A fresh resource for a stream of `account`: `xrg-<nonce>`, or `xrg-<nonce>-<tag>` under
    /// a replica key.
    pub fn resource(&self, account: &BareJid) -> String {
        let nonce = format!("{:016x}", rand::random::<u64>());
        match &self.key {
            None => format!("{PREFIX}{nonce}"),
            Some(key) => {
                let tag = key.sign(PURPOSE, &signed(account, &nonce));
                let mut head = [0; TAG_BYTES];
                head.copy_from_slice(&tag[..TAG_BYTES]);
                format!("{PREFIX}{nonce}-{:016x}", u64::from_be_bytes(head))
            }
        }
    }

    /// Whether `resource` of `account` is one of the gateway's streams: this process's, or
    /// one marked under the replica key (this replica's or another's). A user's `xrg-phone`,
    /// another account's mark and a forged tag are not.
    pub fn is_own(&self, account: &BareJid, resource: &str) -> bool {
        registered(account, resource) || self.marked(account, resource)
    }

    /// Whether a stream of the gateway's may be among `account`'s sessions without this
    /// process knowing it yet: always under a replica key (another replica may log in as it
    /// at any moment), else when this process holds one.
    pub fn may_hold(&self, account: &BareJid) -> bool {
        self.key.is_some() || streams().contains_key(account)
    }

    fn marked(&self, account: &BareJid, resource: &str) -> bool {
        let Some(key) = &self.key else {
            return false;
        };
        let Some((nonce, tag)) = resource
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('-'))
        else {
            return false;
        };
        let hex16 =
            |s: &str| s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex16(nonce) || !hex16(tag) {
            return false;
        }
        let Ok(tag) = u64::from_str_radix(tag, 16) else {
            return false;
        };
        key.verify_truncated(PURPOSE, &signed(account, nonce), &tag.to_be_bytes())
    }
}

/// What a mark signs: the account's bare JID, a NUL (no JID holds one), the nonce.
fn signed(account: &BareJid, nonce: &str) -> Vec<u8> {
    let account = account.as_str();
    let mut data = Vec::with_capacity(account.len() + 1 + nonce.len());
    data.extend_from_slice(account.as_bytes());
    data.push(0);
    data.extend_from_slice(nonce.as_bytes());
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const B: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn marked(lines: &[&[u8]]) -> OwnStreams {
        OwnStreams::new(Some(Arc::new(
            ReplicaKey::parse(&lines.join(&b'\n')).expect("key"),
        )))
    }

    fn bare(s: &str) -> BareJid {
        s.parse().expect("bare JID")
    }

    #[test]
    fn a_stream_is_known_while_it_lives_and_only_by_its_value() {
        let jid: FullJid = "own-test@example.test/xrg-0123".parse().unwrap();
        let account = jid.to_bare();
        let own = OwnStreams::BY_VALUE;
        assert!(!own.is_own(&account, "xrg-0123"));
        assert!(!own.may_hold(&account));
        let first = Own::register(&jid);
        let other = Own::register(&"own-test@example.test/xrg-4567".parse().unwrap());
        assert!(own.is_own(&account, "xrg-0123") && own.is_own(&account, "xrg-4567"));
        assert!(own.may_hold(&account));
        assert!(!own.is_own(&account, "xrg-phone"));
        assert!(!own.is_own(&bare("own-other@example.test"), "xrg-0123"));
        drop(first);
        assert!(!own.is_own(&account, "xrg-0123"));
        assert!(own.is_own(&account, "xrg-4567"));
        drop(other);
        assert!(!own.is_own(&account, "xrg-4567"));
        assert!(!own.may_hold(&account));
    }

    #[test]
    fn without_a_key_a_resource_is_a_nonce_and_nobody_elses_is_recognised() {
        let own = OwnStreams::BY_VALUE;
        let account = bare("u@example.test");
        let r = own.resource(&account);
        assert_eq!(r.len(), 4 + 16, "{r}");
        assert!(r.starts_with("xrg-"), "{r}");
        // Not registered: a replica's resource, or one made under a key, is a user's here.
        assert!(!own.is_own(&account, &r));
        assert!(!own.is_own(&account, &marked(&[A]).resource(&account)));
    }

    #[test]
    fn a_mark_is_recognised_by_every_holder_of_the_key_and_for_its_account_only() {
        let (one, two) = (marked(&[A]), marked(&[A]));
        let account = bare("u@example.test");
        let r = one.resource(&account);
        assert_eq!(r.len(), 4 + 16 + 1 + 16, "{r}");
        assert_ne!(r, one.resource(&account), "a fresh nonce each time");
        // Another replica with the same key, never told of this stream.
        assert!(two.is_own(&account, &r));
        assert!(two.may_hold(&bare("nobody@example.test")));
        // The same mark on another account, or under another key, is a user's resource.
        assert!(!two.is_own(&bare("v@example.test"), &r));
        assert!(!two.is_own(&bare("u@other.test"), &r));
        assert!(!marked(&[B]).is_own(&account, &r));
        assert!(!OwnStreams::BY_VALUE.is_own(&account, &r));
        // A user's `xrg-` resources: a plain name, and a forged or mangled tag.
        let (nonce, tag) = r["xrg-".len()..].split_once('-').expect("mark");
        let flipped = format!(
            "{}{}",
            &tag[..15],
            if tag.ends_with('0') { '1' } else { '0' }
        );
        for user in [
            "xrg-phone".to_string(),
            format!("xrg-{nonce}-{flipped}"),
            format!("xrg-{nonce}-{}", tag.to_uppercase()),
            format!("xrg-{nonce}-+{}", &tag[1..]),
            format!("xrg-{nonce}-{tag}0"),
            format!("xrg-{nonce}"),
            format!("xrg-{flipped}-{tag}"),
            format!("xyz-{nonce}-{tag}"),
        ] {
            assert!(!two.is_own(&account, &user), "{user}");
        }
    }

    #[test]
    fn a_rotated_key_still_knows_marks_of_the_old_first_secret_while_it_verifies() {
        let account = bare("u@example.test");
        let old = marked(&[A]).resource(&account);
        // Rotation: [A] -> [A, B] -> [B, A] -> [B].
        assert!(marked(&[A, B]).is_own(&account, &old));
        assert!(marked(&[B, A]).is_own(&account, &old));
        assert!(!marked(&[B]).is_own(&account, &old));
        let new = marked(&[B, A]).resource(&account);
        assert!(marked(&[A, B]).is_own(&account, &new));
        assert!(marked(&[B]).is_own(&account, &new));
        assert!(!marked(&[A]).is_own(&account, &new));
    }
}
