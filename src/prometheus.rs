//! Client for the Prometheus server the sidecar sits next to.
//!
//! Every call to Prometheus goes through [`Client`], so the HTTP client config
//! (`--prometheus.http-client(-file)`: basic auth, bearer token, TLS, proxy)
//! applies to all of them, exactly as it does in Thanos. URLs keep the path
//! prefix of `--prometheus.url`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// External labels and series labels: sorted by name, as Thanos sends them.
pub type Labels = BTreeMap<String, String>;

/// `User-Agent` of most calls, as Thanos sends `Thanos/<version>`.
pub const USER_AGENT: &str = concat!("Thanos/", env!("CARGO_PKG_VERSION"));
/// Thanos identifies its config and build-info calls as the sidecar.
const SIDECAR_USER_AGENT: &str = "thanos-sidecar";
/// Bodies of failed calls are quoted in errors; beyond this they only add noise.
const MAX_ERROR_BODY: usize = 4096;

/// The HTTP client config YAML (`pkg/clientconfig/http.go` in Thanos).
///
/// Decoded leniently as Thanos does: unknown keys are reported, not fatal.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<Hidden>,
    pub bearer_token_file: Option<PathBuf>,
    pub proxy_url: Option<String>,
    pub tls_config: TlsConfig,
    pub transport_config: TransportConfig,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<Hidden>,
    pub password_file: Option<PathBuf>,
}

/// A password or token from the config: `Debug` shows a placeholder, so a
/// config printed for debugging never carries the secret.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Hidden(String);

impl Hidden {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Go's transport settings; durations are integer nanoseconds, as in Thanos.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TransportConfig {
    pub max_idle_conns: i64,
    pub max_idle_conns_per_host: i64,
    pub idle_conn_timeout: i64,
    pub response_header_timeout: i64,
    pub expect_continue_timeout: i64,
    pub max_conns_per_host: i64,
    pub disable_compression: bool,
    pub tls_handshake_timeout: i64,
    pub dialer_timeout: i64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_idle_conns: 100,
            max_idle_conns_per_host: 2,
            idle_conn_timeout: 90_000_000_000,
            response_header_timeout: 0,
            expect_continue_timeout: 10_000_000_000,
            max_conns_per_host: 0,
            disable_compression: false,
            tls_handshake_timeout: 10_000_000_000,
            dialer_timeout: 5_000_000_000,
        }
    }
}

impl HttpClientConfig {
    /// Parses and validates the YAML; `warn` receives each key that was ignored.
    pub fn parse(yaml: &str, mut warn: impl FnMut(String)) -> Result<Self, String> {
        if yaml.trim().is_empty() {
            return Ok(HttpClientConfig::default());
        }
        let config: HttpClientConfig = crate::yaml::decode(yaml, |de| {
            serde_ignored::deserialize(de, |path| {
                warn(format!(
                    "unknown key {path} in the Prometheus HTTP client config is ignored"
                ))
            })
        })
        .map_err(|e| format!("invalid Prometheus HTTP client config: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(auth) = &self.basic_auth {
            if auth.password.is_some() && auth.password_file.is_some() {
                return Err("at most one of basic_auth.password and basic_auth.password_file must be configured".into());
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(
                "at most one of bearer_token and bearer_token_file must be configured".into(),
            );
        }
        if self.basic_auth.is_some()
            && (self.bearer_token.is_some() || self.bearer_token_file.is_some())
        {
            return Err(
                "at most one of basic_auth, bearer_token and bearer_token_file must be configured"
                    .into(),
            );
        }
        match (&self.tls_config.cert_file, &self.tls_config.key_file) {
            (Some(c), None) => Err(format!(
                "tls_config.cert_file {} is set without tls_config.key_file",
                c.display()
            )),
            (None, Some(k)) => Err(format!(
                "tls_config.key_file {} is set without tls_config.cert_file",
                k.display()
            )),
            _ => Ok(()),
        }
    }
}

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
    pub fn new(base: url::Url, config: &HttpClientConfig) -> Result<Client, String> {
        let dial = Duration::from_nanos(config.transport_config.dialer_timeout.max(0) as u64);
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(dial)
            .user_agent(USER_AGENT)
            .tls_config(Arc::new(tls::client_config(&config.tls_config)?));
        if let Some(proxy) = &config.proxy_url {
            let proxy = ureq::Proxy::new(proxy).map_err(|e| format!("invalid proxy_url: {e}"))?;
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

/// Prometheus' JSON envelope around a list of label sets, decoded one label
/// set at a time (serde's seeds carry the receiver into the list).
mod series_stream {
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };
    use serde::Deserialize;

    use super::Labels;

    pub struct Envelope<'a, E> {
        pub each: &'a mut dyn FnMut(Labels) -> Result<(), E>,
        /// Set when `each` failed; the decoder then fails too, to stop.
        pub stopped: &'a mut Option<E>,
    }

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "lowercase")]
    enum Field {
        Status,
        Data,
        Error,
        #[serde(other)]
        Other,
    }

