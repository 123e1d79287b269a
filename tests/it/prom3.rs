//! Prometheus 3 data through the StoreAPI: integer and float native
//! histograms, and UTF-8 metric and label names, written with remote write
//! and compared with what Prometheus itself answers (a direct streamed
//! remote read, its query and metadata APIs, and a real Thanos Querier when
//! `THANOS_BIN` is set). Each test skips, with a note, on Prometheus 2.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use thanos_sidecar::proto::services::StoreClient;
use thanos_sidecar::proto::{prom_types, store, store_types};
use thanos_sidecar::store::matchers::{Matcher, Op};
use thanos_sidecar::store::remote_read::{self, FrameReader};
use thanos_sidecar::store::xor;

use crate::store::{labels_of, matcher, series_of, Labels, EQ, NEQ, RE};
use crate::support::grpc::{collect, connect};
use crate::support::prometheus::major_version;
use crate::support::remote_write::{self, float_histogram, int_histogram, sample};
use crate::support::{
    http_get, url_escape, wait_for, Prometheus, PrometheusOptions, Sidecar, ThanosQuery,
};

/// False, with one line saying why, when the Prometheus under test is 2.x.
fn needs_prometheus3(test: &str) -> bool {
    let major = major_version();
    if major < 3 {
        eprintln!(
            "{test}: skipped: needs Prometheus 3 (native histograms over remote write, \
             UTF-8 names); this is Prometheus {major} (set PROMETHEUS_BIN)"
        );
    }
    major >= 3
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Rig {
    prometheus: Prometheus,
    sidecar: Sidecar,
    store: StoreClient,
}

/// A Prometheus taking remote write, filled by `fill` before the sidecar
/// starts (so its first look at the TSDB already sees the data).
fn start_rig(fill: impl FnOnce(&Prometheus)) -> Rig {
    let prometheus = Prometheus::start(PrometheusOptions {
        scrape_self: false,
        extra_args: vec!["--web.enable-remote-write-receiver".into()],
        ..PrometheusOptions::default()
    });
    fill(&prometheus);
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        "--prometheus.get_config_interval=500ms".into(),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "not ready: {}",
        sidecar.log()
    );
    let store = StoreClient::new(connect(sidecar.grpc_port, "prom3-grpc"));
    Rig {
        prometheus,
        sidecar,
        store,
    }
}

fn external() -> Labels {
    vec![
        ("cluster".into(), "test".into()),
        ("replica".into(), "0".into()),
    ]
}

const SAMPLES: i64 = 200;
const STEP_MS: i64 = 10_000;

/// `it_hist{kind="int"}` (integer, schema 0) and `it_hist{kind="float"}`
/// (float, schema 1), SAMPLES samples each ending about now, both growing
/// like counters and changing bucket layout halfway; returns the first
/// and last timestamps.
fn write_histograms(prometheus: &Prometheus) -> (i64, i64) {
    let first = now_ms() / 1000 * 1000 - SAMPLES * STEP_MS;
    let mut int = remote_write::series(&[("__name__", "it_hist"), ("kind", "int")]);
    let mut float = remote_write::series(&[("__name__", "it_hist"), ("kind", "float")]);
    for i in 0..SAMPLES {
        let t = first + i * STEP_MS;
        let n = i as u64;
        let (spans, buckets): (&[(i32, u32)], usize) = if i < SAMPLES / 2 {
            (&[(0, 4)], 4)
        } else {
            (&[(0, 3), (2, 2)], 5)
        };
        let counts: Vec<u64> = (0..buckets as u64).map(|k| (k + 1) * n + k).collect();
        int.histograms
            .push(int_histogram(t, 0, n, spans, &counts, n as f64 * 3.5));
        let counts: Vec<f64> = (0..buckets)
            .map(|k| (k + 1) as f64 * i as f64 * 0.25)
            .collect();
        float.histograms.push(float_histogram(
            t,
            1,
            i as f64 * 0.5,
            spans,
            &counts,
            i as f64 * 1.25,
        ));
    }
    remote_write::write(&prometheus.url(), vec![int, float]).expect("remote write");
    (first, first + (SAMPLES - 1) * STEP_MS)
}

