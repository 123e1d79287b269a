//! `type: AZURE`: Azure Blob Storage (or Azurite) over its REST API, with
//! ureq and Shared Key request signing.
//!
//! Credentials are taken in Thanos' order: `storage_connection_string`
//! (`AccountName`/`AccountKey`/`BlobEndpoint`/`DefaultEndpointsProtocol`/
//! `EndpointSuffix`, or `UseDevelopmentStorage=true`), then
//! `storage_account_key`, then an Entra ID bearer token (client secret,
//! managed identity, workload identity: src/objstore/azure_token.rs). SAS
//! connection strings and Data Lake Gen2 accounts are refused at start-up,
//! naming the key: they are not supported yet.
//!
//! Objects larger than one piece (3 MiB, the block size Thanos' uploader
//! uses) go up as block blobs: one Put Block per piece, four in flight (as
//! Thanos' uploader), each streamed from the file with positional reads,
//! then Put Block List. So memory per upload is a few copy buffers whatever
//! the object's size or the piece size, and a shutdown stops the upload at
//! the next piece. Smaller objects are one Put Blob.
//!
//! Secrets never reach logs or errors: requests are described by method and
//! object name only, the account key lives only in the HMAC and tokens only
//! in the `Authorization` header.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::azure_token::{Source, TokenCredential};
use super::retry::{Attempt, Backoff, Policy, Stop};
use super::s3::RangeReader;
use super::{AzureConfig, Bucket, Cancel, ConfigError, Error, ErrorKind};

/// The Blob service API version every request asks for.
const API_VERSION: &str = "2021-08-06";
/// One Put Block's size: Thanos' uploader uses 3 MiB blocks too.
const PIECE_SIZE: u64 = 3 * 1024 * 1024;
/// Put Blocks of one blob in flight at once, as Thanos' uploader (the Azure
/// SDK's UploadStream with Concurrency 4) sends them: one request at a time
/// leaves the connection idle while the service stores each piece.
const PIECE_WORKERS: u64 = 4;
/// A block blob has at most this many blocks; bigger objects get bigger pieces.
const MAX_BLOCKS: u64 = 50_000;
/// Azure SDK retry defaults (azcore `policy.RetryOptions`) for zero values.
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(800);
const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// Azurite's (and the old storage emulator's) published development account.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where requests go and who signs them.
#[derive(Debug, PartialEq)]
struct Endpoint {
    /// `scheme://host[:port]`.
    origin: String,
    /// A path before the container: `/devstoreaccount1` for Azurite's
    /// path-style URLs, empty for Azure's `<account>.blob...` hosts.
    base_path: String,
    account: String,
}

/// The parts of a connection string this client uses.
#[derive(Default, PartialEq, Debug)]
struct ConnectionString {
    protocol: Option<String>,
    account_name: Option<String>,
    account_key: Option<String>,
    blob_endpoint: Option<String>,
    endpoint_suffix: Option<String>,
    has_sas: bool,
    development: bool,
}

/// Parses `Key=Value;...`; values may hold `=` (base64 keys do). Errors
/// never quote the string: it holds the account key.
fn parse_connection_string(s: &str) -> Result<ConnectionString, String> {
    let mut cs = ConnectionString::default();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err("storage_connection_string: an item is not Key=Value".into());
        };
        let v = Some(v.trim().to_string());
        match k.trim() {
            "DefaultEndpointsProtocol" => cs.protocol = v,
            "AccountName" => cs.account_name = v,
            "AccountKey" => cs.account_key = v,
            "BlobEndpoint" => cs.blob_endpoint = v,
            "EndpointSuffix" => cs.endpoint_suffix = v,
            "SharedAccessSignature" => cs.has_sas = true,
            "UseDevelopmentStorage" => cs.development = v.as_deref() == Some("true"),
            // Queue, table and file endpoints, proxies: not for blobs.
            _ => {}
        }
    }
    Ok(cs)
}

/// Splits a URL into origin and path, without a trailing `/`.
fn split_url(url: &str, key: &str) -> Result<(String, String), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{key}: invalid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("{key}: not an http(s) URL"));
    }
    let origin = parsed.origin().ascii_serialization();
    Ok((origin, parsed.path().trim_end_matches('/').to_string()))
}

/// How requests are authorized.
#[derive(Debug, PartialEq)]
enum Auth {
    /// Shared Key signing with the decoded account key.
    SharedKey(Vec<u8>),
    /// An Entra ID bearer token from this source.
    Token(Source),
}

