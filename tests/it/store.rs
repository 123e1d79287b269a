//! The StoreAPI against a real Prometheus: Series, LabelNames, LabelValues and
//! Info answers compared with Prometheus' own query API (Thanos' `pkg/store/prometheus.go`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use grpcio::{ChannelBuilder, EnvBuilder, RpcStatusCode};
use thanos_sidecar::proto::services::{HealthClient, InfoClient, StoreClient};
use thanos_sidecar::proto::{health, info, store, store_types};
use thanos_sidecar::store::wire::SERIES_AS_BYTES;
use thanos_sidecar::store::xor;

use crate::support::grpc::collect;
use crate::support::{
    http_get, url_escape, wait_for, FaultyProxy, GoSidecar, Prometheus, PrometheusOptions, Sidecar,
    ThanosQuery,
};

/// Start of the generated data, whole seconds: four hours ago, aligned.
fn data_start() -> i64 {
    static START: OnceLock<i64> = OnceLock::new();
    *START.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        (now - 4 * 3600) / 3600 * 3600
    })
}

const HOURS: i64 = 3;
const STEP: i64 = 15;

/// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`:
/// counters and gauges over 60 instances × 3 jobs, 15 s apart, with NaN,
/// ±Inf and negative values, and series with different label names.
fn openmetrics(big: bool) -> String {
    let start = data_start();
    let samples = HOURS * 3600 / STEP;
    let mut out = String::new();
    out.push_str("# TYPE it_requests counter\n");
    for job in ["api", "db", "web"] {
        for i in 0..60 {
            for n in 0..samples {
                let value = (n * (i + 1)) as f64 * 0.5;
                out.push_str(&format!(
                    "it_requests_total{{instance=\"host-{i:02}\",job=\"{job}\"}} {value} {}\n",
                    start + n * STEP
                ));
            }
        }
    }
    out.push_str("# TYPE it_temperature gauge\n");
    for i in 0..40 {
        // Every fourth series lacks `zone`, so label sets differ in names.
        let zone = if i % 4 == 0 {
            String::new()
        } else {
            format!(",zone=\"z{}\"", i % 3)
        };
        for n in 0..samples {
            let value = match (i, n % 97) {
                (_, 13) => "NaN".to_string(),
                (_, 29) => "+Inf".to_string(),
                (_, 31) => "-Inf".to_string(),
                _ => format!("{}", ((n as f64) * 0.37 + i as f64).sin() * 40.0 - 10.0),
            };
            out.push_str(&format!(
                "it_temperature{{sensor=\"s{i:02}\"{zone}}} {value} {}\n",
                start + n * STEP
            ));
        }
    }
    if big {
        // Megabytes of chunks: more than gRPC's buffers hold for a client
        // that stops reading.
        out.push_str("# TYPE big_gauge gauge\n");
        for i in 0..1500 {
            for n in 0..samples {
                let value = ((n * 7919 + i * 104_729) % 1_000_003) as f64 / 7.0;
                out.push_str(&format!(
                    "big_gauge{{i=\"{i:04}\"}} {value} {}\n",
                    start + n * STEP
                ));
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

struct Rig {
    prometheus: Prometheus,
    sidecar: Sidecar,
    store: StoreClient,
    info: InfoClient,
    health: HealthClient,
}

fn start_rig(extra: &[String]) -> Rig {
    start_rig_with(extra, false)
}

fn start_rig_with(extra: &[String], big: bool) -> Rig {
    start_rig_on(&openmetrics(big), extra)
}

/// A sidecar next to a Prometheus holding `openmetrics`.
fn start_rig_on(openmetrics: &str, extra: &[String]) -> Rig {
    let mut prometheus = Prometheus::prepare(PrometheusOptions::default());
    prometheus.create_blocks(openmetrics);
    prometheus.resume();
    let mut args = vec![
        format!("--prometheus.url={}", prometheus.url()),
        "--prometheus.get_config_interval=500ms".into(),
        "--prometheus.get_config_timeout=2s".into(),
    ];
    args.extend_from_slice(extra);
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "not ready: {}",
        sidecar.log()
    );
    let env = Arc::new(
        EnvBuilder::new()
            .cq_count(1)
            .name_prefix("test-grpc")
            .build(),
    );
    let channel = ChannelBuilder::new(env)
        .max_receive_message_len(i32::MAX)
        .connect(&format!("127.0.0.1:{}", sidecar.grpc_port));
    Rig {
        prometheus,
        sidecar,
        store: StoreClient::new(channel.clone()),
        info: InfoClient::new(channel.clone()),
        health: HealthClient::new(channel),
    }
}

pub(crate) fn matcher(t: i32, name: &str, value: &str) -> store_types::LabelMatcher {
    let mut m = store_types::LabelMatcher::new();
    m.type_ = protobuf::EnumOrUnknown::from_i32(t);
    m.name = name.into();
    m.value = value.into();
    m
}

pub(crate) const EQ: i32 = 0;
pub(crate) const NEQ: i32 = 1;
pub(crate) const RE: i32 = 2;
pub(crate) const NRE: i32 = 3;

fn request(matchers: Vec<store_types::LabelMatcher>) -> store::SeriesRequest {
    let mut req = store::SeriesRequest::new();
    req.min_time = data_start() * 1000;
    req.max_time = (data_start() + HOURS * 3600) * 1000;
    req.matchers = matchers;
    req
}

pub(crate) type Labels = Vec<(String, String)>;

/// Every frame of a Series call, or the status it ended with.
fn frames(
    rig: &Rig,
    req: &store::SeriesRequest,
) -> Result<Vec<store::SeriesResponse>, grpcio::RpcStatus> {
    collect(rig.store.series(req))
}

pub(crate) fn series_of(frames: &[store::SeriesResponse]) -> Vec<store_types::Series> {
    let mut out = Vec::new();
    for f in frames {
        if f.has_series() {
            out.push(f.series().clone());
        } else if f.has_batch() {
            out.extend(f.batch().series.iter().cloned());
        } else {
            panic!("unexpected frame {f:?}");
        }
    }
    out
}

pub(crate) fn labels_of(s: &store_types::Series) -> Labels {
    s.labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// Decoded samples of a series within [min, max], checking chunk hashes.
fn samples_of(s: &store_types::Series, min_ms: i64, max_ms: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for c in &s.chunks {
        let raw = c.raw.as_ref().expect("raw chunk");
        assert_eq!(raw.type_.value(), 0, "XOR");
        assert_eq!(raw.hash, xxhash_rust::xxh64::xxh64(&raw.data, 0));
        for (t, v) in xor::decode(&raw.data).expect("decodable chunk") {
            assert!(
                t >= c.min_time && t <= c.max_time,
                "sample outside its chunk's range"
            );
            if t >= min_ms && t <= max_ms {
                out.push((t, v));
            }
        }
    }
    out
}

fn external() -> Labels {
    vec![
        ("cluster".into(), "test".into()),
        ("replica".into(), "0".into()),
    ]
}

/// Prometheus' own answer: raw samples of `selector` in [start, end] by label set
/// (plus the external labels, which the query API does not show).
fn prometheus_samples(
    rig: &Rig,
    selector: &str,
    start_ms: i64,
    end_ms: i64,
) -> BTreeMap<Labels, Vec<(i64, f64)>> {
    let range_s = (end_ms - start_ms) / 1000;
    let query = format!("{selector}[{range_s}s]");
    let url = format!(
        "{}/api/v1/query?query={}&time={}",
        rig.prometheus.url(),
        url_escape(&query),
        end_ms as f64 / 1000.0
    );
    let (code, body) = http_get(&url);
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut out = BTreeMap::new();
    for series in json["data"]["result"].as_array().expect("matrix") {
        let mut labels: BTreeMap<String, String> = series["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        labels.extend(external());
        let samples = series["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().expect("time") * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().expect("value").parse().expect("float");
                (t, v)
            })
            .collect();
        out.insert(labels.into_iter().collect(), samples);
    }
    out
}

fn same_samples(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && (x.1 == y.1 || (x.1.is_nan() && y.1.is_nan())))
}

fn assert_sorted(series: &[store_types::Series]) {
    let keys: Vec<Labels> = series.iter().map(labels_of).collect();
    for w in keys.windows(2) {
        assert!(w[0] <= w[1], "out of order: {:?} then {:?}", w[0], w[1]);
    }
    for k in &keys {
        let mut sorted = k.clone();
        sorted.sort();
        assert_eq!(&sorted, k, "labels inside a series are sorted");
    }
}

/// Merges split series (same labels in consecutive frames) into one sample list.
fn by_labels(
    series: &[store_types::Series],
    min_ms: i64,
    max_ms: i64,
) -> BTreeMap<Labels, Vec<(i64, f64)>> {
    let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for s in series {
        out.entry(labels_of(s))
            .or_default()
            .extend(samples_of(s, min_ms, max_ms));
    }
    for v in out.values_mut() {
        v.sort_by_key(|p| p.0);
        v.dedup_by_key(|p| p.0);
    }
    out
}

fn compare_with_prometheus(
    rig: &Rig,
    matchers: Vec<store_types::LabelMatcher>,
    selector: &str,
) -> usize {
    // Odd offsets keep the range ends off sample timestamps.
    let (min_ms, max_ms) = (
        (data_start() + 607) * 1000,
        (data_start() + 2 * 3600 + 7) * 1000,
    );
    let mut req = request(matchers);
    req.min_time = min_ms;
    req.max_time = max_ms;
    let series = series_of(&frames(rig, &req).expect("Series"));
    assert_sorted(&series);
    let got = by_labels(&series, min_ms, max_ms);
    let want = prometheus_samples(rig, selector, min_ms, max_ms);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{selector}: label sets"
    );
    for (labels, samples) in &want {
        assert!(
            same_samples(&got[labels], samples),
            "{selector}: samples of {labels:?} differ"
        );
    }
    want.len()
}

#[test]
fn series_equal_prometheus_query_api_for_every_matcher_type() {
    let rig = start_rig(&[]);
    let n = compare_with_prometheus(
        &rig,
        vec![matcher(EQ, "__name__", "it_temperature")],
        "it_temperature",
    );
    assert_eq!(n, 40);
    let n = compare_with_prometheus(
        &rig,
        vec![
            matcher(EQ, "__name__", "it_requests_total"),
            matcher(NEQ, "job", "db"),
        ],
        r#"it_requests_total{job!="db"}"#,
    );
    assert_eq!(n, 120);
    let n = compare_with_prometheus(
        &rig,
        vec![
            matcher(RE, "__name__", "it_.*"),
            matcher(RE, "instance", "host-0[0-4]|"),
        ],
        r#"{__name__=~"it_.*",instance=~"host-0[0-4]|"}"#,
    );
    assert_eq!(n, 15 + 40);
    let n = compare_with_prometheus(
        &rig,
        vec![
            matcher(EQ, "__name__", "it_temperature"),
            matcher(NRE, "zone", "z1|z2"),
        ],
        r#"it_temperature{zone!~"z1|z2"}"#,
    );
    assert!(n > 10 && n < 40, "{n}");
    // External-label matchers that hold change nothing.
    let n = compare_with_prometheus(
        &rig,
        vec![
            matcher(EQ, "cluster", "test"),
            matcher(RE, "replica", "0|1"),
            matcher(EQ, "__name__", "it_temperature"),
        ],
        "it_temperature",
    );
    assert_eq!(n, 40);
}

#[test]
fn series_requests_that_cannot_match_or_are_invalid() {
    let rig = start_rig(&[]);
    // An external label that does not match: OK and nothing.
    let got = frames(
        &rig,
        &request(vec![
            matcher(EQ, "cluster", "other"),
            matcher(EQ, "__name__", "up"),
        ]),
    )
    .unwrap();
    assert!(got.is_empty());
    // Nothing left once external matchers are gone.
    for ms in [vec![matcher(EQ, "cluster", "test")], vec![]] {
        let err = frames(&rig, &request(ms)).unwrap_err();
        assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT);
        assert!(
            err.message()
                .contains("no matchers specified (excluding external labels)"),
            "{}",
            err.message()
        );
    }
    let err = frames(&rig, &request(vec![matcher(RE, "__name__", "(")])).unwrap_err();
    assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT);
    let err = frames(&rig, &request(vec![matcher(7, "__name__", "up")])).unwrap_err();
    assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT);
}

