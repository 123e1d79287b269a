//! Client for the Prometheus server the sidecar sits next to.
//!
//! Every call to Prometheus goes through [`Client`], so the HTTP client config
//! (`--prometheus.http-client(-file)`: basic auth, bearer token, TLS, proxy)
//! applies to all of them, exactly as it does in Thanos. URLs keep the path
//! prefix of `--prometheus.url`.

mod config;
mod series_stream;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// External labels and series labels: sorted by name, as Thanos sends them.
pub use config::{BasicAuth, ConfigError, Hidden, HttpClientConfig, TlsConfig, TransportConfig};

pub type Labels = BTreeMap<String, String>;

/// `User-Agent` of most calls, as Thanos sends `Thanos/<version>`.
pub const USER_AGENT: &str = concat!("Thanos/", env!("CARGO_PKG_VERSION"));
/// Thanos identifies its config and build-info calls as the sidecar.
const SIDECAR_USER_AGENT: &str = "thanos-sidecar";
/// Bodies of failed calls are quoted in errors; beyond this they only add noise.
const MAX_ERROR_BODY: usize = 4096;

/// Why a call to Prometheus failed; the variants map onto gRPC codes later.
#[derive(Debug)]
pub enum Error {
    /// Connection refused, timeout, TLS failure.
    Transport(String),
    /// A non-2xx answer.
    Status { code: u16, body: String },
    /// A 2xx answer whose body is not what the API promises.
    Decode(String),
    /// Credentials could not be read (e.g. `password_file`).
    Credentials(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "request to Prometheus failed: {e}"),
            Error::Status { code, body } => {
                write!(f, "expected 2xx response, got {code}. Body: {body}")
            }
            Error::Decode(e) => write!(f, "unexpected answer from Prometheus: {e}"),
            Error::Credentials(e) => write!(f, "cannot read Prometheus credentials: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Prometheus' own flags that matter to uploads (`/api/v1/status/flags`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    pub tsdb_path: String,
    pub min_block_duration: Duration,
    pub max_block_duration: Duration,
    pub delay_compact_file: String,
    /// Prometheus runs in agent mode (`--agent` in 3.x, `--enable-feature=agent`
    /// in 2.x): it scrapes and remote-writes, and keeps no TSDB.
    pub agent: bool,
}

#[derive(Clone)]
pub struct Client {
    base: url::Url,
    agent: ureq::Agent,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// A credential given inline or re-read from its file on every request, as
/// Prometheus' client does, so rotated secrets apply without a restart.
#[derive(Clone)]
enum Secret {
    Inline(String),
    File(PathBuf),
}

impl Secret {
    fn read(&self) -> Result<String, Error> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| Error::Credentials(format!("{}: {e}", path.display()))),
        }
    }
}

impl Client {
    pub fn new(base: url::Url, config: &HttpClientConfig) -> Result<Client, ConfigError> {
        let transport = &config.transport_config;
        let dial = Duration::from_nanos(transport.dialer_timeout.max(0) as u64);
        let mut builder = idle_pool(
            ureq::AgentBuilder::new(),
            transport.max_idle_conns,
            transport.max_idle_conns_per_host,
        )
        .timeout_connect(dial)
        .user_agent(USER_AGENT)
        .tls_config(Arc::new(tls::client_config(&config.tls_config)?));
        if let Some(proxy) = &config.proxy_url {
            let proxy = ureq::Proxy::new(proxy).map_err(|e| ConfigError::Proxy(e.to_string()))?;
            builder = builder.proxy(proxy);
        }
        let auth = if let Some(b) = &config.basic_auth {
            let password = match (&b.password, &b.password_file) {
                (_, Some(file)) => Secret::File(file.clone()),
                (Some(p), None) => Secret::Inline(p.expose().to_string()),
                (None, None) => Secret::Inline(String::new()),
            };
            Auth::Basic {
                username: b.username.clone(),
                password,
            }
        } else if let Some(file) = &config.bearer_token_file {
            Auth::Bearer(Secret::File(file.clone()))
        } else if let Some(token) = &config.bearer_token {
            Auth::Bearer(Secret::Inline(token.expose().to_string()))
        } else {
            Auth::None
        };
        Ok(Client {
            base,
            agent: builder.build(),
            auth,
        })
    }

