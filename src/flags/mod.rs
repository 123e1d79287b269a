//! The command line: `thanos-sidecar sidecar [flags]`, with every flag of `thanos sidecar`.
//!
//! Parsing runs in two stages, as in ripgrep. Stage one (`args`,
//! `normalize`) is syntax: Thanos' spellings, value formats and enums; an
//! error there is a usage error, exit status 2, as kingpin does. Stage two
//! ([`Config::new`]) reads the files the flags name, substitutes `$(VAR)`s
//! and checks combinations; an error there exits 1, as Thanos does.

mod args;
mod help;
mod normalize;
mod request_logging;

use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

pub use request_logging::RequestLogging;

use crate::envsubst;
use crate::grpc::tls::GrpcTls;
use crate::grpc::GrpcServerConfig;
use crate::listen::ListenAddress;
use crate::logging::LogFormat;
use crate::objstore;
use crate::prometheus::HttpClientConfig;
use crate::reloader::{ReloadMethod, ReloaderConfig};
use crate::values::TimeOrDuration;

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Help(String),
    Version,
    Sidecar(Box<Args>),
}

/// Stage one's result: syntactically valid flags.
#[derive(Debug)]
pub struct Args {
    pub global: args::TopArgs,
    pub sidecar: args::SidecarArgs,
}

impl Args {
    pub fn log_level(&self) -> log::LevelFilter {
        self.global.log_level
    }

    pub fn log_format(&self) -> LogFormat {
        self.global.log_format
    }

    pub fn debug_name(&self) -> Option<String> {
        self.global.debug_name.clone()
    }
}

/// A usage error: the message names the flag or value at fault; exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

/// Stage one: parses `argv` (without the program name).
pub fn parse(argv: &[String]) -> Result<Parsed, UsageError> {
    let table = normalize::Table::new();
    let args = match normalize::normalize(&table, argv).map_err(UsageError)? {
        normalize::Normalized::Help(command) => {
            return Ok(Parsed::Help(help::render(&table, command.as_deref())))
        }
        normalize::Normalized::Args(args) => args,
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let top = args::TopArgs::from_args(&["thanos-sidecar"], &strs)
        .map_err(|e| UsageError(table.to_thanos_spelling(e.output.trim_end())))?;
    if top.version {
        return Ok(Parsed::Version);
    }
    let mut top = top;
    match top.command.take() {
        Some(args::Command::Sidecar(sidecar)) => Ok(Parsed::Sidecar(Box::new(Args {
            global: top,
            sidecar,
        }))),
        None => Err(UsageError(
            "expected command but got none; try --help".to_string(),
        )),
    }
}

/// Stage two's result: everything the daemon needs, validated.
#[derive(Debug)]
pub struct Config {
    pub http: HttpServerConfig,
    pub grpc: GrpcServerConfig,
    pub prometheus: PrometheusConfig,
    pub tsdb_path: PathBuf,
    pub reloader: ReloaderConfig,
    /// What `--request.logging-config` asks of gRPC calls; `None`: no request lines.
    pub request_logging: Option<crate::grpc::request_log::RequestLog>,
    pub objstore: Option<objstore::Config>,
    pub shipper: ShipperConfig,
    pub store: StoreConfig,
}

#[derive(Debug)]
pub struct HttpServerConfig {
    pub address: ListenAddress,
    pub grace_period: Duration,
    pub web_config: Option<PathBuf>,
}

#[derive(Debug)]
pub struct PrometheusConfig {
    pub url: url::Url,
    pub ready_timeout: Duration,
    pub get_config_interval: Duration,
    pub get_config_timeout: Duration,
    pub http_client: HttpClientConfig,
}

#[derive(Debug)]
pub struct ShipperConfig {
    pub upload_compacted: bool,
    pub hash_sha256: bool,
    pub meta_file_name: String,
    pub upload_concurrency: usize,
    pub ignore_unequal_block_size: bool,
    pub allow_out_of_order_uploads: bool,
    pub skip_corrupted_blocks: bool,
}

#[derive(Debug)]
pub struct StoreConfig {
    pub request_series_limit: u64,
    pub request_samples_limit: u64,
    pub min_time: TimeOrDuration,
}

/// Go's `tls.CipherSuites()`: the names `--grpc-server-tls-ciphers` accepts.
const CIPHERS: [&str; 13] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
];

