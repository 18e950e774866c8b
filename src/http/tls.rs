//! The HTTPS listener's certificate: read from `--tls-cert`/`--tls-key` at start, and again on
//! every SIGHUP so that a renewed certificate is served without a restart. Each handshake asks
//! [`ServerCert`] for the pair in force; a pair that cannot be read, parsed or matched is
//! reported and the one in force stays. Reloads read the files off the runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// The certificate and key in force, and where to read them again.
#[derive(Debug)]
pub struct ServerCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// Reads the pair; any fault is the message for the operator.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerCert, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(cert, key, &provider)?;
        Ok(ServerCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// The acceptor serving whatever pair is in force at each handshake (HTTP/1.1 only: a
    /// prior-knowledge HTTP/2 client gets GOAWAY HTTP_1_1_REQUIRED).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the pair again; on a fault logs why and keeps the pair in force. Returns whether
    /// the new pair took effect. The files are read and the key parsed on a thread of its own
    /// ([`crate::file_read::off_runtime`]): the runtime only swaps the pair in, and a read stuck
    /// on the files is never awaited at shutdown.
    pub async fn reload(&self) -> bool {
        let (cert, key) = (self.cert.clone(), self.key.clone());
        let provider = self.provider.clone();
        let read = crate::file_read::off_runtime(move || read_pair(&cert, &key, &provider))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match read {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                tracing::info!(
                    cert = %self.cert.display(),
                    "HTTPS certificate and key reloaded"
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    "HTTPS certificate not reloaded: {e}; the previous one is still served"
                );
                false
            }
        }
    }

    /// Reloads on every SIGHUP of `hangups` (registered by the caller before serving, so an
    /// early SIGHUP cannot kill the process), until the task is aborted. One reload at a time:
    /// SIGHUPs during a reload are one more reload after it, so a stuck read holds one thread.
    pub async fn reload_on(self: Arc<Self>, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the HTTPS certificate and key");
            self.reload().await;
        }
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// A PEM certificate chain and its private key, checked to belong together.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    // A regular file only (a FIFO there must not hang the reload), at most `file_read::MAX_LEN`.
    let read = |p: &Path| {
        crate::file_read::regular(p)
            .map(|c| c.bytes)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let certs = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no private key found", key.display()),
        e => format!("{}: {e}", key.display()),
    })?;
    CertifiedKey::from_der(certs, der, provider).map_err(|e| {
        format!(
            "--tls-cert/--tls-key {} and {}: {e}",
            cert.display(),
            key.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_empty_or_fifo_pair_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("xrg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.join("missing.pem");
        let e = ServerCert::load(&missing, &empty).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let e = ServerCert::load(&empty, &empty).unwrap_err();
        assert!(e.contains("no certificate found"), "{e}");
        // A FIFO is refused at once, where a blocking open would wait for a writer.
        let fifo = dir.join("fifo.pem");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = ServerCert::load(&fifo, &empty).unwrap_err();
        assert!(e.contains("fifo.pem: not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What is wrong in the PEM names the file it is in: a key file without a key, a section
    /// that is not base64, a section without its end line.
    #[test]
    fn a_pem_fault_names_its_file_and_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("xrg-tls-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        // PEM-wise a certificate: its DER is checked only with the key, after parsing.
        let cert = write(
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let no_key = write("no-key.pem", "just text\n");
        let e = ServerCert::load(&cert, &no_key).unwrap_err();
        assert!(e.contains("no-key.pem: no private key found"), "{e}");
        let bad_key = write(
            "bad-key.pem",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        );
        let e = ServerCert::load(&cert, &bad_key).unwrap_err();
        assert!(e.contains("bad-key.pem: base64 decode error"), "{e}");
        let open_cert = write("open.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
        let e = ServerCert::load(&open_cert, &bad_key).unwrap_err();
        assert!(e.contains("open.pem: missing section end marker"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
