//! The objstore YAML: `type`, `config` and `prefix`, as Thanos' `client/factory.go` reads them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub backend: Backend,
    /// Every object key becomes `<prefix>/<key>`; empty for none.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    Filesystem(FilesystemConfig),
    S3(Box<S3Config>),
    Gcs(Box<GcsConfig>),
    Azure(Box<AzureConfig>),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    #[serde(default)]
    pub directory: PathBuf,
}

/// Thanos' S3 keys with Thanos' defaults (`providers/s3/s3.go`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub disable_dualstack: bool,
    pub aws_sdk_auth: bool,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: String,
    pub insecure: bool,
    pub signature_version2: bool,
    pub put_user_metadata: BTreeMap<String, String>,
    pub http_config: S3HttpConfig,
    pub trace: S3Trace,
    pub list_objects_version: String,
    pub bucket_lookup_type: String,
    pub send_content_md5: bool,
    pub disable_multipart: bool,
    pub part_size: u64,
    pub sse_config: SseConfig,
    pub sts_endpoint: String,
    pub max_retries: i64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            endpoint: String::new(),
            region: String::new(),
            disable_dualstack: false,
            aws_sdk_auth: false,
            access_key: String::new(),
            secret_key: String::new(),
            session_token: String::new(),
            insecure: false,
            signature_version2: false,
            put_user_metadata: BTreeMap::new(),
            http_config: S3HttpConfig::default(),
            trace: S3Trace::default(),
            list_objects_version: String::new(),
            bucket_lookup_type: "auto".into(),
            send_content_md5: true,
            disable_multipart: false,
            part_size: 64 * 1024 * 1024,
            sse_config: SseConfig::default(),
            sts_endpoint: String::new(),
            max_retries: 0,
        }
    }
}

/// Thanos' GCS keys (`providers/gcs/gcs.go`); decoded strictly, as Thanos'
/// `yaml.UnmarshalStrict` does. `Debug` leaves out the service account key.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    pub bucket: String,
    /// A service account key, the JSON itself (not a path).
    pub service_account: String,
    pub use_grpc: bool,
    pub grpc_conn_pool_size: i64,
    /// Thanos' `exthttp.HTTPConfig`, the same keys as S3's.
    pub http_config: S3HttpConfig,
    /// Bytes per request of a resumable upload; 0 (or less) is the Go
    /// client's default, 16 MiB.
    pub chunk_size_bytes: i64,
    /// Attempts per request (Thanos passes it to `WithMaxAttempts`); 0 is the default.
    pub max_retries: i64,
}

