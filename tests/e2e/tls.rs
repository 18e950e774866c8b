//! TLS on both sides: the upstream's certificate verified against the configured CA, and
//! HTTPS served with `--tls-cert` and `--tls-key`.

use std::sync::OnceLock;

use crate::common::doc::parse_xml;
use crate::common::rest::*;
use crate::common::{self, ServerKind, TestGateway};
use crate::gateway;

on_both_servers!(
    upstream_tls_is_verified_against_the_ca,
    https_is_served_with_tls_cert_and_key,
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
    assert!(
        untrusted.log().contains("UnknownIssuer"),
        "{}",
        untrusted.log()
    );
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