    impl<'de, E> DeserializeSeed<'de> for Envelope<'_, E> {
        /// `status` and `error`.
        type Value = (String, Option<String>);

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, E> Visitor<'de> for Envelope<'_, E> {
        type Value = (String, Option<String>);

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("Prometheus' API envelope")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut status = None;
            let mut error = None;
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Status => status = Some(map.next_value::<String>()?),
                    Field::Error => error = map.next_value::<Option<String>>()?,
                    Field::Data => map.next_value_seed(Data {
                        each: &mut *self.each,
                        stopped: &mut *self.stopped,
                    })?,
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let status = status.ok_or_else(|| de::Error::missing_field("status"))?;
            Ok((status, error))
        }
    }

    struct Data<'a, E> {
        each: &'a mut dyn FnMut(Labels) -> Result<(), E>,
        stopped: &'a mut Option<E>,
    }

    impl<'de, E> DeserializeSeed<'de> for Data<'_, E> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de, E> Visitor<'de> for Data<'_, E> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of label sets")
        }

        /// `"data": null`, as for any empty answer.
        fn visit_unit<Er: de::Error>(self) -> Result<(), Er> {
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(labels) = seq.next_element::<Labels>()? {
                if let Err(e) = (self.each)(labels) {
                    *self.stopped = Some(e);
                    return Err(de::Error::custom("stopped by the receiver"));
                }
            }
            Ok(())
        }
    }
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

/// rustls settings for the HTTP client config's `tls_config`.
///
/// The CA file and the client certificate and key are re-read when their
/// mtime changes, as Prometheus' client does, so rotated files apply to the
/// next connection without a restart.
mod tls {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::sign::CertifiedKey;
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

    use super::TlsConfig;
    use crate::tls::HandshakeSignatures;

    pub fn client_config(tls: &TlsConfig) -> Result<ClientConfig, String> {
        let provider = crate::tls::provider();
        let roots = match &tls.ca_file {
            Some(path) => Roots::File(Reloading::new(vec![path.clone()], load_ca)?),
            None => {
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                Roots::Fixed(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("TLS setup: {e}"))?,
                )
            }
        };
        let server_name = match &tls.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| format!("tls_config.server_name {name:?}: {e}"))?,
            ),
            None => None,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                roots,
                server_name,
                insecure: tls.insecure_skip_verify,
                signatures: HandshakeSignatures(provider),
            }));
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => Ok(builder.with_client_cert_resolver(Arc::new(ClientCert(
                Reloading::new(vec![cert.clone(), key.clone()], load_pair)?,
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
        fn new(
            files: Vec<PathBuf>,
            load: fn(&[PathBuf]) -> Result<T, String>,
        ) -> Result<Self, String> {
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

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.signatures.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.signatures.schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn http_client_config_validation_names_the_key() {
        let mut warnings = Vec::new();
        let c = HttpClientConfig::parse(
            "basic_auth:\n  username: u\n  password: p\nbogus: 1\n",
            |w| warnings.push(w),
        )
        .unwrap();
        assert_eq!(c.basic_auth.unwrap().username, "u");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("bogus"), "{warnings:?}");

        let err = HttpClientConfig::parse("bearer_token: a\nbearer_token_file: /x\n", |_| {})
            .unwrap_err();
        assert!(err.contains("bearer_token_file"), "{err}");
        let err = HttpClientConfig::parse("basic_auth: {username: u}\nbearer_token: a\n", |_| {})
            .unwrap_err();
        assert!(err.contains("basic_auth"), "{err}");
        let err = HttpClientConfig::parse("tls_config: {cert_file: /c}\n", |_| {}).unwrap_err();
        assert!(err.contains("tls_config.key_file"), "{err}");
        let err = HttpClientConfig::parse("basic_auth: [1]\n", |_| {}).unwrap_err();
        assert!(err.contains("basic_auth"), "{err}");
    }

    #[test]
    fn http_client_config_wrong_types_name_the_key_path_and_line() {
        for (yaml, expected) in [
            (
                "tls_config:\n  insecure_skip_verify: [true]\n",
                "tls_config.insecure_skip_verify: invalid type: sequence, expected a boolean at line 2 column 25",
            ),
            (
                "transport_config:\n  max_idle_conns: \"many\"\n",
                "transport_config.max_idle_conns: invalid type: string (redacted), expected i64 at line 2 column 19",
            ),
        ] {
            let err = HttpClientConfig::parse(yaml, |_| {}).unwrap_err();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
        let bomb = format!("tls_config: {}", "[".repeat(100_000));
        let err = HttpClientConfig::parse(&bomb, |_| {}).unwrap_err();
        assert!(
            err.contains("YAML nested deeper than 128 levels at line 1"),
            "{err}"
        );
    }

    #[test]
    fn secrets_stay_out_of_errors_and_debug_output() {
        // A password where a map belongs: the error names the key, not the value.
        let err = HttpClientConfig::parse("basic_auth: hunter2-secret\n", |_| {}).unwrap_err();
        assert!(err.contains("basic_auth"), "{err}");
        assert!(!err.contains("hunter2-secret"), "{err}");
        let err = HttpClientConfig::parse("bearer_token: {a: \"tok\\\"en-secret\"}\n", |_| {})
            .unwrap_err();
        assert!(!err.contains("en-secret"), "{err}");
        let c = HttpClientConfig::parse(
            "basic_auth: {username: u, password: hunter2-secret}\n",
            |_| {},
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2-secret"));
        let c = HttpClientConfig::parse("bearer_token: token-secret\n", |_| {}).unwrap();
        assert!(!format!("{c:?}").contains("token-secret"));
    }
}