#[test]
fn series_skip_chunks_batching_sharding_and_replica_labels() {
    let rig = start_rig(&[]);
    let base = request(vec![matcher(RE, "__name__", "it_.*")]);
    let all = series_of(&frames(&rig, &base).unwrap());
    assert_eq!(all.len(), 220, "one frame per series here (small series)");
    assert_sorted(&all);
    let all_labels: Vec<Labels> = all.iter().map(labels_of).collect();
    for l in &all_labels {
        assert!(
            l.contains(&("cluster".into(), "test".into()))
                && l.contains(&("replica".into(), "0".into()))
        );
    }

    let mut req = base.clone();
    req.skip_chunks = true;
    let skipped = series_of(&frames(&rig, &req).unwrap());
    assert!(skipped.iter().all(|s| s.chunks.is_empty()));
    assert_eq!(
        skipped.iter().map(labels_of).collect::<Vec<_>>(),
        all_labels
    );

    let mut req = base.clone();
    req.response_batch_size = 64;
    let batched = frames(&rig, &req).unwrap();
    let sizes: Vec<usize> = batched.iter().map(|f| f.batch().series.len()).collect();
    assert_eq!(sizes, vec![64, 64, 64, 28]);
    assert_eq!(
        series_of(&batched)
            .iter()
            .map(labels_of)
            .collect::<Vec<_>>(),
        all_labels
    );

    let mut seen = BTreeSet::new();
    let mut total = 0;
    for index in 0..3 {
        let mut req = base.clone();
        let mut shard = store::ShardInfo::new();
        shard.shard_index = index;
        shard.total_shards = 3;
        shard.by = true;
        shard.labels = vec!["instance".into(), "sensor".into()];
        req.shard_info = protobuf::MessageField::some(shard);
        let part = series_of(&frames(&rig, &req).unwrap());
        assert!(!part.is_empty() && part.len() < all.len());
        assert_sorted(&part);
        total += part.len();
        seen.extend(part.iter().map(labels_of));
    }
    assert_eq!(total, all.len(), "every series in exactly one shard");
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all_labels);

    // Deleting the replica label reorders (series without `zone` now sort
    // first within their sensor prefix); the output must still be sorted.
    let mut req = base.clone();
    req.without_replica_labels = vec!["replica".into()];
    let deduped = series_of(&frames(&rig, &req).unwrap());
    assert_sorted(&deduped);
    let mut want: Vec<Labels> = all_labels
        .iter()
        .map(|l| l.iter().filter(|(n, _)| n != "replica").cloned().collect())
        .collect();
    want.sort();
    assert_eq!(deduped.iter().map(labels_of).collect::<Vec<_>>(), want);
}

