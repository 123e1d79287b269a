//! `type: S3`: any S3-compatible server, through rust-s3's synchronous client.
//!
//! rust-s3 signs every request and runs the small ones (HEAD, GET, LIST,
//! DELETE, and the multipart initiate/complete/abort calls). Its sync API
//! takes request bodies as in-memory slices, though, so object and part
//! bodies are sent differently: rust-s3's SigV4 functions sign the PUT
//! (`UNSIGNED-PAYLOAD`, like the AWS SDKs' streaming uploads) and ureq
//! streams the bytes from the file with a fixed `Content-Length`. Memory per
//! upload is a copy buffer, whatever the object's or the part's size. (Its
//! presigned URLs cannot carry a part's query parameters, hence not those.)
//!
//! Objects of at least `part_size` bytes go up as multipart uploads (parts of
//! `part_size`, grown if the object would need more than 10 000 parts),
//! smaller ones as one PUT; `disable_multipart` forces one PUT.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use s3::creds::Credentials;
use s3::serde_types::Part;
use s3::Region;

use super::retry::{Attempt, Backoff, Policy};
use super::{Bucket, Cancel, CancelReader, ConfigError, Error, ErrorKind, S3Config};

/// S3 allows at most this many parts per multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Attempts per request unless `max_retries` says otherwise: network blips
/// should not fail a whole block.
const DEFAULT_ATTEMPTS: u32 = 3;
/// Parts of one object in flight at once, as minio-go (Thanos' client) does.
const PART_WORKERS: usize = 4;

pub struct S3 {
    bucket: Box<s3::Bucket>,
    /// The same bucket, adding the PUT-only headers (user metadata, storage
    /// class, SSE) to the multipart initiate call.
    put_bucket: Box<s3::Bucket>,
    put_headers: HeaderMap,
    agent: ureq::Agent,
    part_size: u64,
    disable_multipart: bool,
    send_content_md5: bool,
    trace: bool,
    policy: Policy,
    name: String,
}

/// Keys that rust-s3's sync client cannot honour: refusing them at start-up
/// beats silently talking to S3 differently from what the operator asked.
fn unsupported(cfg: &S3Config) -> Option<&'static str> {
    let set = |set: bool, key| set.then_some(key);
    set(cfg.signature_version2, "signature_version2")
        .or_else(|| cfg.http_config.tls_keys_set().next())
        .or_else(|| set(cfg.sse_config.kind == "SSE-C", "sse_config.type: SSE-C"))
        .or_else(|| set(!cfg.sts_endpoint.is_empty(), "sts_endpoint"))
}

/// `auto` picks virtual-hosted style only where Thanos' S3 client does: AWS
/// and the other big clouds; everything else (MinIO, Ceph, moto) gets paths.
fn path_style(cfg: &S3Config) -> bool {
    match cfg.bucket_lookup_type.as_str() {
        "path" => true,
        "virtual-hosted" => false,
        _ => {
            let host = cfg.endpoint.split(':').next().unwrap_or("");
            let cloud = host.ends_with("amazonaws.com")
                || host.ends_with("aliyuncs.com")
                || host == "storage.googleapis.com";
            !cloud || cfg.bucket.contains('.')
        }
    }
}

/// The region requests are signed for. Thanos' client asks the server when
/// `region` is empty; this one reads it from an AWS endpoint's name
/// (`s3.<region>.amazonaws.com`), else uses us-east-1, which S3-compatible
/// servers accept.
fn signing_region(cfg: &S3Config) -> String {
    if !cfg.region.is_empty() {
        return cfg.region.clone();
    }
    let host = cfg.endpoint.split(':').next().unwrap_or("");
    host.strip_suffix(".amazonaws.com")
        .and_then(|rest| {
            rest.strip_prefix("s3.")
                .or_else(|| rest.strip_prefix("s3-"))
                .map(|r| r.trim_start_matches("dualstack."))
        })
        .filter(|r| !r.is_empty() && !r.contains('.') && *r != "external-1")
        .map(str::to_string)
        .unwrap_or_else(|| "us-east-1".into())
}

