//! Admission, one way for every `/rest` route: after the cross-site check (`site.rs`, a layer
//! that runs before any handler) and once the body has arrived under its deadline
//! (`body.rs`, first, so that a client that never finishes its body holds nothing), the
//! credentials are read from the headers (Basic, Bearer, api-key; the client's address through
//! trusted proxies), the application decides who the caller is under the access file's rules
//! (nothing reaches the server), and the request takes a place among those in flight (503 at
//! `--max-in-flight`). The request's deadline (`--request-timeout`) then bounds what the
//! application does (`super::timed`).

use axum::http::HeaderMap;
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use super::query::QueryParams;
use super::{auth, Gateway, Peer};
use crate::app::{Caller, Credentials};

/// A request admitted: who it acts as, and its place in flight (given back when dropped).
pub(super) struct Admitted {
    pub caller: Caller,
    _place: OwnedSemaphorePermit,
}

/// Admits a request whose body (if any) has arrived: its caller, then a place in flight.
pub(super) fn admit(
    gw: &Gateway,
    peer: Peer,
    headers: &HeaderMap,
    query: &QueryParams,
) -> Result<Admitted, ApiError> {
    let addr = auth::client_addr(peer.0, headers, &gw.cfg.trusted_proxies);
    admit_from(gw, addr, headers, query)
}

/// As [`admit`], for a client at `addr` (another replica's forward vouches for it).
pub(super) fn admit_from(
    gw: &Gateway,
    addr: std::net::IpAddr,
    headers: &HeaderMap,
    query: &QueryParams,
) -> Result<Admitted, ApiError> {
    let bearer = auth::bearer(headers);
    let basic = match bearer {
        Some(_) => None,
        None => {
            let c = auth::credentials(headers, gw.cfg.domain.as_deref())?;
            Some((c.account, c.password))
        }
    };
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or(query.api_key.as_deref());
    let caller = gw.app.admit(Credentials {
        basic,
        bearer,
        api_key,
        addr,
    })?;
    let place =
        gw.in_flight.clone().try_acquire_owned().map_err(|_| {
            ApiError::overloaded("the gateway is at its limit of requests in flight")
        })?;
    Ok(Admitted {
        caller,
        _place: place,
    })
}
