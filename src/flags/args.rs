//! Stage one: every flag of `thanos sidecar`, defined once, as argh structs.
//!
//! argh only accepts `[a-z0-9-]` in long names, so each Thanos name is written
//! here with `.` as `--` and `_` as `---` (`--prometheus.get_config_interval`
//! is `prometheus--get---config---interval`). `normalize` maps the Thanos
//! spellings onto these names before argh runs, and `help` maps them back, so
//! users only ever see Thanos' spellings. Values are parsed here with Thanos'
//! syntaxes, so a bad value is a usage error (exit 2), as in kingpin.

use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::logging::LogFormat;
use crate::values::{self, TimeOrDuration};

/// A small, thread-based drop-in replacement for `thanos sidecar`.
#[derive(FromArgs, ArgsInfo, Debug)]
pub struct TopArgs {
    /// show application version.
    #[argh(switch)]
    pub version: bool,

    /// log filtering level: error, warn, info or debug (default: info).
    #[argh(
        option,
        long = "log--level",
        arg_name = "LEVEL",
        from_str_fn(log_level),
        default = "log::LevelFilter::Info"
    )]
    pub log_level: log::LevelFilter,

    /// log format to use: logfmt, json or journald (default: logfmt).
    #[argh(
        option,
        long = "log--format",
        arg_name = "FORMAT",
        from_str_fn(log_format),
        default = "LogFormat::Logfmt"
    )]
    pub log_format: LogFormat,

    /// path to a YAML file with tracing configuration (accepted; this build traces nothing).
    #[argh(option, long = "tracing--config-file", arg_name = "FILE")]
    pub tracing_config_file: Option<String>,

    /// alternative to --tracing.config-file: the YAML content itself.
    #[argh(option, long = "tracing--config", arg_name = "YAML")]
    pub tracing_config: Option<String>,

    /// accepted for compatibility; Go's memory limit has no meaning here.
    #[argh(switch, long = "enable-auto-gomemlimit")]
    pub enable_auto_gomemlimit: bool,

    /// accepted for compatibility; must be in (0, 1] (default: 0.9).
    #[argh(
        option,
        long = "auto-gomemlimit--ratio",
        arg_name = "RATIO",
        default = "0.9"
    )]
    pub auto_gomemlimit_ratio: f64,

    /// add name=<value> to every log line.
    #[argh(option, long = "debug--name", arg_name = "NAME", hidden_help)]
    pub debug_name: Option<String>,

    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand)]
pub enum Command {
    Sidecar(SidecarArgs),
}