    /// `<--prometheus.url>` with `path` appended to its own path.
    pub fn url(&self, path: &str) -> url::Url {
        let mut url = self.base.clone();
        let joined = format!(
            "{}/{}",
            self.base.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        url
    }

    /// A request with credentials attached; the caller adds the rest.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<ureq::Request, Error> {
        let req = self
            .agent
            .request_url(method, &self.url(path))
            .timeout(timeout);
        Ok(match &self.auth {
            Auth::None => req,
            Auth::Basic { username, password } => {
                let credentials = format!("{username}:{}", password.read()?);
                req.set(
                    "Authorization",
                    &format!("Basic {}", base64_encode(credentials.as_bytes())),
                )
            }
            Auth::Bearer(token) => req.set("Authorization", &format!("Bearer {}", token.read()?)),
        })
    }

    /// Sends `req`, turning non-2xx answers into [`Error::Status`].
    pub fn send(req: ureq::Request) -> Result<ureq::Response, Error> {
        match req.call() {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(code, resp)) => Err(Error::Status {
                code,
                body: read_error_body(resp),
            }),
            Err(ureq::Error::Transport(t)) => Err(transport_error(&t)),
        }
    }

    /// GETs a JSON API endpoint and returns its `data`.
    fn get_api(
        &self,
        path: &str,
        timeout: Duration,
        user_agent: &str,
    ) -> Result<serde_json::Value, Error> {
        let req = self
            .request("GET", path, timeout)?
            .set("User-Agent", user_agent);
        self.get_json(path, req)
    }

    /// Sends a GET and returns the `data` of Prometheus' JSON envelope.
    fn get_json(&self, path: &str, req: ureq::Request) -> Result<serde_json::Value, Error> {
        let resp = Client::send(req)?;
        if resp.status() == 204 {
            return Ok(serde_json::Value::Null);
        }
        let body: ApiResponse = serde_json::from_reader(resp.into_reader())
            .map_err(|e| Error::Decode(format!("{path}: {e}")))?;
        if body.status != "success" {
            return Err(Error::Decode(format!(
                "{path}: status {:?}: {}",
                body.status,
                body.error.unwrap_or_default()
            )));
        }
        Ok(body.data)
    }

    /// `/api/v1/status/flags`; `Ok(None)` when Prometheus is too old to have it (404).
    pub fn flags(&self, timeout: Duration) -> Result<Option<Flags>, Error> {
        let data = match self.get_api("/api/v1/status/flags", timeout, USER_AGENT) {
            Err(Error::Status { code: 404, .. }) => return Ok(None),
            other => other?,
        };
        let get = |name: &str| data.get(name).and_then(|v| v.as_str()).unwrap_or("");
        let duration = |name: &str| -> Result<Duration, Error> {
            match get(name) {
                "" => Ok(Duration::ZERO),
                v => crate::values::model_duration(v)
                    .map_err(|e| Error::Decode(format!("Prometheus flag {name}: {e}"))),
            }
        };
        Ok(Some(Flags {
            tsdb_path: get("storage.tsdb.path").to_string(),
            min_block_duration: duration("storage.tsdb.min-block-duration")?,
            max_block_duration: duration("storage.tsdb.max-block-duration")?,
            delay_compact_file: get("storage.tsdb.delay-compact-file.path").to_string(),
            agent: get("agent") == "true"
                || get("enable-feature")
                    .split(',')
                    .any(|f| f.trim() == "agent"),
        }))
    }

    /// `global.external_labels` of the running config (`/api/v1/status/config`).
    pub fn external_labels(&self, timeout: Duration) -> Result<Labels, Error> {
        let data = self.get_api("/api/v1/status/config", timeout, SIDECAR_USER_AGENT)?;
        let yaml = data
            .get("yaml")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::Decode("/api/v1/status/config: no data.yaml".into()))?;
        parse_external_labels(yaml)
    }

    /// Prometheus' version; `"0"` when it predates the build-info API.
    pub fn version(&self, timeout: Duration) -> Result<String, Error> {
        match self.get_api("/api/v1/status/buildinfo", timeout, SIDECAR_USER_AGENT) {
            Ok(data) => Ok(data
                .get("version")
                .and_then(|v| v.as_str())
                .unwrap_or("0")
                .to_string()),
            Err(Error::Status {
                code: 404 | 405, ..
            }) => Ok("0".to_string()),
            Err(e) => Err(e),
        }
    }

    /// POSTs a snappy-compressed remote-read request; the body is left to
    /// the caller to stream. Non-2xx answers become [`Error::Status`].
    pub fn remote_read(
        &self,
        snappy_body: &[u8],
        timeout: Duration,
    ) -> Result<ureq::Response, Error> {
        let req = self
            .request("POST", "/api/v1/read", timeout)?
            .set("Content-Encoding", "snappy")
            .set("Content-Type", "application/x-stream-protobuf")
            .set("X-Prometheus-Remote-Read-Version", "0.1.0");
        match req.send_bytes(snappy_body) {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(code, resp)) => Err(Error::Status {
                code,
                body: read_error_body(resp),
            }),
            Err(ureq::Error::Transport(t)) => Err(transport_error(&t)),
        }
    }

    /// `/api/v1/series`: the label sets of the series `selectors` match.
    pub fn series(
        &self,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
    ) -> Result<Vec<Labels>, Error> {
        let data = self.get_query("/api/v1/series", selectors, range, timeout)?;
        decode_data("/api/v1/series", data)
    }

    /// `/api/v1/series`, decoded as it arrives: `each` gets every label set
    /// in the answer's order, and the answer is never held whole, however
    /// many series it names. An error from `each` stops the read.
    pub fn series_each<E>(
        &self,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
        each: &mut dyn FnMut(Labels) -> Result<(), E>,
    ) -> Result<(), Streamed<E>> {
        const PATH: &str = "/api/v1/series";
        let req = self
            .query_request(PATH, selectors, range, timeout)
            .map_err(Streamed::Api)?;
        let resp = Client::send(req).map_err(Streamed::Api)?;
        if resp.status() == 204 {
            return Ok(());
        }
        // serde_json reads byte by byte: a buffer spares a call through
        // ureq's readers per byte.
        let reader = std::io::BufReader::with_capacity(64 * 1024, resp.into_reader());
        let mut de = serde_json::Deserializer::from_reader(reader);
        let mut stopped = None;
        let envelope = series_stream::Envelope {
            each,
            stopped: &mut stopped,
        };
        let decoded = serde::de::DeserializeSeed::deserialize(envelope, &mut de)
            .and_then(|status| de.end().map(|()| status));
        if let Some(e) = stopped {
            return Err(Streamed::Stopped(e));
        }
        let (status, error) =
            decoded.map_err(|e| Streamed::Api(Error::Decode(format!("{PATH}: {e}"))))?;
        if status != "success" {
            return Err(Streamed::Api(Error::Decode(format!(
                "{PATH}: status {status:?}: {}",
                error.unwrap_or_default()
            ))));
        }
        Ok(())
    }

    /// `/api/v1/labels`: label names, optionally of the series `selectors` match.
    pub fn label_names(
        &self,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        self.get_strings("/api/v1/labels", selectors, range, timeout)
    }

    /// `/api/v1/label/<name>/values`; `name` as the caller spells it for the
    /// path (Prometheus 3 wants some names escaped: see `store::labels`).
    pub fn label_values(
        &self,
        name: &str,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        // The name goes into the path as one segment, escaped by `url`.
        let mut url = self.url("/api/v1/label");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(name).push("values");
        }
        let path = url.path().to_string();
        let base_path = self.base.path().trim_end_matches('/').to_string();
        let relative = path.strip_prefix(&base_path).unwrap_or(&path).to_string();
        self.get_strings(&relative, selectors, range, timeout)
    }

    fn get_strings(
        &self,
        path: &str,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        decode_data(path, self.get_query(path, selectors, range, timeout)?)
    }

    /// GETs a JSON API endpoint with `params` and decodes its `data` (rules,
    /// targets, metadata, exemplars, TSDB status).
    pub fn get_data<T: DeserializeOwned + Default>(
        &self,
        path: &str,
        params: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<T, Error> {
        let mut req = self.request("GET", path, timeout)?;
        for (name, value) in params {
            req = req.query(name, value);
        }
        decode_data(path, self.get_json(path, req)?)
    }

    /// GETs a JSON API endpoint with `match[]`, `start`, `end` and `limit`.
    fn get_query(
        &self,
        path: &str,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
    ) -> Result<serde_json::Value, Error> {
        let req = self.query_request(path, selectors, range, timeout)?;
        self.get_json(path, req)
    }

    fn query_request(
        &self,
        path: &str,
        selectors: &[String],
        range: &TimeRange,
        timeout: Duration,
    ) -> Result<ureq::Request, Error> {
        let mut req = self.request("GET", path, timeout)?;
        for selector in selectors {
            req = req.query("match[]", selector);
        }
        req = req
            .query("start", &format_seconds(range.start_ms))
            .query("end", &format_seconds(range.end_ms));
        if range.limit > 0 {
            req = req.query("limit", &range.limit.to_string());
        }
        Ok(req)
    }

    /// The lowest timestamp in the TSDB in ms, from Prometheus' own `/metrics`.
    pub fn lowest_timestamp(&self, timeout: Duration) -> Result<i64, Error> {
        let req = self.request("GET", "/metrics", timeout)?;
        let text = Client::send(req)?
            .into_string()
            .map_err(|e| Error::Transport(format!("reading /metrics: {e}")))?;
        lowest_timestamp_from_metrics(&text)
    }

    /// `POST /-/reload`, served when Prometheus runs with `--web.enable-lifecycle`.
    pub fn reload(&self, timeout: Duration) -> Result<(), Error> {
        let req = self.request("POST", "/-/reload", timeout)?;
        match Client::send(req)?.status() {
            200 => Ok(()),
            // Prometheus answers a reload 200 or an error; another 2xx is
            // not a reload done.
            code => Err(Error::Status {
                code,
                body: String::new(),
            }),
        }
    }

    /// `/api/v1/status/runtimeinfo`: whether the last config reload
    /// worked, and when (the reloader's signal method confirms with it).
    pub fn runtime_info(&self, timeout: Duration) -> Result<RuntimeInfo, Error> {
        const PATH: &str = "/api/v1/status/runtimeinfo";
        let data = self.get_api(PATH, timeout, USER_AGENT)?;
        parse_runtime_info(&data).map_err(|e| Error::Decode(format!("{PATH}: {e}")))
    }
}