#[test]
fn series_limits_and_min_time() {
    let min_time_s = data_start() + 3600;
    let rig = start_rig(&[
        "--store.limits.request-series=5".into(),
        format!("--min-time={}", rfc3339(min_time_s)),
    ]);
    let err = frames(&rig, &request(vec![matcher(RE, "__name__", "it_.*")])).unwrap_err();
    assert_eq!(err.code(), RpcStatusCode::UNKNOWN);
    assert!(
        err.message()
            .contains("failed to send series: limit 5 violated (got 6)"),
        "{}",
        err.message()
    );
    assert_eq!(
        rig.sidecar
            .metric("thanos_store_selects_dropped_total{reason=\"series\"}"),
        Some(1.0)
    );

    // Under the limit: the request starts at the data's start, but
    // --min-time raises it, so no chunk ends before it and chunks of 120
    // samples (30 min) start at most 30 min before it.
    let req = request(vec![
        matcher(EQ, "__name__", "it_requests_total"),
        matcher(EQ, "instance", "host-00"),
    ]);
    let series = series_of(&frames(&rig, &req).unwrap());
    assert_eq!(series.len(), 3);
    for s in &series {
        assert!(s.chunks.iter().all(|c| c.max_time >= min_time_s * 1000));
        let first = samples_of(s, i64::MIN, i64::MAX)[0].0;
        assert!(first >= (min_time_s - 1800) * 1000, "{first}");
    }
    let info = rig.info.info(&info::InfoRequest::new()).unwrap();
    assert_eq!(info.store.min_time, min_time_s * 1000);
}

