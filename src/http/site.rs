//! Which site a `/rest/*` request comes from, decided before anything of it is read: the first
//! step of admission. A browser attaches the Basic credentials it holds for the gateway to any
//! request a web page makes, and a plain HTML form (`enctype="text/plain"`, no CORS preflight)
//! can post a whole command document (`?type=application/json`). So a request whose `Origin`
//! is neither the gateway's own nor one the operator allows (`--cors-origin`), or which has no
//! `Origin` but a `Sec-Fetch-Site` of `cross-site` or `same-site`, is answered 403
//! `cross-site-request` here, before its credentials or its body are read: it costs the XMPP
//! server nothing. Requests with neither header (curl, scripts) pass unchanged.
//!
//! For the origins the operator allows, CORS (tower-http's `CorsLayer`): preflights answered
//! 204, the answers readable by the page (errors included), never with credentials; while
//! CORS is on, every `/rest` answer says `Vary: Origin`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use super::Peer;
use crate::config::Config;

/// How long a browser may keep a preflight's answer (Chromium caps it at 2 h).
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// A web origin, `scheme://host[:port]`, as browsers write it in `Origin`: compared with the
/// scheme and host in lower case and the scheme's default port left out (`http://h:80` is
/// `http://h`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    /// Lower case; an IPv6 literal in brackets, in its canonical form.
    host: String,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("a wildcard is not an origin: name each origin (scheme://host[:port]) exactly")]
    Wildcard,
    #[error("expected scheme://host[:port] with the scheme http or https")]
    NotAnOrigin,
    #[error("an origin has no path, query or fragment: scheme://host[:port] only")]
    Path,
    #[error("the host is not a DNS name (ASCII, punycode for others) or an IP literal")]
    Host,
    #[error("the port is not a number from 1 to 65535")]
    Port,
}