/// What `/api/v1/status/runtimeinfo` says of the last config reload.
#[derive(Debug, PartialEq)]
pub struct RuntimeInfo {
    pub reload_success: bool,
    /// Unix seconds (Prometheus reports whole seconds).
    pub last_config_time: i64,
}

/// Reads the `data` of a runtimeinfo answer.
fn parse_runtime_info(data: &serde_json::Value) -> Result<RuntimeInfo, String> {
    let reload_success = data
        .get("reloadConfigSuccess")
        .and_then(|v| v.as_bool())
        .ok_or("no data.reloadConfigSuccess")?;
    let time = data
        .get("lastConfigTime")
        .and_then(|v| v.as_str())
        .ok_or("no data.lastConfigTime")?;
    let time = chrono::DateTime::parse_from_rfc3339(time)
        .map_err(|e| format!("data.lastConfigTime {time:?}: {e}"))?;
    Ok(RuntimeInfo {
        reload_success,
        last_config_time: time.timestamp(),
    })
}

/// Why [`Client::series_each`] ended early.
#[derive(Debug)]
pub enum Streamed<E> {
    /// The call failed, or its answer is not Prometheus' envelope.
    Api(Error),
    /// The receiver refused a label set (e.g. its client is gone).
    Stopped(E),
}

/// The time range and limit of a series, labels or label-values call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Sent only when > 0, as Thanos does.
    pub limit: i64,
}

