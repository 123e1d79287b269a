//! Regex matchers read as Go reads them, with a real Prometheus as the
//! oracle: its `/api/v1/series` refuses (400) exactly the patterns the
//! sidecar refuses with InvalidArgument — before asking Prometheus — and
//! selects the same series; on external labels, which the sidecar matches
//! itself, a pattern keeps or ends the call as Prometheus matches the same
//! value in a series.

use std::collections::BTreeSet;
use std::time::Duration;

use grpcio::RpcStatusCode;
use thanos_sidecar::proto::services::StoreClient;
use thanos_sidecar::proto::{store, store_types};
use thanos_sidecar::store::matchers::go_quote;

use crate::support::grpc::{collect, connect};
use crate::support::{http_get, url_escape, Prometheus, PrometheusOptions, Sidecar};

/// External labels, each value also a `v` of a series: what Prometheus
/// selects by `v=~P` says whether `P` matches the external value.
const EXTERNAL: &[(&str, &str)] = &[
    ("e_kelvin", "\u{212a}"),
    ("e_long_s", "ſ"),
    ("e_brace", "x{2}"),
    ("e_digit", "٣"),
    ("e_dotstar", ".*"),
    ("e_word", "a_b"),
    ("e_greek", "αβ"),
    ("e_space", "a b"),
    ("e_aaa", "aaa"),
];

/// The `v` values of the series `rx_values{v=…}`.
fn values() -> Vec<String> {
    let mut v: Vec<String> = [
        "a", "aa", "b", "ab", "A", "x", "xx", "xxx", "5", "é", "É", "α", "K", "k", "s", "S",
        "日本", "{", "*", "\\", "a\nb", "a-b", "0a", "_",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(999));
    v.push("x".repeat(1000));
    v.extend(EXTERNAL.iter().map(|(_, value)| value.to_string()));
    v
}

/// Patterns whose verdict Go 1.19 (Prometheus 2.42's) and Go 1.26 (the
/// reference here) share. Left out: `(?<n>…)` and `(?<=…)` (Go 1.22+ reads
/// a named group there), `\p{greek}` and `\p{Letter}` (Go 1.25+),
/// `\p{Old_Italic}` (refused by Go 1.25+); and what 2.42 reads differently
/// because it compiles `^(?:…)$` before parsing the value alone: `\Qab`
/// (the quote takes in `)$`), a trailing `\` (it escapes the `)`), nesting
/// at the depth limit.
const PATTERNS: &[&str] = &[
    // Accepted.
    "a",
    "a*",
    "a+",
    "a{2}",
    "a{2,}",
    "x{1000}",
    "x{999,1000}",
    "(x{2}){500}",
    ".*",
    ".+",
    r"\Q.*\E",
    r"\Qx{2}\E",
    r"x\{2\}",
    "x{2}",
    "x{,2}",
    "x{01}",
    "{",
    r"\0?a",
    r"\141",
    r"\x{61}+",
    r"\x61\x62",
    "[[:alpha:]]+",
    "[[:^alpha:]]",
    "[[:word:]]+",
    r"\pN",
    r"\p{Greek}+",
    r"\PL",
    r"\p{Han}+",
    r"[\p{Greek}a]+",
    r"\d",
    r"\w+",
    r"\W",
    r"\s",
    "(?i)k",
    "(?i)K",
    "(?i)s",
    "(?i)[k]",
    "(?i)[^k]",
    r"(?i)\w",
    r"(?i)\W",
    "(?i)é",
    "(?i)αβ",
    "(?P<n>a)+",
    "(?:a|b)+",
    "a|",
    "",
    "(?U)a+",
    "(?s:.)",
    "(?m)^a$",
    r"\ba",
    r"a\b",
    r"é\b",
    r"\Ba",
    r"\.\*",
    "[.*]+",
    "[^a]",
    "a b",
    r"a\ b",
    "[a-c&&b]+",
    "[]a]",
    "[a-]+",
    r"[\d-]+",
    "a*(?i)*",
    r"a*\Q\E*",
    "^*a",
    r"\_",
    // Refused.
    "a**",
    "a++",
    "a*?*",
    "x{2}{3}",
    "x{2}*",
    "a{1001}",
    "x{1001,}",
    "x{2,1}",
    "(x{2}){501}",
    "(?x)a",
    "(?u)a",
    "(?i-)a",
    r"\C",
    r"\Z",
    r"\e",
    r"\1",
    r"\8",
    r"\x{110000}",
    "(?=a)",
    "(?!a)",
    "(?#c)",
    "[z-a]",
    "[a--b]",
    "(",
    ")",
    "[a",
    "[]",
    r"\p{Foo}",
    r"\p{sc=Greek}",
    r"\pX",
    "*",
    "+a",
    "a|*",
    "(?P<a-b>x)",
    "(?P=n)",
    r"[\b]",
    r"\Q\E*",
];

fn om_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Rig {
    prometheus: Prometheus,
    _sidecar: Sidecar,
    store: StoreClient,
    /// Data window, seconds.
    start: i64,
    end: i64,
}