impl std::fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field(
                "service_account",
                &if self.service_account.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("use_grpc", &self.use_grpc)
            .field("grpc_conn_pool_size", &self.grpc_conn_pool_size)
            .field("http_config", &self.http_config)
            .field("chunk_size_bytes", &self.chunk_size_bytes)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl GcsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |msg: &str| Err(ConfigError::invalid("GCS", msg));
        if self.bucket.is_empty() {
            return err(
                "missing Google Cloud Storage bucket name for stored blocks (config.bucket)",
            );
        }
        if self.use_grpc {
            return err("use_grpc: true is not supported by this sidecar (it speaks GCS' JSON API over HTTP only); remove config.use_grpc");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3HttpConfig {
    #[serde(deserialize_with = "model_duration")]
    pub idle_conn_timeout: Duration,
    #[serde(deserialize_with = "model_duration")]
    pub response_header_timeout: Duration,
    pub insecure_skip_verify: bool,
    #[serde(deserialize_with = "model_duration")]
    pub tls_handshake_timeout: Duration,
    #[serde(deserialize_with = "model_duration")]
    pub expect_continue_timeout: Duration,
    pub max_idle_conns: i64,
    pub max_idle_conns_per_host: i64,
    pub max_conns_per_host: i64,
    pub disable_compression: bool,
    pub tls_config: S3TlsConfig,
}

impl S3HttpConfig {
    /// A ureq agent with these settings as the HTTP backends (GCS, Azure)
    /// read them: idle connections as Go pools them, the TLS handshake's
    /// time as the connect timeout (at least 1 s), the response header's
    /// time for each read and write; the caller adds what its backend sets.
    pub fn agent_builder(&self) -> ureq::AgentBuilder {
        crate::prometheus::idle_pool(
            ureq::AgentBuilder::new(),
            self.max_idle_conns,
            self.max_idle_conns_per_host,
        )
        .timeout_connect(self.tls_handshake_timeout.max(Duration::from_secs(1)))
        .timeout_read(self.response_header_timeout)
        .timeout_write(self.response_header_timeout)
        .user_agent(crate::prometheus::USER_AGENT)
    }
}

impl Default for S3HttpConfig {
    fn default() -> Self {
        S3HttpConfig {
            idle_conn_timeout: Duration::from_secs(90),
            response_header_timeout: Duration::from_secs(120),
            insecure_skip_verify: false,
            tls_handshake_timeout: Duration::from_secs(10),
            expect_continue_timeout: Duration::from_secs(1),
            max_idle_conns: 100,
            max_idle_conns_per_host: 100,
            max_conns_per_host: 0,
            disable_compression: false,
            tls_config: S3TlsConfig::default(),
        }
    }
}

impl S3HttpConfig {
    /// The TLS keys that are set, by their path under `config`: the S3 and
    /// Azure clients here cannot honour them yet, and refuse them by name.
    pub fn tls_keys_set(&self) -> impl Iterator<Item = &'static str> {
        let tls = &self.tls_config;
        [
            (
                self.insecure_skip_verify,
                "http_config.insecure_skip_verify",
            ),
            (!tls.ca_file.is_empty(), "http_config.tls_config.ca_file"),
            (
                !tls.cert_file.is_empty(),
                "http_config.tls_config.cert_file",
            ),
            (!tls.key_file.is_empty(), "http_config.tls_config.key_file"),
            (
                !tls.server_name.is_empty(),
                "http_config.tls_config.server_name",
            ),
            (
                tls.insecure_skip_verify,
                "http_config.tls_config.insecure_skip_verify",
            ),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3TlsConfig {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    pub server_name: String,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Trace {
    pub enable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SseConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub kms_key_id: String,
    pub kms_encryption_context: BTreeMap<String, String>,
    pub encryption_key: String,
}

/// Thanos' Azure keys with Thanos' defaults (`providers/azure/azure.go`).
/// `Debug` is written by hand: the key, secret and connection string stay out.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    pub az_tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub storage_account: String,
    pub storage_account_key: String,
    pub storage_connection_string: String,
    pub storage_create_container: bool,
    pub container: String,
    pub endpoint: String,
    pub user_assigned_id: String,
    pub max_retries: i64,
    pub reader_config: AzureReaderConfig,
    pub pipeline_config: AzurePipelineConfig,
    /// The same keys as S3's (both are Thanos' `exthttp.HTTPConfig`).
    pub http_config: S3HttpConfig,
    /// Deprecated in Thanos (the SDK finds the resource); accepted, unused.
    pub msi_resource: String,
    pub azure_storage_account_type: String,
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            az_tenant_id: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            storage_account: String::new(),
            storage_account_key: String::new(),
            storage_connection_string: String::new(),
            storage_create_container: true,
            container: String::new(),
            endpoint: "blob.core.windows.net".into(),
            user_assigned_id: String::new(),
            max_retries: 0,
            reader_config: AzureReaderConfig::default(),
            pipeline_config: AzurePipelineConfig::default(),
            http_config: S3HttpConfig::default(),
            msi_resource: String::new(),
            azure_storage_account_type: String::new(),
        }
    }
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AzureConfig")
            .field("storage_account", &self.storage_account)
            .field("storage_account_key", &set(&self.storage_account_key))
            .field(
                "storage_connection_string",
                &set(&self.storage_connection_string),
            )
            .field("client_secret", &set(&self.client_secret))
            .field("az_tenant_id", &self.az_tenant_id)
            .field("client_id", &self.client_id)
            .field("container", &self.container)
            .field("endpoint", &self.endpoint)
            .field("storage_create_container", &self.storage_create_container)
            .field("user_assigned_id", &self.user_assigned_id)
            .field("max_retries", &self.max_retries)
            .field("reader_config", &self.reader_config)
            .field("pipeline_config", &self.pipeline_config)
            .field("http_config", &self.http_config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureReaderConfig {
    pub max_retry_requests: i64,
}

/// The Azure SDK's retry policy; zero durations mean the SDK's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzurePipelineConfig {
    pub max_tries: i64,
    #[serde(deserialize_with = "model_duration")]
    pub try_timeout: Duration,
    #[serde(deserialize_with = "model_duration")]
    pub retry_delay: Duration,
    #[serde(deserialize_with = "model_duration")]
    pub max_retry_delay: Duration,
}

impl AzureConfig {
    /// Thanos' checks, all reported at once as Thanos does, each naming its key.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut errs: Vec<&str> = Vec::new();
        if !self.user_assigned_id.is_empty() && !self.storage_account_key.is_empty() {
            errs.push(
                "user_assigned_id cannot be set when using storage_account_key authentication",
            );
        }
        if !self.user_assigned_id.is_empty() && !self.storage_connection_string.is_empty() {
            errs.push("user_assigned_id cannot be set when using storage_connection_string authentication");
        }
        if !self.user_assigned_id.is_empty() && !self.client_id.is_empty() {
            errs.push("user_assigned_id cannot be set when using client_id authentication");
        }
        let trio = [&self.az_tenant_id, &self.client_id, &self.client_secret];
        if trio.iter().any(|s| !s.is_empty()) && trio.iter().any(|s| s.is_empty()) {
            errs.push("az_tenant_id, client_id, and client_secret must be set together");
        }
        if !self.storage_account_key.is_empty() && !self.storage_connection_string.is_empty() {
            errs.push("storage_account_key and storage_connection_string cannot both be set");
        }
        if self.storage_account.is_empty() {
            errs.push("storage_account is required but not configured (config.storage_account)");
        }
        if self.container.is_empty() {
            errs.push("no container specified (config.container)");
        }
        if self.pipeline_config.max_tries < 0 {
            errs.push("the value of pipeline_config.max_tries must be greater than or equal to 0");
        }
        if self.reader_config.max_retry_requests < 0 {
            errs.push(
                "the value of reader_config.max_retry_requests must be greater than or equal to 0",
            );
        }
        if !matches!(
            self.azure_storage_account_type.as_str(),
            "" | "blob" | "datalake"
        ) {
            errs.push("azure_storage_account_type must be blob or datalake");
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::invalid("AZURE", errs.join(", ")))
        }
    }

    /// Thanos' `max_retries` fills the two specific counts left at zero.
    pub fn pipeline_tries(&self) -> i64 {
        match self.pipeline_config.max_tries {
            0 => self.max_retries.max(0),
            n => n,
        }
    }

    pub fn reader_retries(&self) -> i64 {
        match self.reader_config.max_retry_requests {
            0 => self.max_retries.max(0),
            n => n,
        }
    }
}

fn model_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::values::model_duration(&s).map_err(serde::de::Error::custom)
}

