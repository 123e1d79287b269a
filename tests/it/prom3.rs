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

    // `store series --samples` says what each histogram chunk holds (the
    // samples themselves: store_series_samples_print_histograms_as_prometheus_answers).
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
                "  # {encoding} chunk min_time={lo} max_time={hi} samples={} schema={} zero_threshold=1e-128 counter_reset=",
                chunk_samples(data),
                if kind == "int" { 0 } else { 1 }
            );
            assert!(stdout.contains(&line), "{line} in\n{stdout}");
        }
    }
    assert!(
        stdout.ends_with(&format!("# 2 series, {} samples\n", 2 * SAMPLES)),
        "{stdout}"
    );
}

/// `it_hist_more{kind=...}`: the layouts `write_histograms` leaves out, a
/// few samples each ending at `last`: "nhcb", integer custom buckets
/// (schema -53); "gauge", a float gauge histogram of schema 2 with negative
/// buckets and a zero threshold that is no power of two; "neg", an integer
/// histogram of schema -1 with negative buckets, uneven growth and a stale
/// marker.
fn write_more_histograms(prometheus: &Prometheus, last: i64) {
    use prom_types::histogram::ResetHint;
    let span = |offset: i32, length: u32| {
        let mut s = prom_types::BucketSpan::new();
        s.offset = offset;
        s.length = length;
        s
    };
    let deltas = |counts: &[i64]| -> Vec<i64> {
        let mut previous = 0;
        counts
            .iter()
            .map(|c| {
                let d = c - previous;
                previous = *c;
                d
            })
            .collect()
    };
    let t = |i: i64, n: i64| last - (n - 1 - i) * 15_000;

    let mut nhcb = remote_write::series(&[("__name__", "it_hist_more"), ("kind", "nhcb")]);
    for i in 0..5i64 {
        let counts = [i, 2 * i + 1, 3 * i * i, i + 4];
        let mut h = prom_types::Histogram::new();
        h.timestamp = t(i, 5);
        h.schema = -53;
        h.custom_values = vec![0.1, 0.5, 1.0, 2.5, 1e6 + 0.25];
        h.positive_spans = vec![span(0, 3), span(1, 1)];
        h.positive_deltas = deltas(&counts);
        h.set_count_int(counts.iter().sum::<i64>() as u64);
        h.sum = i as f64 * 1.75;
        nhcb.histograms.push(h);
    }

    let mut gauge = remote_write::series(&[("__name__", "it_hist_more"), ("kind", "gauge")]);
    for i in 0..5i64 {
        let x = i as f64;
        let negative = [0.5 + x, 4.0 - x, 0.25 * x];
        let positive = [9.0 - 2.0 * x, x * x];
        let mut h = prom_types::Histogram::new();
        h.timestamp = t(i, 5);
        h.schema = 2;
        h.zero_threshold = 0.001;
        h.set_zero_count_float(2.5 - 0.5 * x);
        h.negative_spans = vec![span(-1, 2), span(3, 1)];
        h.negative_counts = negative.to_vec();
        h.positive_spans = vec![span(1, 2)];
        h.positive_counts = positive.to_vec();
        h.set_count_float(
            2.5 - 0.5 * x + negative.iter().sum::<f64>() + positive.iter().sum::<f64>(),
        );
        h.sum = -12.5 + 3.0 * x;
        h.reset_hint = ResetHint::GAUGE.into();
        gauge.histograms.push(h);
    }

    let mut neg = remote_write::series(&[("__name__", "it_hist_more"), ("kind", "neg")]);
    for i in 0..5i64 {
        let negative = [i * i, 40 + i];
        let positive = [1, 2 + i * 1000, i * i * i, 5];
        let mut h = prom_types::Histogram::new();
        h.timestamp = t(i, 6) - if i == 3 { 7 } else { 0 };
        h.schema = -1;
        h.zero_threshold = 1.0 / 1024.0;
        h.set_zero_count_int(3 * i as u64);
        h.negative_spans = vec![span(0, 2)];
        h.negative_deltas = deltas(&negative);
        h.positive_spans = vec![span(-2, 1), span(0, 2), span(4, 1)];
        h.positive_deltas = deltas(&positive);
        h.set_count_int(
            (3 * i + negative.iter().sum::<i64>() + positive.iter().sum::<i64>()) as u64,
        );
        h.sum = 1e7 * i as f64 + 0.125;
        neg.histograms.push(h);
    }
    // Not on the gauge: Prometheus 3.16's streamed remote read fails
    // ("float histogram schema change") re-encoding a gauge histogram
    // chunk that ends in a stale marker.
    let mut stale = prom_types::Histogram::new();
    stale.timestamp = t(5, 6);
    stale.sum = f64::from_bits(0x7ff0_0000_0000_0002);
    stale.set_count_int(0);
    stale.set_zero_count_int(0);
    neg.histograms.push(stale);
    remote_write::write(&prometheus.url(), vec![nhcb, gauge, neg]).expect("remote write");
}