const CURVES: [&str; 7] = [
    "CurveP256",
    "CurveP384",
    "CurveP521",
    "X25519",
    "X25519MLKEM768",
    "SecP256r1MLKEM768",
    "SecP384r1MLKEM1024",
];

impl Config {
    /// Stage two. `warn` receives what Thanos would accept but an operator should know.
    pub fn new(args: &Args, mut warn: impl FnMut(String)) -> Result<Config, String> {
        let g = &args.global;
        let s = &args.sidecar;
        if !(g.auto_gomemlimit_ratio > 0.0 && g.auto_gomemlimit_ratio <= 1.0) {
            return Err(format!(
                "--auto-gomemlimit.ratio must be greater than 0 and less than or equal to 1, got {}",
                g.auto_gomemlimit_ratio
            ));
        }
        let (tracing, source) = path_or_content(
            "tracing.config",
            &g.tracing_config_file,
            &g.tracing_config,
            true,
        )?;
        if !tracing.trim().is_empty() {
            crate::yaml::from_str::<serde_yaml::Value>(&tracing)
                .map_err(|e| format!("{source}: invalid tracing config: {e}"))?;
            warn("tracing is not supported by this sidecar; the tracing config is ignored".into());
        }

        let (text, source) = path_or_content(
            "prometheus.http-client",
            &s.prometheus_http_client_file,
            &s.prometheus_http_client,
            false,
        )?;
        let http_client =
            HttpClientConfig::parse(&text, &mut warn).map_err(|e| format!("{source}: {e}"))?;
        let (text, source) = path_or_content(
            "request.logging-config",
            &s.request_logging_config_file,
            &s.request_logging_config,
            true,
        )?;
        let request_logging = RequestLogging::parse(&text).map_err(|e| format!("{source}: {e}"))?;
        let (text, source) = path_or_content(
            "objstore.config",
            &s.objstore_config_file,
            &s.objstore_config,
            true,
        )?;
        let objstore = objstore::Config::parse(&text).map_err(|e| format!("{source}: {e}"))?;

        Ok(Config {
            http: HttpServerConfig {
                address: listen_address("http-address", &s.http_address)?,
                grace_period: s.http_grace_period,
                web_config: non_empty(&s.http_config).map(PathBuf::from),
            },
            grpc: GrpcServerConfig {
                address: listen_address("grpc-address", &s.grpc_address)?,
                tls: grpc_tls(s)?,
                max_connection_age: s.grpc_server_max_connection_age,
                grace_period: s.grpc_grace_period,
                max_workers: s.grpc_server_max_workers,
                max_queued_calls: s.grpc_server_max_queued_calls,
            },
            prometheus: PrometheusConfig {
                url: s.prometheus_url.clone(),
                ready_timeout: s.prometheus_ready_timeout,
                get_config_interval: s.prometheus_get_config_interval,
                get_config_timeout: s.prometheus_get_config_timeout,
                http_client,
            },
            tsdb_path: PathBuf::from(&s.tsdb_path),
            reloader: ReloaderConfig {
                config_file: non_empty(&s.reloader_config_file).map(PathBuf::from),
                config_envsubst_file: non_empty(&s.reloader_config_envsubst_file)
                    .map(PathBuf::from),
                rule_dirs: s.reloader_rule_dir.iter().map(PathBuf::from).collect(),
                watch_interval: s.reloader_watch_interval,
                retry_interval: s.reloader_retry_interval,
                method: match s.reloader_method {
                    "signal" => ReloadMethod::Signal,
                    _ => ReloadMethod::Http,
                },
                process_name: s.reloader_process_name.clone(),
            },
            request_logging,
            objstore,
            shipper: ShipperConfig {
                upload_compacted: s.shipper_upload_compacted,
                hash_sha256: s.hash_func == "SHA256",
                meta_file_name: s.shipper_meta_file_name.clone(),
                upload_concurrency: s.shipper_upload_concurrency.max(1) as usize,
                ignore_unequal_block_size: s.shipper_ignore_unequal_block_size,
                allow_out_of_order_uploads: s.shipper_allow_out_of_order_uploads,
                skip_corrupted_blocks: s.shipper_skip_corrupted_blocks,
            },
            store: StoreConfig {
                request_series_limit: s.store_limits_request_series,
                request_samples_limit: s.store_limits_request_samples,
                min_time: s.min_time,
            },
        })
    }
}