fn credentials(cfg: &S3Config) -> Result<Credentials, ConfigError> {
    let token = (!cfg.session_token.is_empty()).then_some(cfg.session_token.as_str());
    let mut creds = if !cfg.access_key.is_empty() {
        Credentials::new(
            Some(&cfg.access_key),
            Some(&cfg.secret_key),
            token,
            token,
            None,
        )
        .map_err(|e| ConfigError::invalid("S3", format!("credentials: {e}")))?
    } else {
        // Without keys (and with aws_sdk_auth, the SDK's default chain):
        // AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN), then
        // ~/.aws/credentials, then web identity, container and instance
        // metadata; else anonymous.
        match Credentials::new(None, None, None, None, None) {
            Ok(c) => c,
            Err(_) => {
                log::info!("no S3 credentials found in the environment, files or instance metadata; requests will be anonymous");
                Credentials::anonymous()
                    .map_err(|e| ConfigError::Client(format!("S3 credentials: {e}")))?
            }
        }
    };
    // Presigned URLs carry the "security" token; environment credentials
    // only fill the "session" one.
    if creds.security_token.is_none() {
        creds.security_token = creds.session_token.clone();
    }
    Ok(creds)
}

fn put_headers(cfg: &S3Config) -> Result<HeaderMap, ConfigError> {
    let mut headers = HeaderMap::new();
    let mut add = |name: String, value: &str| -> Result<(), ConfigError> {
        let bad =
            |e: &dyn std::fmt::Display| ConfigError::invalid("S3", format!("header {name:?}: {e}"));
        let n =
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|e| bad(&e))?;
        let v = HeaderValue::from_str(value).map_err(|e| bad(&e))?;
        headers.insert(n, v);
        Ok(())
    };
    for (k, v) in &cfg.put_user_metadata {
        if k.eq_ignore_ascii_case("X-Amz-Storage-Class") {
            add("x-amz-storage-class".into(), v)?;
        } else {
            add(format!("x-amz-meta-{k}"), v)?;
        }
    }
    match cfg.sse_config.kind.as_str() {
        "SSE-S3" => add("x-amz-server-side-encryption".into(), "AES256")?,
        "SSE-KMS" => {
            add("x-amz-server-side-encryption".into(), "aws:kms")?;
            add(
                "x-amz-server-side-encryption-aws-kms-key-id".into(),
                &cfg.sse_config.kms_key_id,
            )?;
            if !cfg.sse_config.kms_encryption_context.is_empty() {
                let json =
                    serde_json::to_string(&cfg.sse_config.kms_encryption_context).map_err(|e| {
                        ConfigError::Client(format!("sse_config.kms_encryption_context: {e}"))
                    })?;
                add(
                    "x-amz-server-side-encryption-context".into(),
                    &base64::engine::general_purpose::STANDARD.encode(json),
                )?;
            }
        }
        _ => {}
    }
    Ok(headers)
}

impl S3 {
    pub fn new(cfg: &S3Config) -> Result<S3, ConfigError> {
        if let Some(key) = unsupported(cfg) {
            return Err(ConfigError::invalid(
                "S3",
                format!("{key} is not supported by this sidecar's S3 client"),
            ));
        }
        // rust-s3's HTTP client builds its TLS config from the process-wide
        // crypto provider; the rest of the sidecar uses ring, so does it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let scheme = if cfg.insecure { "http" } else { "https" };
        let region = Region::Custom {
            region: signing_region(cfg),
            endpoint: format!("{scheme}://{}", cfg.endpoint),
        };
        let timeout = cfg.http_config.response_header_timeout;
        let base = s3::Bucket::new(&cfg.bucket, region, credentials(cfg)?)
            .map_err(|e| ConfigError::invalid("S3", e.to_string()))?;
        let mut base = if path_style(cfg) {
            base.with_path_style()
        } else {
            base
        };
        if cfg.list_objects_version == "v1" {
            base.set_listobjects_v1();
        }
        base.set_request_timeout(Some(timeout));
        let put_headers = put_headers(cfg)?;
        let put_bucket = Box::new(
            base.with_extra_headers(put_headers.clone())
                .map_err(|e| ConfigError::invalid("S3", e.to_string()))?,
        );
        let http = &cfg.http_config;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(http.tls_handshake_timeout.max(Duration::from_secs(1)))
            // No progress for this long on a socket fails the request.
            .timeout_read(timeout)
            .timeout_write(timeout)
            .max_idle_connections(http.max_idle_conns.max(0) as usize)
            .max_idle_connections_per_host(http.max_idle_conns_per_host.max(0) as usize)
            .user_agent(crate::prometheus::USER_AGENT)
            .build();
        Ok(S3 {
            bucket: base,
            put_bucket,
            put_headers,
            agent,
            part_size: cfg.part_size.max(5 * 1024 * 1024),
            disable_multipart: cfg.disable_multipart,
            send_content_md5: cfg.send_content_md5,
            trace: cfg.trace.enable,
            policy: Policy {
                backend: "S3",
                attempts: if cfg.max_retries > 0 {
                    u32::try_from(cfg.max_retries)
                        .unwrap_or(u32::MAX)
                        .saturating_add(1)
                } else {
                    DEFAULT_ATTEMPTS
                },
                backoff: Backoff::Linear(Duration::from_millis(200)),
                max_delay: Duration::MAX,
            },
            name: cfg.bucket.clone(),
        })
    }

