//! `--http.config`: the exporter-toolkit web config that Thanos' HTTP server
//! reads (`pkg/server/http`, through `prometheus/exporter-toolkit`): TLS, basic auth, extra response headers, a rate
//! limit.
//!
//! Decoded strictly, as exporter-toolkit does: an unknown key is an error
//! that names it. Relative paths are relative to the config file's
//! directory. The file is read again for every request (users, headers) and
//! every TLS handshake (certificates, client CAs), so edits and certificate
//! rotations apply without a restart, as in Thanos.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;

use crate::tls::HandshakeSignatures;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DistinguishedName, RootCertStore, ServerConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The file as written; every key exporter-toolkit v0.15 knows.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    tls_server_config: RawTls,
    http_server_config: RawHttp,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: RawRateLimit,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    /// Go ignores it since 1.18; accepted for the same files to load.
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    /// We serve HTTP/1.1 only; accepted for the same files to load.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRateLimit {
    burst: Option<u32>,
    #[serde(deserialize_with = "go_duration_or_nanos")]
    interval: Option<Duration>,
}

/// A Go duration as YAML gives it: a string (`1s`) or integer nanoseconds.
/// Decoded here rather than after, so that errors keep serde_yaml's line.
fn go_duration_or_nanos<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    struct GoDuration;
    impl serde::de::Visitor<'_> for GoDuration {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration (e.g. 1s) or integer nanoseconds")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
            Ok(Duration::from_nanos(n))
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
            crate::values::go_duration(s).map_err(E::custom)
        }
    }
    d.deserialize_any(GoDuration).map(Some)
}

/// Headers a web config may set, with the values allowed (none: any value).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A parsed web config. Cheap to build: TLS material is read only by
/// [`WebConfig::tls_server_config`].
pub struct WebConfig {
    path: PathBuf,
    dir: PathBuf,
    tls: RawTls,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// User name → bcrypt hash; empty means no authentication.
    pub users: BTreeMap<String, String>,
    pub rate_limit: Option<RateLimit>,
}

/// Shows the file only: the config may hold an inline key.
impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub burst: u32,
    pub interval: Duration,
}

/// Why `--http.config` cannot be used. The text names the flag, the file
/// and the key; the variants tell the file from its content.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("--http.config: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The YAML, or a value exporter-toolkit (or this sidecar) refuses.
    #[error("--http.config: {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("--http.config: {}: basic_auth_users.{user}: not a bcrypt hash: {source}", path.display())]
    Hash {
        path: PathBuf,
        user: String,
        source: bcrypt::BcryptError,
    },
    /// The TLS material (files, inline PEM, versions, ciphers) cannot be used.
    #[error("--http.config: {}: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },
}

