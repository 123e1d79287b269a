//! The request-logging YAML (`--request.logging-config(-file)`), decoded strictly as Thanos does.

use serde::Deserialize;

use crate::grpc::request_log::RequestLog;

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogging {
    pub options: Options,
    pub http: Section<HttpRule>,
    pub grpc: Section<GrpcRule>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub level: String,
    pub decision: Decision,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Decision {
    pub log_start: bool,
    pub log_end: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Section<R> {
    pub options: Options,
    pub config: Vec<R>,
}

impl<R> Default for Section<R> {
    fn default() -> Self {
        Section {
            options: Options::default(),
            config: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRule {
    pub path: String,
    pub port: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcRule {
    pub service: String,
    pub method: String,
}

impl RequestLogging {
    /// Decodes the YAML and resolves what it asks of gRPC calls, as Thanos'
    /// `logging.NewGRPCOption` does: the global `options`, replaced whole by
    /// `grpc.options` unless that is empty (no level, no decision); both
    /// decisions off means no request logging (the level is not checked
    /// then); else the level must be one of Thanos' four names, and
    /// `log_start` needs `log_end`. The `http` section is accepted and
    /// unused: the sidecar logs no HTTP requests, as in Thanos.
    pub fn parse(yaml: &str) -> Result<Option<RequestLog>, String> {
        if yaml.trim().is_empty() {
            return Ok(None);
        }
        let config: RequestLogging = crate::yaml::from_str(yaml)?;
        let (key, options) = if config.grpc.options.is_empty() {
            ("options", &config.options)
        } else {
            ("grpc.options", &config.grpc.options)
        };
        let err = |why: &str| Err(format!("{key}: {why}"));
        // Thanos checks the global block first, then the one it uses.
        for (block, o) in [("options", &config.options), (key, options)] {
            if o.level.is_empty() && !o.decision.is_off() {
                return Err(format!("{block}: level field is empty"));
            }
        }
        if options.decision.is_off() {
            return Ok(None);
        }
        if !matches!(
            options.level.as_str(),
            "INFO" | "DEBUG" | "ERROR" | "WARNING"
        ) {
            return err(&format!(
                "the format of level is invalid. Expected INFO/DEBUG/ERROR/WARNING, got this {}",
                options.level
            ));
        }
        if options.decision.log_start && !options.decision.log_end {
            return err("log decision combination is not supported");
        }
        Ok(Some(RequestLog {
            log_start: options.decision.log_start,
            methods: config
                .grpc
                .config
                .iter()
                .map(|rule| format!("/{}/{}", rule.service, rule.method))
                .collect(),
        }))
    }
}

impl Options {
    fn is_empty(&self) -> bool {
        self.level.is_empty() && self.decision.is_off()
    }
}

impl Decision {
    fn is_off(&self) -> bool {
        !self.log_start && !self.log_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_as_thanos_does() {
        let yaml = "grpc:\n  config:\n  - service: thanos.Store\n    method: Series\n  options:\n    level: INFO\n    decision:\n      log_start: true\n      log_end: true\n";
        let log = RequestLogging::parse(yaml).unwrap().unwrap();
        assert_eq!(log.methods, vec!["/thanos.Store/Series".to_string()]);
        assert!(log.log_start);
        assert_eq!(RequestLogging::parse("").unwrap(), None);
        // Global options serve gRPC unless grpc.options says anything.
        let global = "options: {level: ERROR, decision: {log_end: true}}\n";
        let log = RequestLogging::parse(global).unwrap().unwrap();
        assert!(!log.log_start && log.methods.is_empty());
        let overridden =
            "options: {level: ERROR, decision: {log_end: true}}\ngrpc: {options: {level: ERROR}}\n";
        assert_eq!(RequestLogging::parse(overridden).unwrap(), None);
        // Both decisions off: no logging, and the level is not looked at.
        assert_eq!(
            RequestLogging::parse("options: {level: BOGUS}\n").unwrap(),
            None
        );
        // The http section is accepted and logs nothing; its options are not checked.
        let http = "http: {options: {decision: {log_end: true}}, config: [{path: /metrics, port: 10902}]}\n";
        assert_eq!(RequestLogging::parse(http).unwrap(), None);
    }

    #[test]
    fn errors_are_thanos_and_name_the_key() {
        for (yaml, expected) in [
            (
                "grpc: {optins: {}}\n",
                "grpc: unknown field `optins`, expected `options` or `config` at line 1 column 8",
            ),
            (
                "options:\n  decision: {log_end: \"yes\"}\n",
                "options.decision.log_end: invalid type: string (redacted), expected a boolean at line 2 column 23",
            ),
            (
                "grpc:\n  config:\n  - service: [a]\n",
                "grpc.config[0].service: invalid type: sequence, expected a string at line 3 column 14",
            ),
            (
                "options: {level: WARN, decision: {log_end: true}}\n",
                "options: the format of level is invalid. Expected INFO/DEBUG/ERROR/WARNING, got this WARN",
            ),
            (
                "grpc: {options: {decision: {log_end: true}}}\n",
                "grpc.options: level field is empty",
            ),
            (
                "options: {decision: {log_end: true}}\n",
                "options: level field is empty",
            ),
            (
                "options: {level: INFO, decision: {log_start: true}}\n",
                "options: log decision combination is not supported",
            ),
        ] {
            let err = RequestLogging::parse(yaml).unwrap_err();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn nesting_bomb_fails_fast() {
        let err = RequestLogging::parse(&format!("grpc: {}", "{a: ".repeat(100_000))).unwrap_err();
        assert!(
            err.starts_with("YAML nested deeper than 128 levels at line 1"),
            "{err}"
        );
    }
}