/// A chunk as compared here: time range, StoreAPI encoding, bytes.
type ChunkView = (i64, i64, i32, Vec<u8>);

/// The chunks of a direct streamed remote read by `kind`, encodings
/// shifted to StoreAPI's numbering (remote read counts from UNKNOWN=0).
fn direct_remote_read(
    prometheus: &Prometheus,
    min: i64,
    max: i64,
) -> BTreeMap<String, Vec<ChunkView>> {
    let m = Matcher::new(Op::Eq, "__name__", "it_hist").expect("matcher");
    let body = remote_read::encode_request(&remote_read::request(min, max, &[m]))
        .expect("remote read request");
    let resp = ureq::post(&format!("{}/api/v1/read", prometheus.url()))
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-protobuf")
        .set("X-Prometheus-Remote-Read-Version", "0.1.0")
        .send_bytes(&body)
        .expect("remote read");
    assert!(
        resp.header("Content-Type")
            .is_some_and(|t| t.starts_with(remote_read::STREAMED_CONTENT_TYPE)),
        "streamed answer"
    );
    let mut frames = FrameReader::new(resp.into_reader());
    let mut out: BTreeMap<String, Vec<ChunkView>> = BTreeMap::new();
    while let Some(frame) = frames.next_frame().expect("frame") {
        for s in frame.chunked_series {
            let kind = s
                .labels
                .iter()
                .find(|l| l.name == "kind")
                .map(|l| l.value.clone())
                .expect("kind label");
            out.entry(kind)
                .or_default()
                .extend(s.chunks.iter().map(|c: &prom_types::Chunk| {
                    (
                        c.min_time_ms,
                        c.max_time_ms,
                        c.type_.value() - 1,
                        c.data.clone(),
                    )
                }));
        }
    }
    out
}

/// The sample count every Prometheus chunk starts with.
fn chunk_samples(data: &[u8]) -> i64 {
    i64::from(u16::from_be_bytes([data[0], data[1]]))
}