/// The top level, with `config` decoded as `C`: first as `IgnoredAny` to
/// learn the type, then as that type's config, straight from the text so
/// that errors keep the key path and line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw<C> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "Option::default")]
    config: Option<C>,
    #[serde(default)]
    prefix: String,
}

impl<C: serde::de::DeserializeOwned> Raw<C> {
    /// Thanos reads only the first YAML document; `None` when it is empty.
    fn parse(yaml: &str) -> Result<Option<Raw<C>>, String> {
        crate::yaml::decode(yaml, |mut docs| match docs.next() {
            Some(doc) => Option::<Raw<C>>::deserialize(doc),
            None => Ok(None),
        })
    }
}

/// Types Thanos knows but this sidecar does not implement.
const OTHER_THANOS_TYPES: [&str; 6] = ["SWIFT", "COS", "ALIYUNOSS", "BOS", "OCI", "OBS"];

impl Config {
    /// Parses the (already env-substituted) YAML; `Ok(None)` when it is empty (uploads off).
    pub fn parse(yaml: &str) -> Result<Option<Config>, ConfigError> {
        let Some(raw) = Raw::<serde::de::IgnoredAny>::parse(yaml).map_err(ConfigError::Syntax)?
        else {
            return Ok(None);
        };
        let prefix = raw.prefix.trim_matches('/').to_string();
        let backend = match raw.kind.to_ascii_uppercase().as_str() {
            "FILESYSTEM" => {
                let fs = typed::<FilesystemConfig>(yaml, "FILESYSTEM")?;
                if fs.directory.as_os_str().is_empty() {
                    return Err(ConfigError::MissingDirectory);
                }
                Backend::Filesystem(fs)
            }
            "S3" => {
                let s3 = typed::<S3Config>(yaml, "S3")?;
                s3.validate()?;
                Backend::S3(Box::new(s3))
            }
            "GCS" => {
                let gcs = typed::<GcsConfig>(yaml, "GCS")?;
                gcs.validate()?;
                Backend::Gcs(Box::new(gcs))
            }
            "AZURE" => {
                let az = typed::<AzureConfig>(yaml, "AZURE")?;
                az.validate()?;
                Backend::Azure(Box::new(az))
            }
            other if OTHER_THANOS_TYPES.contains(&other) => {
                return Err(ConfigError::NotImplemented(other.to_string()))
            }
            _ => return Err(ConfigError::UnknownType(raw.kind)),
        };
        Ok(Some(Config { backend, prefix }))
    }

