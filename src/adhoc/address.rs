//! JIDs as the gateway accepts them from clients: what the `jid` crate parses, and a domainpart
//! that is a host name or an IP literal. The `jid` crate takes any domainpart its profile allows
//! (`example.test;x=1` included), which the servers would route as an unknown domain or refuse.

use std::borrow::Cow;

use tokio_xmpp::parsers::jid::Jid;

/// The JID `s`, when it is one a client may name; `None` otherwise. A final dot of the
/// domainpart is stripped first ([`strip_final_dot`]), so `example.test.` and
/// `sess-man@example.test.` are `example.test` and `sess-man@example.test` alike.
pub fn parse_jid(s: &str) -> Option<Jid> {
    let jid: Jid = strip_final_dot(s).parse().ok()?;
    valid_domain(jid.domain().as_str()).then_some(jid)
}

/// `s` (a JID or a domain) without the final dot of its domainpart: RFC 7622 §3.2 says it MUST
/// be stripped before the JID is compared or used to route. The `jid` crate strips it from a
/// domain alone but keeps it after a localpart, so every JID or domain a rule compares goes
/// through here first (`parse_jid`, the access file's domains and accounts, the credentials
/// file). One dot only: `example.test..` keeps one and is refused as an empty label.
pub fn strip_final_dot(s: &str) -> Cow<'_, str> {
    let (bare, resource) = match s.find('/') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    match bare.strip_suffix('.') {
        Some(rest) if !rest.is_empty() && !rest.ends_with(['.', '@']) => {
            Cow::Owned(format!("{rest}{resource}"))
        }
        _ => Cow::Borrowed(s),
    }
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

    /// `example.test.` and `sess-man@example.test.` behave alike: both lose the final dot.
    #[test]
    fn a_final_dot_is_stripped_everywhere_alike() {
        for (written, read) in [
            ("example.test.", "example.test"),
            ("sess-man@example.test.", "sess-man@example.test"),
            ("Admin@Example.TEST.", "admin@example.test"),
            ("a@example.test./phone.", "a@example.test/phone."),
            ("a@example.test/r.", "a@example.test/r."),
        ] {
            let jid = parse_jid(written).unwrap_or_else(|| panic!("{written}"));
            assert_eq!(jid.to_string(), read, "{written}");
        }
        for refused in ["example.test..", "a@.", ".", "a@example.test../r"] {
            assert!(parse_jid(refused).is_none(), "{refused}");
        }
        assert_eq!(strip_final_dot("example.test."), "example.test");
        assert_eq!(strip_final_dot("example.test"), "example.test");
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
