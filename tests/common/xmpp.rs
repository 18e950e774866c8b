//! Raw c2s probes: the readiness check (a stream header answered with `<stream:features>`) and
//! a bare STARTTLS handshake that trusts only the harness CA, both without the gateway.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::TestServer;

/// Markers that close a features element (some servers send an empty one).
const FEATURES_END: [&str; 2] = ["</stream:features>", "<stream:features/>"];
/// How long one raw read may take before the probe gives up.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The opening a client sends, as in the recorded transcripts.
pub fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>"
    )
}

fn features_done(text: &str) -> bool {
    FEATURES_END.iter().any(|m| text.contains(m))
}

/// One plaintext attempt: connect to 127.0.0.1:`port`, open a stream, and return everything
/// the server said up to the end of its first `<stream:features>`.
pub fn stream_features(port: u16, domain: &str, timeout: Duration) -> io::Result<String> {
    stream_features_at(SocketAddr::from(([127, 0, 0, 1], port)), domain, timeout)
}

/// [`stream_features`] at `addr` (a cluster node's own loopback address).
pub fn stream_features_at(addr: SocketAddr, domain: &str, timeout: Duration) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(stream_header(domain).as_bytes())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !features_done(&String::from_utf8_lossy(&got)) {
        let n = s.read(&mut buf)?;
        if n == 0 {
            let text = String::from_utf8_lossy(&got).into_owned();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed: {text}"),
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    let _ = s.write_all(b"</stream:stream>");
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Polls [`stream_features`] until it answers with STARTTLS offered, the server process exits
/// (`exited` returns its status), or `timeout` passes. Returns the time it took.
pub fn wait_ready(
    port: u16,
    domain: &str,
    timeout: Duration,
    exited: impl FnMut() -> Option<String>,
) -> Result<Duration, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready_at(addr, domain, timeout, exited)
}

/// [`wait_ready`] at `addr`.
pub fn wait_ready_at(
    addr: SocketAddr,
    domain: &str,
    timeout: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = exited() {
            return Err(format!("the server exited during startup ({status})"));
        }
        let last = match stream_features_at(addr, domain, Duration::from_secs(2)) {
            Ok(f) if f.contains("urn:ietf:params:xml:ns:xmpp-tls") => return Ok(start.elapsed()),
            Ok(f) => return Err(format!("stream features without STARTTLS (no cert?): {f}")),
            Err(e) => e.to_string(),
        };
        if start.elapsed() > timeout {
            return Err(format!(
                "no stream features on {addr} within {timeout:?}: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A rustls client config whose only root is the PEM file `ca_pem` (the harness CA), with the
/// ring provider named explicitly so no process-wide default is needed.
pub fn tls_config(ca_pem: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("reading the CA PEM") {
        roots
            .add(cert.expect("parsing the CA PEM"))
            .expect("adding the CA");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Reads into `got` until `done(text)` holds; EOF or a silent server is an error.
pub async fn read_until<S: AsyncRead + Unpin>(
    s: &mut S,
    got: &mut Vec<u8>,
    done: impl Fn(&str) -> bool,
) -> io::Result<String> {
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(got).into_owned();
        if done(&text) {
            return Ok(text);
        }
        let read = tokio::time::timeout(IO_TIMEOUT, s.read(&mut buf)).await;
        let n = read.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, text.clone()))??;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed: {text}"),
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Plaintext stream, `<starttls/>`, `<proceed/>`, then a TLS handshake that verifies the
/// certificate against `server.ca_pem` for `server_name`. The caller restarts the stream.
pub async fn starttls(
    server: &TestServer,
    server_name: &str,
) -> io::Result<TlsStream<tokio::net::TcpStream>> {
    let mut tcp = tokio::net::TcpStream::connect(server.c2s_addr()).await?;
    tcp.write_all(stream_header(&server.domain).as_bytes())
        .await?;
    read_until(&mut tcp, &mut Vec::new(), features_done).await?;
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    let answer = read_until(&mut tcp, &mut Vec::new(), |t| {
        t.contains("<failure")
            || t.split_once("<proceed")
                .is_some_and(|(_, r)| r.contains('>'))
    })
    .await?;
    if !answer.contains("<proceed") {
        return Err(io::Error::other(format!("STARTTLS refused: {answer}")));
    }
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    TlsConnector::from(tls_config(&server.ca_pem))
        .connect(name, tcp)
        .await
}

/// After [`starttls`]: restarts the stream inside TLS and returns the features offered there
/// (the SASL mechanisms).
pub async fn features_after_tls(
    tls: &mut TlsStream<tokio::net::TcpStream>,
    domain: &str,
) -> io::Result<String> {
    tls.write_all(stream_header(domain).as_bytes()).await?;
    tls.flush().await?;
    read_until(tls, &mut Vec::new(), features_done).await
}