/// Milliseconds as Prometheus' seconds parameter, in shortest decimal form
/// (`1700000000123` → `1700000000.123`, `-1500` → `-1.5`). Thanos divides as
/// a float, so huge values round the same way here (`i64::MAX` →
/// `9223372036854776`); Rust's `Display` for f64 is shortest round-trip
/// without exponent, like Go's `FormatFloat(f, 'f', -1, 64)`.
pub fn format_seconds(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// The `data` of an answer as `T`; a 204 (no body) or a `null` is
/// `T::default()`, as Go's decoder leaves its target empty for both.
fn decode_data<T: DeserializeOwned + Default>(
    path: &str,
    data: serde_json::Value,
) -> Result<T, Error> {
    match data {
        serde_json::Value::Null => Ok(T::default()),
        data => serde_json::from_value(data).map_err(|e| Error::Decode(format!("{path}: {e}"))),
    }
}

/// Go's `http.Transport` idle-connection limits on a ureq agent. Go reads 0
/// as no limit for `MaxIdleConns` and as its default of 2 for
/// `MaxIdleConnsPerHost`, where ureq reads 0 as no pooling at all. The
/// per-host limit is what matters under concurrent calls: every call beyond
/// it closes its connection when done and the next one dials again.
pub fn idle_pool(
    builder: ureq::AgentBuilder,
    max_idle_conns: i64,
    max_idle_conns_per_host: i64,
) -> ureq::AgentBuilder {
    let (total, per_host) = idle_limits(max_idle_conns, max_idle_conns_per_host);
    builder
        .max_idle_connections(total)
        .max_idle_connections_per_host(per_host)
}

/// ureq's (total, per host) idle limits for Go's settings (see [`idle_pool`]).
fn idle_limits(max_idle_conns: i64, max_idle_conns_per_host: i64) -> (usize, usize) {
    const GO_DEFAULT_PER_HOST: usize = 2;
    let total = match max_idle_conns {
        n if n <= 0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let per_host = match max_idle_conns_per_host {
        n if n <= 0 => GO_DEFAULT_PER_HOST,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    (total, per_host)
}

/// A transport error without the password of a `https://user:password@…`
/// URL, which ureq quotes; Go's client writes `xxxxx` in its place too.
fn transport_error(t: &ureq::Transport) -> Error {
    let mut message = t.to_string();
    if let Some(url) = t.url().filter(|u| u.password().is_some()) {
        let mut redacted = url.clone();
        let _ = redacted.set_password(Some("xxxxx"));
        message = message.replace(url.as_str(), redacted.as_str());
    }
    Error::Transport(message)
}

fn read_error_body(resp: ureq::Response) -> String {
    let mut body = String::new();
    let _ = resp
        .into_reader()
        .take(MAX_ERROR_BODY as u64)
        .read_to_string(&mut body);
    body
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    error: Option<String>,
}

fn parse_external_labels(yaml: &str) -> Result<Labels, Error> {
    #[derive(Deserialize, Default)]
    struct Config {
        #[serde(default)]
        global: Global,
    }
    #[derive(Deserialize, Default)]
    struct Global {
        #[serde(default)]
        external_labels: Option<Labels>,
    }
    let config: Config = crate::yaml::from_str(yaml)
        .map_err(|e| Error::Decode(format!("Prometheus config YAML: {e}")))?;
    Ok(config.global.external_labels.unwrap_or_default())
}

/// Finds `prometheus_tsdb_lowest_timestamp_seconds` in the text exposition.
///
/// An empty TSDB reports `MaxInt64` (as a float), which Thanos turns into
/// `MinInt64`; a missing gauge (agent mode) counts as 0, as in Thanos.
fn lowest_timestamp_from_metrics(text: &str) -> Result<i64, Error> {
    const NAME: &str = "prometheus_tsdb_lowest_timestamp_seconds";
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(NAME) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some(' ') => rest,
            Some('{') => match rest.find('}') {
                Some(end) => &rest[end + 1..],
                None => continue,
            },
            _ => continue,
        };
        let value = rest.split_whitespace().next().unwrap_or("");
        let seconds: f64 = value
            .parse()
            .map_err(|_| Error::Decode(format!("{NAME} has value {value:?}")))?;
        let ms = seconds * 1000.0;
        return Ok(if ms >= i64::MAX as f64 {
            i64::MIN
        } else {
            ms as i64
        });
    }
    Ok(0)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_limits_read_as_go_reads_them() {
        // Thanos' defaults for the Prometheus client, then Go's zeros: no
        // limit in all, its default of 2 per host (ureq's 0 would mean none).
        assert_eq!(idle_limits(100, 2), (100, 2));
        assert_eq!(idle_limits(0, 0), (usize::MAX, 2));
        assert_eq!(idle_limits(-1, 64), (usize::MAX, 64));
        assert_eq!(idle_limits(7, -3), (7, 2));
    }

    #[test]
    fn runtime_info_is_parsed() {
        let data = serde_json::json!({
            "reloadConfigSuccess": true, "lastConfigTime": "2026-11-25T10:32:40Z"});
        assert_eq!(
            parse_runtime_info(&data).unwrap(),
            RuntimeInfo {
                reload_success: true,
                last_config_time: 1_795_602_760
            }
        );
        let err = parse_runtime_info(&serde_json::json!({"lastConfigTime": "x"})).unwrap_err();
        assert!(err.contains("reloadConfigSuccess"), "{err}");
    }

    #[test]
    fn lowest_timestamp() {
        let text = "# HELP x\nprometheus_tsdb_lowest_timestamp_seconds_total 3\n\
                    prometheus_tsdb_lowest_timestamp_seconds 1.795555893e+09\n";
        assert_eq!(
            lowest_timestamp_from_metrics(text).unwrap(),
            1_795_555_893_000
        );
        let empty = "prometheus_tsdb_lowest_timestamp_seconds 9.223372036854776e+15\n";
        assert_eq!(lowest_timestamp_from_metrics(empty).unwrap(), i64::MIN);
        assert_eq!(lowest_timestamp_from_metrics("up 1\n").unwrap(), 0);
        assert!(
            lowest_timestamp_from_metrics("prometheus_tsdb_lowest_timestamp_seconds x\n").is_err()
        );
    }

    #[test]
    fn external_labels_from_config_yaml() {
        let yaml = "global:\n  scrape_interval: 1s\n  external_labels:\n    replica: \"0\"\n    cluster: test\nscrape_configs: []\n";
        let labels = parse_external_labels(yaml).unwrap();
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            vec![
                ("cluster".into(), "test".into()),
                ("replica".into(), "0".into())
            ]
        );
        assert!(parse_external_labels("global:\n  scrape_interval: 1s\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn seconds_are_rendered_like_thanos() {
        assert_eq!(format_seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_seconds(1_700_000_000_100), "1700000000.1");
        assert_eq!(format_seconds(0), "0");
        assert_eq!(format_seconds(-1500), "-1.5");
        assert_eq!(format_seconds(i64::MAX), "9223372036854776");
        assert_eq!(format_seconds(i64::MIN), "-9223372036854776");
        assert_eq!(format_seconds(-62_167_219_200_000), "-62167219200");
    }

    #[test]
    fn url_keeps_path_prefix() {
        let c = Client::new(
            url::Url::parse("http://h:9090/prom/").unwrap(),
            &HttpClientConfig::default(),
        )
        .unwrap();
        assert_eq!(
            c.url("/api/v1/read").as_str(),
            "http://h:9090/prom/api/v1/read"
        );
        let c = Client::new(
            url::Url::parse("http://h:9090").unwrap(),
            &HttpClientConfig::default(),
        )
        .unwrap();
        assert_eq!(c.url("/metrics").as_str(), "http://h:9090/metrics");
    }
}