impl WebConfig {
    /// Reads and decodes the file; errors name the file and the key.
    pub fn read(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WebConfig::parse(path, &text).map_err(|reason| WebConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn parse(path: &Path, text: &str) -> Result<WebConfig, String> {
        let raw: Raw = if text.trim().is_empty() {
            Raw::default()
        } else {
            crate::yaml::from_str(text)?
        };
        let mut headers = Vec::new();
        for (name, value) in raw.http_server_config.headers.unwrap_or_default() {
            let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
                return Err(format!(
                    "http_server_config.headers: HTTP header {name:?} can not be configured"
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(format!(
                    "http_server_config.headers: invalid value for {name}. Expected one of: {allowed:?}, but got: {value:?}"
                ));
            }
            headers.push((name, value));
        }
        let rate_limit = raw
            .rate_limit
            .interval
            .filter(|interval| !interval.is_zero())
            .map(|interval| RateLimit {
                burst: raw.rate_limit.burst.unwrap_or(0),
                interval,
            });
        let tls = raw.tls_server_config;
        if tls.client_allowed_sans.is_some() {
            return Err(
                "tls_server_config.client_allowed_sans is not supported by thanos-sidecar".into(),
            );
        }
        Ok(WebConfig {
            path: path.to_path_buf(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            tls,
            headers,
            users: raw.basic_auth_users.unwrap_or_default(),
            rate_limit,
        })
    }

    /// Everything Thanos checks before serving: the YAML, every user's
    /// bcrypt hash, and the TLS material.
    pub fn validate(path: &Path) -> Result<WebConfig, WebConfigError> {
        let config = WebConfig::read(path)?;
        for (user, hash) in &config.users {
            hash.parse::<bcrypt::HashParts>()
                .map_err(|source| WebConfigError::Hash {
                    path: path.to_path_buf(),
                    user: user.clone(),
                    source,
                })?;
        }
        config.tls_server_config()?;
        Ok(config)
    }

    /// Whether any TLS key is set; without, exporter-toolkit serves plain HTTP.
    pub fn tls_enabled(&self) -> bool {
        let t = &self.tls;
        [
            &t.cert_file,
            &t.cert,
            &t.key_file,
            &t.key,
            &t.client_ca_file,
            &t.client_ca,
            &t.client_auth_type,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
    }

    /// The rustls config of `tls_server_config`, with its files read now;
    /// `None` when TLS is off.
    pub fn tls_server_config(&self) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
        if !self.tls_enabled() {
            return Ok(None);
        }
        self.build_tls()
            .map(Some)
            .map_err(|reason| WebConfigError::Tls {
                path: self.path.clone(),
                reason,
            })
    }

    fn build_tls(&self) -> Result<Arc<ServerConfig>, String> {
        let t = &self.tls;
        let (cert_pem, cert_source) = self
            .pem(&t.cert_file, &t.cert, "cert_file", "cert")?
            .ok_or("tls_server_config: missing one of cert or cert_file")?;
        let (key_pem, key_source) = self
            .pem(&t.key_file, &t.key, "key_file", "key")?
            .ok_or("tls_server_config: missing one of key or key_file")?;
        let certs = crate::tls::parse_certs(&cert_pem, &cert_source)?;
        let key: PrivateKeyDer<'static> = crate::tls::parse_key(&key_pem, &key_source)?;
        crate::tls::certified_key(certs.clone(), key.clone_key(), &cert_source, &key_source)?;

        let provider = Arc::new(self.provider()?);
        let versions = self.versions()?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls_server_config: {e}"))?;
        let roots = match self.pem(
            &t.client_ca_file,
            &t.client_ca,
            "client_ca_file",
            "client_ca",
        )? {
            Some((pem, source)) => {
                let mut roots = RootCertStore::empty();
                for cert in crate::tls::parse_certs(&pem, &source)? {
                    roots.add(cert).map_err(|e| format!("{source}: {e}"))?;
                }
                Some(roots)
            }
            None => None,
        };
        let auth = t.client_auth_type.as_deref().unwrap_or("");
        let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
            let roots = roots.clone().ok_or_else(|| {
                format!("tls_server_config.client_auth_type {auth} needs client_ca_file or client_ca (the system roots are not used)")
            })?;
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
        };
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
            "" | "NoClientCert" => None,
            "RequestClientCert" => Some(Arc::new(AnyClientCert {
                mandatory: false,
                signatures: HandshakeSignatures(provider.clone()),
            })),
            "RequireAnyClientCert" | "RequireClientCert" => Some(Arc::new(AnyClientCert {
                mandatory: true,
                signatures: HandshakeSignatures(provider.clone()),
            })),
            "VerifyClientCertIfGiven" => Some(verified(true)?),
            "RequireAndVerifyClientCert" => Some(verified(false)?),
            other => {
                return Err(format!(
                    "tls_server_config.client_auth_type: invalid ClientAuth: {other}"
                ))
            }
        };
        if roots.is_some() && verifier.is_none() {
            return Err(
                "tls_server_config: client CA's have been configured without a Client Auth Policy"
                    .into(),
            );
        }
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("{key_source}: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// PEM text from a file key or an inline key, with a name for errors.
    fn pem(
        &self,
        file: &Option<String>,
        inline: &Option<String>,
        file_key: &str,
        inline_key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, String> {
        match (
            file.as_deref().filter(|s| !s.is_empty()),
            inline.as_deref().filter(|s| !s.is_empty()),
        ) {
            (Some(path), _) => {
                let path = self.dir.join(path);
                let what = format!("tls_server_config.{file_key}");
                let pem = crate::tls::read_pem(&path, &what)?;
                Ok(Some((pem, format!("{what}: {}", path.display()))))
            }
            (None, Some(text)) => Ok(Some((
                text.as_bytes().to_vec(),
                format!("tls_server_config.{inline_key}"),
            ))),
            (None, None) => Ok(None),
        }
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        let parse = |key: &str, value: &Option<String>, default: u8| -> Result<u8, String> {
            match value.as_deref() {
                None | Some("") => Ok(default),
                Some("TLS10") => Ok(10),
                Some("TLS11") => Ok(11),
                Some("TLS12") => Ok(12),
                Some("TLS13") => Ok(13),
                Some(other) => Err(format!(
                    "tls_server_config.{key}: unknown TLS version: {other}"
                )),
            }
        };
        let min = parse("min_version", &self.tls.min_version, 12)?;
        let max = parse("max_version", &self.tls.max_version, 13)?;
        if max < 12 {
            return Err(
                "tls_server_config.max_version: TLS 1.0 and 1.1 are not supported by thanos-sidecar"
                    .into(),
            );
        }
        if min > max {
            return Err("tls_server_config: min_version is above max_version".into());
        }
        // rustls has no TLS 1.0/1.1: a lower minimum means TLS 1.2.
        let mut versions = Vec::new();
        if min <= 12 && self.has_tls12_suites() {
            versions.push(&rustls::version::TLS12);
        }
        if max == 13 {
            versions.push(&rustls::version::TLS13);
        }
        if versions.is_empty() {
            return Err(
                "tls_server_config.cipher_suites: no TLS 1.2 cipher suite left and TLS 1.3 is off"
                    .into(),
            );
        }
        Ok(versions)
    }

    /// Go applies `cipher_suites` to TLS 1.2 only (TLS 1.3's are fixed).
    fn has_tls12_suites(&self) -> bool {
        match &self.tls.cipher_suites {
            None => true,
            Some(names) if names.is_empty() => true,
            Some(names) => names
                .iter()
                .any(|n| tls12_suite(n).ok().flatten().is_some()),
        }
    }

    fn provider(&self) -> Result<CryptoProvider, String> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(names) = self.tls.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
            let mut suites: Vec<_> = provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            for name in names {
                if let Some(suite) = tls12_suite(name)? {
                    suites.push(suite);
                }
            }
            provider.cipher_suites = suites;
        }
        if let Some(names) = self
            .tls
            .curve_preferences
            .as_ref()
            .filter(|n| !n.is_empty())
        {
            use rustls::crypto::ring::kx_group;
            let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
            for name in names {
                groups.push(match name.as_str() {
                    "CurveP256" => kx_group::SECP256R1,
                    "CurveP384" => kx_group::SECP384R1,
                    "X25519" => kx_group::X25519,
                    "CurveP521" => {
                        return Err(
                            "tls_server_config.curve_preferences: CurveP521 is not supported by thanos-sidecar"
                                .into(),
                        )
                    }
                    other => {
                        return Err(format!(
                            "tls_server_config.curve_preferences: unknown curve: {other}"
                        ))
                    }
                });
            }
            provider.kx_groups = groups;
        }
        Ok(provider)
    }
}

/// A Go cipher-suite name (`tls.CipherSuites()`) as a rustls TLS 1.2 suite;
/// `None` for TLS 1.3 names, which Go ignores here.
fn tls12_suite(name: &str) -> Result<Option<rustls::SupportedCipherSuite>, String> {
    use rustls::crypto::ring::cipher_suite as cs;
    Ok(Some(match name {
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Ok(None)
        }
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => {
            return Err(format!(
                "tls_server_config.cipher_suites: {name} (CBC) is not supported by thanos-sidecar"
            ))
        }
        other => {
            return Err(format!(
                "tls_server_config.cipher_suites: unknown cipher: {other}"
            ))
        }
    }))
}

/// `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked
/// for (or required) but not checked against any CA; its handshake
/// signature still is, so the client holds the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    signatures: HandshakeSignatures,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    crate::tls::handshake_signature_methods!();
}

/// Basic-auth checks with exporter-toolkit's cache: bcrypt is slow by
/// design, and a scraper sends the same credentials every few seconds.
#[derive(Default)]
pub struct Authenticator {
    /// SHA-256 of (user, hash, password) → verdict; never the password itself.
    cache: Mutex<HashMap<[u8; 32], bool>>,
}

/// Entries kept before the cache starts over (exporter-toolkit keeps 100).
const AUTH_CACHE_SIZE: usize = 100;

/// A bcrypt hash of no password anyone knows, checked for unknown users so
/// their answers take as long as a wrong password's.
const UNKNOWN_USER_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

impl Authenticator {
    /// Whether the `Authorization` header holds a known user's password.
    pub fn allows(&self, users: &BTreeMap<String, String>, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let known = users.get(&user);
        let hash = known.map(String::as_str).unwrap_or(UNKNOWN_USER_HASH);
        let mut key = Sha256::new();
        for part in [user.as_bytes(), hash.as_bytes(), password.as_bytes()] {
            key.update((part.len() as u64).to_le_bytes());
            key.update(part);
        }
        let key: [u8; 32] = key.finalize().into();
        if let Some(&verdict) = self.cache.lock().ok().as_ref().and_then(|c| c.get(&key)) {
            return verdict;
        }
        // Verified even for an unknown user, so both take as long.
        let matches = bcrypt::verify(&password, hash).unwrap_or(false);
        let verdict = known.is_some() && matches;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key, verdict);
        }
        verdict
    }
}