#[test]
fn native_histograms_pass_through_series_byte_for_byte() {
    if !needs_prometheus3("native_histograms_pass_through_series_byte_for_byte") {
        return;
    }
    let mut range = (0, 0);
    let rig = start_rig(|p| range = write_histograms(p));
    let (first, last) = range;
    let (min, max) = (first - 1000, last + 1000);

    let mut req = store::SeriesRequest::new();
    req.min_time = min;
    req.max_time = max;
    req.matchers = vec![matcher(EQ, "__name__", "it_hist")];
    let series = series_of(&collect(rig.store.series(&req)).expect("Series"));
    let mut got: BTreeMap<String, Vec<ChunkView>> = BTreeMap::new();
    for s in &series {
        let labels = labels_of(s);
        let kind = labels
            .iter()
            .find(|(n, _)| n == "kind")
            .map(|(_, v)| v.clone())
            .expect("kind label");
        let mut want_labels = external();
        want_labels.push(("__name__".into(), "it_hist".into()));
        want_labels.push(("kind".into(), kind.clone()));
        want_labels.sort();
        assert_eq!(labels, want_labels);
        for c in &s.chunks {
            let raw = c.raw.as_ref().expect("raw chunk");
            assert_eq!(raw.hash, xxhash_rust::xxh64::xxh64(&raw.data, 0), "hash");
            got.entry(kind.clone()).or_default().push((
                c.min_time,
                c.max_time,
                raw.type_.value(),
                raw.data.clone(),
            ));
        }
    }
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["float", "int"]);
    let histogram = store_types::chunk::Encoding::HISTOGRAM as i32;
    let float_histogram = store_types::chunk::Encoding::FLOAT_HISTOGRAM as i32;
    for (kind, encoding) in [("int", histogram), ("float", float_histogram)] {
        let chunks = &got[kind];
        assert!(
            chunks.iter().all(|c| c.2 == encoding),
            "{kind}: encodings {:?}, want {encoding}",
            chunks.iter().map(|c| c.2).collect::<Vec<_>>()
        );
        assert_eq!(
            chunks.iter().map(|c| chunk_samples(&c.3)).sum::<i64>(),
            SAMPLES,
            "{kind}: every sample"
        );
        assert_eq!(chunks.first().map(|c| c.0), Some(first), "{kind}");
        assert_eq!(chunks.last().map(|c| c.1), Some(last), "{kind}");
    }
    let direct = direct_remote_read(&rig.prometheus, min, max);
    assert_eq!(got, direct, "chunks differ from a direct remote read");

    // `store series --samples` says what each histogram chunk holds.
    let out = crate::support::sidecar::command()
        .args(["store", "series", "--samples", "--match=it_hist"])
        .arg(format!("--store=127.0.0.1:{}", rig.sidecar.grpc_port))
        .arg(format!("--min-time={min}"))
        .arg(format!("--max-time={max}"))
        .output()
        .expect("run store series");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (kind, encoding) in [("int", "HISTOGRAM"), ("float", "FLOAT_HISTOGRAM")] {
        let header = format!(
            r#"{{__name__="it_hist", cluster="test", kind="{kind}", replica="0"}} chunks={} samples={SAMPLES} first={first} last={last}"#,
            got[kind].len()
        );
        assert!(stdout.contains(&header), "{header} in\n{stdout}");
        for (lo, hi, _, data) in &got[kind] {
            let line = format!(
                "  # {encoding} chunk min_time={lo} max_time={hi} samples={} (histogram samples are not decoded)",
                chunk_samples(data)
            );
            assert!(stdout.contains(&line), "{line} in\n{stdout}");
        }
    }
    assert!(
        stdout.ends_with(&format!("# 2 series, {} samples\n", 2 * SAMPLES)),
        "{stdout}"
    );
}