/// The endpoint and the credential, in Thanos' order: connection string,
/// account key, then a token (`env` reads the environment).
fn credentials(
    cfg: &AzureConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Endpoint, Auth), String> {
    let decode = |key: &str, what: &str| {
        B64.decode(key.trim())
            .map_err(|_| format!("{what} is not valid base64"))
    };
    if !cfg.storage_connection_string.is_empty() {
        let cs = parse_connection_string(&cfg.storage_connection_string)?;
        if cs.development {
            return Ok((
                Endpoint {
                    origin: "http://127.0.0.1:10000".into(),
                    base_path: format!("/{DEV_ACCOUNT}"),
                    account: DEV_ACCOUNT.into(),
                },
                Auth::SharedKey(decode(DEV_KEY, "the development account key")?),
            ));
        }
        if cs.has_sas && cs.account_key.is_none() {
            return Err("storage_connection_string: SharedAccessSignature authentication is not supported yet (use AccountName and AccountKey)".into());
        }
        let (Some(account), Some(key)) = (cs.account_name, cs.account_key) else {
            return Err(
                "storage_connection_string: AccountName and AccountKey are required".into(),
            );
        };
        let (origin, base_path) = match cs.blob_endpoint {
            Some(url) => split_url(&url, "storage_connection_string: BlobEndpoint")?,
            None => {
                let protocol = cs.protocol.unwrap_or_else(|| "https".into());
                let suffix = cs
                    .endpoint_suffix
                    .unwrap_or_else(|| "core.windows.net".into());
                split_url(
                    &format!("{protocol}://{account}.blob.{suffix}"),
                    "storage_connection_string: DefaultEndpointsProtocol/EndpointSuffix",
                )?
            }
        };
        let key = decode(&key, "storage_connection_string: AccountKey")?;
        return Ok((
            Endpoint {
                origin,
                base_path,
                account,
            },
            Auth::SharedKey(key),
        ));
    }
    let (origin, base_path) = split_url(
        &format!("https://{}.{}", cfg.storage_account, cfg.endpoint),
        "storage_account/endpoint",
    )?;
    let endpoint = Endpoint {
        origin,
        base_path,
        account: cfg.storage_account.clone(),
    };
    if !cfg.storage_account_key.is_empty() {
        let key = decode(&cfg.storage_account_key, "storage_account_key")?;
        return Ok((endpoint, Auth::SharedKey(key)));
    }
    // Thanos' token credentials (src/objstore/azure_token.rs).
    Ok((endpoint, Auth::Token(Source::choose(cfg, env))))
}

/// Percent-encodes a blob name for a URL path, keeping `/`.
fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A request body: bytes in memory, or `len` bytes of a file from
/// `offset`, streamed with positional reads (no buffer, and several pieces
/// of one file at once).
#[derive(Clone, Copy)]
enum Body<'a> {
    Bytes(&'a [u8]),
    File(&'a File, u64, u64),
}

/// One request to sign and send.
struct Req<'a> {
    method: &'a str,
    /// Percent-encoded path, from the root: `/[account/]container[/blob]`.
    path: String,
    /// Unencoded query parameters.
    query: Vec<(&'a str, String)>,
    /// Headers other than `Authorization`, `x-ms-date` and `x-ms-version`.
    headers: Vec<(&'a str, String)>,
    content_length: usize,
}

/// Azure's Shared Key string-to-sign (Blob service, version 2009-09-19 and
/// later): the standard headers in a fixed order, the `x-ms-` headers
/// sorted, then `/<account><path>` and the sorted query parameters.
fn string_to_sign(account: &str, req: &Req, x_ms: &[(String, String)]) -> String {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let length = if req.content_length == 0 {
        String::new()
    } else {
        req.content_length.to_string()
    };
    let mut s = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        req.method,
        header("Content-Encoding"),
        header("Content-Language"),
        length,
        header("Content-MD5"),
        header("Content-Type"),
        header("If-Modified-Since"),
        header("If-Match"),
        header("If-None-Match"),
        header("If-Unmodified-Since"),
        header("Range"),
    );
    let mut canon: Vec<(String, String)> = x_ms
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    canon.sort();
    for (n, v) in canon {
        s.push_str(&format!("{n}:{v}\n"));
    }
    s.push_str(&format!("/{account}{}", req.path));
    let mut query: Vec<(String, &str)> = req
        .query
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
        .collect();
    query.sort();
    for (n, v) in query {
        s.push_str(&format!("\n{n}:{v}"));
    }
    s
}

fn signature(key: &[u8], string_to_sign: &str) -> Result<String, Error> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| Error::other(format!("account key: {e}")))?;
    mac.update(string_to_sign.as_bytes());
    Ok(B64.encode(mac.finalize().into_bytes()))
}

/// The credential at work: a key, or a token source with its cache.
enum Authorizer {
    SharedKey(Vec<u8>),
    Token(TokenCredential),
}

/// Why a request got no HTTP answer to judge.
enum SendError {
    Http(Box<ureq::Error>),
    /// No token could be had; retried like a network error.
    Auth(Error),
}