/// `Basic <base64 user:password>`, as Go's `Request.BasicAuth` reads it.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// exporter-toolkit's limiter: `burst` requests at once, then one per
/// `interval`; requests over it get 429.
pub struct Limiter {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter {
            limit,
            tokens: f64::from(limit.burst),
            last: Instant::now(),
        }
    }

    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill =
            now.duration_since(self.last).as_secs_f64() / self.limit.interval.as_secs_f64();
        self.tokens = (self.tokens + refill).min(f64::from(self.limit.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<WebConfig, String> {
        WebConfig::parse(Path::new("/etc/thanos/web.yml"), yaml)
    }

    #[test]
    fn unknown_keys_are_named() {
        for (yaml, needle) in [
            ("tls_server_config:\n  cert_fil: x\n", "cert_fil"),
            ("basic_auth_user: {}\n", "basic_auth_user"),
            ("http_server_config:\n  http3: true\n", "http3"),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n",
                "X-Powered-By",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "X-Frame-Options",
            ),
            ("rate_limit: {interval: soon}\n", "rate_limit.interval"),
            // An inline key where a map belongs: named, not quoted.
            (
                "tls_server_config: \"PRIVATE-secret\"\n",
                "tls_server_config",
            ),
            (
                "tls_server_config:\n  client_allowed_sans: [a]\n",
                "client_allowed_sans",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml}: {err}");
            assert!(!err.contains("PRIVATE-secret"), "{err}");
        }
    }

    #[test]
    fn wrong_types_name_the_key_path_and_line() {
        for (yaml, expected) in [
            (
                "basic_auth_users:\n  admin: [a]\n",
                "basic_auth_users.admin: invalid type: sequence, expected a string at line 2 column 10",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  cipher_suites: \"TLS_AES_128_GCM_SHA256\"\n",
                "tls_server_config.cipher_suites: invalid type: string (redacted), expected a sequence at line 3 column 18",
            ),
            (
                "rate_limit:\n  interval: [1s]\n",
                "rate_limit.interval: invalid type: sequence, expected a duration (e.g. 1s) or integer nanoseconds at line 2 column 13",
            ),
            (
                "rate_limit:\n  interval: soon\n",
                "rate_limit.interval: invalid duration \"soon\" (expected e.g. 30s, 1.5h, 1d2h) at line 2 column 13",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
        let err = parse(&format!("http_server_config: {}", "[".repeat(100_000))).unwrap_err();
        assert!(
            err.contains("YAML nested deeper than 128 levels at line 1"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_without_tls_keys() {
        let c =
            parse("tls_server_config:\n  min_version: TLS13\nbasic_auth_users:\n  u: h\n").unwrap();
        assert!(!c.tls_enabled());
        assert!(c.tls_server_config().unwrap().is_none());
        assert_eq!(c.users.len(), 1);
        assert!(!parse("").unwrap().tls_enabled());
        let c = parse("tls_server_config:\n  key_file: k.pem\n").unwrap();
        let err = c.tls_server_config().unwrap_err();
        assert!(matches!(err, WebConfigError::Tls { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "--http.config: /etc/thanos/web.yml: tls_server_config: missing one of cert or cert_file"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let c = parse("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n").unwrap();
        let err = c.tls_server_config().unwrap_err().to_string();
        assert!(err.contains("/etc/thanos/c.pem"), "{err}");
    }

    #[test]
    fn cipher_and_version_names() {
        assert!(tls12_suite("TLS_AES_128_GCM_SHA256").unwrap().is_none());
        assert!(tls12_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
            .unwrap()
            .is_some());
        assert!(tls12_suite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
            .unwrap_err()
            .contains("CBC"));
        assert!(tls12_suite("TLS_RSA_WITH_RC4_128_SHA")
            .unwrap_err()
            .contains("unknown cipher"));
        let c = parse("tls_server_config:\n  max_version: TLS11\n").unwrap();
        assert!(c.versions().unwrap_err().contains("max_version"));
        let c = parse("tls_server_config:\n  min_version: TLS10\n").unwrap();
        assert_eq!(c.versions().unwrap().len(), 2);
        let c = parse("tls_server_config:\n  min_version: SSL3\n").unwrap();
        assert!(c
            .versions()
            .unwrap_err()
            .contains("unknown TLS version: SSL3"));
    }

    #[test]
    fn rate_limit_intervals() {
        let c = parse("rate_limit: {burst: 2, interval: 1s}\n").unwrap();
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                burst: 2,
                interval: Duration::from_secs(1)
            })
        );
        let c = parse("rate_limit: {burst: 2, interval: 1000000}\n").unwrap();
        assert_eq!(c.rate_limit.unwrap().interval, Duration::from_millis(1));
        assert!(parse("rate_limit: {burst: 2}\n")
            .unwrap()
            .rate_limit
            .is_none());
        let mut limiter = Limiter::new(c.rate_limit.unwrap());
        assert!(limiter.allow() && limiter.allow());
    }

    #[test]
    fn basic_auth_checks_bcrypt() {
        let hash = bcrypt::hash("hunter2", 4).unwrap();
        let users = BTreeMap::from([("admin".to_string(), hash)]);
        let auth = Authenticator::default();
        let header = |u: &str, p: &str| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(auth.allows(&users, Some(&header("admin", "hunter2"))));
        // Twice: the second answer comes from the cache.
        assert!(auth.allows(&users, Some(&header("admin", "hunter2"))));
        assert!(!auth.allows(&users, Some(&header("admin", "hunter3"))));
        assert!(!auth.allows(&users, Some(&header("root", "hunter2"))));
        assert!(!auth.allows(&users, Some("Bearer x")));
        assert!(!auth.allows(&users, None));
    }
}
