//! PEM certificates and private keys, as the TLS settings of both servers and
//! of the Prometheus client name them.
//!
//! Every error names the file (or the inline key) it comes from, and a key is
//! checked against its certificate before anything is served with the pair:
//! a mismatch found at start-up is an exit 1, not a failed handshake later.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The one crypto provider of every rustls config in the process.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The handshake-signature half of certificate verification, with a
/// provider's algorithms. Our own verifiers (the Prometheus client's, which
/// re-reads its CA; the HTTP server's for client certificates taken without
/// a CA) decide about certificates themselves, but always check that the
/// peer holds the certificate's key, all in the same way: through this.
#[derive(Debug, Clone)]
pub struct HandshakeSignatures(pub Arc<CryptoProvider>);

impl HandshakeSignatures {
    pub fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    pub fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The three signature methods of a rustls verifier (server or client
/// side: two traits with the same methods), delegated to the verifier's
/// `signatures: HandshakeSignatures` field. Used inside the `impl`.
macro_rules! handshake_signature_methods {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.signatures.schemes()
        }
    };
}
pub(crate) use handshake_signature_methods;

/// Reads a file of PEM data; `what` names it in errors (a flag or a key).
pub fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{what}: {}: {e}", path.display()))?;
    // gRPC's C core takes PEM as C strings: a NUL byte would cut it short.
    if pem.contains(&0) {
        return Err(format!(
            "{what}: {}: contains a NUL byte, not PEM",
            path.display()
        ));
    }
    Ok(pem)
}

/// The certificates of a PEM text, leaf first; at least one.
pub fn parse_certs(pem: &[u8], source: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| format!("{source}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{source}: no PEM certificate found"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM text.
pub fn parse_key(pem: &[u8], source: &str) -> Result<PrivateKeyDer<'static>, String> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Err(pem::Error::NoItemsFound) => Err(format!("{source}: no PEM private key found")),
        other => other.map_err(|e| format!("{source}: {e}")),
    }
}

/// Reads the certificates of a PEM file.
pub fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    parse_certs(
        &read_pem(path, what)?,
        &format!("{what}: {}", path.display()),
    )
}

/// Reads the private key of a PEM file.
pub fn read_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    parse_key(
        &read_pem(path, what)?,
        &format!("{what}: {}", path.display()),
    )
}

/// A certificate chain with its key, checked to belong together.
/// `key_source` names the key in errors (a mismatch is the key's fault as
/// often as the certificate's, so the message names both).
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_source: &str,
    key_source: &str,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("{key_source}: the private key does not match the certificate in {cert_source}")
        }
        e => format!("{key_source}: unusable private key for {cert_source}: {e}"),
    })
}

/// Checks a PEM certificate file and key file as a server would load them.
pub fn check_pair(cert: &Path, cert_what: &str, key: &Path, key_what: &str) -> Result<(), String> {
    let certs = read_certs(cert, cert_what)?;
    let private_key = read_key(key, key_what)?;
    certified_key(
        certs,
        private_key,
        &format!("{cert_what}: {}", cert.display()),
        &format!("{key_what}: {}", key.display()),
    )
    .map(|_| ())
}