    fn trace(&self, what: &str, key: &str) {
        if self.trace {
            log::debug!(bucket = self.name.as_str(), key = key; "S3 {what}");
        }
    }

    /// Retries `f` on failures that are not the caller's (network, 5xx):
    /// any [`ErrorKind::Other`]; a missing object or a shutdown is final.
    fn retry<T>(
        &self,
        what: &str,
        cancel: &Cancel,
        mut f: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let attempt = || {
            f().map_err(|e| match e.kind {
                ErrorKind::Other => Attempt::Retry(e),
                _ => Attempt::Fail(e),
            })
        };
        Ok(self.policy.run(what, cancel, attempt)?)
    }

    /// PUTs `len` bytes of `file` from `offset` to a presigned URL; returns the ETag.
    fn put_range(
        &self,
        key: &str,
        file: &File,
        offset: u64,
        len: u64,
        part: Option<(u32, &str)>,
        cancel: &Cancel,
    ) -> Result<String, Error> {
        self.retry(key, cancel, || {
            let md5 = if self.send_content_md5 {
                Some(md5_of(file, offset, len, cancel)?)
            } else {
                None
            };
            let body = RangeReader::new(file, offset, len);
            self.put(key, body, len, md5, part, cancel)
        })
    }

    fn put(
        &self,
        key: &str,
        body: impl Read,
        len: u64,
        md5: Option<String>,
        part: Option<(u32, &str)>,
        cancel: &Cancel,
    ) -> Result<String, Error> {
        let mut url = url::Url::parse(&format!(
            "{}/{}",
            self.bucket.url(),
            s3::signing::uri_encode(key, false)
        ))
        .map_err(|e| Error::other(format!("object URL for {key}: {e}")))?;
        let mut extra = HeaderMap::new();
        if let Some((number, upload_id)) = part {
            url.query_pairs_mut()
                .append_pair("partNumber", &number.to_string())
                .append_pair("uploadId", upload_id);
        } else {
            extra = self.put_headers.clone();
        }
        if let Some(md5) = &md5 {
            let v = HeaderValue::from_str(md5).map_err(|e| Error::other(e.to_string()))?;
            extra.insert("content-md5", v);
        }
        let headers = self.sign("PUT", &url, extra)?;
        let mut req = self
            .agent
            .request_url("PUT", &url)
            .set("Content-Length", &len.to_string())
            .set("Content-Type", "application/octet-stream");
        for (name, value) in &headers {
            if let Ok(v) = value.to_str() {
                req = req.set(name.as_str(), v);
            }
        }
        let body = CancelReader {
            inner: body,
            cancel,
        };
        match req.send(body) {
            Ok(resp) => Ok(resp.header("ETag").unwrap_or_default().to_string()),
            Err(ureq::Error::Status(code, resp)) => {
                let body = resp.into_string().unwrap_or_default();
                Err(Error::other(format!(
                    "PUT {key}: HTTP {code}: {}",
                    s3_message(&body)
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                if cancel.is_cancelled() {
                    Err(Error::cancelled())
                } else {
                    Err(Error::other(format!("PUT {key}: {t}")))
                }
            }
        }
    }

    /// SigV4 headers for a request whose body is streamed, so not hashed
    /// (`UNSIGNED-PAYLOAD`, as over TLS the AWS SDKs do); rust-s3 signs.
    fn sign(
        &self,
        method: &str,
        url: &url::Url,
        mut headers: HeaderMap,
    ) -> Result<HeaderMap, Error> {
        let sign_err = |e: s3::error::S3Error| Error::other(format!("sign request: {e}"));
        let now = time::OffsetDateTime::now_utc();
        let amz_date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let value = |v: &str| HeaderValue::from_str(v).map_err(|e| Error::other(e.to_string()));
        headers.insert(http::header::HOST, value(&self.bucket.host())?);
        headers.insert("x-amz-content-sha256", value("UNSIGNED-PAYLOAD")?);
        headers.insert("x-amz-date", value(&amz_date)?);
        let Some(access_key) = self.bucket.access_key().map_err(sign_err)? else {
            // Anonymous credentials: an unsigned request.
            return Ok(headers);
        };
        let secret_key = self
            .bucket
            .secret_key()
            .map_err(sign_err)?
            .unwrap_or_default();
        if let Some(token) = self.bucket.security_token().map_err(sign_err)? {
            headers.insert("x-amz-security-token", value(&token)?);
        }
        let region = self.bucket.region();
        let canonical = s3::signing::canonical_request(method, url, &headers, "UNSIGNED-PAYLOAD")
            .map_err(sign_err)?;
        let to_sign = s3::signing::string_to_sign(&now, &region, &canonical).map_err(sign_err)?;
        let key = s3::signing::signing_key(&now, &secret_key, &region, "s3").map_err(sign_err)?;
        let mut mac = <s3::signing::HmacSha256 as hmac::Mac>::new_from_slice(&key)
            .map_err(|e| Error::other(format!("sign request: {e}")))?;
        hmac::Mac::update(&mut mac, to_sign.as_bytes());
        let signature: String = hmac::Mac::finalize(mac)
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let auth = s3::signing::authorization_header(
            &access_key,
            &now,
            &region,
            &s3::signing::signed_header_string(&headers),
            &signature,
        )
        .map_err(sign_err)?;
        headers.insert(http::header::AUTHORIZATION, value(&auth)?);
        Ok(headers)
    }

    /// Uploads the parts, [`PART_WORKERS`] at a time (Thanos' S3 client
    /// also sends parts in parallel); each streams from the file.
    fn upload_parts(
        &self,
        key: &str,
        file: &File,
        size: u64,
        part_size: u64,
        upload_id: &str,
        cancel: &Cancel,
    ) -> Result<Vec<Part>, Error> {
        let count = size.div_ceil(part_size);
        let next = AtomicU64::new(0);
        let stop = cancel.child();
        let results: Mutex<Vec<Result<Part, Error>>> = Mutex::new(Vec::new());
        let worker = || loop {
            if stop.is_cancelled() {
                return;
            }
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= count {
                return;
            }
            let offset = i * part_size;
            let len = part_size.min(size - offset);
            let number = (i + 1) as u32;
            let result = self
                .put_range(key, file, offset, len, Some((number, upload_id)), &stop)
                .map(|etag| Part {
                    part_number: number,
                    etag,
                })
                .map_err(|e| e.context(format!("part {number}")));
            if result.is_err() {
                stop.cancel();
            }
            results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(result);
        };
        let workers = PART_WORKERS.min(count.max(1) as usize);
        std::thread::scope(|scope| -> Result<(), Error> {
            for n in 1..workers {
                std::thread::Builder::new()
                    .name(format!("s3-part-{n}"))
                    .spawn_scoped(scope, worker)
                    .map_err(|e| Error::other(format!("spawn part upload thread: {e}")))?;
            }
            worker();
            Ok(())
        })?;
        let mut parts = Vec::new();
        let mut first_error: Option<Error> = None;
        for r in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
            match r {
                Ok(p) => parts.push(p),
                // A real failure explains more than its siblings' "cancelled".
                Err(e) => {
                    if first_error.as_ref().is_none_or(|f| {
                        f.kind == ErrorKind::Cancelled && e.kind != ErrorKind::Cancelled
                    }) {
                        first_error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        cancel.check()?;
        if parts.len() as u64 != count {
            return Err(Error::other(format!(
                "{} of {count} parts uploaded",
                parts.len()
            )));
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    fn multipart(&self, key: &str, file: &File, size: u64, cancel: &Cancel) -> Result<(), Error> {
        let part_size = self.part_size.max(size.div_ceil(MAX_PARTS));
        let init = self.retry(key, cancel, || {
            self.put_bucket
                .initiate_multipart_upload(key, "application/octet-stream")
                .map_err(|e| Error::other(format!("initiate multipart upload of {key}: {e}")))
        })?;
        let upload_id = init.upload_id;
        let result = (|| {
            let parts = self.upload_parts(key, file, size, part_size, &upload_id, cancel)?;
            cancel.check()?;
            self.retry(key, cancel, || {
                match self
                    .bucket
                    .complete_multipart_upload(key, &upload_id, parts.clone())
                {
                    Ok(resp) => check_status(
                        resp.status_code(),
                        resp.as_slice(),
                        "complete multipart upload",
                    ),
                    // S3 may answer 200 with an <Error> body here; rust-s3
                    // also refuses a 200 whose root element is not AWS'
                    // exact name (moto's differs): only the former fails.
                    Err(s3::error::S3Error::HttpFailWithBody(200, body))
                        if !body.contains("<Error>") =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(Error::other(format!("complete multipart upload: {e}"))),
                }
            })
        })();
        if let Err(e) = &result {
            // A shutdown must not wait on the network; S3 lifecycle rules
            // reap what an abandoned upload leaves.
            if e.kind != ErrorKind::Cancelled {
                if let Err(abort) = self.bucket.abort_upload(key, &upload_id) {
                    log::debug!(key = key, err:% = abort; "aborting multipart upload failed");
                }
            }
        }
        result.map_err(|e| e.context(format!("multipart upload of {key}")))
    }
}

fn check_status(status: u16, body: &[u8], what: &str) -> Result<(), Error> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Error::other(format!(
            "{what}: HTTP {status}: {}",
            s3_message(&String::from_utf8_lossy(body))
        )))
    }
}

/// The `<Code>` and `<Message>` of an S3 XML error, or the body as is.
fn s3_message(body: &str) -> String {
    let tag = |t: &str| {
        let start = body.find(&format!("<{t}>"))? + t.len() + 2;
        let end = body[start..].find(&format!("</{t}>"))? + start;
        Some(body[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => body.chars().take(200).collect(),
    }
}

/// Reads `len` bytes of a file from `offset` with positional reads, so
/// several parts of one file can stream at once from one descriptor.
pub(super) struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> RangeReader<'a> {
    pub(super) fn new(file: &'a File, offset: u64, len: u64) -> RangeReader<'a> {
        RangeReader {
            file,
            pos: offset,
            end: offset + len,
        }
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            // The file shrank under us: a short body would be a corrupt object.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shorter than when the upload started",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Base64 MD5 of a file range, for `Content-MD5` (`send_content_md5`).
fn md5_of(file: &File, offset: u64, len: u64, cancel: &Cancel) -> Result<String, Error> {
    let mut reader = CancelReader {
        inner: RangeReader::new(file, offset, len),
        cancel,
    };
    let mut ctx = md5::Context::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::from_io(e, "read for MD5"))?;
        if n == 0 {
            break;
        }
        ctx.consume(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(ctx.finalize().0))
}

impl Bucket for S3 {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
        self.trace("upload", key);
        let (file, size) = super::open_sized(path)?;
        if self.disable_multipart || size < self.part_size {
            self.put_range(key, &file, 0, size, None, cancel)?;
        } else {
            self.multipart(key, &file, size, cancel)?;
        }
        Ok(size)
    }

    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        self.trace("upload", key);
        self.retry(key, cancel, || {
            let md5 = self
                .send_content_md5
                .then(|| base64::engine::general_purpose::STANDARD.encode(md5::compute(data).0));
            self.put(key, data, data.len() as u64, md5, None, cancel)
                .map(|_| ())
        })
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        self.trace("exists", key);
        self.retry(key, &Cancel::new(), || {
            let (_, status) = self
                .bucket
                .head_object(key)
                .map_err(|e| Error::other(format!("HEAD {key}: {e}")))?;
            match status {
                200..=299 => Ok(true),
                404 => Ok(false),
                code => Err(Error::other(format!("HEAD {key}: HTTP {code}"))),
            }
        })
    }

    fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        self.trace("attributes", key);
        self.retry(key, &Cancel::new(), || {
            let (head, status) = self
                .bucket
                .head_object(key)
                .map_err(|e| Error::other(format!("HEAD {key}: {e}")))?;
            match status {
                200..=299 => match head.content_length {
                    Some(len) if len >= 0 => Ok(Some(len as u64)),
                    _ => Err(Error::other(format!("HEAD {key}: no Content-Length"))),
                },
                404 => Ok(None),
                code => Err(Error::other(format!("HEAD {key}: HTTP {code}"))),
            }
        })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.trace("get", key);
        self.retry(key, &Cancel::new(), || {
            let resp = self
                .bucket
                .get_object(key)
                .map_err(|e| Error::other(format!("GET {key}: {e}")))?;
            match resp.status_code() {
                404 => Err(Error::not_found(key)),
                status => {
                    check_status(status, resp.as_slice(), &format!("GET {key}"))?;
                    Ok(resp.as_slice().to_vec())
                }
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
        self.retry(&prefix, &Cancel::new(), || {
            let pages = self
                .bucket
                .list(prefix.clone(), Some("/".into()))
                .map_err(|e| Error::other(format!("LIST {prefix}: {e}")))?;
            let mut out = Vec::new();
            for page in pages {
                out.extend(page.contents.into_iter().map(|o| o.key));
                out.extend(
                    page.common_prefixes
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| p.prefix),
                );
            }
            // The "directory" object itself is not one of its entries.
            out.retain(|k| *k != prefix);
            out.sort();
            Ok(out)
        })
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        self.trace("delete", key);
        let resp = self
            .bucket
            .delete_object(key)
            .map_err(|e| Error::other(format!("DELETE {key}: {e}")))?;
        match resp.status_code() {
            404 => Ok(()),
            status => check_status(status, resp.as_slice(), &format!("DELETE {key}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> S3Config {
        match crate::objstore::Config::parse(yaml)
            .unwrap()
            .unwrap()
            .backend
        {
            crate::objstore::Backend::S3(s3) => *s3,
            _ => panic!("not S3"),
        }
    }

    #[test]
    fn unsupported_values_are_refused_by_name() {
        for (extra, key) in [
            ("signature_version2: true", "signature_version2"),
            (
                "http_config: {insecure_skip_verify: true}",
                "http_config.insecure_skip_verify",
            ),
            (
                "http_config: {tls_config: {ca_file: /x}}",
                "http_config.tls_config.ca_file",
            ),
            ("sse_config: {type: SSE-C, encryption_key: /k}", "SSE-C"),
        ] {
            let c = cfg(&format!(
                "type: S3\nconfig: {{bucket: b, endpoint: 127.0.0.1:1, {extra}}}\n"
            ));
            let err = S3::new(&c).err().unwrap();
            assert!(matches!(err, ConfigError::Invalid { kind: "S3", .. }));
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn max_retries_sets_attempts() {
        let base = "type: S3\nconfig: {bucket: b, endpoint: 127.0.0.1:1, insecure: true, access_key: a, secret_key: s";
        let s3 = S3::new(&cfg(&format!("{base}}}\n"))).ok().unwrap();
        assert_eq!(s3.policy.attempts, DEFAULT_ATTEMPTS);
        let s3 = S3::new(&cfg(&format!("{base}, max_retries: 5}}\n")))
            .ok()
            .unwrap();
        assert_eq!(s3.policy.attempts, 6);
    }

    #[test]
    fn lookup_style() {
        let mut c = cfg("type: S3\nconfig: {bucket: b, endpoint: 127.0.0.1:9000}\n");
        assert!(path_style(&c));
        c.endpoint = "s3.eu-west-1.amazonaws.com".into();
        assert!(!path_style(&c));
        c.bucket_lookup_type = "path".into();
        assert!(path_style(&c));
        c.endpoint = "minio:9000".into();
        c.bucket_lookup_type = "virtual-hosted".into();
        assert!(!path_style(&c));
    }

    #[test]
    fn region_from_aws_endpoint() {
        let mut c = cfg("type: S3\nconfig: {bucket: b, endpoint: 127.0.0.1:9000}\n");
        assert_eq!(signing_region(&c), "us-east-1");
        c.endpoint = "s3.eu-west-1.amazonaws.com".into();
        assert_eq!(signing_region(&c), "eu-west-1");
        c.endpoint = "s3.amazonaws.com".into();
        assert_eq!(signing_region(&c), "us-east-1");
        c.region = "ap-south-1".into();
        assert_eq!(signing_region(&c), "ap-south-1");
    }

    #[test]
    fn put_headers_from_metadata_and_sse() {
        let c = cfg("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  put_user_metadata: {X-Amz-Storage-Class: STANDARD_IA, team: a}\n  sse_config: {type: SSE-KMS, kms_key_id: k1}\n");
        let h = put_headers(&c).unwrap();
        assert_eq!(h["x-amz-storage-class"], "STANDARD_IA");
        assert_eq!(h["x-amz-meta-team"], "a");
        assert_eq!(h["x-amz-server-side-encryption"], "aws:kms");
        assert_eq!(h["x-amz-server-side-encryption-aws-kms-key-id"], "k1");
    }

    #[test]
    fn s3_error_messages() {
        assert_eq!(
            s3_message("<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>"),
            "NoSuchBucket: gone"
        );
        assert_eq!(s3_message("plain"), "plain");
    }
}
