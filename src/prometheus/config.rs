//! `--prometheus.http-client(-file)`: the HTTP client config YAML, as
//! Thanos reads it.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

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

impl TransportConfig {
    /// The Go transport keys ureq has no equivalent for, set to something
    /// other than Thanos' default: an operator who set them expects a change
    /// this client cannot make. (`disable_compression` is not among them:
    /// this client never asks for compressed answers.)
    fn without_effect(&self) -> Vec<&'static str> {
        let d = TransportConfig::default();
        [
            (
                "idle_conn_timeout",
                self.idle_conn_timeout != d.idle_conn_timeout,
            ),
            (
                "response_header_timeout",
                self.response_header_timeout != d.response_header_timeout,
            ),
            (
                "expect_continue_timeout",
                self.expect_continue_timeout != d.expect_continue_timeout,
            ),
            (
                "max_conns_per_host",
                self.max_conns_per_host != d.max_conns_per_host,
            ),
            (
                "tls_handshake_timeout",
                self.tls_handshake_timeout != d.tls_handshake_timeout,
            ),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
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

/// Why the HTTP client config (`--prometheus.http-client(-file)`) was
/// refused, or the client it describes could not be built. The text is
/// what the operator sees after the flag's name.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or a key of the wrong type.
    #[error("invalid Prometheus HTTP client config: {0}")]
    Yaml(String),
    /// Keys that exclude each other, listed as the message names them.
    #[error("at most one of {0} must be configured")]
    Exclusive(&'static str),
    /// One of the client certificate and key without the other.
    #[error("{set} {} is set without {missing}", path.display())]
    Unpaired {
        set: &'static str,
        path: PathBuf,
        missing: &'static str,
    },
    /// The TLS files (CA, client certificate and key) cannot be used; the
    /// text names the key and the file.
    #[error("{0}")]
    TlsFiles(String),
    #[error("tls_config.server_name {name:?}: {reason}")]
    ServerName { name: String, reason: String },
    /// rustls refused the settings themselves (not a file).
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    #[error("invalid proxy_url: {0}")]
    Proxy(String),
}

impl HttpClientConfig {
    /// Parses and validates the YAML; `warn` receives each key that was ignored.
    pub fn parse(yaml: &str, mut warn: impl FnMut(String)) -> Result<Self, ConfigError> {
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
        .map_err(ConfigError::Yaml)?;
        config.validate()?;
        for key in config.transport_config.without_effect() {
            warn(format!(
                "transport_config.{key} in the Prometheus HTTP client config has no effect in this sidecar"
            ));
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(auth) = &self.basic_auth {
            if auth.password.is_some() && auth.password_file.is_some() {
                return Err(ConfigError::Exclusive(
                    "basic_auth.password and basic_auth.password_file",
                ));
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(ConfigError::Exclusive("bearer_token and bearer_token_file"));
        }
        if self.basic_auth.is_some()
            && (self.bearer_token.is_some() || self.bearer_token_file.is_some())
        {
            return Err(ConfigError::Exclusive(
                "basic_auth, bearer_token and bearer_token_file",
            ));
        }
        match (&self.tls_config.cert_file, &self.tls_config.key_file) {
            (Some(c), None) => Err(ConfigError::Unpaired {
                set: "tls_config.cert_file",
                path: c.clone(),
                missing: "tls_config.key_file",
            }),
            (None, Some(k)) => Err(ConfigError::Unpaired {
                set: "tls_config.key_file",
                path: k.clone(),
                missing: "tls_config.cert_file",
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_keys_without_effect_are_named_when_set() {
        let mut warnings = Vec::new();
        HttpClientConfig::parse(
            "transport_config:\n  max_idle_conns_per_host: 8\n  dialer_timeout: 1000000000\n  idle_conn_timeout: 30000000000\n  max_conns_per_host: 4\n  disable_compression: true\n",
            |w| warnings.push(w),
        )
        .unwrap();
        assert_eq!(
            warnings,
            [
                "transport_config.idle_conn_timeout in the Prometheus HTTP client config has no effect in this sidecar",
                "transport_config.max_conns_per_host in the Prometheus HTTP client config has no effect in this sidecar",
            ]
        );
        // Thanos' defaults written out change nothing, so say nothing.
        let mut warnings = Vec::new();
        HttpClientConfig::parse(
            "transport_config: {idle_conn_timeout: 90000000000, tls_handshake_timeout: 10000000000}\n",
            |w| warnings.push(w),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
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
        assert_eq!(
            err.to_string(),
            "at most one of bearer_token and bearer_token_file must be configured"
        );
        let err = HttpClientConfig::parse("basic_auth: {username: u}\nbearer_token: a\n", |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("basic_auth"), "{err}");
        let err = HttpClientConfig::parse("tls_config: {cert_file: /c}\n", |_| {}).unwrap_err();
        assert!(matches!(err, ConfigError::Unpaired { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "tls_config.cert_file /c is set without tls_config.key_file"
        );
        let err = HttpClientConfig::parse("basic_auth: [1]\n", |_| {})
            .unwrap_err()
            .to_string();
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
            let err = HttpClientConfig::parse(yaml, |_| {}).unwrap_err().to_string();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
        let bomb = format!("tls_config: {}", "[".repeat(100_000));
        let err = HttpClientConfig::parse(&bomb, |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("YAML nested deeper than 128 levels at line 1"),
            "{err}"
        );
    }

    #[test]
    fn secrets_stay_out_of_errors_and_debug_output() {
        // A password where a map belongs: the error names the key, not the value.
        let err = HttpClientConfig::parse("basic_auth: hunter2-secret\n", |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("basic_auth"), "{err}");
        assert!(!err.contains("hunter2-secret"), "{err}");
        let err = HttpClientConfig::parse("bearer_token: {a: \"tok\\\"en-secret\"}\n", |_| {})
            .unwrap_err()
            .to_string();
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