/// A bucket as compared here: Prometheus' boundary rule (0 = `(a,b]`,
/// 1 = `[a,b)`, 2 = `(a,b)`, 3 = `[a,b]`), lower, upper, count.
type BucketView = (u8, f64, f64, f64);
/// A histogram sample: timestamp (ms), count, sum, buckets.
type HistogramView = (i64, f64, f64, Vec<BucketView>);

/// Parses what `store series --samples` prints after a sample's timestamp:
/// `{count:N, sum:S, [lower,upper):n, ...}`.
fn parse_rendered(t: i64, s: &str) -> HistogramView {
    let body = s
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a histogram: {s}"));
    let number = |x: &str| -> f64 { x.parse().unwrap_or_else(|_| panic!("{x:?} in {s}")) };
    let mut parts = body.split(", ");
    let mut field = |name: &str| {
        let part = parts.next().unwrap_or("");
        number(
            part.strip_prefix(name)
                .unwrap_or_else(|| panic!("{name} in {s}")),
        )
    };
    let (count, sum) = (field("count:"), field("sum:"));
    let buckets = parts
        .map(|b| {
            let colon = b.rfind(':').unwrap_or_else(|| panic!("{b} in {s}"));
            let (range, n) = (&b[..colon], &b[colon + 1..]);
            let lower_inclusive = range.starts_with('[');
            let upper_inclusive = range.ends_with(']');
            let (lo, hi) = range[1..range.len() - 1]
                .split_once(',')
                .unwrap_or_else(|| panic!("{b} in {s}"));
            let rule = match (lower_inclusive, upper_inclusive) {
                (false, true) => 0,
                (true, false) => 1,
                (false, false) => 2,
                (true, true) => 3,
            };
            (rule, number(lo), number(hi), number(n))
        })
        .collect();
    (t, count, sum, buckets)
}

