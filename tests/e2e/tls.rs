//! TLS on both sides: the upstream's certificate verified against the configured CA, and
//! HTTPS served with `--tls-cert` and `--tls-key`, re-read on SIGHUP.

use std::sync::OnceLock;

use crate::common::doc::parse_xml;
use crate::common::rest::*;
use crate::common::{self, ServerKind, TestGateway};
use crate::gateway;

on_both_servers!(
    upstream_tls_is_verified_against_the_ca,
    https_is_served_with_tls_cert_and_key,
    the_https_certificate_is_reloaded_on_sighup_and_a_bad_pair_refused,
);

async fn upstream_tls_is_verified_against_the_ca(kind: ServerKind) {
    let s = common::started(kind).await;
    // Trusting another CA, the server's certificate does not verify: no login, 502.
    let other_ca = other_ca();
    let untrusted = TestGateway::start(s, &["--upstream-ca", other_ca.to_str().unwrap()]);
    let r = idle_seed_as_admin(untrusted.addr).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        parse_xml(&r.body).child("condition").unwrap().text,
        "upstream-unavailable"
    );
    // Why the login failed is told only in the gateway's log: the 502 names no cause (on
    // purpose), and the server sees nothing but a handshake the client gave up.
    let log = untrusted.log_lines("UnknownIssuer", 1).await;
    assert!(log.contains("UnknownIssuer"), "{log}");
    // With the harness CA (as every other test runs), TLS verifies for domain.com on 127.0.0.1.
    let r = idle_seed_as_admin(gateway(kind).await.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A CA certificate that signed nothing the servers use.
fn other_ca() -> std::path::PathBuf {
    static CA: OnceLock<std::path::PathBuf> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = common::scratch_dir("other-ca");
        #[rustfmt::skip]
        openssl(&dir, &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "key.pem", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=not the harness CA",
        ]);
        dir.join("ca.pem")
    })
    .clone()
}

/// Runs `openssl args` in `dir`; panics with its stderr if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args:?}: {stderr}");
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl: (ca.pem, cert, key).
fn https_pki() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = common::scratch_dir("https");
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        #[rustfmt::skip]
        let steps: [&[&str]; 3] = [
            &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=https test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign"],
            &["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", "key.pem", "-out", "csr.pem", "-subj", "/CN=127.0.0.1"],
            &["x509", "-req", "-in", "csr.pem", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", "cert.pem", "-days", "1", "-extfile", "ext"],
        ];
        for args in steps {
            openssl(&dir, args);
        }
        dir
    });
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

async fn https_is_served_with_tls_cert_and_key(kind: ServerKind) {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

    let s = common::started(kind).await;
    let (ca, cert, key) = https_pki();
    let gw = TestGateway::start(
        s,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake with the gateway");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(PATH)
        .header("host", "127.0.0.1")
        .header("authorization", admin())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            IDLE_SEED_JSON.as_str(),
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Plain HTTP to the HTTPS port gets no HTTP answer: the connection ends at once.
    let plain = common::try_http(gw.addr, "GET", PATH, &[], b"").await;
    let err = match plain {
        Ok(r) => panic!("an HTTP answer on the HTTPS port: {}", r.status),
        Err(e) => e,
    };
    assert!(err.starts_with("request: "), "{err}");
}

/// Another key and certificate for 127.0.0.1, signed by [`https_pki`]'s CA: (cert, key).
fn https_pair(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (ca, _, _) = https_pki();
    let ca_dir = ca.parent().unwrap();
    let dir = common::scratch_dir(name);
    std::fs::copy(ca_dir.join("ext"), dir.join("ext")).unwrap();
    let (ca_pem, ca_key) = (ca_dir.join("ca.pem"), ca_dir.join("ca.key"));
    // A serial of its own: a shared serial file would race between the servers' tests.
    let serial = format!("0x{}", common::random_hex(8));
    #[rustfmt::skip]
    let steps: [&[&str]; 2] = [
        &["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", "key.pem", "-out", "csr.pem", "-subj", "/CN=127.0.0.1"],
        &["x509", "-req", "-in", "csr.pem", "-CA", ca_pem.to_str().unwrap(),
          "-CAkey", ca_key.to_str().unwrap(), "-set_serial", &serial, "-out", "cert.pem",
          "-days", "1", "-extfile", "ext"],
    ];
    for args in steps {
        openssl(&dir, args);
    }
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The DER of the (first) certificate in a PEM file.
fn der(pem: &std::path::Path) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

/// The certificate a new connection to `addr` is shown, verified against `ca`.
async fn presented(addr: std::net::SocketAddr, ca: &std::path::Path) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::ServerName;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(der(ca).into()).unwrap();
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake with the gateway");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Replaces `to` with a copy of `from` in one rename, as a certificate renewal tool does.
fn install(from: &std::path::Path, to: &std::path::Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

async fn the_https_certificate_is_reloaded_on_sighup_and_a_bad_pair_refused(kind: ServerKind) {
    let s = common::started(kind).await;
    let tag = format!("{kind}-{}", common::random_hex(4));
    let (ca, cert_a, key_a) = https_pki();
    let (cert_b, key_b) = https_pair(&format!("https-renewed-{tag}"));
    let live = common::scratch_dir(&format!("https-live-{tag}"));
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    install(&cert_a, &cert);
    install(&key_a, &key);
    // An access file too: one SIGHUP reloads both.
    let access = live.join("access.toml");
    #[rustfmt::skip]
    common::token(&["add", "reload", "--access-file", access.to_str().unwrap(),
                    "--account", &s.jid("admin2"), "--allow", "user-stats"]);
    #[rustfmt::skip]
    let gw = TestGateway::start(s, &[
        "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(),
        "--access-file", access.to_str().unwrap(),
    ]);
    assert_eq!(presented(gw.addr, &ca).await, der(&cert_a));

    // Renewed: the next connections are shown the new certificate.
    install(&key_b, &key);
    install(&cert_b, &cert);
    gw.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while presented(gw.addr, &ca).await != der(&cert_b) {
        assert!(
            std::time::Instant::now() < deadline,
            "not reloaded:\n{}",
            gw.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gw.log_lines("SIGHUP: reloading the access file", 1).await;
    let log = gw.log_lines("HTTPS certificate and key reloaded", 1).await;
    assert!(log.contains("SIGHUP: reloading the access file"), "{log}");
    assert!(log.contains("HTTPS certificate and key reloaded"), "{log}");

    // A certificate that does not match the key: refused, said why, the renewed one kept.
    install(&cert_a, &cert);
    gw.hangup();
    let refused = "HTTPS certificate not reloaded";
    while !gw.log().contains(refused) {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = gw.log();
    let line = log.lines().find(|l| l.contains(refused)).unwrap();
    assert!(
        line.contains("ERROR") && line.contains("KeyMismatch"),
        "{line}"
    );
    assert_eq!(presented(gw.addr, &ca).await, der(&cert_b));
}