/// Sidecar for Prometheus server.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "sidecar")]
pub struct SidecarArgs {
    /// listen host:port for HTTP endpoints (default: 0.0.0.0:10902).
    #[argh(
        option,
        long = "http-address",
        arg_name = "HOST:PORT",
        default = "String::from(\"0.0.0.0:10902\")"
    )]
    pub http_address: String,

    /// time to wait after an interrupt received for HTTP Server (default: 2m).
    #[argh(
        option,
        long = "http-grace-period",
        arg_name = "DURATION",
        from_str_fn(model_duration),
        default = "Duration::from_secs(120)"
    )]
    pub http_grace_period: Duration,

    /// [EXPERIMENTAL] path to the configuration file that can enable TLS or authentication for all HTTP endpoints.
    #[argh(option, long = "http--config", arg_name = "FILE")]
    pub http_config: Option<String>,

    /// listen ip:port address for gRPC endpoints (StoreAPI) (default: 0.0.0.0:10901).
    #[argh(
        option,
        long = "grpc-address",
        arg_name = "HOST:PORT",
        default = "String::from(\"0.0.0.0:10901\")"
    )]
    pub grpc_address: String,

    /// TLS certificate for the gRPC server; leave blank to disable TLS.
    #[argh(option, long = "grpc-server-tls-cert", arg_name = "FILE")]
    pub grpc_server_tls_cert: Option<String>,

    /// TLS key for the gRPC server; leave blank to disable TLS.
    #[argh(option, long = "grpc-server-tls-key", arg_name = "FILE")]
    pub grpc_server_tls_key: Option<String>,

    /// TLS CA to verify clients against; if set, client certificates are required.
    #[argh(option, long = "grpc-server-tls-client-ca", arg_name = "FILE")]
    pub grpc_server_tls_client_ca: Option<String>,

    /// TLS supported minimum version for the gRPC server: 1.0, 1.1, 1.2 or 1.3 (default: 1.3).
    #[argh(
        option,
        long = "grpc-server-tls-min-version",
        arg_name = "VERSION",
        from_str_fn(tls_version),
        default = "\"1.3\""
    )]
    pub grpc_server_tls_min_version: &'static str,

    /// TLS cipher suite for the gRPC server (repeatable); none means the defaults.
    #[argh(option, long = "grpc-server-tls-ciphers", arg_name = "CIPHER")]
    pub grpc_server_tls_ciphers: Vec<String>,

    /// TLS curve preference for the gRPC server (repeatable): CurveP256, CurveP384, CurveP521, X25519.
    #[argh(option, long = "grpc-server-tls-curves", arg_name = "CURVE")]
    pub grpc_server_tls_curves: Vec<String>,

    /// the grpc server max connection age; connections are closed after it (default: 60m).
    #[argh(
        option,
        long = "grpc-server-max-connection-age",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(3600)"
    )]
    pub grpc_server_max_connection_age: Duration,

    /// gRPC calls worked on at once, each on a thread of a pool (not a Thanos flag: Go runs calls on goroutines); more calls wait in a queue.
    #[argh(
        option,
        long = "grpc-server-max-workers",
        arg_name = "N",
        from_str_fn(at_least_one),
        default = "256"
    )]
    pub grpc_server_max_workers: usize,

    /// gRPC calls that may wait for a busy pool; a call beyond them is refused with ResourceExhausted (not a Thanos flag).
    #[argh(
        option,
        long = "grpc-server-max-queued-calls",
        arg_name = "N",
        from_str_fn(at_least_one),
        default = "1024"
    )]
    pub grpc_server_max_queued_calls: usize,

    /// time to wait after an interrupt received for GRPC Server (default: 2m).
    #[argh(
        option,
        long = "grpc-grace-period",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(120)"
    )]
    pub grpc_grace_period: Duration,

    /// URL at which to reach Prometheus's API; a path prefix is kept (default: http://localhost:9090).
    #[argh(
        option,
        long = "prometheus--url",
        arg_name = "URL",
        from_str_fn(http_url),
        default = "default_prometheus_url()"
    )]
    pub prometheus_url: url::Url,

    /// maximum time to wait for the Prometheus instance to start up; only used with uploads (default: 10m).
    #[argh(
        option,
        long = "prometheus--ready---timeout",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(600)"
    )]
    pub prometheus_ready_timeout: Duration,

    /// how often to get Prometheus config (default: 30s).
    #[argh(
        option,
        long = "prometheus--get---config---interval",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(30)"
    )]
    pub prometheus_get_config_interval: Duration,

    /// timeout for getting Prometheus config (default: 30s).
    #[argh(
        option,
        long = "prometheus--get---config---timeout",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(30)"
    )]
    pub prometheus_get_config_timeout: Duration,

    /// path to YAML file with the HTTP client config used for every call to Prometheus.
    #[argh(option, long = "prometheus--http-client-file", arg_name = "FILE")]
    pub prometheus_http_client_file: Option<String>,

    /// alternative to --prometheus.http-client-file: the YAML content itself.
    #[argh(option, long = "prometheus--http-client", arg_name = "YAML")]
    pub prometheus_http_client: Option<String>,

    /// data directory of TSDB (default: ./data).
    #[argh(
        option,
        long = "tsdb--path",
        arg_name = "PATH",
        default = "String::from(\"./data\")"
    )]
    pub tsdb_path: String,

    /// config file watched by the reloader.
    #[argh(option, long = "reloader--config-file", arg_name = "FILE")]
    pub reloader_config_file: Option<String>,

    /// output file for environment variable substituted config file.
    #[argh(option, long = "reloader--config-envsubst-file", arg_name = "FILE")]
    pub reloader_config_envsubst_file: Option<String>,

    /// rule directory for the reloader to refresh (repeatable).
    #[argh(option, long = "reloader--rule-dir", arg_name = "DIR")]
    pub reloader_rule_dir: Vec<String>,

    /// controls how often the reloader re-reads config and rules (default: 3m).
    #[argh(
        option,
        long = "reloader--watch-interval",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(180)"
    )]
    pub reloader_watch_interval: Duration,

    /// controls how often the reloader retries config reload in case of error (default: 5s).
    #[argh(
        option,
        long = "reloader--retry-interval",
        arg_name = "DURATION",
        from_str_fn(go_duration),
        default = "Duration::from_secs(5)"
    )]
    pub reloader_retry_interval: Duration,

    /// method used to reload the configuration: http or signal (default: http).
    #[argh(
        option,
        long = "reloader--method",
        arg_name = "METHOD",
        from_str_fn(reload_method),
        default = "\"http\""
    )]
    pub reloader_method: &'static str,

    /// executable name used to match the process being reloaded with the signal method (default: prometheus).
    #[argh(
        option,
        long = "reloader--process-name",
        arg_name = "NAME",
        default = "String::from(\"prometheus\")"
    )]
    pub reloader_process_name: String,

    /// path to a YAML file with request logging configuration.
    #[argh(option, long = "request--logging-config-file", arg_name = "FILE")]
    pub request_logging_config_file: Option<String>,

    /// alternative to --request.logging-config-file: the YAML content itself.
    #[argh(option, long = "request--logging-config", arg_name = "YAML")]
    pub request_logging_config: Option<String>,

    /// path to YAML file that contains object store configuration; empty disables uploads.
    #[argh(option, long = "objstore--config-file", arg_name = "FILE")]
    pub objstore_config_file: Option<String>,

    /// alternative to --objstore.config-file: the YAML content itself.
    #[argh(option, long = "objstore--config", arg_name = "YAML")]
    pub objstore_config: Option<String>,

    /// if true, also upload blocks with compaction level above 1.
    #[argh(switch, long = "shipper--upload-compacted")]
    pub shipper_upload_compacted: bool,

    /// specify which hash function to use for uploaded files: "" or SHA256 (default: "").
    #[argh(
        option,
        long = "hash-func",
        arg_name = "FUNC",
        from_str_fn(hash_func),
        default = "\"\""
    )]
    pub hash_func: &'static str,

    /// file to store the list of uploaded blocks, relative to --tsdb.path (default: thanos.shipper.json).
    #[argh(
        option,
        long = "shipper--meta-file-name",
        arg_name = "NAME",
        default = "String::from(\"thanos.shipper.json\")"
    )]
    pub shipper_meta_file_name: String,

    /// number of goroutines to use when uploading block files; 0 means 1 (default: 0).
    #[argh(
        option,
        long = "shipper--upload-concurrency",
        arg_name = "N",
        from_str_fn(go_int_via_float),
        default = "0"
    )]
    pub shipper_upload_concurrency: i64,

    /// the maximum series allowed for a single Series request; 0 means no limit.
    #[argh(
        option,
        long = "store--limits--request-series",
        arg_name = "N",
        from_str_fn(go_uint),
        default = "0"
    )]
    pub store_limits_request_series: u64,

    /// the maximum samples allowed for a single Series request; 0 means no limit.
    #[argh(
        option,
        long = "store--limits--request-samples",
        arg_name = "N",
        from_str_fn(go_uint),
        default = "0"
    )]
    pub store_limits_request_samples: u64,

    /// start of time range limit to serve: RFC3339 or a duration relative to now, e.g. -1d (default: 0000-01-01T00:00:00Z).
    #[argh(
        option,
        long = "min-time",
        arg_name = "TIME",
        from_str_fn(time_or_duration),
        default = "TimeOrDuration::DEFAULT"
    )]
    pub min_time: TimeOrDuration,

    /// accept Prometheus with unequal min and max block durations.
    #[argh(switch, long = "shipper--ignore-unequal-block-size", hidden_help)]
    pub shipper_ignore_unequal_block_size: bool,

    /// skip blocks that fail to upload and continue with newer ones.
    #[argh(switch, long = "shipper--allow-out-of-order-uploads", hidden_help)]
    pub shipper_allow_out_of_order_uploads: bool,

    /// skip unreadable block directories instead of failing the sync.
    #[argh(switch, long = "shipper--skip-corrupted-blocks", hidden_help)]
    pub shipper_skip_corrupted_blocks: bool,
}

