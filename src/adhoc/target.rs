//! What a request addresses: the JID the client wrote in the URL, and where the IQs go
//! (Tigase's `sess-man@domain` stands for the domain itself).

use tokio_xmpp::parsers::jid::{BareJid, Jid};

use super::address;
use super::CommandError;

/// What a request addresses: the JID the client wrote, and where the IQs go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `{jid}` of the URL, as written (echoed back in `jid`).
    pub written: String,
    /// Where the IQs are sent: the domain for an alias such as `sess-man@domain`.
    pub to: Jid,
}

impl Target {
    /// Resolves the URL's `{jid}`: a bare JID or a domain; a resource or anything malformed is
    /// a bad request. Localparts in `aliases` stand for the domain itself.
    pub fn resolve(written: &str, aliases: &[String]) -> Result<Self, CommandError> {
        let bad = || CommandError::BadRequest(format!("{written:?} is not a bare JID or domain"));
        let jid = address::parse_jid(written).ok_or_else(bad)?;
        let bare = match jid.try_into_full() {
            Ok(_) => return Err(bad()),
            Err(bare) => bare,
        };
        let to = match bare.node() {
            Some(n) if aliases.iter().any(|a| a.as_str() == n.as_str()) => {
                Jid::from(BareJid::from_parts(None, bare.domain()))
            }
            _ => Jid::from(bare),
        };
        Ok(Self {
            written: written.to_string(),
            to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases() -> Vec<String> {
        vec!["sess-man".into()]
    }

    #[test]
    fn the_session_manager_alias_means_the_domain() {
        let t = Target::resolve("sess-man@domain.com", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "domain.com");
        assert_eq!(t.written, "sess-man@domain.com");
        let t = Target::resolve("conference.domain.com", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "conference.domain.com");
        let t = Target::resolve("bot@domain.com", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "bot@domain.com");
    }

    #[test]
    fn a_final_dot_is_the_same_target_with_or_without_the_alias() {
        for written in [
            "sess-man@domain.com.",
            "domain.com.",
            "sess-man@domain.com",
            "domain.com",
        ] {
            let t = Target::resolve(written, &aliases()).unwrap();
            assert_eq!(t.to.to_string(), "domain.com", "{written}");
        }
        let t = Target::resolve("bot@domain.com.", &aliases()).unwrap();
        assert_eq!(t.to.to_string(), "bot@domain.com");
    }

    #[test]
    fn resources_and_garbage_are_refused() {
        for bad in [
            "sess-man@domain.com/res",
            "@@",
            "",
            "a@",
            "sess-man@example.test;x=1",
        ] {
            assert!(Target::resolve(bad, &aliases()).is_err(), "{bad}");
        }
    }
}
