//! `type: GCS`: Google Cloud Storage through its JSON API, over ureq.
//!
//! Thanos uses Google's Go client; this speaks the same JSON API directly:
//! object metadata (`exists`, `size`), `alt=media` downloads, listing with
//! `prefix` and `delimiter=/`, deletes, and uploads. An object that fits in
//! one chunk goes up in one request, larger ones through a resumable upload
//! session in `chunk_size_bytes` requests, each streamed from the file
//! (memory is a copy buffer, not a chunk), as the Go client's writer does.
//!
//! Credentials are found in the Go client's order: the inline
//! `service_account` key, the key file named by `GOOGLE_APPLICATION_CREDENTIALS`,
//! then the GCE/GKE metadata server. Service-account keys are exchanged for
//! access tokens with an RS256-signed JWT (OAuth 2 JWT-bearer grant); tokens
//! are cached until shortly before they expire. `STORAGE_EMULATOR_HOST`
//! points the client at an emulator without authentication, as Go's does.
//! Keys and tokens never appear in logs or errors.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;

use super::retry::{Attempt, Backoff, Policy};
use super::s3::RangeReader;
use super::{Bucket, Cancel, CancelReader, ConfigError, Error, ErrorKind, GcsConfig};

/// The Go client's `googleapi.DefaultUploadChunkSize`.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// Resumable uploads take chunks in multiples of this (GCS' rule; the Go
/// client rounds `ChunkSize` up to it).
pub const CHUNK_GRANULARITY: u64 = 256 * 1024;
/// Attempts per request unless `max_retries` says otherwise.
const DEFAULT_ATTEMPTS: u32 = 3;
/// The OAuth scope Thanos asks for (`storage.ScopeFullControl`).
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.full_control";
/// A token is renewed this long before it expires, so a request never
/// carries one that lapses in flight (Google's Go auth library uses 225 s).
const REFRESH_MARGIN: Duration = Duration::from_secs(225);
/// Lifetime asked for in the JWT; Google's maximum.
const JWT_LIFETIME: u64 = 3600;
const PRODUCTION: &str = "https://storage.googleapis.com";
/// Go's metadata package talks to this address unless `GCE_METADATA_HOST` is set.
const METADATA_IP: &str = "169.254.169.254";

/// The fields of a Google credentials JSON file this client reads.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    token_uri: String,
}

/// A parsed service-account key, ready to sign.
pub(crate) struct ServiceAccount {
    email: String,
    key_id: String,
    token_uri: String,
    key: ring::signature::RsaKeyPair,
}

