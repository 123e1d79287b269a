//! The request-logging YAML (`--request.logging-config(-file)`), decoded strictly as Thanos does.

use serde::Deserialize;

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
    pub fn parse(yaml: &str) -> Result<Option<RequestLogging>, String> {
        if yaml.trim().is_empty() {
            return Ok(None);
        }
        let config: RequestLogging = serde_yaml::from_str(yaml)
            .map_err(|e| format!("invalid request logging config: {e}"))?;
        for (key, options) in [
            ("options", &config.options),
            ("http.options", &config.http.options),
            ("grpc.options", &config.grpc.options),
        ] {
            options.validate(key)?;
        }
        Ok(Some(config))
    }
}

impl Options {
    fn validate(&self, key: &str) -> Result<(), String> {
        let d = &self.decision;
        if d.log_start && !d.log_end {
            return Err(format!(
                "request logging config: {key}.decision: log_start without log_end is not supported"
            ));
        }
        if (d.log_start || d.log_end) && self.level.is_empty() {
            return Err(format!(
                "request logging config: {key}.level is required when a decision is enabled"
            ));
        }
        if !matches!(
            self.level.as_str(),
            "" | "INFO" | "DEBUG" | "ERROR" | "WARNING"
        ) {
            return Err(format!(
                "request logging config: {key}.level {:?} is not one of INFO, DEBUG, ERROR, WARNING",
                self.level
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_thanos_example() {
        let yaml = "grpc:\n  config:\n  - service: thanos.Store\n    method: Series\n  options:\n    level: INFO\n    decision:\n      log_start: true\n      log_end: true\n";
        let c = RequestLogging::parse(yaml).unwrap().unwrap();
        assert_eq!(c.grpc.config[0].method, "Series");
        assert_eq!(RequestLogging::parse("").unwrap(), None);
    }

    #[test]
    fn errors_name_the_key() {
        for (yaml, needle) in [
            ("grpc: {optins: {}}\n", "optins"),
            ("options: {level: LOUD}\n", "options.level"),
            (
                "grpc: {options: {decision: {log_end: true}}}\n",
                "grpc.options.level",
            ),
            (
                "options: {level: INFO, decision: {log_start: true}}\n",
                "log_start",
            ),
        ] {
            let err = RequestLogging::parse(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
    }
}
