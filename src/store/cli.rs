//! `thanos-sidecar store info|series|labels|values`: a StoreAPI client for
//! operators, to see what any Thanos StoreAPI endpoint (this sidecar, a Go
//! sidecar, a store gateway) answers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use grpcio::{CallOption, ChannelBuilder, EnvBuilder};

use crate::proto::services::{InfoClient, StoreClient};
use crate::proto::{info, store, store_types};
use crate::store::{histogram, matchers, xor};

pub const USAGE: &str = "usage: thanos-sidecar store info|series|labels|values --store=HOST:PORT \
[--match=SELECTOR] [--min-time=TIME] [--max-time=TIME] [--label=NAME] [--samples] [--timeout=DURATION]

  info     the endpoint's Info (falls back to the legacy Store/Info)
  series   series with chunk and sample counts, first/last timestamps; --samples prints every sample:
           \"<t> <value>\" for floats; for native histograms a \"# <ENCODING> chunk\" line with the
           layout its samples share (schema, zero threshold, counter-reset header, custom bounds),
           then \"<t> {count:N, sum:S, [lower,upper]:n, ...}\" per sample as Prometheus prints
           histograms: negative, zero and positive buckets in ascending order, empty ones left
           out, \"(\" and \")\" for exclusive bounds; \"<t> stale\" for a stale marker
  labels   label names
  values   values of --label=NAME

TIME is RFC 3339, a duration relative to now (-1h) or epoch milliseconds; the default range is
the last hour.
SELECTOR is a PromQL selector: up, up{job=\"x\"} or {__name__=~\"a.*\"}.
";

#[derive(Debug)]
struct Options {
    command: String,
    store: String,
    matchers: Vec<store_types::LabelMatcher>,
    min_time: i64,
    max_time: i64,
    label: String,
    samples: bool,
    timeout: Duration,
}

/// Runs the subcommand on `args` (after `store`); output to stdout, the
/// error message for the caller to print.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let env = Arc::new(
        EnvBuilder::new()
            .cq_count(1)
            .name_prefix("store-cli")
            .build(),
    );
    let channel = ChannelBuilder::new(env)
        .max_receive_message_len(i32::MAX)
        .connect(&opts.store);
    let call = || CallOption::default().timeout(opts.timeout);
    let client = StoreClient::new(channel.clone());
    match opts.command.as_str() {
        "info" => {
            match InfoClient::new(channel).info_opt(&info::InfoRequest::new(), call()) {
                Ok(resp) => print_info(&resp),
                Err(e) => {
                    eprintln!(
                        "thanos.info.Info/Info failed ({e}); trying the legacy thanos.Store/Info"
                    );
                    let resp = client
                        .info_opt(&store::InfoRequest::new(), call())
                        .map_err(|e| format!("thanos.Store/Info: {e}"))?;
                    println!("labels: {}", format_labels(&resp.labels));
                    println!("min_time: {}\nmax_time: {}", resp.min_time, resp.max_time);
                    println!("store_type: {:?}", resp.storeType.enum_value_or_default());
                }
            }
            Ok(())
        }
        "series" => {
            let mut req = store::SeriesRequest::new();
            req.min_time = opts.min_time;
            req.max_time = opts.max_time;
            req.matchers = opts.matchers.clone();
            let mut stream = client
                .series_opt(&req, call())
                .map_err(|e| format!("Series: {e}"))?;
            let (mut series, mut samples) = (0u64, 0u64);
            futures::executor::block_on(async {
                while let Some(frame) = stream.next().await {
                    let frame = frame.map_err(|e| format!("Series: {e}"))?;
                    let list: Vec<&store_types::Series> = if frame.has_series() {
                        vec![frame.series()]
                    } else if frame.has_batch() {
                        frame.batch().series.iter().collect()
                    } else if frame.has_warning() {
                        eprintln!("warning: {}", frame.warning());
                        Vec::new()
                    } else {
                        Vec::new()
                    };
                    for s in list {
                        series += 1;
                        samples += print_series(s, opts.samples)?;
                    }
                }
                Ok::<(), String>(())
            })?;
            println!("# {series} series, {samples} samples");
            Ok(())
        }
        "labels" => {
            let mut req = store::LabelNamesRequest::new();
            req.start = opts.min_time;
            req.end = opts.max_time;
            req.matchers = opts.matchers;
            let resp = client
                .label_names_opt(&req, call())
                .map_err(|e| format!("LabelNames: {e}"))?;
            for name in resp.names {
                println!("{name}");
            }
            Ok(())
        }
        "values" => {
            let mut req = store::LabelValuesRequest::new();
            req.label = opts.label;
            req.start = opts.min_time;
            req.end = opts.max_time;
            req.matchers = opts.matchers;
            let resp = client
                .label_values_opt(&req, call())
                .map_err(|e| format!("LabelValues: {e}"))?;
            for value in resp.values {
                println!("{value}");
            }
            Ok(())
        }
        other => Err(format!("unknown store command {other:?}\n{USAGE}")),
    }
}