fn log_level(s: &str) -> Result<log::LevelFilter, String> {
    Ok(
        match values::one_of(s, &["error", "warn", "info", "debug"])? {
            "error" => log::LevelFilter::Error,
            "warn" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            _ => log::LevelFilter::Debug,
        },
    )
}

fn log_format(s: &str) -> Result<LogFormat, String> {
    Ok(match values::one_of(s, &["logfmt", "json", "journald"])? {
        "logfmt" => LogFormat::Logfmt,
        "json" => LogFormat::Json,
        _ => LogFormat::Journald,
    })
}

fn tls_version(s: &str) -> Result<&'static str, String> {
    values::one_of(s, &["1.0", "1.1", "1.2", "1.3"])
}

fn reload_method(s: &str) -> Result<&'static str, String> {
    values::one_of(s, &["http", "signal"])
}

fn hash_func(s: &str) -> Result<&'static str, String> {
    values::one_of(s, &["", "SHA256"])
}

fn go_duration(s: &str) -> Result<Duration, String> {
    values::go_duration(s)
}

fn model_duration(s: &str) -> Result<Duration, String> {
    values::model_duration(s)
}

fn time_or_duration(s: &str) -> Result<TimeOrDuration, String> {
    values::time_or_duration(s)
}

fn go_uint(s: &str) -> Result<u64, String> {
    values::go_uint(s)
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match values::go_uint(s)? {
        0 => Err("must be at least 1".into()),
        n => usize::try_from(n).map_err(|_| format!("{n} is too large")),
    }
}

fn go_int_via_float(s: &str) -> Result<i64, String> {
    values::go_int_via_float(s)
}

fn http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "unsupported URL scheme {other:?} in {s:?}; use http or https"
        )),
    }
}

fn default_prometheus_url() -> url::Url {
    // A literal that always parses; `http_url` is the path for user input.
    url::Url::parse("http://localhost:9090").expect("a literal URL")
}