impl Origin {
    /// Reads `scheme://host[:port]` (http or https), nothing before or after it.
    pub fn parse(text: &str) -> Result<Origin, OriginError> {
        if text.contains('*') {
            return Err(OriginError::Wildcard);
        }
        let (scheme, authority) = text.split_once("://").ok_or(OriginError::NotAnOrigin)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(OriginError::NotAnOrigin);
        };
        if authority.contains(['/', '?', '#']) {
            return Err(OriginError::Path);
        }
        Origin::at(https, authority)
    }

    /// The origin of `authority` (`host[:port]`, no user info) under the scheme.
    fn at(https: bool, authority: &str) -> Result<Origin, OriginError> {
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(OriginError::Host)?;
            let addr: Ipv6Addr = addr.parse().map_err(|_| OriginError::Host)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(OriginError::Host)?),
            };
            (format!("[{addr}]"), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if host.is_empty() || !host.chars().all(name_char) {
                return Err(OriginError::Host);
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => None,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(OriginError::Port)?,
            ),
            Some(_) => return Err(OriginError::Port),
        };
        let default = if https { 443 } else { 80 };
        Ok(Origin {
            https,
            host,
            port: port.filter(|p| *p != default),
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// What the check made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Neither `Origin` nor a cross-site `Sec-Fetch-Site`: curl, a script, an address typed
    /// into the browser.
    Unstated,
    /// A page of the gateway's own origin.
    Same,
    /// A page of an origin the operator allows (`--cors-origin`).
    Allowed,
    /// A page of another site: refused.
    Cross,
}

/// The rules of the check: the gateway's own origin and the allowed ones, and CORS for these.
pub struct Sites {
    /// `--public-origin`: the gateway's origin whatever the request says.
    public: Option<Origin>,
    /// Whether the listener serves HTTPS (the scheme of the own origin without a proxy's word).
    https: bool,
    trusted_proxies: Vec<IpAddr>,
    allowed: Vec<Origin>,
    /// Present while CORS is on (some `--cors-origin`).
    cors: Option<CorsLayer>,
}

static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

impl Sites {
    pub fn new(cfg: &Config) -> Self {
        let cors = (!cfg.cors_origins.is_empty()).then(|| {
            CorsLayer::new()
                // Only requests the check found allowed reach it: their own `Origin` is the
                // one to send back.
                .allow_origin(AllowOrigin::mirror_request())
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("x-api-key"),
                    super::audit::X_REQUEST_ID.clone(),
                ])
                .expose_headers([super::audit::X_REQUEST_ID.clone(), header::RETRY_AFTER])
                .max_age(PREFLIGHT_MAX_AGE)
                // `Vary: Origin` goes on every /rest answer, below, not only on these.
                .vary([])
        });
        Sites {
            public: cfg.public_origin.clone(),
            https: cfg.tls.is_some(),
            trusted_proxies: cfg.trusted_proxies.clone(),
            allowed: cfg.cors_origins.clone(),
            cors,
        }
    }

    /// Which site the request comes from.
    pub fn judge(&self, peer: Option<SocketAddr>, headers: &HeaderMap, uri: &Uri) -> Site {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (None, _) => {
                let fetch = headers.get(&SEC_FETCH_SITE).map(HeaderValue::as_bytes);
                return match fetch {
                    Some(v)
                        if v.eq_ignore_ascii_case(b"cross-site")
                            || v.eq_ignore_ascii_case(b"same-site") =>
                    {
                        Site::Cross
                    }
                    _ => Site::Unstated,
                };
            }
            (Some(one), None) => one,
            // No browser sends two.
            (Some(_), Some(_)) => return Site::Cross,
        };
        // `null` (a sandboxed page, a redirect across sites, a file) is no origin: refused.
        let Some(origin) = origin.to_str().ok().and_then(|o| Origin::parse(o).ok()) else {
            return Site::Cross;
        };
        if self.own(peer, headers, uri).as_ref() == Some(&origin) {
            Site::Same
        } else if self.allowed.contains(&origin) {
            Site::Allowed
        } else {
            Site::Cross
        }
    }

    /// The gateway's own origin for this request: `--public-origin`, else the listener's
    /// scheme and the request's `Host`, or what a trusted proxy says of them.
    fn own(&self, peer: Option<SocketAddr>, headers: &HeaderMap, uri: &Uri) -> Option<Origin> {
        if let Some(o) = &self.public {
            return Some(o.clone());
        }
        let proxied = peer.is_some_and(|p| self.trusted_proxies.contains(&p.ip()));
        // The last value: the one the nearest proxy wrote.
        let forwarded = |name: &HeaderName| {
            let last = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            Some(last.rsplit(',').next()?.trim().to_string())
        };
        let https = match proxied.then(|| forwarded(&X_FORWARDED_PROTO)).flatten() {
            Some(p) if p.eq_ignore_ascii_case("https") => true,
            Some(p) if p.eq_ignore_ascii_case("http") => false,
            Some(_) => return None,
            None => self.https,
        };
        let host = match proxied.then(|| forwarded(&X_FORWARDED_HOST)).flatten() {
            Some(h) => h,
            None => match uri.authority() {
                Some(a) => a.as_str().to_string(),
                None => headers.get(header::HOST)?.to_str().ok()?.to_string(),
            },
        };
        Origin::at(https, &host).ok()
    }
}

/// The check, and CORS for the allowed origins, over the `/rest` routes; every other route
/// passes untouched.
pub(super) async fn layer(State(sites): State<Arc<Sites>>, req: Request, next: Next) -> Response {
    if !super::is_rest(req.uri().path()) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let site = sites.judge(peer, req.headers(), req.uri());
    let mut resp = match (site, &sites.cors) {
        (Site::Cross, _) => {
            let format = super::format_of(req.uri(), req.headers());
            ApiError::cross_site().into_response_in(format)
        }
        (Site::Allowed, Some(cors)) => {
            // `CorsLayer` answers every OPTIONS itself, as a preflight, with 200.
            let preflight = req.method() == Method::OPTIONS;
            let Ok(mut resp) = cors.layer(next).oneshot(req).await;
            if preflight {
                *resp.status_mut() = StatusCode::NO_CONTENT;
            }
            resp
        }
        _ => next.run(req).await,
    };
    if sites.cors.is_some() {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

#[cfg(test)]
#[path = "site_tests.rs"]
mod tests;