fn print_info(resp: &info::InfoResponse) {
    println!("component: {}", resp.ComponentType);
    for set in &resp.label_sets {
        println!("label_set: {}", format_labels(&set.labels));
    }
    if let Some(s) = resp.store.as_ref() {
        println!(
            "store: min_time={} max_time={} sharding={} without_replica_labels={}",
            s.min_time, s.max_time, s.supports_sharding, s.supports_without_replica_labels
        );
    }
}

fn format_labels(labels: &[crate::proto::labels::Label]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|l| {
            format!(
                "{}={}",
                matchers::promql_name(&l.name),
                matchers::go_quote(&l.value)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Prints one series; returns its sample count.
///
/// With `samples`, XOR chunks print `  <t> <value>` per sample, and each
/// native-histogram chunk a `  # <ENCODING> chunk ...` line with the layout
/// its samples share, then `  <t> {count:..., sum:..., <buckets>}` per
/// sample (see [`histogram::Chunk::render`]).
fn print_series(s: &store_types::Series, samples: bool) -> Result<u64, String> {
    let mut lines = Vec::new();
    let mut count = 0u64;
    let (mut first, mut last) = (None::<i64>, None::<i64>);
    let mut seen = |lo: i64, hi: i64| {
        first = Some(first.map_or(lo, |f| f.min(lo)));
        last = Some(last.map_or(hi, |l| l.max(hi)));
    };
    for c in &s.chunks {
        let Some(raw) = c.raw.as_ref() else { continue };
        let encoding = raw
            .type_
            .enum_value()
            .map_err(|n| format!("chunk encoding {n} is unknown; cannot decode"))?;
        let kind = match encoding {
            store_types::chunk::Encoding::XOR => {
                let points = xor::decode(&raw.data)?;
                count += points.len() as u64;
                if let (Some(p), Some(q)) = (points.first(), points.last()) {
                    seen(p.0, q.0);
                }
                if samples {
                    lines.extend(
                        points
                            .iter()
                            .map(|(t, v)| format!("  {t} {}", format_value(*v))),
                    );
                }
                continue;
            }
            store_types::chunk::Encoding::HISTOGRAM => histogram::Kind::Integer,
            store_types::chunk::Encoding::FLOAT_HISTOGRAM => histogram::Kind::Float,
        };
        let chunk = histogram::decode(&raw.data, kind)
            .map_err(|e| format!("{} chunk at {}: {e}", format_labels(&s.labels), c.min_time))?;
        count += chunk.samples.len() as u64;
        if let (Some(p), Some(q)) = (chunk.samples.first(), chunk.samples.last()) {
            seen(p.t, q.t);
        }
        if samples {
            let mut header = format!(
                "  # {encoding:?} chunk min_time={} max_time={} samples={} schema={} zero_threshold={} counter_reset={}",
                c.min_time,
                c.max_time,
                chunk.samples.len(),
                chunk.schema,
                histogram::go_g(chunk.zero_threshold),
                chunk.counter_reset.name(),
            );
            if chunk.schema == histogram::CUSTOM_BUCKETS_SCHEMA {
                let bounds: Vec<String> = chunk
                    .custom_values
                    .iter()
                    .map(|b| histogram::go_g(*b))
                    .collect();
                header.push_str(&format!(" custom_bounds=[{}]", bounds.join(",")));
            }
            lines.push(header);
            lines.extend(
                chunk
                    .samples
                    .iter()
                    .map(|h| format!("  {} {}", h.t, chunk.render(h))),
            );
        }
    }
    let stamp = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "{} chunks={} samples={count} first={} last={}",
        format_labels(&s.labels),
        s.chunks.len(),
        stamp(first),
        stamp(last)
    );
    for line in lines {
        println!("{line}");
    }
    Ok(count)
}

/// Values as Prometheus prints them: `+Inf`, `-Inf`, `NaN`, shortest decimal.
fn format_value(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let now = crate::values::now_ms();
    let mut opts = Options {
        command: String::new(),
        store: String::new(),
        matchers: Vec::new(),
        min_time: now - 3_600_000,
        max_time: now,
        label: String::new(),
        samples: false,
        timeout: Duration::from_secs(120),
    };
    for arg in args {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg.as_str(), None),
        };
        let need = || value.ok_or_else(|| format!("{key} needs a value: {key}=..."));
        match key {
            "--store" => opts.store = need()?.to_string(),
            "--match" => opts.matchers.extend(parse_selector(need()?)?),
            "--min-time" => opts.min_time = time(need()?, now)?,
            "--max-time" => opts.max_time = time(need()?, now)?,
            "--label" => opts.label = need()?.to_string(),
            "--timeout" => opts.timeout = crate::values::go_duration(need()?)?,
            "--samples" => opts.samples = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            cmd if !cmd.starts_with('-') && opts.command.is_empty() => {
                opts.command = cmd.to_string()
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    if opts.command.is_empty() || opts.store.is_empty() {
        return Err(USAGE.to_string());
    }
    if opts.command == "values" && opts.label.is_empty() {
        return Err("values needs --label=NAME".into());
    }
    Ok(opts)
}

/// RFC 3339, a duration relative to now, or milliseconds since the epoch
/// (what StoreAPI messages and `store info` show).
fn time(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    crate::values::time_or_duration(s).map(|t| t.at(now))
}

/// A PromQL series selector: `name`, `name{...}` or `{...}`.
pub fn parse_selector(s: &str) -> Result<Vec<store_types::LabelMatcher>, String> {
    let s = s.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (s[..i].trim(), &s[i..]),
        None => (s, ""),
    };
    let mut out = Vec::new();
    if !name.is_empty() {
        out.push(label_matcher(0, "__name__", name));
    }
    if rest.is_empty() {
        return Ok(out);
    }
    let body = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| format!("selector {s:?}: unbalanced braces"))?;
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut label = String::new();
        // Prometheus 3 spells names that are not legacy quoted: `"a.b"="c"`,
        // and a quoted name alone is the metric name: `{"my.metric"}`.
        let quoted = chars.peek().is_some_and(|c| *c == '"' || *c == '\'');
        if quoted {
            label = read_quoted(&mut chars, s)?;
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    label.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if quoted && chars.peek().is_none_or(|c| *c == ',') {
            out.push(label_matcher(0, "__name__", &label));
            continue;
        }
        let mut op = String::new();
        while let Some(&c) = chars.peek() {
            if "=!~".contains(c) {
                op.push(c);
                chars.next();
            } else {
                break;
            }
        }
        let t = match op.as_str() {
            "=" => 0,
            "!=" => 1,
            "=~" => 2,
            "!~" => 3,
            _ => {
                return Err(format!(
                    "selector {s:?}: bad operator {op:?} after {label:?}"
                ))
            }
        };
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if !chars.peek().is_some_and(|c| *c == '"' || *c == '\'') {
            return Err(format!("selector {s:?}: value of {label:?} must be quoted"));
        }
        let value = read_quoted(&mut chars, s)?;
        if label.is_empty() {
            return Err(format!("selector {s:?}: missing label name"));
        }
        out.push(label_matcher(t, &label, &value));
    }
    Ok(out)
}

/// A quoted string at `chars` (its opening quote next), with `\n`, `\t`
/// and `\<char>` escapes; `selector` is for the error message.
fn read_quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    selector: &str,
) -> Result<String, String> {
    let quote = chars.next();
    let mut value = String::new();
    loop {
        match chars.next() {
            None => return Err(format!("selector {selector:?}: unterminated string")),
            Some(c) if Some(c) == quote => return Ok(value),
            Some('\\') => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some(c) => value.push(c),
                None => return Err(format!("selector {selector:?}: unterminated string")),
            },
            Some(c) => value.push(c),
        }
    }
}