/// A real Thanos Querier (`THANOS_BIN`) reading native histograms from the
/// sidecar computes what Prometheus computes.
#[test]
fn thanos_query_agrees_with_prometheus_on_native_histograms() {
    if !needs_prometheus3("thanos_query_agrees_with_prometheus_on_native_histograms") {
        return;
    }
    let Some(thanos) = ThanosQuery::binary() else {
        return;
    };
    let mut range = (0, 0);
    let rig = start_rig(|p| range = write_histograms(p));
    let query = ThanosQuery::start(
        &thanos,
        rig.sidecar.grpc_port,
        &["--query.replica-label=replica"],
        rig.prometheus.dir(),
    );
    let time = format!("{:.3}", range.1 as f64 / 1000.0);
    let ask = |base: &str, q: &str| -> serde_json::Value {
        let url = format!("{base}/api/v1/query?query={}&time={time}", url_escape(q));
        let (code, body) = http_get(&url);
        assert_eq!(code, 200, "{url}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let thanos_url = query.url();
    assert!(
        wait_for(Duration::from_secs(30), || {
            let q = url_escape("histogram_count(it_hist)");
            let (code, body) =
                http_get(&format!("{thanos_url}/api/v1/query?query={q}&time={time}"));
            code == 200
                && serde_json::from_str::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["data"]["result"].as_array().is_some_and(|r| r.len() == 2))
        }),
        "the querier never answered from the sidecar; log:\n{}",
        query.log()
    );
    // kind → value; the querier's answer carries no external labels after
    // dedup, and Prometheus' never does.
    let values = |v: serde_json::Value| -> BTreeMap<String, f64> {
        v["data"]["result"]
            .as_array()
            .expect("vector")
            .iter()
            .map(|s| {
                let kind = s["metric"]["kind"].as_str().unwrap_or("").to_string();
                let value = s["value"][1]
                    .as_str()
                    .unwrap_or("")
                    .parse()
                    .unwrap_or(f64::NAN);
                (kind, value)
            })
            .collect()
    };
    for q in [
        "histogram_quantile(0.9, it_hist)",
        "histogram_count(it_hist)",
        "histogram_sum(it_hist)",
        "histogram_quantile(0.5, rate(it_hist[5m]))",
        "histogram_count(increase(it_hist[10m]))",
    ] {
        let want = values(ask(&rig.prometheus.url(), q));
        let got = values(ask(&thanos_url, q));
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            vec!["float", "int"],
            "{q}: Prometheus answered {want:?}"
        );
        let close = want.len() == got.len()
            && want.iter().zip(&got).all(|((ka, a), (kb, b))| {
                ka == kb && (a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
            });
        assert!(close, "{q}: Thanos {got:?}, Prometheus {want:?}");
    }
}

/// Series with UTF-8 names: `my.metric{a.b=…}` and friends, including a
/// label `a/b` (which no path segment can carry unescaped) and a label
/// named `U__u` (which Prometheus 3 would read as an escaped name).
fn write_utf8_series(prometheus: &Prometheus) -> i64 {
    let t = now_ms() / 1000 * 1000 - 60_000;
    let sets: [&[(&str, &str)]; 3] = [
        &[
            ("__name__", "my.metric"),
            ("a.b", "c"),
            ("a/b", "x"),
            ("job", "j"),
        ],
        &[
            ("__name__", "my.metric"),
            ("a.b", "d"),
            ("job", "j"),
            ("ü", "ö"),
        ],
        &[("__name__", "other.metric"), ("a.b", "c"), ("U__u", "v")],
    ];
    let series = sets
        .iter()
        .map(|labels| {
            let mut s = remote_write::series(labels);
            s.samples = vec![sample(t, 1.0), sample(t + 15_000, 2.5)];
            s
        })
        .collect();
    remote_write::write(&prometheus.url(), series).expect("remote write");
    t
}

fn json_labels(v: &serde_json::Value) -> Labels {
    let mut labels: Labels = v
        .as_object()
        .expect("label set")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    labels.sort();
    labels
}

#[test]
fn utf8_names_pass_through_series_labels_and_matchers() {
    if !needs_prometheus3("utf8_names_pass_through_series_labels_and_matchers") {
        return;
    }
    let mut t = 0;
    let rig = start_rig(|p| t = write_utf8_series(p));
    let (start, end) = (t - 3_600_000, t + 60_000);
    let params = format!("start={}&end={}", start / 1000, end / 1000);
    let prom = |path: &str, selector: Option<&str>| -> serde_json::Value {
        let mut url = format!("{}{path}?{params}", rig.prometheus.url());
        if let Some(s) = selector {
            url.push_str(&format!("&match[]={}", url_escape(s)));
        }
        let (code, body) = http_get(&url);
        assert_eq!(code, 200, "{url}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["data"].clone()
    };

    // Series, with and without chunks, against Prometheus' series API.
    for (matchers, selector, count) in [
        (
            vec![matcher(EQ, "__name__", "my.metric")],
            r#"{"my.metric"}"#,
            2,
        ),
        (vec![matcher(EQ, "a.b", "c")], r#"{"a.b"="c"}"#, 2),
        (
            vec![
                matcher(RE, "a.b", "c|d"),
                matcher(NEQ, "__name__", "other.metric"),
            ],
            r#"{"a.b"=~"c|d", __name__!="other.metric"}"#,
            2,
        ),
        (vec![matcher(NEQ, "a/b", "")], r#"{"a/b"!=""}"#, 1),
        (vec![matcher(EQ, "ü", "ö")], r#"{"ü"="ö"}"#, 1),
        (vec![matcher(RE, "U__u", "v|w")], r#"{U__u=~"v|w"}"#, 1),
    ] {
        let want: BTreeSet<Labels> = prom("/api/v1/series", Some(selector))
            .as_array()
            .expect("series")
            .iter()
            .map(|s| {
                let mut l = json_labels(s);
                l.extend(external());
                l.sort();
                l
            })
            .collect();
        assert_eq!(want.len(), count, "{selector}: Prometheus found {want:?}");
        for skip_chunks in [false, true] {
            let mut req = store::SeriesRequest::new();
            req.min_time = start;
            req.max_time = end;
            req.matchers = matchers.clone();
            req.skip_chunks = skip_chunks;
            let series = series_of(&collect(rig.store.series(&req)).expect("Series"));
            let got: BTreeSet<Labels> = series.iter().map(labels_of).collect();
            assert_eq!(got, want, "{selector} (skip_chunks {skip_chunks})");
            for s in &series {
                let samples: Vec<(i64, f64)> = s
                    .chunks
                    .iter()
                    .flat_map(|c| xor::decode(&c.raw.as_ref().expect("raw").data).expect("XOR"))
                    .collect();
                let want: Vec<(i64, f64)> = if skip_chunks {
                    vec![]
                } else {
                    vec![(t, 1.0), (t + 15_000, 2.5)]
                };
                assert_eq!(samples, want, "{selector} (skip_chunks {skip_chunks})");
            }
        }
    }

    // LabelNames against /api/v1/labels (plus the external labels).
    for (matchers, selector) in [
        (vec![], None),
        (vec![matcher(EQ, "a.b", "d")], Some(r#"{"a.b"="d"}"#)),
    ] {
        let mut want: Vec<String> = prom("/api/v1/labels", selector)
            .as_array()
            .expect("names")
            .iter()
            .map(|n| n.as_str().unwrap_or("").to_string())
            .collect();
        want.extend(["cluster".to_string(), "replica".to_string()]);
        want.sort();
        let mut req = store::LabelNamesRequest::new();
        req.start = start;
        req.end = end;
        req.matchers = matchers;
        let got = rig.store.label_names(&req).expect("LabelNames").names;
        assert_eq!(got, want, "{selector:?}");
        assert!(got.contains(&"a.b".to_string()), "{got:?}");
    }

    // LabelValues against /api/v1/label/<escaped name>/values.
    for (label, path, matchers, selector, expected) in [
        ("a.b", "U__a_2e_b", vec![], None, vec!["c", "d"]),
        (
            "a.b",
            "U__a_2e_b",
            vec![
                matcher(EQ, "__name__", "my.metric"),
                matcher(NEQ, "a.b", "c"),
            ],
            Some(r#"{"my.metric", "a.b"!="c"}"#),
            vec!["d"],
        ),
        ("a/b", "U__a_2f_b", vec![], None, vec!["x"]),
        ("ü", "U___fc_", vec![], None, vec!["ö"]),
        ("U__u", "U__U____u", vec![], None, vec!["v"]),
        (
            "__name__",
            "__name__",
            vec![matcher(EQ, "a.b", "c")],
            Some(r#"{"a.b"="c"}"#),
            vec!["my.metric", "other.metric"],
        ),
    ] {
        let want: Vec<String> = prom(&format!("/api/v1/label/{path}/values"), selector)
            .as_array()
            .expect("values")
            .iter()
            .map(|n| n.as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(want, expected, "{label}: Prometheus' own answer");
        let mut req = store::LabelValuesRequest::new();
        req.label = label.into();
        req.start = start;
        req.end = end;
        req.matchers = matchers;
        let got = rig.store.label_values(&req).expect("LabelValues").values;
        assert_eq!(got, want, "{label} {selector:?}");
    }

    // `store series` takes Prometheus 3's quoted names and prints them so.
    let out = crate::support::sidecar::command()
        .args(["store", "series", r#"--match={"my.metric", "a.b"="c"}"#])
        .arg(format!("--store=127.0.0.1:{}", rig.sidecar.grpc_port))
        .arg(format!("--min-time={start}"))
        .arg(format!("--max-time={end}"))
        .output()
        .expect("run store series");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(r#"{__name__="my.metric", "a.b"="c", "a/b"="x", cluster="test", job="j", replica="0"} chunks=1 samples=2"#),
        "{stdout}"
    );
}