#[test]
fn relative_min_time_hides_older_data() {
    // The data ends an hour ago; --min-time=-30m leaves nothing of it.
    let rig = start_rig(&["--min-time=-30m".into()]);
    let req = request(vec![matcher(RE, "__name__", "it_.*")]);
    assert!(frames(&rig, &req).unwrap().is_empty());
    // Live scrapes are newer: `up` is there.
    let mut req = request(vec![matcher(EQ, "__name__", "up")]);
    req.max_time = i64::MAX;
    assert!(wait_for(Duration::from_secs(10), || !frames(&rig, &req)
        .unwrap()
        .is_empty()));
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Names of the sidecar's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

#[test]
fn a_cancelled_series_call_stops_its_worker_at_once() {
    use futures::StreamExt;
    let rig = start_rig_with(&["--log.level=debug".into()], true);
    let workers = || {
        thread_names(rig.sidecar.pid())
            .iter()
            .filter(|n| *n == "store-series")
            .count()
    };
    let req = request(vec![matcher(EQ, "__name__", "big_gauge")]);

    // How long the whole answer takes when read to the end.
    let t = std::time::Instant::now();
    let all = frames(&rig, &req).unwrap().len();
    let full = t.elapsed();
    assert!(all >= 1500);
    // That call's worker outlives the last frame by a moment (it still
    // closes its Prometheus response and logs); on a loaded machine it can
    // still be there when the count below is taken.
    assert!(
        wait_for(Duration::from_secs(5), || workers() == 0),
        "the full read's worker did not finish"
    );

    // A fresh connection: the full read above let gRPC's flow control grow
    // that one's window to megabytes.
    let env = Arc::new(
        EnvBuilder::new()
            .cq_count(1)
            .name_prefix("test-grpc")
            .build(),
    );
    let channel = ChannelBuilder::new(env).connect(&format!("127.0.0.1:{}", rig.sidecar.grpc_port));
    let client = StoreClient::new(channel);
    let mut stream = client.series(&req).unwrap();
    let first = futures::executor::block_on(stream.next());
    assert!(matches!(first, Some(Ok(_))));
    // The client reads no further: the worker must be waiting on it (the
    // answer is larger than what gRPC buffers), not finished.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        workers(),
        1,
        "worker should be held back by the slow client: {:?}",
        thread_names(rig.sidecar.pid())
    );
    let t = std::time::Instant::now();
    stream.cancel();
    drop(stream);
    // Polled every 2 ms, not wait_for's 50: a full read of the static
    // binary takes under 100 ms, so the poll must not be what is timed.
    let stopped = loop {
        if workers() == 0 {
            break true;
        }
        if t.elapsed() > Duration::from_secs(5) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stop = t.elapsed();
    assert!(stopped, "the worker kept going after the client cancelled");
    // Stopping must not mean reading the rest and throwing it away.
    let log = rig.sidecar.log();
    let line = log
        .lines()
        .find(|l| l.contains("Series client gone; stopped reading Prometheus"))
        .unwrap_or_else(|| panic!("no stop logged:\n{log}"));
    let sent: usize = line
        .split("series=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // The test client's gRPC buffers about a thousand of these series; the
    // rest must never have been read from Prometheus.
    assert!(sent < all, "{sent} of {all} series were read after all");
    assert!(
        stop < full / 2,
        "stopping took {stop:?}; a full read takes {full:?}"
    );
}

/// A call whose client gives up while Prometheus has not sent the first
/// byte of its remote-read answer (held back by a proxy, as a Prometheus
/// busy selecting would) frees its worker at once: with a pool of one, the
/// next call is answered while the first read still hangs. Both ways a
/// client gives up: its deadline passes, or it cancels.
#[test]
fn a_call_given_up_before_prometheus_answers_frees_its_worker() {
    let mut prometheus = Prometheus::prepare(PrometheusOptions::default());
    prometheus.create_blocks(&openmetrics(false));
    prometheus.resume();
    let proxy = FaultyProxy::start(prometheus.port);
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url=http://{}", proxy.endpoint()),
        "--grpc-server-max-workers=1".into(),
        "--log.level=debug".into(),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "not ready: {}",
        sidecar.log()
    );
    let env = Arc::new(EnvBuilder::new().cq_count(1).build());
    let channel = ChannelBuilder::new(env).connect(&format!("127.0.0.1:{}", sidecar.grpc_port));
    let client = StoreClient::new(channel);
    let req = request(vec![matcher(EQ, "__name__", "it_temperature")]);
    let answered = |what: &str| {
        let opt = grpcio::CallOption::default().timeout(Duration::from_secs(5));
        let frames = collect(client.series_opt(&req, opt))
            .unwrap_or_else(|e| panic!("{what}: {e:?}\n{}", sidecar.log()));
        assert!(!series_of(&frames).is_empty(), "{what}: no series");
    };
    answered("before any hold");

    // The deadline passes while the read is held.
    proxy.hold_remote_reads(true);
    let opt = grpcio::CallOption::default().timeout(Duration::from_millis(300));
    let err = collect(client.series_opt(&req, opt)).expect_err("held read answered");
    assert_eq!(err.code(), RpcStatusCode::DEADLINE_EXCEEDED, "{err:?}");
    proxy.hold_remote_reads(false);
    answered("after a deadline, the first read still held");
    proxy.release_remote_reads();

    // The client cancels while the read is held.
    proxy.hold_remote_reads(true);
    let mut stream = client.series(&req).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stream.cancel();
    drop(stream);
    proxy.hold_remote_reads(false);
    answered("after a cancel, the first read still held");
    proxy.release_remote_reads();
    assert!(
        sidecar
            .log()
            .contains("a gRPC call given up while running; its thread left the pool"),
        "{}",
        sidecar.log()
    );
}

#[test]
fn label_names_and_values() {
    let rig = start_rig(&[]);
    let (start, end) = (data_start() * 1000, (data_start() + HOURS * 3600) * 1000);
    let names = |ms: Vec<store_types::LabelMatcher>, without: Vec<String>| {
        let mut req = store::LabelNamesRequest::new();
        req.start = start;
        req.end = end;
        req.matchers = ms;
        req.without_replica_labels = without;
        rig.store.label_names(&req).unwrap().names
    };
    let all = names(vec![], vec![]);
    for n in [
        "__name__", "cluster", "instance", "job", "replica", "sensor", "zone",
    ] {
        assert!(all.contains(&n.to_string()), "{n} in {all:?}");
    }
    assert!(all.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        names(vec![matcher(EQ, "__name__", "it_temperature")], vec![]),
        vec!["__name__", "cluster", "replica", "sensor", "zone"]
    );
    assert_eq!(
        names(
            vec![matcher(EQ, "__name__", "it_temperature")],
            vec!["replica".into()]
        ),
        vec!["__name__", "cluster", "sensor", "zone"]
    );
    assert!(names(vec![matcher(EQ, "cluster", "other")], vec![]).is_empty());

    let values = |label: &str, ms: Vec<store_types::LabelMatcher>| {
        let mut req = store::LabelValuesRequest::new();
        req.label = label.into();
        req.start = start;
        req.end = end;
        req.matchers = ms;
        rig.store.label_values(&req)
    };
    let jobs = values("job", vec![]).unwrap().values;
    assert!(
        ["api", "db", "web"]
            .iter()
            .all(|j| jobs.contains(&j.to_string())),
        "{jobs:?}"
    );
    assert_eq!(
        values(
            "job",
            vec![
                matcher(EQ, "__name__", "it_requests_total"),
                matcher(NEQ, "job", "db")
            ]
        )
        .unwrap()
        .values,
        vec!["api", "web"]
    );
    assert_eq!(values("cluster", vec![]).unwrap().values, vec!["test"]);
    assert!(
        values("cluster", vec![matcher(EQ, "__name__", "no_such_metric")])
            .unwrap()
            .values
            .is_empty()
    );
    let err = values("", vec![]).unwrap_err();
    assert!(
        matches!(err, grpcio::Error::RpcFailure(s) if s.code() == RpcStatusCode::INVALID_ARGUMENT)
    );
}

#[test]
fn info_follows_readiness() {
    let mut rig = start_rig(&[]);
    let resp = rig.info.info(&info::InfoRequest::new()).unwrap();
    assert_eq!(resp.ComponentType, "sidecar");
    let labels: Labels = resp.label_sets[0]
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    assert_eq!(labels, external());
    let store = resp.store.as_ref().unwrap();
    assert_eq!(store.max_time, i64::MAX);
    assert!(
        store.supports_sharding
            && store.supports_without_replica_labels
            && !store.supports_projections
    );
    // The blocks start the TSDB: lowest timestamp = data start.
    assert_eq!(store.min_time, data_start() * 1000);
    assert_eq!(store.tsdb_infos.len(), 1);
    assert!(resp.exemplars.is_some() && resp.rules.is_some() && resp.targets.is_some());
    assert!(resp.metric_metadata.is_some() && resp.status.is_some() && resp.query.is_none());

    let legacy = rig.store.info(&store::InfoRequest::new()).unwrap();
    assert_eq!(legacy.storeType.value(), 3, "SIDECAR");
    assert_eq!(legacy.labels.len(), 2);
    assert_eq!(legacy.min_time, data_start() * 1000);

    let serving = |rig: &Rig| {
        rig.health
            .check(&health::HealthCheckRequest::new())
            .map(|r| r.status.value())
    };
    assert_eq!(serving(&rig).unwrap(), 1, "SERVING");
    let mut other = health::HealthCheckRequest::new();
    other.service = "nope".into();
    assert!(rig.health.check(&other).is_err());

    rig.prometheus.stop();
    assert!(wait_for(Duration::from_secs(10), || !rig.sidecar.ready()));
    assert_eq!(serving(&rig).unwrap(), 2, "NOT_SERVING");
    let err = rig.info.info(&info::InfoRequest::new()).unwrap_err();
    assert!(
        matches!(&err, grpcio::Error::RpcFailure(s) if s.code() == RpcStatusCode::UNKNOWN && s.message() == "Not ready"),
        "{err:?}"
    );
    rig.prometheus.resume();
    assert!(rig.sidecar.wait_ready(Duration::from_secs(10)));
    assert!(rig.info.info(&info::InfoRequest::new()).is_ok());
}

/// A real Thanos Querier (`THANOS_BIN`, skipped when unset) in front of the
/// sidecar answers like Prometheus itself, with and without replica dedup.
#[test]
fn thanos_query_agrees_with_prometheus() {
    let Some(thanos) = ThanosQuery::binary() else {
        return;
    };
    let rig = start_rig(&[]);
    let query = ThanosQuery::start(
        &thanos,
        rig.sidecar.grpc_port,
        &["--query.replica-label=replica"],
        rig.prometheus.dir(),
    );
    let time = data_start() + 2 * 3600;
    let ask = |base: &str, q: &str, dedup: bool| -> serde_json::Value {
        let url = format!(
            "{base}/api/v1/query?query={}&time={time}{}",
            url_escape(q),
            if dedup { "&dedup=true" } else { "" }
        );
        let (code, body) = http_get(&url);
        assert_eq!(code, 200, "{url}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let thanos_url = query.url();
    // Wait until the querier has the sidecar as a store.
    assert!(
        wait_for(Duration::from_secs(30), || {
            http_get(&format!("{thanos_url}/api/v1/query?query=vector(1)")).0 == 200
                && ask(&thanos_url, "count(it_temperature)", true)["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
        }),
        "the querier never answered from the sidecar; log:\n{}",
        query.log()
    );
    for q in [
        "it_temperature",
        "rate(it_requests_total[5m])",
        "sum by (job) (it_requests_total)",
        "max_over_time(it_temperature[30m])",
    ] {
        let normalise = |v: serde_json::Value| -> BTreeMap<String, String> {
            v["data"]["result"]
                .as_array()
                .expect("vector")
                .iter()
                .map(|s| {
                    let mut m: BTreeMap<String, String> = s["metric"]
                        .as_object()
                        .expect("metric")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").into()))
                        .collect();
                    // Dedup drops `replica`; Prometheus never shows externals.
                    m.remove("cluster");
                    m.remove("replica");
                    (
                        format!("{m:?}"),
                        s["value"][1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        // Values may differ in the last bits: the engines add in other orders.
        let close = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.len() == b.len()
                && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                    let x = va.parse::<f64>().unwrap_or(f64::NAN);
                    let y = vb.parse::<f64>().unwrap_or(f64::NAN);
                    ka == kb && (va == vb || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()))
                })
        };
        let want = normalise(ask(&rig.prometheus.url(), q, false));
        assert!(!want.is_empty(), "{q}");
        for dedup in [true, false] {
            let got = normalise(ask(&thanos_url, q, dedup));
            assert!(
                close(&got, &want),
                "{q} (dedup {dedup}): {got:?}\nPrometheus: {want:?}"
            );
        }
    }
}

/// `thanos-sidecar store series --samples` prints what `promtool query range`
/// finds at the samples' own timestamps (15 s steps on the 15 s data).
#[test]
fn store_cli_series_agrees_with_promtool_query_range() {
    let rig = start_rig(&[]);
    let (start, end) = (data_start() + 3600, data_start() + 2 * 3600 - STEP);
    let ours = crate::support::sidecar::command()
        .args(["store", "series", "--samples"])
        .arg(format!("--store=127.0.0.1:{}", rig.sidecar.grpc_port))
        .arg(r#"--match=it_temperature{sensor="s05"}"#)
        .arg(format!("--min-time={}", start * 1000))
        .arg(format!("--max-time={}", end * 1000))
        .output()
        .expect("run store series");
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let ours = String::from_utf8_lossy(&ours.stdout).to_string();
    assert!(ours.contains(r#"{__name__="it_temperature", cluster="test", replica="0", sensor="s05", zone="z2"} chunks="#), "{ours}");
    let ours: Vec<(i64, String)> = ours
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_once(' '))
        .map(|(t, v)| (t.parse::<i64>().expect("ms") / 1000, v.to_string()))
        .filter(|(t, _)| *t >= start && *t <= end)
        .collect();
    let promtool = std::process::Command::new("promtool")
        .args(["query", "range"])
        .arg(format!("--start={start}"))
        .arg(format!("--end={end}"))
        .arg("--step=15s")
        .arg(rig.prometheus.url())
        .arg(r#"it_temperature{sensor="s05"}"#)
        .output()
        .expect("run promtool");
    assert!(promtool.status.success());
    // Lines after the series header: `VALUE @[SECONDS]`.
    let theirs: Vec<(i64, String)> = String::from_utf8_lossy(&promtool.stdout)
        .lines()
        .filter_map(|l| {
            let (value, at) = l.split_once(" @[")?;
            let t: f64 = at.strip_suffix(']')?.parse().ok()?;
            Some((t as i64, value.to_string()))
        })
        .collect();
    assert_eq!(theirs.len() as i64, (end - start) / STEP + 1);
    for special in ["NaN", "+Inf", "-Inf"] {
        assert!(theirs.iter().any(|(_, v)| v == special), "{special}");
    }
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        let same = o.0 == t.0 && (o.1 == t.1 || o.1.parse::<f64>().ok() == t.1.parse::<f64>().ok());
        assert!(same, "ours {o:?}, promtool {t:?}");
    }
}

/// CPU time the process has used, user and system, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`, which may hold spaces: state is field 3,
    // utime 14 and stime 15 (1-based), in clock ticks of 1/100 s on Linux.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// A querier may send any number of `without_replica_labels`: 30,000 of
/// them (a 300 kB request) must cost about what one does, on every
/// StoreAPI call that takes them.
#[test]
fn many_replica_labels_cost_little_cpu() {
    let rig = start_rig(&[]);
    let mut many: Vec<String> = (0..30_000).map(|i| format!("replica_{i:05}")).collect();
    many.push("replica".into());
    let pid = rig.sidecar.pid();

    for skip_chunks in [false, true] {
        let mut one = request(vec![matcher(RE, "__name__", "it_.*")]);
        one.skip_chunks = skip_chunks;
        one.without_replica_labels = vec!["replica".into()];
        let expected = series_of(&frames(&rig, &one).unwrap());
        assert_eq!(expected.len(), 220);
        let mut req = one.clone();
        req.without_replica_labels = many.clone();
        let before = cpu_time(pid);
        let got = series_of(&frames(&rig, &req).unwrap());
        let used = cpu_time(pid) - before;
        assert_eq!(got, expected, "skip_chunks={skip_chunks}");
        assert!(
            used < Duration::from_secs(1),
            "Series (skip_chunks={skip_chunks}) used {used:?} of CPU"
        );
    }

    let mut names = store::LabelNamesRequest::new();
    names.start = data_start() * 1000;
    names.end = (data_start() + HOURS * 3600) * 1000;
    names.without_replica_labels = many.clone();
    let before = cpu_time(pid);
    let got = rig.store.label_names(&names).unwrap().names;
    let used = cpu_time(pid) - before;
    assert!(got.contains(&"cluster".to_string()), "{got:?}");
    assert!(!got.contains(&"replica".to_string()), "{got:?}");
    assert!(used < Duration::from_secs(1), "LabelNames used {used:?}");

    let mut values = store::LabelValuesRequest::new();
    values.label = "cluster".into();
    values.start = names.start;
    values.end = names.end;
    values.without_replica_labels = many;
    let before = cpu_time(pid);
    let got = rig.store.label_values(&values).unwrap().values;
    let used = cpu_time(pid) - before;
    assert_eq!(got, vec!["test".to_string()]);
    assert!(used < Duration::from_secs(1), "LabelValues used {used:?}");
}

/// Series in Prometheus' head, created out of label order (its scrape of
/// itself adds `up` and the `scrape_*` series before what it scraped):
/// Prometheus 3 lists them in that order for one `match[]`, yet a
/// `skip_chunks` answer streams sorted, as the chunks path's does.
#[test]
fn skip_chunks_sorts_head_series_created_out_of_order() {
    let rig = start_rig(&[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut req = store::SeriesRequest::new();
    req.min_time = (now - 600) * 1000;
    req.max_time = (now + 600) * 1000;
    req.matchers = vec![matcher(EQ, "job", "prom")];
    req.skip_chunks = true;
    let mut skipped = Vec::new();
    // The self-scrape's series appear within a few scrapes.
    crate::support::wait_for(Duration::from_secs(20), || {
        skipped = series_of(&frames(&rig, &req).unwrap());
        skipped.len() > 100
    });
    assert!(skipped.len() > 100, "{}", skipped.len());
    assert_sorted(&skipped);
    for s in &skipped {
        let labels = labels_of(s);
        assert!(
            labels.contains(&("cluster".into(), "test".into()))
                && labels.contains(&("replica".into(), "0".into())),
            "{labels:?}"
        );
    }
}

/// With THANOS_BIN set: Thanos' own sidecar, next to the same Prometheus,
/// answers every kind of Series request with the very bytes ours sends
/// (chunks, hashes, labels, order, batching), message for message.
#[test]
fn series_answers_match_thanos_sidecar_byte_for_byte() {
    let Ok(bin) = std::env::var("THANOS_BIN") else {
        eprintln!("THANOS_BIN not set; skipping the comparison with Thanos");
        return;
    };
    let rig = start_rig(&[]);
    let go = go_sidecar(&bin, &rig);
    let ours = grpcio::Client::new(crate::support::grpc::connect(
        rig.sidecar.grpc_port,
        "raw-ours",
    ));
    let theirs = grpcio::Client::new(crate::support::grpc::connect(go.grpc_port, "raw-go"));
    let ask = |client: &grpcio::Client, req: &store::SeriesRequest| {
        collect(client.server_streaming(&SERIES_AS_BYTES, req, grpcio::CallOption::default()))
    };
    let everything = {
        let mut r = store::SeriesRequest::new();
        r.matchers = vec![matcher(RE, "__name__", "it_.+")];
        r.max_time = i64::MAX;
        r
    };
    // The Go sidecar serves once it has read Prometheus' external labels.
    let up = wait_for(Duration::from_secs(30), || {
        ask(&theirs, &everything).is_ok_and(|a| !a.is_empty())
    });
    let mut requests = vec![("everything", everything.clone())];
    let mut with = |name: &'static str, change: &dyn Fn(&mut store::SeriesRequest)| {
        let mut r = everything.clone();
        change(&mut r);
        requests.push((name, r));
    };
    with("one metric, a window", &|r| {
        r.matchers = vec![matcher(EQ, "__name__", "it_temperature")];
        r.min_time = (data_start() + 3600) * 1000;
        r.max_time = (data_start() + 2 * 3600) * 1000;
    });
    with("batches of 7", &|r| r.response_batch_size = 7);
    with("replica label removed", &|r| {
        r.without_replica_labels = vec!["replica".into()]
    });
    with("shard 1 of 3 without zone", &|r| {
        let mut s = store::ShardInfo::new();
        s.shard_index = 1;
        s.total_shards = 3;
        s.labels = vec!["zone".into()];
        r.shard_info = protobuf::MessageField::some(s);
    });
    with("skip_chunks, a window", &|r| {
        r.skip_chunks = true;
        r.max_time = (data_start() + 5 * 3600) * 1000;
    });
    with("negative matchers", &|r| {
        r.matchers.push(matcher(NEQ, "job", "db"));
        r.matchers.push(matcher(NRE, "zone", "z1|z2"));
    });
    let results: Vec<_> = requests
        .iter()
        .map(|(name, req)| (*name, ask(&ours, req), ask(&theirs, req)))
        .collect();
    drop(go);
    assert!(up, "the Go sidecar never answered Series");
    for (name, ours, theirs) in results {
        let ours = ours.unwrap_or_else(|e| panic!("{name}: ours failed: {e:?}"));
        let theirs = theirs.unwrap_or_else(|e| panic!("{name}: Go failed: {e:?}"));
        assert!(!ours.is_empty(), "{name}: no answer");
        assert_eq!(ours.len(), theirs.len(), "{name}: message count");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                a == b,
                "{name}: message {i} differs ({} vs {} bytes)",
                a.len(),
                b.len()
            );
        }
    }
}

/// Thanos' own sidecar next to a rig's Prometheus.
fn go_sidecar(bin: &str, rig: &Rig) -> GoSidecar {
    let tsdb = rig.prometheus.dir().join("go-tsdb");
    GoSidecar::start(bin, &rig.prometheus.url(), &tsdb, &[])
}

/// Prometheus sorts a remote-read answer by the series' own label sets and
/// adds its external labels after: `it_chain` before `it_chain{a="1"}`,
/// though `{a="1", cluster=...}` sorts before `{cluster=...}`. Series sends
/// such chains sorted (with chunks, in batches, and with `skip_chunks`), as
/// Thanos' sidecar does: byte for byte with THANOS_BIN set.
#[test]
fn label_sets_extending_one_another_come_sorted() {
    let own = ["", "a=\"1\"", "a=\"1\",b=\"2\"", "a=\"2\"", "zone=\"z\""];
    let start = data_start();
    let mut text = String::from("# TYPE it_chain gauge\n");
    for (i, labels) in own.iter().enumerate() {
        for n in 0..HOURS * 3600 / STEP {
            text.push_str(&format!(
                "it_chain{{{labels}}} {} {}\n",
                n as usize + i,
                start + n * STEP
            ));
        }
    }
    text.push_str("# EOF\n");
    let rig = start_rig_on(&text, &[]);
    let mut want: Vec<Labels> = own
        .iter()
        .map(|labels| {
            let mut set: BTreeMap<String, String> = external().into_iter().collect();
            set.insert("__name__".into(), "it_chain".into());
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap();
                set.insert(name.into(), value.trim_matches('"').into());
            }
            set.into_iter().collect()
        })
        .collect();
    want.sort();
    let mut requests = Vec::new();
    for (batch, skip) in [(0, false), (64, false), (0, true)] {
        let mut req = request(vec![matcher(EQ, "__name__", "it_chain")]);
        req.response_batch_size = batch;
        req.skip_chunks = skip;
        requests.push(req);
    }
    for req in &requests {
        let series = series_of(&frames(&rig, req).expect("Series"));
        assert_sorted(&series);
        let got: Vec<Labels> = series.iter().map(labels_of).collect();
        assert_eq!(
            got, want,
            "batch {}, skip_chunks {}",
            req.response_batch_size, req.skip_chunks
        );
        if !req.skip_chunks {
            let samples: usize = series
                .iter()
                .map(|s| samples_of(s, i64::MIN, i64::MAX).len())
                .sum();
            assert_eq!(samples as i64, own.len() as i64 * HOURS * 3600 / STEP);
        }
    }
    // Deleting an own label of some series (`a`) or an external one.
    for without in [&["a"][..], &["replica"], &["a", "zone"]] {
        for skip in [false, true] {
            let mut req = requests[0].clone();
            req.without_replica_labels = without.iter().map(|n| n.to_string()).collect();
            req.skip_chunks = skip;
            assert_sorted(&series_of(&frames(&rig, &req).expect("Series")));
            requests.push(req);
        }
    }
    let Ok(bin) = std::env::var("THANOS_BIN") else {
        eprintln!("THANOS_BIN not set; not compared with Thanos");
        return;
    };
    let go = go_sidecar(&bin, &rig);
    let ask = |port: u16, req: &store::SeriesRequest| {
        let client = grpcio::Client::new(crate::support::grpc::connect(port, "raw"));
        collect(client.server_streaming(&SERIES_AS_BYTES, req, grpcio::CallOption::default()))
    };
    let up = wait_for(Duration::from_secs(30), || {
        ask(go.grpc_port, &requests[0]).is_ok_and(|a| !a.is_empty())
    });
    assert!(up, "the Go sidecar never answered Series");
    for req in &requests {
        let ours = ask(rig.sidecar.grpc_port, req).expect("ours");
        let theirs = ask(go.grpc_port, req).expect("Go's");
        assert!(
            ours == theirs,
            "batch {}, skip_chunks {}, without {:?}: answers differ ({} vs {} messages)",
            req.response_batch_size,
            req.skip_chunks,
            req.without_replica_labels,
            ours.len(),
            theirs.len()
        );
    }
}