fn label_matcher(t: i32, name: &str, value: &str) -> store_types::LabelMatcher {
    let mut m = store_types::LabelMatcher::new();
    m.type_ = protobuf::EnumOrUnknown::from_i32(t);
    m.name = name.into();
    m.value = value.into();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triples(ms: &[store_types::LabelMatcher]) -> Vec<(i32, String, String)> {
        ms.iter()
            .map(|m| (m.type_.value(), m.name.clone(), m.value.clone()))
            .collect()
    }

    #[test]
    fn selectors() {
        assert_eq!(
            triples(&parse_selector("up").unwrap()),
            vec![(0, "__name__".into(), "up".into())]
        );
        assert_eq!(
            triples(&parse_selector(r#"up{job="a\"b", i!~'x.*' ,z=~"1|2",w!=""}"#).unwrap()),
            vec![
                (0, "__name__".into(), "up".into()),
                (0, "job".into(), "a\"b".into()),
                (3, "i".into(), "x.*".into()),
                (2, "z".into(), "1|2".into()),
                (1, "w".into(), "".into()),
            ]
        );
        // Prometheus 3's quoted (UTF-8) names.
        assert_eq!(
            triples(&parse_selector(r#"{"my.metric", "a.b"="c", 'x/y'!~"d"}"#).unwrap()),
            vec![
                (0, "__name__".into(), "my.metric".into()),
                (0, "a.b".into(), "c".into()),
                (3, "x/y".into(), "d".into()),
            ]
        );
        assert!(parse_selector("{job=x}").is_err());
        assert!(parse_selector("{job=\"x\"").is_err());
        assert!(parse_selector("{job>\"x\"}").is_err());
    }

    #[test]
    fn times_are_rfc3339_relative_or_milliseconds() {
        assert_eq!(time("1795585800000", 0).unwrap(), 1_795_585_800_000);
        assert_eq!(time("-1h", 10_000_000).unwrap(), 6_400_000);
        assert_eq!(time("2030-01-01T00:00:00Z", 0).unwrap(), 1_893_456_000_000);
        assert!(time("soon", 0).is_err());
    }
}