impl ServiceAccount {
    /// Parses a key file's JSON; `origin` says where it came from in errors
    /// (which never quote the file, as it holds the private key).
    pub(crate) fn from_json(json: &[u8], origin: &str) -> Result<ServiceAccount, String> {
        let file: CredentialsFile = serde_json::from_slice(json).map_err(|e| {
            format!(
                "{origin}: not a Google credentials JSON file ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })?;
        if file.kind != "service_account" {
            return Err(format!(
                "{origin}: credentials of type {:?} are not supported by this sidecar (only \"service_account\" keys; or run on GCE/GKE for the metadata server)",
                file.kind
            ));
        }
        for (value, name) in [
            (&file.client_email, "client_email"),
            (&file.private_key, "private_key"),
        ] {
            if value.is_empty() {
                return Err(format!("{origin}: service account key has no {name}"));
            }
        }
        use rustls::pki_types::pem::PemObject as _;
        let der =
            rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(file.private_key.as_bytes())
                .map_err(|_| {
                    format!("{origin}: private_key is not a PKCS#8 PEM key (\"BEGIN PRIVATE KEY\")")
                })?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("{origin}: private_key is not a usable RSA key: {e}"))?;
        Ok(ServiceAccount {
            email: file.client_email,
            key_id: file.private_key_id,
            token_uri: if file.token_uri.is_empty() {
                "https://oauth2.googleapis.com/token".into()
            } else {
                file.token_uri
            },
            key,
        })
    }

    /// The signed JWT asserting this account for `SCOPE`, issued at `now`
    /// (seconds since the epoch), for the JWT-bearer grant.
    pub(crate) fn jwt(&self, now: u64) -> Result<String, String> {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if !self.key_id.is_empty() {
            header["kid"] = self.key_id.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + JWT_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the token request failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }
}

/// Where access tokens come from.
enum Source {
    ServiceAccount(Box<ServiceAccount>),
    Metadata { url: String },
}

/// An access token and when it stops being usable.
pub(crate) struct Token {
    value: String,
    expires: Instant,
}

impl Token {
    /// Whether the token can still be sent at `now`.
    pub(crate) fn fresh(&self, now: Instant) -> bool {
        now + REFRESH_MARGIN < self.expires
    }
}

/// The token endpoint's answer (OAuth 2 and the metadata server alike).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

struct Auth {
    source: Source,
    cached: Mutex<Option<Token>>,
}

impl Auth {
    /// A valid access token, from the cache or freshly obtained.
    fn token(&self, agent: &ureq::Agent) -> Result<String, Attempt> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(t) = cached.as_ref().filter(|t| t.fresh(now)) {
            return Ok(t.value.clone());
        }
        let token = self.fetch(agent, now)?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Forgets the cached token (after a 401: it was revoked or expired early).
    fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn fetch(&self, agent: &ureq::Agent, now: Instant) -> Result<Token, Attempt> {
        let (what, result) = match &self.source {
            Source::ServiceAccount(sa) => {
                let issued = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let jwt = sa.jwt(issued).map_err(|e| Attempt::Fail(Error::other(e)))?;
                let result = agent.post(&sa.token_uri).send_form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &jwt),
                ]);
                (format!("token from {}", sa.token_uri), result)
            }
            Source::Metadata { url } => {
                let result = agent.get(url).set("Metadata-Flavor", "Google").call();
                (format!("token from the metadata server {url}"), result)
            }
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(ureq::Error::Status(code, resp)) => {
                // OAuth errors are `{"error": ..., "error_description": ...}`;
                // only those two fields are shown.
                let body: serde_json::Value = json(resp).unwrap_or_default();
                let msg = format!(
                    "getting a {what}: HTTP {code}: {} {}",
                    body["error"].as_str().unwrap_or(""),
                    body["error_description"].as_str().unwrap_or("")
                );
                let err = Error::other(msg.trim_end());
                return Err(if retryable_status(code) {
                    Attempt::Retry(err)
                } else {
                    Attempt::Fail(err)
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Attempt::Retry(Error::other(format!(
                    "getting a {what}: {t}"
                ))))
            }
        };
        let parsed: TokenResponse = json(resp).map_err(|_| {
            Attempt::Retry(Error::other(format!(
                "getting a {what}: answer without access_token"
            )))
        })?;
        // Without a lifetime, assume the shortest Google hands out in practice.
        let lifetime = if parsed.expires_in == 0 {
            300
        } else {
            parsed.expires_in
        };
        Ok(Token {
            value: parsed.access_token,
            expires: now + Duration::from_secs(lifetime),
        })
    }
}

/// A JSON answer (metadata, a list page, a token; all small: ureq caps
/// `into_string` at 10 MB).
fn json<T: serde::de::DeserializeOwned>(resp: ureq::Response) -> Result<T, String> {
    let text = resp.into_string().map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn retryable_status(code: u16) -> bool {
    code == 408 || code == 429 || code >= 500
}

/// The `error.message` of a JSON API error, or the start of the body.
fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// Percent-encodes an object name as one path segment (`/` included).
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The emulator's base URL from `STORAGE_EMULATOR_HOST` (`host:port` or a URL).
pub(crate) fn emulator_base(host: &str) -> String {
    let host = host.trim_end_matches('/');
    if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

/// The metadata server's token URL (Go's metadata package: `GCE_METADATA_HOST`
/// or the link-local address).
pub(crate) fn metadata_token_url(host: Option<&str>) -> String {
    let host = host.filter(|h| !h.is_empty()).unwrap_or(METADATA_IP);
    format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token")
}

/// The credentials of Go's default chain, minus the gcloud user file.
fn find_credentials(cfg: &GcsConfig) -> Result<Source, ConfigError> {
    if !cfg.service_account.is_empty() {
        let sa =
            ServiceAccount::from_json(cfg.service_account.as_bytes(), "config.service_account")
                .map_err(|e| ConfigError::invalid("GCS", e))?;
        return Ok(Source::ServiceAccount(Box::new(sa)));
    }
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        let origin = format!(
            "GOOGLE_APPLICATION_CREDENTIALS file {}",
            Path::new(&path).display()
        );
        let json =
            std::fs::read(&path).map_err(|e| ConfigError::Client(format!("{origin}: {e}")))?;
        let sa = ServiceAccount::from_json(&json, &origin).map_err(ConfigError::Client)?;
        return Ok(Source::ServiceAccount(Box::new(sa)));
    }
    let host = std::env::var("GCE_METADATA_HOST").ok();
    Ok(Source::Metadata {
        url: metadata_token_url(host.as_deref()),
    })
}

pub struct Gcs {
    agent: ureq::Agent,
    /// `…/storage/v1/b/<bucket>`.
    api: String,
    /// `…/upload/storage/v1/b/<bucket>/o`.
    upload: String,
    auth: Option<Auth>,
    chunk_size: u64,
    policy: Policy,
    name: String,
}

/// Keys of `http_config` that ureq here cannot honour; accepted (Thanos'
/// YAML stays valid) and named in a warning.
fn ignored_http_keys(cfg: &GcsConfig) -> Vec<&'static str> {
    let http = &cfg.http_config;
    let tls = &http.tls_config;
    [
        (http.insecure_skip_verify, "insecure_skip_verify"),
        (!tls.ca_file.is_empty(), "tls_config.ca_file"),
        (!tls.cert_file.is_empty(), "tls_config.cert_file"),
        (!tls.key_file.is_empty(), "tls_config.key_file"),
        (!tls.server_name.is_empty(), "tls_config.server_name"),
        (tls.insecure_skip_verify, "tls_config.insecure_skip_verify"),
        (http.max_conns_per_host > 0, "max_conns_per_host"),
        (http.disable_compression, "disable_compression"),
    ]
    .into_iter()
    .filter_map(|(set, key)| set.then_some(key))
    .collect()
}

/// Rounds the configured chunk size as the Go client does: the default when
/// unset, else up to a multiple of 256 KiB.
pub(crate) fn chunk_size(configured: i64) -> u64 {
    match u64::try_from(configured) {
        Ok(n) if n > 0 => n.div_ceil(CHUNK_GRANULARITY) * CHUNK_GRANULARITY,
        _ => DEFAULT_CHUNK_SIZE,
    }
}

impl Gcs {
    pub fn new(cfg: &GcsConfig) -> Result<Gcs, ConfigError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emulator = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        let (base, auth) = match &emulator {
            Some(host) => {
                log::info!(host = host.as_str(); "GCS: STORAGE_EMULATOR_HOST set; talking to the emulator without authentication");
                (emulator_base(host), None)
            }
            None => (
                PRODUCTION.to_string(),
                Some(Auth {
                    source: find_credentials(cfg)?,
                    cached: Mutex::new(None),
                }),
            ),
        };
        let ignored = ignored_http_keys(cfg);
        if !ignored.is_empty() {
            log::warn!(keys:? = ignored; "GCS: these http_config keys have no effect in this sidecar");
        }
        let http = &cfg.http_config;
        let agent = http
            .agent_builder()
            // Thanos' GCS client sets http.Client.Timeout to idle_conn_timeout:
            // every request (a chunk included) must finish within it.
            .timeout(http.idle_conn_timeout.max(Duration::from_secs(1)))
            // A resumable upload's "chunk received" is a 308 without
            // Location: it must come back as a response, not be followed.
            .redirects(0)
            .build();
        let bucket = encode(&cfg.bucket);
        Ok(Gcs {
            agent,
            api: format!("{base}/storage/v1/b/{bucket}"),
            upload: format!("{base}/upload/storage/v1/b/{bucket}/o"),
            auth,
            chunk_size: chunk_size(cfg.chunk_size_bytes),
            policy: retry_policy(cfg.max_retries),
            name: cfg.bucket.clone(),
        })
    }