    /// The bucket's name in metric labels, as Thanos names it.
    pub fn bucket_name(&self) -> String {
        match &self.backend {
            Backend::Filesystem(fs) => {
                let dir =
                    std::path::absolute(&fs.directory).unwrap_or_else(|_| fs.directory.clone());
                format!("fs: {}", dir.display())
            }
            Backend::S3(s3) => s3.bucket.clone(),
            // Thanos' GCS bucket names itself by the bucket alone.
            Backend::Gcs(gcs) => gcs.bucket.clone(),
            // Thanos' Azure bucket is named after its container.
            Backend::Azure(az) => az.container.clone(),
        }
    }
}

/// The `config` block decoded as the type's config; absent or null is all defaults.
fn typed<C: serde::de::DeserializeOwned + Default>(
    yaml: &str,
    kind: &'static str,
) -> Result<C, ConfigError> {
    let raw = Raw::<C>::parse(yaml).map_err(|message| ConfigError::Keys { kind, message })?;
    Ok(raw.and_then(|r| r.config).unwrap_or_default())
}

impl S3Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |msg: &str| Err(ConfigError::invalid("S3", msg));
        if self.endpoint.is_empty() {
            return err("no s3 endpoint in config file (config.endpoint)");
        }
        if self.aws_sdk_auth && !self.access_key.is_empty() {
            return err("aws_sdk_auth and access_key are mutually exclusive configurations");
        }
        if self.access_key.is_empty() != self.secret_key.is_empty() {
            return err("access_key and secret_key must be set together");
        }
        if !matches!(self.list_objects_version.as_str(), "" | "v1" | "v2") {
            return err(&format!(
                "list_objects_version: {:?} is not supported (\"\", v1 or v2)",
                self.list_objects_version
            ));
        }
        if !matches!(
            self.bucket_lookup_type.as_str(),
            "auto" | "virtual-hosted" | "path"
        ) {
            return err(&format!(
                "bucket_lookup_type: {:?} is not supported (auto, virtual-hosted or path)",
                self.bucket_lookup_type
            ));
        }
        match self.sse_config.kind.as_str() {
            "" | "SSE-S3" => {}
            "SSE-KMS" if !self.sse_config.kms_key_id.is_empty() => {}
            "SSE-KMS" => {
                return err("sse_config.kms_key_id is required with sse_config.type SSE-KMS")
            }
            "SSE-C" if !self.sse_config.encryption_key.is_empty() => {}
            "SSE-C" => {
                return err("sse_config.encryption_key is required with sse_config.type SSE-C")
            }
            other => {
                return err(&format!(
                    "sse_config.type: {other:?} is not supported (SSE-S3, SSE-KMS or SSE-C)"
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem() {
        let c = Config::parse("type: filesystem\nconfig:\n  directory: /tmp/b\nprefix: /foo/\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.prefix, "foo");
        assert_eq!(
            c.backend,
            Backend::Filesystem(FilesystemConfig {
                directory: "/tmp/b".into()
            })
        );
        assert_eq!(c.bucket_name(), "fs: /tmp/b");
        let err = Config::parse("type: FILESYSTEM\nconfig: {}\n").unwrap_err();
        assert!(matches!(err, ConfigError::MissingDirectory), "{err:?}");
        assert!(err.to_string().contains("config.directory"), "{err}");
    }

    #[test]
    fn errors_say_which_part_was_refused() {
        let kind = |yaml: &str| match Config::parse(yaml).unwrap_err() {
            ConfigError::Syntax(_) => "syntax".to_string(),
            ConfigError::Keys { kind, .. } => format!("keys {kind}"),
            ConfigError::Invalid { kind, .. } => format!("invalid {kind}"),
            ConfigError::NotImplemented(t) => format!("not implemented {t}"),
            ConfigError::UnknownType(t) => format!("unknown {t}"),
            other => format!("{other:?}"),
        };
        assert_eq!(kind("type: [\n"), "syntax");
        assert_eq!(kind("type: S3\nconfig: {bucket: [1]}\n"), "keys S3");
        assert_eq!(kind("type: gcs\nconfig: {}\n"), "invalid GCS");
        assert_eq!(kind("type: swift\n"), "not implemented SWIFT");
        assert_eq!(kind("type: tape\n"), "unknown tape");
    }

    #[test]
    fn s3_defaults_and_values() {
        let c = Config::parse(
            "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  http_config:\n    idle_conn_timeout: 2m\n",
        )
        .unwrap()
        .unwrap();
        let Backend::S3(s3) = c.backend else {
            panic!("not S3")
        };
        assert_eq!(s3.bucket, "b");
        assert!(s3.insecure);
        assert!(s3.send_content_md5);
        assert_eq!(s3.part_size, 64 * 1024 * 1024);
        assert_eq!(s3.bucket_lookup_type, "auto");
        assert_eq!(s3.http_config.idle_conn_timeout, Duration::from_secs(120));
        assert_eq!(
            s3.http_config.response_header_timeout,
            Duration::from_secs(120)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "type: S3\nconfig: {bucket: b, endpoint: e, bukket: x}\n",
                "bukket",
            ),
            ("type: S3\nconfig: {bucket: b}\n", "config.endpoint"),
            (
                "type: S3\nconfig: {endpoint: e, access_key: a}\n",
                "secret_key",
            ),
            (
                "type: S3\nconfig: {endpoint: e, bucket_lookup_type: dns}\n",
                "bucket_lookup_type",
            ),
            (
                "type: S3\nconfig: {endpoint: e, sse_config: {type: SSE-KMS}}\n",
                "kms_key_id",
            ),
            (
                "type: S3\nconfig: {endpoint: e, http_config: {idle_conn_timeout: 1.5m}}\n",
                "1.5m",
            ),
            ("type: S3\nconfig: {endpoint: e}\nprefixx: a\n", "prefixx"),
            ("type: SWIFT\nconfig: {container: c}\n", "SWIFT"),
            ("type: FTP\n", "FTP"),
        ];
        for (yaml, needle) in cases {
            let err = Config::parse(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
    }

    /// Go's yaml.v2 says `line 3: cannot unmarshal !!seq into string`; the
    /// key path and the line are what an operator needs to find the typo.
    #[test]
    fn wrong_types_name_the_key_path_and_line() {
        let cases = [
            (
                "type: S3\nconfig:\n  endpoint: e\n  bucket: [a, b]\n",
                "config.bucket: invalid type: sequence, expected a string at line 4 column 11",
            ),
            (
                "type: S3\nconfig:\n  endpoint: e\n  insecure: \"yes\"\n",
                "config.insecure: invalid type: string (redacted), expected a boolean at line 4 column 13",
            ),
            (
                "type: s3\nconfig: {endpoint: e,\n  part_size: -5}\n",
                "config.part_size: invalid type: integer `-5`, expected u64 at line 3 column 14",
            ),
            (
                "type: S3\nconfig:\n  endpoint: e\n  http_config:\n    tls_config: {insecure_skip_verify: 1}\n",
                "config.http_config.tls_config.insecure_skip_verify: invalid type: integer `1`, expected a boolean at line 5 column 40",
            ),
            (
                "type: FILESYSTEM\nconfig:\n  directory: {a: b}\n",
                "config.directory: invalid type: map",
            ),
            ("type: [S3]\n", "type: invalid type: sequence, expected a string at line 1 column 7"),
        ];
        for (yaml, needle) in cases {
            let err = Config::parse(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn gcs_defaults_and_values() {
        let c = Config::parse("type: GCS\nconfig:\n  bucket: blocks\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.bucket_name(), "blocks");
        let Backend::Gcs(gcs) = c.backend else {
            panic!("not GCS")
        };
        assert_eq!(
            *gcs,
            GcsConfig {
                bucket: "blocks".into(),
                ..GcsConfig::default()
            }
        );
        assert_eq!(gcs.http_config.idle_conn_timeout, Duration::from_secs(90));
        let c = Config::parse(
            "type: gcs\nconfig:\n  bucket: b\n  service_account: '{\"type\": \"service_account\"}'\n  chunk_size_bytes: 262144\n  max_retries: 2\n  use_grpc: false\n  grpc_conn_pool_size: 4\n  http_config: {response_header_timeout: 30s, tls_config: {ca_file: /x}}\n",
        )
        .unwrap()
        .unwrap();
        let Backend::Gcs(gcs) = c.backend else {
            panic!("not GCS")
        };
        assert_eq!(gcs.chunk_size_bytes, 262144);
        assert_eq!(gcs.max_retries, 2);
        assert_eq!(gcs.grpc_conn_pool_size, 4);
        assert_eq!(
            gcs.http_config.response_header_timeout,
            Duration::from_secs(30)
        );
        let debug = format!("{gcs:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("\"type\""),
            "{debug}"
        );
    }

    #[test]
    fn gcs_errors_name_the_key() {
        let cases = [
            ("type: GCS\nconfig: {service_account: x}\n", "config.bucket"),
            ("type: GCS\n", "config.bucket"),
            (
                "type: GCS\nconfig: {bucket: b, use_grpc: true}\n",
                "use_grpc",
            ),
            (
                "type: GCS\nconfig: {bucket: b, chunk_size: 5}\n",
                "chunk_size",
            ),
            ("type: GCS\nconfig: {bucket: b, no_auth: true}\n", "no_auth"),
            (
                "type: GCS\nconfig:\n  bucket: b\n  chunk_size_bytes: big\n",
                "config.chunk_size_bytes: invalid type: string",
            ),
            (
                "type: GCS\nconfig: {bucket: b, http_config: {idle_conn_timeout: soon}}\n",
                "soon",
            ),
        ];
        for (yaml, needle) in cases {
            let err = Config::parse(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn nesting_bombs_fail_fast() {
        let flow = format!("type: S3\nconfig: {}", "[".repeat(100_000));
        let block = format!(
            "type: S3\nconfig:\n  bucket:\n    {}x\n",
            "- ".repeat(100_000)
        );
        for yaml in [flow, block] {
            let err = Config::parse(&yaml).unwrap_err().to_string();
            assert!(
                err.contains("YAML nested deeper than 128 levels at line"),
                "{err}"
            );
        }
    }

    #[test]
    fn empty_means_uploads_off_and_only_first_document_counts() {
        assert_eq!(Config::parse("").unwrap(), None);
        assert_eq!(Config::parse("# nothing\n").unwrap(), None);
        assert_eq!(Config::parse("~\n").unwrap(), None);
        let c = Config::parse("type: FILESYSTEM\nconfig: {directory: /a}\n---\ntype: nonsense\n")
            .unwrap();
        assert!(c.is_some());
        // No config block, or a null one, is all defaults.
        for yaml in ["type: S3\n", "type: S3\nconfig:\n", "type: S3\nconfig: ~\n"] {
            let err = Config::parse(yaml).unwrap_err().to_string();
            assert!(err.contains("no s3 endpoint"), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn azure_defaults_and_errors() {
        let c = Config::parse(
            "type: AZURE\nconfig:\n  storage_account: acc\n  storage_account_key: a2V5\n  container: thanos\n  max_retries: 2\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.bucket_name(), "thanos");
        let Backend::Azure(az) = c.backend else {
            panic!("not AZURE")
        };
        assert_eq!(az.endpoint, "blob.core.windows.net");
        assert!(az.storage_create_container);
        assert_eq!((az.pipeline_tries(), az.reader_retries()), (2, 2));
        assert_eq!(
            az.http_config.response_header_timeout,
            Duration::from_secs(120)
        );
        assert!(!format!("{az:?}").contains("a2V5"));

        let cases = [
            ("type: AZURE\nconfig: {container: c, storage_account_key: k}\n", "storage_account is required"),
            ("type: AZURE\nconfig: {storage_account: a}\n", "no container specified (config.container)"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, storage_account_key: k, storage_connection_string: s}\n", "storage_account_key and storage_connection_string cannot both be set"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, client_id: i}\n", "az_tenant_id, client_id, and client_secret must be set together"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, storage_account_key: k, user_assigned_id: u}\n", "user_assigned_id cannot be set when using storage_account_key"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, pipeline_config: {max_tries: -1}}\n", "pipeline_config.max_tries"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, reader_config: {max_retry_requests: -1}}\n", "reader_config.max_retry_requests"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, storage_acount_key: k}\n", "storage_acount_key"),
            ("type: AZURE\nconfig: {storage_account: a, container: c, pipeline_config: {try_timeout: 5}}\n", "config.pipeline_config: not a valid duration string: \"5\""),
        ];
        for (yaml, needle) in cases {
            let err = Config::parse(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
        // Several problems are reported together, as Thanos does.
        let err = Config::parse("type: azure\nconfig: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("storage_account is required") && err.contains("no container"),
            "{err}"
        );
    }
}