/// `store series --samples` decodes the histogram chunks the sidecar
/// streams into the very samples Prometheus' query API answers: count,
/// sum and every bucket (bounds, their inclusiveness and count), for
/// integer, float, gauge and custom-bucket histograms.
#[test]
fn store_series_samples_print_histograms_as_prometheus_answers() {
    if !needs_prometheus3("store_series_samples_print_histograms_as_prometheus_answers") {
        return;
    }
    let mut range = (0, 0);
    let rig = start_rig(|p| {
        range = write_histograms(p);
        write_more_histograms(p, range.1);
    });
    let (first, last) = range;
    let out = crate::support::sidecar::command()
        .args(["store", "series", "--samples"])
        .arg(r#"--match={__name__=~"it_hist.*"}"#)
        .arg(format!("--store=127.0.0.1:{}", rig.sidecar.grpc_port))
        .arg(format!("--min-time={}", first - 1000))
        .arg(format!("--max-time={}", last + 1000))
        .output()
        .expect("run store series");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\nPrometheus log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        rig.prometheus.log()
    );
    // The chunk bytes, to refresh the fixtures of src/store/histogram.rs.
    if std::env::var_os("PROM3_DUMP_CHUNKS").is_some() {
        let mut req = store::SeriesRequest::new();
        req.min_time = first - 1000;
        req.max_time = last + 1000;
        req.matchers = vec![matcher(EQ, "__name__", "it_hist_more")];
        for s in series_of(&collect(rig.store.series(&req)).expect("Series")) {
            for c in &s.chunks {
                let raw = c.raw.as_ref().expect("raw");
                let hex: String = raw.data.iter().map(|b| format!("{b:02x}")).collect();
                eprintln!("{:?} {:?} {hex}", labels_of(&s), raw.type_);
            }
        }
    }

    // (name, kind) → samples, from the CLI's lines.
    let mut got: BTreeMap<(String, String), Vec<HistogramView>> = BTreeMap::new();
    let mut stale = Vec::new();
    let mut chunk_headers = Vec::new();
    let mut current = None;
    let label = |line: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let at = line.find(&key).map(|i| i + key.len()).unwrap_or(0);
        line[at..].split('"').next().unwrap_or("").to_string()
    };
    for line in stdout.lines() {
        if line.starts_with('{') {
            current = Some((label(line, "__name__"), label(line, "kind")));
        } else if let Some(header) = line.strip_prefix("  # ") {
            chunk_headers.push((current.clone(), header.to_string()));
        } else if let Some(sample) = line.strip_prefix("  ") {
            let (t, rendered) = sample.split_once(' ').expect("timestamp and histogram");
            let t: i64 = t.parse().expect("timestamp");
            let key = current.clone().expect("a series before its samples");
            if rendered == "stale" {
                stale.push((key, t));
            } else {
                got.entry(key)
                    .or_default()
                    .push(parse_rendered(t, rendered));
            }
        }
    }

    // The same from Prometheus: every raw sample in the range.
    let url = format!(
        "{}/api/v1/query?query={}&time={:.3}",
        rig.prometheus.url(),
        url_escape(&format!(
            r#"{{__name__=~"it_hist.*"}}[{}ms]"#,
            last - first + 1000
        )),
        last as f64 / 1000.0
    );
    let (code, body) = http_get(&url);
    assert_eq!(code, 200, "{url}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let number = |v: &serde_json::Value| -> f64 {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("number: {v}"))
    };
    let mut want: BTreeMap<(String, String), Vec<HistogramView>> = BTreeMap::new();
    for s in answer["data"]["result"].as_array().expect("matrix") {
        let key = (
            s["metric"]["__name__"].as_str().unwrap_or("").to_string(),
            s["metric"]["kind"].as_str().unwrap_or("").to_string(),
        );
        for point in s["histograms"].as_array().expect("histograms") {
            let t = (point[0].as_f64().expect("time") * 1000.0).round() as i64;
            let h = &point[1];
            let buckets = h["buckets"]
                .as_array()
                .map(|bs| {
                    bs.iter()
                        .map(|b| {
                            (
                                b[0].as_u64().expect("rule") as u8,
                                number(&b[1]),
                                number(&b[2]),
                                number(&b[3]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            want.entry(key.clone()).or_default().push((
                t,
                number(&h["count"]),
                number(&h["sum"]),
                buckets,
            ));
        }
    }
    let kinds: Vec<(&str, &str)> = want.keys().map(|(n, k)| (n.as_str(), k.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            ("it_hist", "float"),
            ("it_hist", "int"),
            ("it_hist_more", "gauge"),
            ("it_hist_more", "neg"),
            ("it_hist_more", "nhcb"),
        ],
        "Prometheus' answer"
    );
    for (key, samples) in &want {
        assert_eq!(
            got.get(key),
            Some(samples),
            "{key:?}: store series --samples printed\n{stdout}"
        );
    }
    assert_eq!(got.len(), want.len(), "{stdout}");
    assert_eq!(
        stale,
        vec![(("it_hist_more".to_string(), "neg".to_string()), last)],
        "{stdout}"
    );
    // Each chunk's header line says its layout.
    let has = |kind: &str, text: &str| {
        chunk_headers.iter().any(|(key, header)| {
            key.as_ref().is_some_and(|(_, k)| k == kind) && header.contains(text)
        })
    };
    assert!(has("int", "schema=0 zero_threshold=1e-128 "), "{stdout}");
    assert!(has("float", "FLOAT_HISTOGRAM chunk"), "{stdout}");
    assert!(has("float", "schema=1 "), "{stdout}");
    assert!(
        has("nhcb", "schema=-53 zero_threshold=0 ")
            && has("nhcb", "custom_bounds=[0.1,0.5,1,2.5,1.00000025e+06]"),
        "{stdout}"
    );
    assert!(
        has("gauge", "schema=2 zero_threshold=0.001 counter_reset=gauge"),
        "{stdout}"
    );
    assert!(
        has("neg", "schema=-1 zero_threshold=0.0009765625 "),
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