    fn trace(&self, what: &str, key: &str) {
        log::trace!(bucket = self.name.as_str(), key = key; "GCS {what}");
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/o/{}", self.api, encode(key))
    }

    /// Runs `f` while it fails in a retryable way (network, 401 with a
    /// token, 408, 429, 5xx), as the policy allows.
    fn retry<T>(
        &self,
        what: &str,
        cancel: &Cancel,
        f: impl FnMut() -> Result<T, Attempt>,
    ) -> Result<T, Error> {
        Ok(self.policy.run(what, cancel, f)?)
    }

    /// Sends one request with the bearer token; maps failures to [`Attempt`].
    /// `what` names the operation and object in errors.
    fn send(
        &self,
        req: ureq::Request,
        body: Option<(&mut dyn Read, u64)>,
        what: &str,
        cancel: &Cancel,
    ) -> Result<ureq::Response, Attempt> {
        let mut req = req;
        if let Some(auth) = &self.auth {
            let token = auth
                .token(&self.agent)
                .map_err(|a| a.map(|e| e.context(what)))?;
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some((reader, len)) => req
                .set("Content-Length", &len.to_string())
                .send(CancelReader {
                    inner: reader,
                    cancel,
                }),
            None => req.call(),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(code, resp)) => {
                let message = api_message(&resp.into_string().unwrap_or_default());
                let err = Error::other(format!("{what}: HTTP {code}: {message}"));
                match code {
                    404 => Err(Attempt::Fail(Error {
                        kind: ErrorKind::NotFound,
                        message: err.message,
                    })),
                    401 if self.auth.is_some() => {
                        if let Some(auth) = &self.auth {
                            auth.invalidate();
                        }
                        Err(Attempt::Retry(err))
                    }
                    c if retryable_status(c) => Err(Attempt::Retry(err)),
                    _ => Err(Attempt::Fail(err)),
                }
            }
            Err(ureq::Error::Transport(_)) if cancel.is_cancelled() => {
                Err(Attempt::Fail(Error::cancelled()))
            }
            Err(ureq::Error::Transport(t)) => {
                Err(Attempt::Retry(Error::other(format!("{what}: {t}"))))
            }
        }
    }

    /// The object's metadata JSON; `None` when absent.
    fn metadata(&self, key: &str) -> Result<Option<serde_json::Value>, Error> {
        let what = format!("GCS get metadata of {key}");
        let result = self.retry(&what, &Cancel::new(), || {
            let resp = self.send(
                self.agent.get(&self.object_url(key)),
                None,
                &what,
                &Cancel::new(),
            )?;
            json::<serde_json::Value>(resp)
                .map_err(|e| Attempt::Retry(Error::other(format!("{what}: {e}"))))
        });
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One request with the whole object (objects up to a chunk).
    fn simple_upload<'a>(
        &self,
        key: &str,
        mut body: impl FnMut() -> Box<dyn Read + 'a>,
        len: u64,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        let what = format!("GCS upload of {key}");
        self.retry(&what, cancel, || {
            let req = self
                .agent
                .post(&self.upload)
                .query("uploadType", "media")
                .query("name", key)
                .set("Content-Type", "application/octet-stream");
            let mut reader = body();
            self.send(req, Some((&mut *reader, len)), &what, cancel)
                .map(|_| ())
        })
    }

    /// A resumable upload: a session, then `chunk_size` requests from the file.
    fn resumable(&self, key: &str, file: &File, size: u64, cancel: &Cancel) -> Result<(), Error> {
        let what = format!("GCS resumable upload of {key}");
        let session = self.retry(&what, cancel, || {
            let req = self
                .agent
                .post(&self.upload)
                .query("uploadType", "resumable")
                .query("name", key)
                .set("X-Upload-Content-Type", "application/octet-stream")
                .set("X-Upload-Content-Length", &size.to_string());
            let resp = self.send(req, Some((&mut std::io::empty(), 0)), &what, cancel)?;
            resp.header("Location").map(str::to_string).ok_or_else(|| {
                Attempt::Fail(Error::other(format!(
                    "{what}: no session URL in the answer"
                )))
            })
        })?;
        let mut offset = 0u64;
        let mut failures = 0u32;
        loop {
            // Cancel is honoured between chunks (and inside one, by the reader).
            cancel.check()?;
            let len = self.chunk_size.min(size - offset);
            let range = format!("bytes {}-{}/{size}", offset, offset + len - 1);
            let req = self
                .agent
                .put(&session)
                .set("Content-Range", &range)
                .set("Content-Type", "application/octet-stream");
            let mut body = RangeReader::new(file, offset, len);
            let chunk_what = format!("{what}, bytes {range}");
            let result = self
                .send(req, Some((&mut body, len)), &chunk_what, cancel)
                .map(|resp| progress(&resp));
            match result {
                Ok(Progress::Done) => return Ok(()),
                Ok(Progress::Persisted(n)) if n > offset => {
                    offset = n;
                    failures = 0;
                }
                Ok(Progress::Persisted(n)) => {
                    return Err(Error::other(format!(
                        "{chunk_what}: the server kept only {n} bytes"
                    )))
                }
                Err(Attempt::Retry(e)) if failures + 1 < self.policy.attempts => {
                    failures += 1;
                    log::debug!(err:% = e, attempt = failures; "GCS chunk failed; asking the session where to resume");
                    cancel.sleep(self.policy.delay(failures, None))?;
                    match self.session_status(&session, size, &what, cancel) {
                        Ok(Progress::Done) => return Ok(()),
                        Ok(Progress::Persisted(n)) => offset = n,
                        // The next chunk attempt will tell again.
                        Err(Attempt::Retry(_) | Attempt::RetryAfter(..)) => {}
                        Err(Attempt::Fail(e)) => return Err(e),
                    }
                }
                Err(a) => return Err(a.into_error()),
            }
            if offset >= size {
                return Err(Error::other(format!(
                    "{what}: all bytes sent but the upload did not complete"
                )));
            }
        }
    }

    /// Asks a resumable session how much it holds (an empty PUT).
    fn session_status(
        &self,
        session: &str,
        size: u64,
        what: &str,
        cancel: &Cancel,
    ) -> Result<Progress, Attempt> {
        let req = self
            .agent
            .put(session)
            .set("Content-Range", &format!("bytes */{size}"));
        let resp = self.send(req, Some((&mut std::io::empty(), 0)), what, cancel)?;
        Ok(progress(&resp))
    }
}

