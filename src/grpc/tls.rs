//! TLS credentials of the gRPC server (`--grpc-server-tls-*`).
//!
//! gRPC's C core asks [`Fetcher`] for the certificate before each new
//! connection; it answers with freshly read files when the certificate's or
//! the key's mtime changed, as Thanos re-reads them on a handshake
//! (`pkg/tls/options.go`), so rotated certificates apply without a restart. The client CA is
//! read once at start-up, as in Thanos.
//!
//! The C core's SSL credentials always speak TLS 1.2 and 1.3: it offers no
//! minimum-version setting, so `--grpc-server-tls-min-version` is honoured
//! only as far as that goes (the README says how).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use grpcio::{
    CertificateRequestType, ServerCredentials, ServerCredentialsBuilder, ServerCredentialsFetcher,
};

/// `--grpc-server-tls-*`, as the flags read them.
#[derive(Debug)]
pub struct GrpcTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub min_version: &'static str,
    pub ciphers: Vec<String>,
    pub curves: Vec<String>,
}

/// Server credentials that re-read the certificate and key when they change.
pub fn credentials(config: &GrpcTls) -> Result<ServerCredentials, String> {
    let client_ca = match &config.client_ca {
        Some(path) => {
            let pem = crate::tls::read_pem(path, "--grpc-server-tls-client-ca")?;
            crate::tls::parse_certs(
                &pem,
                &format!("--grpc-server-tls-client-ca: {}", path.display()),
            )?;
            Some(pem)
        }
        None => None,
    };
    let fetcher = Fetcher {
        cert: config.cert.clone(),
        key: config.key.clone(),
        client_ca,
        seen: Mutex::new(Seen::default()),
    };
    // The first fetch must succeed: later ones keep the old pair on failure.
    let first = fetcher.load()?;
    if let Ok(mut seen) = fetcher.seen.lock() {
        seen.loaded = Some(first.0);
    }
    let request = match config.client_ca {
        Some(_) => CertificateRequestType::RequestAndRequireClientCertificateAndVerify,
        None => CertificateRequestType::DontRequestClientCertificate,
    };
    log::info!(protocol = "gRPC"; "enabling server side TLS");
    if config.client_ca.is_some() {
        log::info!(protocol = "gRPC"; "server TLS client verification enabled");
    }
    if config.min_version != "1.2" {
        log::info!(
            protocol = "gRPC", min_version = config.min_version;
            "TLS 1.2 and 1.3 are served: gRPC's C core has no other minimum version"
        );
    }
    Ok(ServerCredentials::with_fetcher(
        Box::new(Primed {
            fetcher,
            first: Mutex::new(Some(first.1)),
        }),
        request,
    ))
}

/// Modification times of the certificate and the key.
type Stamp = (SystemTime, SystemTime);

#[derive(Default)]
struct Seen {
    /// The stamp of the pair gRPC serves.
    loaded: Option<Stamp>,
    /// The stamp of a pair that failed to load, so it is reported once.
    failed: Option<Stamp>,
}

struct Fetcher {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<Vec<u8>>,
    seen: Mutex<Seen>,
}

/// PEM texts gRPC copies into its own config.
struct Pair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Fetcher {
    fn stamp(&self) -> Result<Stamp, String> {
        let mtime = |path: &Path, flag: &str| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map_err(|e| format!("{flag}: {}: {e}", path.display()))
        };
        Ok((
            mtime(&self.cert, "--grpc-server-tls-cert")?,
            mtime(&self.key, "--grpc-server-tls-key")?,
        ))
    }

    /// Reads and checks the pair; the stamp is taken first, so a file
    /// written during the read is seen as changed next time.
    fn load(&self) -> Result<(Stamp, Pair), String> {
        let stamp = self.stamp()?;
        let cert = crate::tls::read_pem(&self.cert, "--grpc-server-tls-cert")?;
        let key = crate::tls::read_pem(&self.key, "--grpc-server-tls-key")?;
        let cert_source = format!("--grpc-server-tls-cert: {}", self.cert.display());
        let key_source = format!("--grpc-server-tls-key: {}", self.key.display());
        crate::tls::certified_key(
            crate::tls::parse_certs(&cert, &cert_source)?,
            crate::tls::parse_key(&key, &key_source)?,
            &cert_source,
            &key_source,
        )?;
        Ok((stamp, Pair { cert, key }))
    }

    fn builder(&self, pair: Pair) -> ServerCredentialsBuilder {
        // The C core asserts (in debug builds) that a fetched config has
        // root certificates even when it asks for no client certificate;
        // the server's own chain serves then, and is never used.
        let roots = self.client_ca.clone().unwrap_or_else(|| pair.cert.clone());
        ServerCredentialsBuilder::new()
            .add_cert(pair.cert, pair.key)
            // The request type given here is unused: `with_fetcher` sets it.
            .root_cert(
                roots,
                CertificateRequestType::RequestAndRequireClientCertificateAndVerify,
            )
    }

    /// A new builder when the files changed and still make a valid pair.
    /// Never panics: it runs inside a C callback of gRPC's core.
    fn refresh(&self) -> Option<ServerCredentialsBuilder> {
        let mut seen = self.seen.lock().ok()?;
        let stamp = match self.stamp() {
            Ok(stamp) => stamp,
            Err(e) => {
                if seen.failed.is_none() {
                    log::warn!(protocol = "gRPC", err = e.as_str(); "cannot reload the server certificate; serving the previous one");
                }
                seen.failed = Some((SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH));
                return None;
            }
        };
        if seen.loaded == Some(stamp) || seen.failed == Some(stamp) {
            return None;
        }
        match self.load() {
            Ok((stamp, pair)) => {
                seen.loaded = Some(stamp);
                seen.failed = None;
                log::info!(protocol = "gRPC"; "reloaded the server certificate");
                Some(self.builder(pair))
            }
            Err(e) => {
                // Half-written files are common during a rotation: report
                // once per change and try again when the files change.
                seen.failed = Some(stamp);
                log::warn!(protocol = "gRPC", err = e.as_str(); "cannot reload the server certificate; serving the previous one");
                None
            }
        }
    }
}

/// Hands gRPC the pair checked at start-up on its first fetch.
struct Primed {
    fetcher: Fetcher,
    first: Mutex<Option<Pair>>,
}

impl ServerCredentialsFetcher for Primed {
    fn fetch(&self) -> Result<Option<ServerCredentialsBuilder>, Box<dyn std::error::Error>> {
        let first = self.first.lock().ok().and_then(|mut first| first.take());
        Ok(match first {
            Some(pair) => Some(self.fetcher.builder(pair)),
            None => self.fetcher.refresh(),
        })
    }
}
