//! Log lines in Thanos' shapes: `--log.format=logfmt|json|journald`, `--log.level`.
//!
//! Every line carries `ts` (UTC, RFC 3339 with nanoseconds), `caller`
//! (`file.rs:line`), `level` and `msg`, then the key-value pairs the call
//! site attached (`log::warn!(err:% = e; "...")`), so log pipelines built for
//! Thanos keep parsing. journald gets no `ts` (the journal stamps each line)
//! and a `<N>` syslog priority prefix, which systemd reads from stderr.
//!
//! No secret reaches a line: libraries log at warn and above only (ureq's
//! and attohttpc's debug lines quote request URLs, userinfo included, which
//! Thanos' libraries never print), and every line, ours and theirs, has the
//! password of any `scheme://user:password@` URL replaced by `xxxxx`, as Go's
//! `url.Redacted` writes it.

use std::io::Write;

use log::kv::{Key, Value, VisitSource};

/// `--log.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
    Journald,
}

pub fn init(level: log::LevelFilter, format: LogFormat, debug_name: Option<String>) {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level.min(log::LevelFilter::Warn))
        .filter_module(env!("CARGO_CRATE_NAME"), level)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let line = render(record, format, debug_name.as_deref(), chrono::Utc::now());
            writeln!(buf, "{line}")
        });
    // Only fails if a logger is already set (tests that initialise twice).
    let _ = builder.try_init();
}

/// gRPC's C core reports to stderr in a format of its own (failed TLS
/// handshakes, mostly); through our logger its lines take --log.format like
/// every other. Only its errors: its info and debug lines are internals
/// ("grpc epoll fd: 8") that Go's gRPC keeps to itself in Thanos at every
/// level. `redirect_log` sets the core's own threshold from the logger's
/// level at the time of the call, so that level is lowered around it.
pub fn route_grpc_core() {
    let level = log::max_level();
    log::set_max_level(level.min(log::LevelFilter::Warn));
    grpcio::redirect_log();
    log::set_max_level(level);
}

/// A config decoder's error without the values it quotes (`invalid type:
/// string "…"`): a misplaced password or key (e.g. `basic_auth: hunter2`)
/// would otherwise end up in the log. Keys and positions stay.
pub fn redact_quoted(message: &str) -> String {
    static QUOTED: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match QUOTED.get_or_init(|| regex::Regex::new(r#"(string|value) "(?:[^"\\]|\\.)*""#).ok()) {
        Some(quoted) => quoted.replace_all(message, "$1 (redacted)").into_owned(),
        None => message.to_string(),
    }
}

/// `scheme://user:password@host` with the password as `xxxxx`, wherever
/// such a URL sits in the text.
pub fn redact_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    static USERINFO: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    if !text.contains("://") {
        return text.into();
    }
    // RFC 3986 userinfo: no `/`, `?`, `#` or `@` inside; the password is
    // what follows the first `:`.
    match USERINFO.get_or_init(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*):[^/?#@\s]*@").ok()
    }) {
        Some(userinfo) => userinfo.replace_all(text, "${1}:xxxxx@"),
        None => text.into(),
    }
}

fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug | log::Level::Trace => "debug",
    }
}

fn render(
    record: &log::Record,
    format: LogFormat,
    debug_name: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let caller = format!(
        "{}:{}",
        record
            .file()
            .and_then(|f| f.rsplit('/').next())
            .unwrap_or("?"),
        record.line().unwrap_or(0)
    );
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(8);
    if format != LogFormat::Journald {
        pairs.push((
            "ts".into(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ));
    }
    pairs.push(("caller".into(), caller));
    pairs.push(("level".into(), level_name(record.level()).into()));
    if let Some(name) = debug_name {
        pairs.push(("name".into(), name.into()));
    }
    let mut attached = Vec::with_capacity(8);
    let _ = record.key_values().visit(&mut Collect(&mut attached));
    // A Thanos logger made with `log.With(logger, "service", …, "component",
    // …)` writes those two before `msg`; ours are attached as key-values.
    let (context, rest): (Vec<_>, Vec<_>) = attached
        .into_iter()
        .partition(|(k, _)| k == "service" || k == "component");
    pairs.extend(context);
    pairs.push(("msg".into(), record.args().to_string()));
    pairs.extend(rest);
    for (_, value) in &mut pairs {
        if let std::borrow::Cow::Owned(redacted) = redact_userinfo(value) {
            *value = redacted;
        }
    }

    match format {
        LogFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = pairs
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            serde_json::Value::Object(map).to_string()
        }
        LogFormat::Logfmt => logfmt(&pairs),
        LogFormat::Journald => {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            format!("<{priority}>{}", logfmt(&pairs))
        }
    }
}

struct Collect<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

fn logfmt(pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(128);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        let needs_quotes = v.is_empty()
            || v.chars()
                .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
        if needs_quotes {
            out.push_str(&format!("{v:?}"));
        } else {
            out.push_str(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat) -> String {
        let kvs: &[(&str, &str)] = &[("err", "connection refused"), ("component", "http")];
        let record = log::Record::builder()
            .args(format_args!("heartbeat failed"))
            .level(log::Level::Warn)
            .file(Some("src/heartbeat.rs"))
            .line(Some(42))
            .key_values(&kvs)
            .build();
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        render(&record, format, Some("edge-1"), now)
    }

    #[test]
    fn logfmt_line() {
        assert_eq!(
            line(LogFormat::Logfmt),
            "ts=2026-01-02T03:04:05.123456789Z caller=heartbeat.rs:42 level=warn name=edge-1 \
             component=http msg=\"heartbeat failed\" err=\"connection refused\""
        );
    }

    #[test]
    fn json_line() {
        let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json)).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "heartbeat failed");
        assert_eq!(v["err"], "connection refused");
        assert_eq!(v["caller"], "heartbeat.rs:42");
        assert_eq!(v["ts"], "2026-01-02T03:04:05.123456789Z");
    }

    #[test]
    fn url_passwords_are_redacted_in_message_and_values() {
        let kvs: &[(&str, &str)] = &[("url", "https://u:s3cret@h:9090/x")];
        let record = log::Record::builder()
            .args(format_args!(
                "sending request GET http://admin:pa55@127.0.0.1:9090/api?x=1 and ftp://only@h/"
            ))
            .level(log::Level::Debug)
            .key_values(&kvs)
            .build();
        let l = render(&record, LogFormat::Logfmt, None, chrono::Utc::now());
        assert!(!l.contains("s3cret") && !l.contains("pa55"), "{l}");
        assert!(
            l.contains("http://admin:xxxxx@127.0.0.1:9090/api?x=1"),
            "{l}"
        );
        assert!(l.contains("https://u:xxxxx@h:9090/x"), "{l}");
        assert!(l.contains("ftp://only@h/"), "{l}");
        assert_eq!(redact_userinfo("no url: a:b@c"), "no url: a:b@c");
    }

    #[test]
    fn journald_line_has_priority_and_no_timestamp() {
        let l = line(LogFormat::Journald);
        assert!(l.starts_with("<4>caller=heartbeat.rs:42 level=warn"), "{l}");
        assert!(!l.contains("ts="));
    }
}
