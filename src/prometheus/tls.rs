//! rustls settings for the HTTP client config's `tls_config`.
//!
//! The CA file and the client certificate and key are re-read when their
//! mtime changes, as Prometheus' client does, so rotated files apply to the
//! next connection without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

use super::{ConfigError, TlsConfig};
use crate::tls::HandshakeSignatures;

pub fn client_config(tls: &TlsConfig) -> Result<ClientConfig, ConfigError> {
    let provider = crate::tls::provider();
    let roots = match &tls.ca_file {
        Some(path) => {
            Roots::File(Reloading::new(vec![path.clone()], load_ca).map_err(ConfigError::TlsFiles)?)
        }
        None => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Roots::Fixed(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| ConfigError::TlsSetup(e.to_string()))?,
            )
        }
    };
    let server_name = match &tls.server_name {
        Some(name) => {
            Some(
                ServerName::try_from(name.clone()).map_err(|e| ConfigError::ServerName {
                    name: name.clone(),
                    reason: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::TlsSetup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            roots,
            server_name,
            insecure: tls.insecure_skip_verify,
            signatures: HandshakeSignatures(provider),
        }));
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Ok(builder.with_client_cert_resolver(Arc::new(ClientCert(
            Reloading::new(vec![cert.clone(), key.clone()], load_pair)
                .map_err(ConfigError::TlsFiles)?,
        )))),
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn load_ca(files: &[PathBuf]) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in crate::tls::read_certs(&files[0], "tls_config.ca_file")? {
        roots
            .add(cert)
            .map_err(|e| format!("tls_config.ca_file: {}: {e}", files[0].display()))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
        .build()
        .map_err(|e| format!("tls_config.ca_file: {}: {e}", files[0].display()))
}

fn load_pair(files: &[PathBuf]) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = (&files[0], &files[1]);
    crate::tls::certified_key(
        crate::tls::read_certs(cert, "tls_config.cert_file")?,
        crate::tls::read_key(key, "tls_config.key_file")?,
        &format!("tls_config.cert_file: {}", cert.display()),
        &format!("tls_config.key_file: {}", key.display()),
    )
    .map(Arc::new)
}

/// A value loaded from files, loaded again when one of their mtimes
/// changes; a failed reload keeps the previous value (and says so once).
struct Reloading<T> {
    files: Vec<PathBuf>,
    load: fn(&[PathBuf]) -> Result<T, String>,
    current: Mutex<(Vec<Option<SystemTime>>, T)>,
}

impl<T: Clone> Reloading<T> {
    fn new(files: Vec<PathBuf>, load: fn(&[PathBuf]) -> Result<T, String>) -> Result<Self, String> {
        let stamps = stamps(&files);
        let value = load(&files)?;
        Ok(Reloading {
            files,
            load,
            current: Mutex::new((stamps, value)),
        })
    }

    fn get(&self) -> T {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let stamps = stamps(&self.files);
        if stamps != current.0 {
            current.0 = stamps;
            match (self.load)(&self.files) {
                Ok(value) => current.1 = value,
                Err(e) => {
                    log::warn!(err = e.as_str(); "cannot reload the TLS files of the Prometheus HTTP client; using the previous ones")
                }
            }
        }
        current.1.clone()
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("files", &self.files)
            .finish()
    }
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

#[derive(Debug)]
struct ClientCert(Reloading<Arc<CertifiedKey>>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
enum Roots {
    Fixed(Arc<WebPkiServerVerifier>),
    File(Reloading<Arc<WebPkiServerVerifier>>),
}

/// Verifies against the CA (as it is now), by `server_name` instead of
/// the URL's host if set, or not at all with `insecure_skip_verify`;
/// handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    roots: Roots,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
    signatures: HandshakeSignatures,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.server_name.as_ref().unwrap_or(server_name);
        let inner = match &self.roots {
            Roots::Fixed(inner) => inner.clone(),
            Roots::File(reloading) => reloading.get(),
        };
        inner.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    crate::tls::handshake_signature_methods!();
}
