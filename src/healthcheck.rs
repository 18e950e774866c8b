//! `xmpp-rest-gateway healthcheck [--url URL]`: one plain HTTP/1.1 GET of a running gateway's
//! `/readyz`, exit 0 on 200 and 1 otherwise, so container images need no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole check (connect, request, status line) takes at most this long.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the check and says what it saw on stderr.
pub fn run(url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| default_url(std::env::var("XRG_LISTEN").ok().as_deref()));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("healthcheck: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(async { tokio::time::timeout(TIMEOUT, status(&url)).await }) {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(code)) => {
            eprintln!("healthcheck: {url} answered {code}");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("healthcheck: {url}: no answer within {TIMEOUT:?}");
            ExitCode::FAILURE
        }
    }
}

/// `/readyz` on the port of `listen` (`XRG_LISTEN`), at loopback when it is a wildcard.
pub fn default_url(listen: Option<&str>) -> String {
    let addr = listen
        .and_then(|l| crate::config::listen_addr(l).ok())
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080));
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/readyz", SocketAddr::new(ip, addr.port()))
}

/// `http://HOST:PORT/PATH` split into the authority and the path (`/` when absent).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs (for an HTTPS gateway, use its admin listener)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let bad = |c: char| c.is_whitespace() || c.is_control();
    if authority.is_empty() || authority.contains(['@', '?', '#']) || authority.contains(bad) {
        return Err(format!("{url:?}: expected http://HOST:PORT/PATH"));
    }
    if path.contains(bad) {
        return Err(format!(
            "{url:?}: the path has spaces or control characters"
        ));
    }
    Ok((authority, path))
}

/// The status code of `GET url`.
async fn status(url: &str) -> Result<u16, String> {
    let (authority, path) = split_url(url)?;
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut tcp = tokio::net::TcpStream::connect(target.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // The status line is all that is read: the first 12 bytes are `HTTP/1.1 200`.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = tcp.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status(&head).ok_or_else(|| "no HTTP status line in the answer".to_string())
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then_some(())?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_follows_xrg_listen_at_loopback() {
        assert_eq!(default_url(None), "http://127.0.0.1:8080/readyz");
        assert_eq!(
            default_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/readyz"
        );
        assert_eq!(default_url(Some("[::]:9000")), "http://[::1]:9000/readyz");
        assert_eq!(
            default_url(Some("10.0.0.5:81")),
            "http://10.0.0.5:81/readyz"
        );
        assert_eq!(
            default_url(Some("nonsense")),
            "http://127.0.0.1:8080/readyz"
        );
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9780/readyz"),
            Ok(("127.0.0.1:9780", "/readyz"))
        );
        assert_eq!(
            split_url("http://localhost:8080"),
            Ok(("localhost:8080", "/"))
        );
        assert!(split_url("https://127.0.0.1/readyz").is_err());
        assert!(split_url("http://a b/readyz").is_err());
        assert!(split_url("http://h/x\r\nX-Injected: 1").is_err());
    }

    #[test]
    fn only_a_status_line_gives_a_status() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"HTTP/1.0 404\r\n"), Some(404));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20\r\n"), None);
    }
}