/// How far a resumable upload is.
#[derive(Debug, PartialEq)]
enum Progress {
    Done,
    /// Bytes the server holds, from the 308's `Range: bytes=0-N`.
    Persisted(u64),
}

fn progress(resp: &ureq::Response) -> Progress {
    if resp.status() != 308 {
        return Progress::Done;
    }
    Progress::Persisted(persisted(resp.header("Range")))
}

/// `bytes=0-N` → N+1; absent → nothing persisted.
fn persisted(range: Option<&str>) -> u64 {
    range
        .and_then(|r| r.strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(0, |n| n + 1)
}

/// Tries per request from `max_retries` ([`DEFAULT_ATTEMPTS`] unless set),
/// with backoff 250 ms doubling up to 4 s.
fn retry_policy(max_retries: i64) -> Policy {
    Policy {
        backend: "GCS",
        attempts: match u32::try_from(max_retries) {
            Ok(n) if n > 0 => n,
            _ => DEFAULT_ATTEMPTS,
        },
        backoff: Backoff::Exponential {
            first: Duration::from_millis(250),
            doublings: 4,
        },
        max_delay: Duration::from_secs(5),
    }
}

impl Bucket for Gcs {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
        self.trace("upload", key);
        let (file, size) = super::open_sized(path)?;
        if size <= self.chunk_size {
            self.simple_upload(
                key,
                || Box::new(RangeReader::new(&file, 0, size)),
                size,
                cancel,
            )?;
        } else {
            self.resumable(key, &file, size, cancel)?;
        }
        Ok(size)
    }

    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        self.trace("upload", key);
        self.simple_upload(key, || Box::new(data), data.len() as u64, cancel)
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        self.trace("exists", key);
        Ok(self.metadata(key)?.is_some())
    }

    fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        self.trace("attributes", key);
        let Some(meta) = self.metadata(key)? else {
            return Ok(None);
        };
        // The JSON API sends 64-bit numbers as strings.
        meta["size"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| Error::other(format!("GCS metadata of {key}: no size")))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.trace("get", key);
        let what = format!("GCS get {key}");
        let cancel = Cancel::new();
        self.retry(&what, &cancel, || {
            let req = self.agent.get(&self.object_url(key)).query("alt", "media");
            let resp = self.send(req, None, &what, &cancel)?;
            let mut out = Vec::new();
            resp.into_reader()
                .read_to_end(&mut out)
                .map_err(|e| Attempt::Retry(Error::other(format!("{what}: {e}"))))?;
            Ok(out)
        })
        .map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                Error::not_found(key)
            } else {
                e
            }
        })
    }

    fn iter(&self, dir: &str) -> Result<Vec<String>, Error> {
        self.trace("iter", dir);
        let prefix = if dir.is_empty() || dir.ends_with('/') {
            dir.to_string()
        } else {
            format!("{dir}/")
        };
        let what = format!("GCS list {prefix}");
        let cancel = Cancel::new();
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page: serde_json::Value = self.retry(&what, &cancel, || {
                let mut req = self
                    .agent
                    .get(&format!("{}/o", self.api))
                    .query("prefix", &prefix)
                    .query("delimiter", "/");
                if let Some(t) = &page_token {
                    req = req.query("pageToken", t);
                }
                let resp = self.send(req, None, &what, &cancel)?;
                json(resp).map_err(|e| Attempt::Retry(Error::other(format!("{what}: {e}"))))
            })?;
            let names = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["name"].as_str());
            let prefixes = page["prefixes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str());
            out.extend(names.chain(prefixes).map(str::to_string));
            match page["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => page_token = Some(t.to_string()),
                _ => break,
            }
        }
        // The "directory" object itself is not one of its entries.
        out.retain(|k| *k != prefix);
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        self.trace("delete", key);
        let what = format!("GCS delete {key}");
        let cancel = Cancel::new();
        match self.retry(&what, &cancel, || {
            self.send(
                self.agent.delete(&self.object_url(key)),
                None,
                &what,
                &cancel,
            )
            .map(|_| ())
        }) {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A throwaway RSA key made by openssl for this test run, as a key file's JSON.
    fn test_key_json() -> Option<String> {
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let pem = String::from_utf8(out.stdout).ok()?;
        Some(
            serde_json::json!({
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "kid-1",
                "private_key": pem,
                "client_email": "sidecar@p.iam.gserviceaccount.com",
                "token_uri": "http://127.0.0.1:1/token",
            })
            .to_string(),
        )
    }

    #[test]
    fn jwt_header_claims_and_signature() {
        let Some(json) = test_key_json() else {
            println!("skipping: openssl genpkey is not available to make a test key");
            return;
        };
        let sa = ServiceAccount::from_json(json.as_bytes(), "test").unwrap();
        let jwt = sa.jwt(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            serde_json::from_slice::<serde_json::Value>(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            dec(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        assert_eq!(
            dec(parts[1]),
            serde_json::json!({
                "iss": "sidecar@p.iam.gserviceaccount.com",
                "scope": SCOPE,
                "aud": "http://127.0.0.1:1/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            sa.key.public().as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &sig).unwrap();
        assert!(public.verify(b"other", &sig).is_err());
    }

    /// A one-route HTTP server answering every request with `answer`;
    /// returns its URL and the requests it got (head and body as text).
    fn token_server(answer: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::Write as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Head, then as many body bytes as Content-Length says.
                loop {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&req).to_string());
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (url, rx)
    }

    fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build()
    }

    #[test]
    fn service_account_token_is_fetched_with_a_signed_jwt_then_cached() {
        let Some(json) = test_key_json() else {
            println!("skipping: openssl genpkey is not available to make a test key");
            return;
        };
        let (url, requests) = token_server(
            r#"{"access_token": "tok-1", "expires_in": 3600, "token_type": "Bearer"}"#,
        );
        let mut key: serde_json::Value = serde_json::from_str(&json).unwrap();
        key["token_uri"] = url.clone().into();
        let sa = ServiceAccount::from_json(key.to_string().as_bytes(), "test").unwrap();
        let public = sa.key.public().as_ref().to_vec();
        let auth = Auth {
            source: Source::ServiceAccount(Box::new(sa)),
            cached: Mutex::new(None),
        };
        assert_eq!(auth.token(&agent()).unwrap(), "tok-1");
        assert_eq!(auth.token(&agent()).unwrap(), "tok-1");
        let req = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            requests.try_recv().is_err(),
            "the cached token was not reused"
        );
        assert!(req.starts_with("POST /token "), "{req}");
        let body = req.split("\r\n\r\n").nth(1).unwrap();
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            form["grant_type"],
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        );
        let jwt: Vec<&str> = form["assertion"].split('.').collect();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt[2])
            .unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            public,
        )
        .verify(format!("{}.{}", jwt[0], jwt[1]).as_bytes(), &sig)
        .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwt[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], url.as_str());
    }

    #[test]
    fn metadata_token_is_asked_with_the_flavor_header() {
        let (url, requests) = token_server(r#"{"access_token": "meta-tok", "expires_in": 1000}"#);
        let auth = Auth {
            source: Source::Metadata { url },
            cached: Mutex::new(None),
        };
        assert_eq!(auth.token(&agent()).unwrap(), "meta-tok");
        let req = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(req.starts_with("GET /token "), "{req}");
        assert!(
            req.to_ascii_lowercase().contains("metadata-flavor: google"),
            "{req}"
        );
        let cached = auth.cached.lock().unwrap();
        let t = cached.as_ref().unwrap();
        assert!(t.fresh(Instant::now()));
        assert!(!t.fresh(Instant::now() + Duration::from_secs(1000 - 200)));
    }

    #[test]
    fn bad_keys_are_refused_without_quoting_them() {
        let cases = [
            (
                r#"{"type": "authorized_user", "refresh_token": "SECRET"}"#,
                "authorized_user",
            ),
            (
                r#"{"type": "service_account", "client_email": "a@b"}"#,
                "no private_key",
            ),
            (
                r#"{"type": "service_account", "client_email": "a@b", "private_key": "SECRET"}"#,
                "not a PKCS#8 PEM key",
            ),
            (
                r#"{"type": "service_account", "private_key": "SECRET"#,
                "not a Google credentials JSON",
            ),
        ];
        for (json, needle) in cases {
            let err = ServiceAccount::from_json(json.as_bytes(), "config.service_account")
                .err()
                .unwrap();
            assert!(err.contains(needle), "{err}");
            assert!(err.contains("config.service_account"), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn token_freshness_keeps_a_margin() {
        let now = Instant::now();
        let token = |secs| Token {
            value: "t".into(),
            expires: now + Duration::from_secs(secs),
        };
        assert!(token(3600).fresh(now));
        assert!(token(3600).fresh(now + Duration::from_secs(3000)));
        assert!(!token(3600).fresh(now + Duration::from_secs(3400)));
        assert!(!token(200).fresh(now));
    }

    #[test]
    fn cached_token_is_reused_until_stale() {
        let auth = Auth {
            // Never reached while the cached token is fresh.
            source: Source::Metadata {
                url: "http://127.0.0.1:1/token".into(),
            },
            cached: Mutex::new(Some(Token {
                value: "cached".into(),
                expires: Instant::now() + Duration::from_secs(3600),
            })),
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        assert_eq!(auth.token(&agent).unwrap(), "cached");
        auth.invalidate();
        // Stale now: a fetch is attempted (and fails: nothing listens there).
        let err = auth.token(&agent).unwrap_err();
        assert!(matches!(err, Attempt::Retry(_)), "{err:?}");
        assert!(err.into_error().message.contains("metadata server"));
    }

    #[test]
    fn endpoints_and_encoding() {
        assert_eq!(emulator_base("localhost:4443"), "http://localhost:4443");
        assert_eq!(
            emulator_base("http://localhost:4443/"),
            "http://localhost:4443"
        );
        assert_eq!(emulator_base("https://gcs.test"), "https://gcs.test");
        assert_eq!(
            metadata_token_url(None),
            "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(
            metadata_token_url(Some("127.0.0.1:8080")),
            "http://127.0.0.1:8080/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(encode("01AB/chunks/000001"), "01AB%2Fchunks%2F000001");
        assert_eq!(encode("a b+é"), "a%20b%2B%C3%A9");
    }

    #[test]
    fn chunk_sizes_round_as_the_go_client() {
        assert_eq!(chunk_size(0), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size(-3), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size(1), CHUNK_GRANULARITY);
        assert_eq!(chunk_size(256 * 1024), 256 * 1024);
        assert_eq!(chunk_size(256 * 1024 + 1), 512 * 1024);
    }

    #[test]
    fn resumable_progress() {
        assert_eq!(persisted(Some("bytes=0-262143")), 262144);
        assert_eq!(persisted(None), 0);
        assert_eq!(persisted(Some("garbage")), 0);
        let backoff = |n| retry_policy(0).delay(n, None);
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(30), Duration::from_secs(4));
    }

    #[test]
    fn api_errors_show_the_message() {
        assert_eq!(
            api_message(r#"{"error": {"code": 403, "message": "denied"}}"#),
            "denied"
        );
        assert_eq!(api_message("plain"), "plain");
    }

    #[test]
    fn max_retries_sets_attempts() {
        let mut cfg = GcsConfig {
            bucket: "b".into(),
            ..GcsConfig::default()
        };
        // Key parsing fails early, before the environment is consulted.
        cfg.service_account = "{".into();
        assert!(
            Gcs::new(&cfg)
                .err()
                .unwrap()
                .to_string()
                .contains("config.service_account")
                || std::env::var_os("STORAGE_EMULATOR_HOST").is_some()
        );
        cfg.service_account.clear();
        cfg.max_retries = 5;
        if let Ok(g) = Gcs::new(&cfg) {
            assert_eq!(g.policy.attempts, 5);
        }
    }
}