/// What a request came back with, when it was not retried away.
enum Outcome {
    Ok(Box<ureq::Response>),
    Status(u16, String),
}

pub struct Azure {
    agent: ureq::Agent,
    endpoint: Endpoint,
    auth: Authorizer,
    container: String,
    /// Attempts for a blob's GET, which `reader_config` may raise.
    get_attempts: u32,
    /// Everything else's attempts and the SDK's backoff.
    policy: Policy,
}

impl Azure {
    pub fn new(cfg: &AzureConfig) -> Result<Azure, ConfigError> {
        let err = |msg: String| ConfigError::invalid("AZURE", msg);
        if cfg.azure_storage_account_type == "datalake" {
            return Err(err("azure_storage_account_type: datalake (Data Lake Storage Gen2) is not supported yet; blob is".into()));
        }
        if let Some(key) = cfg.http_config.tls_keys_set().next() {
            return Err(err(format!("{key} is not supported yet")));
        }
        if !cfg.msi_resource.is_empty() {
            // As Thanos warns: the resource is implied by the token's scope.
            log::warn!("The field msi_resource has been deprecated and should no longer be set");
        }
        let (endpoint, auth) = credentials(cfg, |k| std::env::var(k).ok()).map_err(err)?;
        // ureq's rustls takes the process-wide provider; the sidecar uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut agent = cfg.http_config.agent_builder();
        if !cfg.pipeline_config.try_timeout.is_zero() {
            agent = agent.timeout(cfg.pipeline_config.try_timeout);
        }
        let retries = |n: i64| match n {
            0 => DEFAULT_RETRIES,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        let attempts = retries(cfg.pipeline_tries()).saturating_add(1);
        let pick = |d: Duration, default| if d.is_zero() { default } else { d };
        let agent = agent.build();
        let auth = match auth {
            Auth::SharedKey(key) => Authorizer::SharedKey(key),
            Auth::Token(source) => {
                log::info!(credential = source.describe(); "Azure: authenticating with Entra ID tokens");
                Authorizer::Token(TokenCredential::new(source, agent.clone()))
            }
        };
        let azure = Azure {
            agent,
            endpoint,
            auth,
            container: cfg.container.clone(),
            get_attempts: attempts.max(retries(cfg.reader_retries()).saturating_add(1)),
            policy: Policy {
                backend: "Azure",
                attempts,
                backoff: Backoff::Exponential {
                    first: pick(cfg.pipeline_config.retry_delay, DEFAULT_RETRY_DELAY),
                    doublings: 16,
                },
                max_delay: pick(cfg.pipeline_config.max_retry_delay, DEFAULT_MAX_RETRY_DELAY),
            },
        };
        if cfg.storage_create_container {
            azure.create_container()?;
        }
        Ok(azure)
    }

    fn container_path(&self) -> String {
        format!(
            "{}/{}",
            self.endpoint.base_path,
            encode_path(&self.container)
        )
    }

    fn blob_path(&self, name: &str) -> String {
        format!("{}/{}", self.container_path(), encode_path(name))
    }

    /// Checks for the container and creates it when missing, as Thanos does.
    fn create_container(&self) -> Result<(), Error> {
        let what = format!("container {}", self.container);
        let get = || Req {
            method: "GET",
            path: self.container_path(),
            query: vec![("restype", "container".into())],
            headers: vec![],
            content_length: 0,
        };
        match self.call(&what, get, None, self.policy.attempts, &Cancel::new())? {
            Outcome::Ok(_) => return Ok(()),
            Outcome::Status(404, _) => {}
            Outcome::Status(status, code) => {
                return Err(Error::other(format!(
                    "get properties of {what}: HTTP {status} {code}"
                )))
            }
        }
        let put = || Req {
            method: "PUT",
            path: self.container_path(),
            query: vec![("restype", "container".into())],
            headers: vec![],
            content_length: 0,
        };
        match self.call(
            &what,
            put,
            Some(Body::Bytes(&[])),
            self.policy.attempts,
            &Cancel::new(),
        )? {
            // 409: someone else created it meanwhile.
            Outcome::Ok(_) | Outcome::Status(409, _) => {
                log::info!(container = self.container.as_str(); "Azure blob container created");
                Ok(())
            }
            Outcome::Status(status, code) => Err(Error::other(format!(
                "creating Azure blob {what}: HTTP {status} {code}"
            ))),
        }
    }

    /// Signs and sends one request; retries transport and credential
    /// errors, 429 and 5xx, after the server's `Retry-After` when it gives
    /// one. Other statuses are the caller's to judge.
    fn call<'a>(
        &self,
        what: &str,
        req: impl Fn() -> Req<'a>,
        body: Option<Body>,
        attempts: u32,
        cancel: &Cancel,
    ) -> Result<Outcome, Error> {
        let policy = Policy {
            attempts,
            ..self.policy.clone()
        };
        let once = || match self.send(&req(), body) {
            Ok(resp) => Ok(Outcome::Ok(Box::new(resp))),
            Err(SendError::Auth(e)) => Err(Attempt::Retry(e.message)),
            Err(SendError::Http(e)) => match *e {
                ureq::Error::Status(status, resp) => {
                    let code = resp.header("x-ms-error-code").unwrap_or("").to_string();
                    if status != 429 && status < 500 {
                        return Ok(Outcome::Status(status, code));
                    }
                    let failure = format!("HTTP {status} {code}");
                    // A throttling answer may say how long to wait (seconds).
                    match resp
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        Some(secs) => Err(Attempt::RetryAfter(failure, Duration::from_secs(secs))),
                        None => Err(Attempt::Retry(failure)),
                    }
                }
                // The URL carries no secret (no SAS); the message names the cause.
                ureq::Error::Transport(t) => Err(Attempt::Retry(t.to_string())),
            },
        };
        policy.run(what, cancel, once).map_err(|stop| match stop {
            Stop::Cancelled(e) => e,
            Stop::Failed(failure) => Error::other(format!("{what}: {failure}")),
            Stop::Exhausted {
                last: failure,
                attempts,
            } => Error::other(format!("{what}: {failure} (after {attempts} attempts)")),
        })
    }

    /// The `Authorization` header's value for a request.
    fn authorization(&self, req: &Req, x_ms: &[(String, String)]) -> Result<String, Error> {
        match &self.auth {
            Authorizer::SharedKey(key) => {
                let to_sign = string_to_sign(&self.endpoint.account, req, x_ms);
                let sig = signature(key, &to_sign)?;
                Ok(format!("SharedKey {}:{sig}", self.endpoint.account))
            }
            Authorizer::Token(cred) => Ok(format!("Bearer {}", cred.token()?)),
        }
    }

    fn send(&self, req: &Req, body: Option<Body>) -> Result<ureq::Response, SendError> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut x_ms: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        for (n, v) in &req.headers {
            if n.to_ascii_lowercase().starts_with("x-ms-") {
                x_ms.push((n.to_string(), v.clone()));
            }
        }
        let authorization = self.authorization(req, &x_ms).map_err(SendError::Auth)?;
        let mut url = format!("{}{}", self.endpoint.origin, req.path);
        if !req.query.is_empty() {
            let q: Vec<String> = req
                .query
                .iter()
                .map(|(n, v)| format!("{n}={}", query_escape(v)))
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }
        log::trace!(method = req.method, path = req.path.as_str(); "Azure request");
        let mut r = self
            .agent
            .request(req.method, &url)
            .set("Authorization", &authorization);
        for (n, v) in &x_ms {
            r = r.set(n, v);
        }
        for (n, v) in &req.headers {
            if !n.to_ascii_lowercase().starts_with("x-ms-") {
                r = r.set(n, v);
            }
        }
        match body {
            Some(Body::Bytes(b)) => r.send_bytes(b),
            // Read afresh on every attempt; a set Content-Length keeps ureq
            // from chunking the body.
            Some(Body::File(file, offset, len)) => r
                .set("Content-Length", &len.to_string())
                .send(RangeReader::new(file, offset, len)),
            None => r.call(),
        }
        .map_err(|e| SendError::Http(Box::new(e)))
    }

    fn put(
        &self,
        what: &str,
        req: impl Fn() -> Req<'static>,
        body: Body,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        match self.call(what, req, Some(body), self.policy.attempts, cancel)? {
            Outcome::Ok(_) => Ok(()),
            Outcome::Status(status, code) => {
                Err(Error::other(format!("{what}: HTTP {status} {code}")))
            }
        }
    }

    fn put_blob(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        let path = self.blob_path(key);
        let len = data.len();
        let req = || Req {
            method: "PUT",
            path: path.clone(),
            query: vec![],
            headers: vec![
                ("Content-Type", "application/octet-stream".into()),
                ("x-ms-blob-type", "BlockBlob".into()),
            ],
            content_length: len,
        };
        self.put(
            &format!("Put Blob of {key}"),
            req,
            Body::Bytes(data),
            cancel,
        )
    }

    /// Block IDs must all have the same length within a blob.
    fn block_id(i: u64) -> String {
        B64.encode(format!("block-{i:08}"))
    }

    /// Put Block `i`: the piece of the file at `i * piece`, streamed.
    fn put_block(
        &self,
        key: &str,
        path: &str,
        file: &File,
        (i, piece, size): (u64, u64, u64),
        cancel: &Cancel,
    ) -> Result<(), Error> {
        let offset = i * piece;
        let len = piece.min(size - offset);
        let id = Azure::block_id(i);
        let req = || Req {
            method: "PUT",
            path: path.to_string(),
            query: vec![("comp", "block".into()), ("blockid", id.clone())],
            headers: vec![("Content-Type", "application/octet-stream".into())],
            content_length: usize::try_from(len).unwrap_or(usize::MAX),
        };
        let body = Body::File(file, offset, len);
        self.put(&format!("Put Block {} of {key}", i + 1), req, body, cancel)
    }

    /// Put Blocks, [`PIECE_WORKERS`] at a time; the first failure stops
    /// the others.
    fn put_blocks(&self, key: &str, file: &File, size: u64, cancel: &Cancel) -> Result<(), Error> {
        let piece = PIECE_SIZE.max(size.div_ceil(MAX_BLOCKS));
        let count = size.div_ceil(piece);
        let path = self.blob_path(key);
        let next = AtomicU64::new(0);
        let stop = cancel.child();
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let worker = || {
            while !stop.is_cancelled() {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return;
                }
                if let Err(e) = self.put_block(key, &path, file, (i, piece, size), &stop) {
                    stop.cancel();
                    let mut first = failure.lock().unwrap_or_else(|p| p.into_inner());
                    // A real failure explains more than a sibling's "cancelled".
                    if first.as_ref().is_none_or(|f| {
                        f.kind == ErrorKind::Cancelled && e.kind != ErrorKind::Cancelled
                    }) {
                        *first = Some(e);
                    }
                    return;
                }
            }
        };
        let workers = PIECE_WORKERS.min(count.max(1)) as usize;
        std::thread::scope(|scope| -> Result<(), Error> {
            for n in 1..workers {
                std::thread::Builder::new()
                    .name(format!("azure-block-{n}"))
                    .spawn_scoped(scope, worker)
                    .map_err(|e| Error::other(format!("spawn block upload thread: {e}")))?;
            }
            worker();
            Ok(())
        })?;
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let ids: Vec<String> = (0..count).map(Azure::block_id).collect();
        cancel.check()?;
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &ids {
            xml.push_str(&format!("<Latest>{id}</Latest>"));
        }
        xml.push_str("</BlockList>");
        let len = xml.len();
        let req = || Req {
            method: "PUT",
            path: path.clone(),
            query: vec![("comp", "blocklist".into())],
            headers: vec![("Content-Type", "application/xml".into())],
            content_length: len,
        };
        self.put(
            &format!("Put Block List of {key}"),
            req,
            Body::Bytes(xml.as_bytes()),
            cancel,
        )
    }

    fn head(&self, key: &str) -> Result<Option<u64>, Error> {
        let path = self.blob_path(key);
        let req = || Req {
            method: "HEAD",
            path: path.clone(),
            query: vec![],
            headers: vec![],
            content_length: 0,
        };
        let what = format!("Get Blob Properties of {key}");
        match self.call(&what, req, None, self.policy.attempts, &Cancel::new())? {
            Outcome::Ok(resp) => {
                let len = resp
                    .header("Content-Length")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::other(format!("{what}: no Content-Length")))?;
                Ok(Some(len))
            }
            Outcome::Status(404, _) => Ok(None),
            Outcome::Status(status, code) => {
                Err(Error::other(format!("{what}: HTTP {status} {code}")))
            }
        }
    }
}

fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The part of a List Blobs answer the sidecar reads.
#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: BlobsXml,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct BlobsXml {
    #[serde(rename = "$value", default)]
    items: Vec<BlobItem>,
}

#[derive(Deserialize)]
enum BlobItem {
    Blob {
        #[serde(rename = "Name")]
        name: String,
    },
    BlobPrefix {
        #[serde(rename = "Name")]
        name: String,
    },
}

fn parse_list(xml: &str) -> Result<(Vec<String>, Option<String>), String> {
    let r: EnumerationResults = quick_xml::de::from_str(xml).map_err(|e| e.to_string())?;
    let names = r
        .blobs
        .items
        .into_iter()
        .map(|i| match i {
            BlobItem::Blob { name } | BlobItem::BlobPrefix { name } => name,
        })
        .collect();
    Ok((names, r.next_marker.filter(|m| !m.is_empty())))
}

impl Bucket for Azure {
    fn name(&self) -> String {
        self.container.clone()
    }

    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
        let (mut file, size) = super::open_sized(path)?;
        if size <= PIECE_SIZE {
            let mut data = Vec::with_capacity(size as usize);
            file.read_to_end(&mut data)
                .map_err(|e| Error::from_io(e, format!("read {}", path.display())))?;
            self.put_blob(key, &data, cancel)?;
            return Ok(data.len() as u64);
        }
        self.put_blocks(key, &file, size, cancel)?;
        Ok(size)
    }

    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        self.put_blob(key, data, cancel)
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.head(key)?.is_some())
    }

    fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        self.head(key)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(key);
        let what = format!("Get Blob of {key}");
        let cancel = Cancel::new();
        let mut attempt = 1;
        loop {
            let req = || Req {
                method: "GET",
                path: path.clone(),
                query: vec![],
                headers: vec![],
                content_length: 0,
            };
            match self.call(&what, req, None, self.get_attempts, &cancel)? {
                Outcome::Ok(resp) => {
                    let mut data = Vec::new();
                    // A body cut short is retried like a failed request.
                    match resp.into_reader().read_to_end(&mut data) {
                        Ok(_) => return Ok(data),
                        Err(e) if attempt < self.get_attempts => {
                            log::debug!(object = key, err:% = e; "Azure read failed; retrying");
                            attempt += 1;
                        }
                        Err(e) => return Err(Error::other(format!("{what}: {e}"))),
                    }
                }
                Outcome::Status(404, _) => return Err(Error::not_found(key)),
                Outcome::Status(status, code) => {
                    return Err(Error::other(format!("{what}: HTTP {status} {code}")))
                }
            }
        }
    }

    fn iter(&self, dir: &str) -> Result<Vec<String>, Error> {
        let prefix = if dir.is_empty() || dir.ends_with('/') {
            dir.to_string()
        } else {
            format!("{dir}/")
        };
        let what = format!("List Blobs under {prefix:?}");
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let req = || {
                let mut query = vec![
                    ("restype", "container".to_string()),
                    ("comp", "list".into()),
                    ("prefix", prefix.clone()),
                    ("delimiter", "/".into()),
                ];
                if let Some(m) = &marker {
                    query.push(("marker", m.clone()));
                }
                Req {
                    method: "GET",
                    path: self.container_path(),
                    query,
                    headers: vec![],
                    content_length: 0,
                }
            };
            let resp = match self.call(&what, req, None, self.policy.attempts, &Cancel::new())? {
                Outcome::Ok(resp) => resp,
                Outcome::Status(status, code) => {
                    return Err(Error::other(format!("{what}: HTTP {status} {code}")))
                }
            };
            let body = resp
                .into_string()
                .map_err(|e| Error::other(format!("{what}: {e}")))?;
            let (names, next) =
                parse_list(&body).map_err(|e| Error::other(format!("{what}: {e}")))?;
            out.extend(names);
            match next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.blob_path(key);
        let req = || Req {
            method: "DELETE",
            path: path.clone(),
            query: vec![],
            headers: vec![("x-ms-delete-snapshots", "include".into())],
            content_length: 0,
        };
        let what = format!("Delete Blob of {key}");
        match self.call(&what, req, None, self.policy.attempts, &Cancel::new())? {
            Outcome::Ok(_) | Outcome::Status(404, _) => Ok(()),
            Outcome::Status(status, code) => {
                Err(Error::other(format!("{what}: HTTP {status} {code}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::azure_token::tests::cfg;
    use std::sync::{Arc, Mutex};

    /// Azure's documented layout of the string-to-sign; the signatures were
    /// computed independently with Python's `hmac`/`hashlib`/`base64`.
    #[test]
    fn shared_key_string_to_sign_and_signature() {
        let req = Req {
            method: "PUT",
            path: "/devstoreaccount1/thanos/01ABC/chunks/000001".into(),
            query: vec![("comp", "block".into()), ("blockid", Azure::block_id(0))],
            headers: vec![("Content-Type", "application/octet-stream".into())],
            content_length: 11,
        };
        let x_ms = vec![
            ("x-ms-version".to_string(), "2021-08-06".to_string()),
            (
                "x-ms-date".to_string(),
                "Sun, 06 Dec 2026 05:00:00 GMT".to_string(),
            ),
        ];
        let s = string_to_sign(DEV_ACCOUNT, &req, &x_ms);
        assert_eq!(
            s,
            "PUT\n\n\n11\n\napplication/octet-stream\n\n\n\n\n\n\nx-ms-date:Sun, 06 Dec 2026 05:00:00 GMT\nx-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/thanos/01ABC/chunks/000001\nblockid:YmxvY2stMDAwMDAwMDA=\ncomp:block"
        );
        let key = B64.decode(DEV_KEY).unwrap();
        assert_eq!(
            signature(&key, &s).unwrap(),
            "cibfj0jgY793qblFmqivXge++T9hb4tI85fdfgrKbRw="
        );
        // The example request of Azure's "Authorize with Shared Key" page.
        let req = Req {
            method: "GET",
            path: "/myaccount/mycontainer".into(),
            query: vec![
                ("restype", "container".into()),
                ("comp", "metadata".into()),
                ("timeout", "20".into()),
            ],
            headers: vec![],
            content_length: 0,
        };
        let x_ms = vec![
            (
                "x-ms-date".to_string(),
                "Sun, 11 Oct 2009 21:49:13 GMT".to_string(),
            ),
            ("x-ms-version".to_string(), "2009-09-19".to_string()),
        ];
        let s = string_to_sign("myaccount", &req, &x_ms);
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n/myaccount/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20"
        );
        assert_eq!(
            signature(&key, &s).unwrap(),
            "Su5rvibNeMxB7A4I87rOtEgCDtdICsL8v5H+yJs0W+M="
        );
    }

    #[test]
    fn connection_strings() {
        let azurite = format!("DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;");
        let c = cfg(&format!(
            "type: AZURE\nconfig:\n  storage_account: x\n  container: c\n  storage_connection_string: \"{azurite}\"\n"
        ));
        let (ep, auth) = credentials(&c, no_env).unwrap();
        assert_eq!(
            ep,
            Endpoint {
                origin: "http://127.0.0.1:10000".into(),
                base_path: "/devstoreaccount1".into(),
                account: DEV_ACCOUNT.into()
            }
        );
        assert_eq!(auth, Auth::SharedKey(B64.decode(DEV_KEY).unwrap()));

        let mut c = c;
        c.storage_connection_string = "UseDevelopmentStorage=true".into();
        assert_eq!(
            credentials(&c, no_env).unwrap().0.base_path,
            "/devstoreaccount1"
        );
        c.storage_connection_string =
            "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn".into();
        let (ep, auth) = credentials(&c, no_env).unwrap();
        assert_eq!(ep.origin, "https://acc.blob.core.chinacloudapi.cn");
        assert_eq!(ep.base_path, "");
        assert_eq!(auth, Auth::SharedKey(b"key".to_vec()));

        for (cs, needle) in [
            ("AccountName=a", "AccountName and AccountKey"),
            (
                "BlobEndpoint=http://h/;SharedAccessSignature=sv=1&sig=SECRET",
                "not supported yet",
            ),
            (
                "AccountName=a;AccountKey=%%%",
                "AccountKey is not valid base64",
            ),
            ("garbage", "Key=Value"),
        ] {
            c.storage_connection_string = cs.into();
            let err = credentials(&c, no_env).unwrap_err();
            assert!(err.contains(needle), "{cs}: {err}");
            assert!(!err.contains("SECRET") && !err.contains("%%%"), "{err}");
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn shared_key_and_token_endpoints_and_refused_keys() {
        let c = cfg("type: AZURE\nconfig: {storage_account: acc, storage_account_key: a2V5, container: c}\n");
        let (ep, _) = credentials(&c, no_env).unwrap();
        assert_eq!(ep.origin, "https://acc.blob.core.windows.net");
        // Without a key: a token, for the same account URL.
        let c = cfg("type: AZURE\nconfig: {storage_account: acc, container: c, endpoint: blob.core.usgovcloudapi.net, user_assigned_id: u}\n");
        let (ep, auth) = credentials(&c, no_env).unwrap();
        assert_eq!(ep.origin, "https://acc.blob.core.usgovcloudapi.net");
        assert!(matches!(auth, Auth::Token(Source::Managed { .. })));
        for extra in [
            "az_tenant_id: t, client_id: i, client_secret: s",
            "user_assigned_id: u",
            "",
        ] {
            let c = cfg(&format!(
                "type: AZURE\nconfig: {{storage_account: acc, container: c, storage_create_container: false, {extra}}}\n"
            ));
            assert!(Azure::new(&c).is_ok(), "{extra}");
        }
        for (extra, needle) in [
            (
                "storage_account_key: a2V5, azure_storage_account_type: datalake",
                "datalake",
            ),
            (
                "storage_account_key: a2V5, http_config: {tls_config: {ca_file: /x}}",
                "http_config.tls_config.ca_file",
            ),
        ] {
            let c = cfg(&format!(
                "type: AZURE\nconfig: {{storage_account: acc, container: c, {extra}}}\n"
            ));
            let err = Azure::new(&c).err().unwrap().to_string();
            assert!(err.contains(needle), "{extra}: {err}");
            assert!(err.starts_with("objstore config for type AZURE: "), "{err}");
        }
    }

    #[test]
    fn token_mode_sends_a_bearer_token() {
        let (url, _) = crate::objstore::azure_token::tests::fake(
            r#"{"expires_in":3600,"access_token":"tok"}"#,
            200,
        );
        let c = cfg("type: AZURE\nconfig: {storage_account: acc, storage_account_key: a2V5, container: c, storage_create_container: false}\n");
        let mut az = Azure::new(&c).ok().unwrap();
        az.auth = Authorizer::Token(TokenCredential::new(
            Source::ClientSecret {
                authority: url,
                tenant: "t".into(),
                client_id: "i".into(),
                secret: "s".into(),
            },
            ureq::Agent::new(),
        ));
        let req = Req {
            method: "GET",
            path: "/c/x".into(),
            query: vec![],
            headers: vec![],
            content_length: 0,
        };
        assert_eq!(az.authorization(&req, &[]).unwrap(), "Bearer tok");
    }

    fn first_delay(az: &Azure) -> Duration {
        az.policy.delay(1, None)
    }

    #[test]
    fn retries_from_max_retries_and_pipeline_config() {
        let base = "type: AZURE\nconfig: {storage_account: acc, storage_account_key: a2V5, container: c, storage_create_container: false";
        let az = Azure::new(&cfg(&format!("{base}}}\n"))).ok().unwrap();
        assert_eq!(az.policy.attempts, DEFAULT_RETRIES + 1);
        assert_eq!(first_delay(&az), DEFAULT_RETRY_DELAY);
        let az = Azure::new(&cfg(&format!("{base}, max_retries: 5}}\n")))
            .ok()
            .unwrap();
        assert_eq!((az.policy.attempts, az.get_attempts), (6, 6));
        let az = Azure::new(&cfg(&format!(
            "{base}, max_retries: 5, pipeline_config: {{max_tries: 1, retry_delay: 2s}}, reader_config: {{max_retry_requests: 9}}}}\n"
        )))
        .ok()
        .unwrap();
        assert_eq!((az.policy.attempts, az.get_attempts), (2, 10));
        assert_eq!(first_delay(&az), Duration::from_secs(2));
    }

    #[test]
    fn list_blobs_answer() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:1/devstoreaccount1" ContainerName="thanos">
  <Prefix>a/</Prefix><Delimiter>/</Delimiter>
  <Blobs>
    <Blob><Name>a/meta.json</Name><Properties><Content-Length>5</Content-Length></Properties></Blob>
    <BlobPrefix><Name>a/chunks/</Name></BlobPrefix>
    <Blob><Name>a/x&amp;y</Name><Properties/></Blob>
  </Blobs>
  <NextMarker>m1</NextMarker>
</EnumerationResults>"#;
        let (names, next) = parse_list(xml).unwrap();
        assert_eq!(names, ["a/meta.json", "a/chunks/", "a/x&y"]);
        assert_eq!(next.as_deref(), Some("m1"));
        let empty = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#;
        assert_eq!(parse_list(empty).unwrap(), (vec![], None));
    }

    #[test]
    fn blob_names_are_escaped_in_paths() {
        assert_eq!(encode_path("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(Azure::block_id(7).len(), Azure::block_id(49_999).len());
    }

    /// A blob endpoint answering `script`'s statuses in turn (then 201),
    /// recording `METHOD url` of each request.
    fn scripted(script: Vec<(u16, &'static str)>) -> (Azure, Arc<Mutex<Vec<String>>>) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for req in server.incoming_requests() {
                log.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), req.url()));
                let (status, code) = script.next().unwrap_or((201, ""));
                let mut resp = tiny_http::Response::empty(status)
                    .with_header("Retry-After: 0".parse::<tiny_http::Header>().unwrap());
                if !code.is_empty() {
                    resp = resp.with_header(
                        format!("x-ms-error-code: {code}")
                            .parse::<tiny_http::Header>()
                            .unwrap(),
                    );
                }
                let _ = req.respond(resp);
            }
        });
        let c = cfg(&format!(
            "type: AZURE\nconfig:\n  storage_account: a\n  container: c\n  storage_create_container: false\n  max_retries: 2\n  storage_connection_string: \"AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:{port}/a\"\n"
        ));
        (Azure::new(&c).ok().unwrap(), seen)
    }

    #[test]
    fn throttling_and_server_errors_are_retried_client_errors_are_not() {
        let (az, seen) = scripted(vec![(503, "ServerBusy"), (429, "")]);
        az.upload_bytes("b/meta.json", b"{}", &Cancel::new())
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 3);

        let (az, seen) = scripted(vec![(500, "InternalError"); 3]);
        let err = az.upload_bytes("b/x", b"1", &Cancel::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Put Blob of b/x: HTTP 500 InternalError (after 3 attempts)"
        );
        assert_eq!(seen.lock().unwrap().len(), 3);

        let (az, seen) = scripted(vec![(403, "AuthenticationFailed")]);
        let err = az.upload_bytes("b/x", b"1", &Cancel::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Put Blob of b/x: HTTP 403 AuthenticationFailed"
        );
        assert_eq!(seen.lock().unwrap().clone(), ["PUT /a/c/b/x"]);

        // Absent objects: HEAD and DELETE answer 404 without error.
        let (az, _) = scripted(vec![
            (404, "BlobNotFound"),
            (404, "BlobNotFound"),
            (404, "BlobNotFound"),
        ]);
        assert_eq!(az.size("b/x").unwrap(), None);
        az.delete("b/x").unwrap();
        assert_eq!(
            az.get("b/x").unwrap_err().kind,
            crate::objstore::ErrorKind::NotFound
        );
    }
}