fn start_rig() -> Rig {
    let options = PrometheusOptions {
        external_labels: Some(EXTERNAL.to_vec()),
        scrape_self: false,
        ..Default::default()
    };
    let mut prometheus = Prometheus::prepare(options);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // A whole 2 h block window, two windows back.
    let start = (now / 7200 - 2) * 7200;
    let mut om = String::from("# TYPE rx_values gauge\n");
    for n in 0..20 {
        for v in values() {
            om.push_str(&format!(
                "rx_values{{v=\"{}\"}} {n} {}\n",
                om_escape(&v),
                start + n * 15
            ));
        }
        // No `v` at all: what `v=~""` selects too.
        om.push_str(&format!("rx_values{{w=\"1\"}} {n} {}\n", start + n * 15));
    }
    om.push_str("# EOF\n");
    prometheus.create_blocks(&om);
    prometheus.resume();
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        "--prometheus.get_config_interval=500ms".into(),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "not ready: {}",
        sidecar.log()
    );
    let store = StoreClient::new(connect(sidecar.grpc_port, "test-re"));
    Rig {
        prometheus,
        _sidecar: sidecar,
        store,
        start,
        end: start + 3600,
    }
}

/// Prometheus' verdict on `rx_values{v=~pattern}`: the `v` of each series
/// selected (`None` for the series without one), or its error.
fn oracle(rig: &Rig, pattern: &str) -> Result<BTreeSet<Option<String>>, String> {
    let selector = format!("{{__name__=\"rx_values\", v=~{}}}", go_quote(pattern));
    let (code, body) = http_get(&format!(
        "{}/api/v1/series?match[]={}&start={}&end={}",
        rig.prometheus.url(),
        url_escape(&selector),
        rig.start,
        rig.end
    ));
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
    match code {
        200 => Ok(json["data"]
            .as_array()
            .expect("series list")
            .iter()
            .map(|s| s["v"].as_str().map(str::to_string))
            .collect()),
        400 => Err(json["error"].as_str().unwrap_or_default().to_string()),
        _ => panic!("{pattern:?}: Prometheus answered {code}: {body}"),
    }
}

/// The kind in Go's `error parsing regexp: <kind>: `<expr>``; the
/// expression differs where Prometheus 2.42 quotes its `^(?:…)$`.
fn reason(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("error parsing regexp: ")?;
    Some(rest.rsplit_once(": `")?.0)
}

fn matcher(t: i32, name: &str, value: &str) -> store_types::LabelMatcher {
    let mut m = store_types::LabelMatcher::new();
    m.type_ = protobuf::EnumOrUnknown::from_i32(t);
    m.name = name.into();
    m.value = value.into();
    m
}

const RE: i32 = 2;

/// The sidecar's Series for `rx_values` and `name=~pattern`, as for
/// `oracle`, or the status code and message it ended with.
fn series(
    rig: &Rig,
    name: &str,
    pattern: &str,
    skip_chunks: bool,
) -> Result<BTreeSet<Option<String>>, (RpcStatusCode, String)> {
    let mut req = store::SeriesRequest::new();
    req.min_time = rig.start * 1000;
    req.max_time = rig.end * 1000;
    req.skip_chunks = skip_chunks;
    req.matchers = vec![
        matcher(0, "__name__", "rx_values"),
        matcher(RE, name, pattern),
    ];
    let frames =
        collect(rig.store.series(&req)).map_err(|s| (s.code(), s.message().to_string()))?;
    let mut out = BTreeSet::new();
    for f in frames {
        let batch = if f.has_series() {
            vec![f.series().clone()]
        } else {
            f.batch().series.to_vec()
        };
        for s in batch {
            let v = s.labels.iter().find(|l| l.name == "v");
            out.insert(v.map(|l| l.value.clone()));
        }
    }
    Ok(out)
}

#[test]
fn series_regexes_are_read_as_prometheus_reads_them() {
    let rig = start_rig();
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for pattern in PATTERNS {
        let want = oracle(&rig, pattern);
        match &want {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        for skip_chunks in [false, true] {
            let got = series(&rig, "v", pattern, skip_chunks);
            let ok = match (&want, &got) {
                (Ok(want), Ok(got)) => want == got,
                // Refused here (not by Prometheus: the message names the
                // matcher), for the reason Prometheus gives.
                (Err(prom), Err((RpcStatusCode::INVALID_ARGUMENT, msg))) => {
                    msg.starts_with(&format!("v=~{}: ", go_quote(pattern)))
                        && reason(msg).is_some()
                        && reason(msg) == reason(prom)
                }
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{pattern:?} (skip_chunks {skip_chunks}): Prometheus {want:?}, sidecar {got:?}"
                ));
            }
        }
        // On an external label the sidecar matches the regex itself.
        for (name, value) in EXTERNAL {
            let got = series(&rig, name, pattern, true);
            let matches = want.as_ref().map(|w| w.contains(&Some(value.to_string())));
            let refusal = format!("{name}=~{}: error parsing regexp: ", go_quote(pattern));
            let ok = match (matches, &got) {
                // Kept: every `rx_values` series; ended: none.
                (Ok(matches), Ok(got)) => matches != got.is_empty(),
                (Err(_), Err((code, msg))) => {
                    *code == RpcStatusCode::INVALID_ARGUMENT && msg.starts_with(&refusal)
                }
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{pattern:?} on {name}={value:?}: Prometheus: {matches:?}, sidecar: {got:?}"
                ));
            }
        }
    }
    // Both kinds are exercised, or the table went wrong.
    assert!(
        accepted > 40 && refused > 30,
        "{accepted} accepted, {refused} refused"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
