//! HTTP Basic credentials: the user name is the account's bare JID, normalised as XMPP does;
//! a bare localpart takes the operator's default domain. The password is only ever passed on
//! to the login and never logged or echoed.

use std::net::{IpAddr, SocketAddr};

use super::error::ApiError;
use crate::app::caller::{account, Account};
use axum::http::{header, HeaderMap};
use base64::Engine;

/// Credentials from an `Authorization: Basic` header.
pub struct Credentials {
    pub account: Account,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Reads and normalises the Basic credentials; every failure is a 401 with a hint.
pub fn credentials(headers: &HeaderMap, domain: Option<&str>) -> Result<Credentials, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("HTTP Basic credentials are required"))?;
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .ok_or_else(|| ApiError::unauthorized("only HTTP Basic authentication is supported"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| {
            ApiError::unauthorized("the Basic credentials are not valid base64 UTF-8")
        })?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::unauthorized("the Basic credentials have no password"))?;
    if password.is_empty() {
        return Err(ApiError::unauthorized("the password is empty"));
    }
    Ok(Credentials {
        account: account(user, domain).map_err(ApiError::from)?,
        password: password.to_string(),
    })
}

/// The secret of `Authorization: Bearer SECRET`, if that is the scheme.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let secret = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// The client's address: the peer's, or the last address a trusted proxy put in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.ip();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    #[test]
    fn the_account_is_normalised() {
        let c = credentials(&basic("Admin@Example.ORG:pa:ss"), None).unwrap();
        assert_eq!(c.account.as_str(), "admin@example.org");
        assert_eq!(c.password, "pa:ss");
    }

    #[test]
    fn a_localpart_takes_the_default_domain_or_is_refused() {
        assert_eq!(
            credentials(&basic("admin:x"), Some("example.org"))
                .unwrap()
                .account
                .as_str(),
            "admin@example.org"
        );
        let e = credentials(&basic("admin:x"), None).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.text.unwrap().contains("bare JID"));
    }

    #[test]
    fn full_jids_missing_and_malformed_headers_are_401() {
        for h in [
            basic("admin@example.org/res:x"),
            basic("admin@example.org"),
            basic("a@b:"),
        ] {
            assert_eq!(credentials(&h, None).unwrap_err().status, 401);
        }
        assert_eq!(
            credentials(&HeaderMap::new(), None).unwrap_err().status,
            401
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(credentials(&h, None).unwrap_err().status, 401);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = credentials(&basic("a@b:hunter2"), None).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, 10.0.0.2"),
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let peer = SocketAddr::new(proxy, 1234);
        assert_eq!(client_addr(peer, &h, &[proxy]).to_string(), "203.0.113.7");
        assert_eq!(client_addr(peer, &h, &[]), proxy);
    }
}
