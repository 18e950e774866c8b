//! JIDs as the gateway accepts them from clients: what the `jid` crate parses, and a domainpart
//! that is a host name or an IP literal. The `jid` crate takes any domainpart its profile allows
//! (`example.test;x=1` included), which the servers would route as an unknown domain or refuse.

use tokio_xmpp::parsers::jid::Jid;

/// The JID `s`, when it is one a client may name; `None` otherwise.
pub fn parse_jid(s: &str) -> Option<Jid> {
    let jid: Jid = s.parse().ok()?;
    valid_domain(jid.domain().as_str()).then_some(jid)
}

/// A DNS name (ASCII letters, digits and hyphens in dot-separated labels; non-ASCII letters for
/// internationalised names), an IPv4 address or a bracketed IPv6 address.
pub fn valid_domain(domain: &str) -> bool {
    if let Some(v6) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !domain.is_empty()
        && domain.len() <= 1023
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_ip_literals_are_domains() {
        for ok in [
            "example.org",
            "sess-man@example.org",
            "a@xn--bcher-kva.example",
            "a@bücher.example",
            "192.0.2.1",
            "a@[2001:db8::1]",
            "localhost",
        ] {
            assert!(parse_jid(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn domainparts_with_other_characters_are_refused() {
        for bad in [
            "sess-man@example.test;x=1",
            "example.test;x=1",
            "a@exa mple.org",
            "a@example..org",
            "a@-example.org",
            "a@example_under.org",
            "a@[not-v6]",
            "a@exam'ple.org",
        ] {
            assert!(parse_jid(bad).is_none(), "{bad}");
        }
    }
}