/// `--http-address` / `--grpc-address`, read as Go's `net.Listen` reads them.
fn listen_address(flag: &str, value: &str) -> Result<ListenAddress, String> {
    ListenAddress::parse(value).map_err(|e| format!("--{flag}={value}: {e}"))
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Thanos' path-or-content pairs (`--X-file` / `--X`): at most one, optionally
/// env-substituted. Returns the text and its source for errors to name:
/// `--X-file=PATH` or `--X`.
fn path_or_content(
    flag: &str,
    file: &Option<String>,
    content: &Option<String>,
    substitute: bool,
) -> Result<(String, String), String> {
    let (text, source) = match (non_empty(file), non_empty(content)) {
        (Some(_), Some(_)) => return Err(format!("both {flag}-file and {flag} flags set.")),
        (Some(path), None) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("--{flag}-file: cannot read {path}: {e}"))?,
            format!("--{flag}-file={path}"),
        ),
        (None, Some(content)) => (content.to_string(), format!("--{flag}")),
        (None, None) => return Ok((String::new(), format!("--{flag}"))),
    };
    if !substitute {
        return Ok((text, source));
    }
    let text = envsubst::expand(&text).map_err(|e| format!("{source}: {e}"))?;
    Ok((text, source))
}

fn grpc_tls(s: &args::SidecarArgs) -> Result<Option<GrpcTls>, String> {
    for cipher in &s.grpc_server_tls_ciphers {
        if !CIPHERS.contains(&cipher.as_str()) {
            return Err(format!(
                "--grpc-server-tls-ciphers: unknown or insecure cipher suite {cipher:?}"
            ));
        }
    }
    for curve in &s.grpc_server_tls_curves {
        if !CURVES.contains(&curve.as_str()) {
            return Err(format!(
                "--grpc-server-tls-curves: unknown curve {curve:?} (one of {})",
                CURVES.join(", ")
            ));
        }
    }
    let cert = non_empty(&s.grpc_server_tls_cert);
    let key = non_empty(&s.grpc_server_tls_key);
    let client_ca = non_empty(&s.grpc_server_tls_client_ca);
    let (cert, key) = match (cert, key) {
        (None, None) if client_ca.is_some() => return Err(
            "--grpc-server-tls-client-ca needs --grpc-server-tls-cert and --grpc-server-tls-key"
                .into(),
        ),
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err("--grpc-server-tls-cert is set without --grpc-server-tls-key".into())
        }
        (None, Some(_)) => {
            return Err("--grpc-server-tls-key is set without --grpc-server-tls-cert".into())
        }
        (Some(c), Some(k)) => (c, k),
    };
    // Thanos loads the pair at start-up: a bad file or a key of another
    // certificate stops the sidecar (exit 1) before anything is served.
    crate::tls::check_pair(
        cert.as_ref(),
        "--grpc-server-tls-cert",
        key.as_ref(),
        "--grpc-server-tls-key",
    )?;
    if let Some(ca) = client_ca {
        crate::tls::read_certs(ca.as_ref(), "--grpc-server-tls-client-ca")?;
    }
    Ok(Some(GrpcTls {
        cert: cert.into(),
        key: key.into(),
        client_ca: client_ca.map(PathBuf::from),
        min_version: s.grpc_server_tls_min_version,
        ciphers: s.grpc_server_tls_ciphers.clone(),
        curves: s.grpc_server_tls_curves.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> Result<Args, String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        match parse(&argv).map_err(|e| e.0)? {
            Parsed::Sidecar(a) => Ok(*a),
            other => Err(format!("not a sidecar command: {other:?}")),
        }
    }

    fn config(argv: &[&str]) -> Result<Config, String> {
        Config::new(&args(argv)?, |_| {})
    }

    #[test]
    fn defaults_match_thanos() {
        let c = config(&["sidecar"]).unwrap();
        assert_eq!(c.http.address.to_string(), "0.0.0.0:10902");
        assert_eq!(c.http.grace_period, Duration::from_secs(120));
        assert_eq!(c.grpc.address.to_string(), "0.0.0.0:10901");
        assert_eq!(c.grpc.max_connection_age, Duration::from_secs(3600));
        assert_eq!(c.prometheus.url.as_str(), "http://localhost:9090/");
        assert_eq!(c.prometheus.ready_timeout, Duration::from_secs(600));
        assert_eq!(c.prometheus.get_config_interval, Duration::from_secs(30));
        assert_eq!(c.prometheus.get_config_timeout, Duration::from_secs(30));
        assert_eq!(c.tsdb_path, PathBuf::from("./data"));
        assert_eq!(c.reloader.watch_interval, Duration::from_secs(180));
        assert_eq!(c.reloader.retry_interval, Duration::from_secs(5));
        assert_eq!(c.reloader.method, ReloadMethod::Http);
        assert_eq!(c.reloader.process_name, "prometheus");
        assert_eq!(c.shipper.meta_file_name, "thanos.shipper.json");
        assert_eq!(c.shipper.upload_concurrency, 1);
        assert!(!c.shipper.hash_sha256);
        assert_eq!(c.store.min_time, TimeOrDuration::DEFAULT);
        assert!(c.objstore.is_none());
        let a = args(&["sidecar"]).unwrap();
        assert_eq!(a.log_level(), log::LevelFilter::Info);
        assert_eq!(a.log_format(), LogFormat::Logfmt);
    }

    #[test]
    fn values_reach_the_config() {
        let c = config(&[
            "--log.level=debug",
            "sidecar",
            "--prometheus.url=http://127.0.0.1:9091/prom",
            "--prometheus.get_config_interval=1.5s",
            "--http-grace-period=1m30s",
            "--min-time=-1d",
            "--store.limits.request-series=0x10",
            "--shipper.upload-concurrency=2.9",
            "--hash-func=SHA256",
            "--reloader.method=signal",
            "--reloader.rule-dir=/a",
            "--reloader.rule-dir=/b",
            "--objstore.config=type: FILESYSTEM\nconfig: {directory: /tmp/bucket}",
        ])
        .unwrap();
        assert_eq!(c.prometheus.url.as_str(), "http://127.0.0.1:9091/prom");
        assert_eq!(
            c.prometheus.get_config_interval,
            Duration::from_millis(1500)
        );
        assert_eq!(c.http.grace_period, Duration::from_secs(90));
        assert_eq!(c.store.min_time, TimeOrDuration::Relative(-86_400_000));
        assert_eq!(c.store.request_series_limit, 16);
        assert_eq!(c.shipper.upload_concurrency, 2);
        assert!(c.shipper.hash_sha256);
        assert_eq!(c.reloader.method, ReloadMethod::Signal);
        assert_eq!(
            c.reloader.rule_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(c.objstore.is_some());
    }

    #[test]
    fn usage_errors_name_the_flag_in_thanos_spelling() {
        for (argv, needle) in [
            (
                vec!["sidecar", "--reloader.method=foo"],
                "enum value must be one of http,signal, got 'foo'",
            ),
            (
                vec!["sidecar", "--prometheus.get_config_interval=soon"],
                "--prometheus.get_config_interval",
            ),
            (
                vec!["sidecar", "--http-grace-period=1.5h"],
                "--http-grace-period",
            ),
            (
                vec!["sidecar", "--prometheus.url=ftp://x"],
                "--prometheus.url",
            ),
            (vec!["sidecar", "--min-time="], "--min-time"),
            (vec!["sidecar", "--log.level=verbose"], "--log.level"),
            (
                vec!["sidecar", "--tsdb.path=/a", "--tsdb.path=/b"],
                "--tsdb.path",
            ),
            (vec![], "expected command"),
        ] {
            let err = args(&argv).unwrap_err();
            assert!(err.contains(needle), "{argv:?}: {err}");
            assert!(
                !err.contains("---") && !err.contains("prometheus--"),
                "{err}"
            );
        }
    }

    #[test]
    fn stage_two_errors() {
        let err = config(&[
            "sidecar",
            "--objstore.config=x",
            "--objstore.config-file=/x",
        ])
        .unwrap_err();
        assert_eq!(
            err,
            "both objstore.config-file and objstore.config flags set."
        );
        let err = config(&["--auto-gomemlimit.ratio=2", "sidecar"]).unwrap_err();
        assert!(err.contains("--auto-gomemlimit.ratio"), "{err}");
        let err =
            config(&["sidecar", "--objstore.config-file=/nonexistent/bucket.yml"]).unwrap_err();
        assert!(err.contains("/nonexistent/bucket.yml"), "{err}");
        let err = config(&[
            "sidecar",
            "--objstore.config=type: FILESYSTEM\nconfig: {directory: $(THANOS_SIDECAR_UNSET_VAR)}",
        ])
        .unwrap_err();
        assert!(err.contains("THANOS_SIDECAR_UNSET_VAR"), "{err}");
        let err = config(&["sidecar", "--grpc-server-tls-cert=/c"]).unwrap_err();
        assert!(err.contains("--grpc-server-tls-key"), "{err}");
        let err = config(&["sidecar", "--grpc-server-tls-client-ca=/ca"]).unwrap_err();
        assert!(err.contains("--grpc-server-tls-client-ca"), "{err}");
        let err = config(&["sidecar", "--grpc-server-tls-curves=P999"]).unwrap_err();
        assert!(err.contains("P999"), "{err}");
        let err = config(&["sidecar", "--grpc-address=10901"]).unwrap_err();
        assert_eq!(
            err,
            "--grpc-address=10901: address 10901: missing port in address"
        );
        let err = config(&["sidecar", "--http-address=[::1:10902"]).unwrap_err();
        assert!(err.starts_with("--http-address=[::1:10902: "), "{err}");
    }

    /// Each YAML the flags bring in: its errors name the flag (and file),
    /// the key path and the line.
    #[test]
    fn yaml_errors_name_the_source_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bucket.yml");
        std::fs::write(&file, "type: S3\nconfig:\n  bucket: [a, b]\n").unwrap();
        let file_flag = format!("--objstore.config-file={}", file.display());
        let bomb = dir.path().join("bomb.yml");
        std::fs::write(&bomb, format!("type: S3\nconfig: {}", "[".repeat(100_000))).unwrap();
        let bomb_flag = format!("--objstore.config-file={}", bomb.display());
        for (flag, expected) in [
            (
                file_flag.as_str(),
                format!("{file_flag}: invalid objstore config for type S3: config.bucket: invalid type: sequence, expected a string at line 3 column 11"),
            ),
            (
                bomb_flag.as_str(),
                format!("{bomb_flag}: invalid objstore config: YAML nested deeper than 128 levels at line 2 column 136"),
            ),
            (
                "--objstore.config=type: S3\nconfig: {insecure: \"yes\"}",
                "--objstore.config: invalid objstore config for type S3: config.insecure: invalid type: string (redacted), expected a boolean at line 2 column 20".into(),
            ),
            (
                "--tracing.config=type: [JAEGER]\nconfig: {",
                "--tracing.config: invalid tracing config:".into(),
            ),
            (
                "--prometheus.http-client=basic_auth:\n  username: [u]",
                "--prometheus.http-client: invalid Prometheus HTTP client config: basic_auth.username: invalid type: sequence, expected a string at line 2 column 13".into(),
            ),
            (
                "--request.logging-config=options: {level: [INFO]}",
                "--request.logging-config: options.level: invalid type: sequence, expected a string at line 1 column 18".into(),
            ),
        ] {
            let err = config(&["sidecar", flag]).unwrap_err();
            assert!(err.starts_with(&expected), "{flag}: {err}");
        }
    }

    #[test]
    fn help_and_version() {
        let argv = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
        assert!(matches!(parse(&argv(&["--version"])), Ok(Parsed::Version)));
        match parse(&argv(&["sidecar", "--help"])) {
            Ok(Parsed::Help(text)) => assert!(text.contains("--prometheus.url=URL")),
            other => panic!("{other:?}"),
        }
    }
}
