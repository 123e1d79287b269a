//! What operators watch a sidecar with: the metric families of the Go
//! sidecar (names, types, help, labels, buckets), gRPC counters that move by
//! exactly the calls made, and the Thanos mixin's sidecar dashboard and
//! alerts answered by a real Prometheus scraping the sidecar.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use thanos_sidecar::proto::services::{HealthClient, InfoClient, StoreClient};
use thanos_sidecar::proto::{health, info, store, store_types};

use crate::support::grpc::collect;
use crate::support::{url_escape, wait_for, Prometheus, PrometheusOptions, Sidecar};

/// Every family but `go_*` that `thanos sidecar` (Thanos v0.43.0-dev,
/// commit e103a81bd, built with `-tags netgo,slicelabels`) exposed next to
/// Prometheus 2.42 with a FILESYSTEM bucket, after Info, LabelNames,
/// LabelValues and Series calls and one upload: `name|type|help|labels|buckets`.
const GO_SIDECAR_FAMILIES: &str = include_str!("go-sidecar-families.txt");

/// Ours has these besides: the `prometheus` crate's process collector
/// counts threads, which Go's has no family for; the sidecar says whether
/// its Prometheus runs in agent mode, which Thanos does not notice.
const OURS_ONLY: &[&str] = &["process_threads", "thanos_sidecar_prometheus_agent_mode"];

#[derive(Debug, Default, PartialEq)]
struct Family {
    kind: String,
    help: String,
    labels: BTreeSet<String>,
    buckets: Vec<f64>,
}

/// Families of a text exposition, by name.
fn families(exposition: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().help = help.replace("\\\\", "\\");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().kind = kind.into();
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|base| out.get(*base).is_some_and(|f| f.kind == "histogram"))
                })
                .unwrap_or(name);
            let entry = out.entry(family.into()).or_default();
            for pair in split_labels(labels) {
                let (label, value) = pair.split_once('=').unwrap_or((pair, ""));
                if label == "le" {
                    let le = value.trim_matches('"');
                    if le != "+Inf" {
                        let le: f64 = le.parse().expect("le value");
                        if !entry.buckets.contains(&le) {
                            entry.buckets.push(le);
                        }
                    }
                } else if !label.is_empty() {
                    entry.labels.insert(label.into());
                }
            }
        }
    }
    out
}

/// `a="x",b="y, z"` → `a="x"`, `b="y, z"` (commas inside quotes kept).
fn split_labels(labels: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

fn go_families() -> BTreeMap<String, Family> {
    GO_SIDECAR_FAMILIES
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('|').collect();
            let [name, kind, help, labels, buckets] = fields[..] else {
                panic!("bad line {line}");
            };
            let family = Family {
                kind: kind.into(),
                help: help.into(),
                labels: labels
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
                buckets: buckets
                    .split(',')
                    .filter(|b| !b.is_empty() && *b != "+Inf")
                    .map(|b| b.parse().expect("bucket"))
                    .collect(),
            };
            (name.to_string(), family)
        })
        .collect()
}

struct Rig {
    prometheus: Prometheus,
    sidecar: Sidecar,
    store: StoreClient,
    info: InfoClient,
    health: HealthClient,
    start_ms: i64,
    _bucket: tempfile::TempDir,
}

/// Prometheus with a block for the shipper and a few series to query; the
/// sidecar uploading to a filesystem bucket.
fn start() -> Rig {
    let (prometheus, start) =
        Prometheus::start_with_gauge(PrometheusOptions::default(), "obs_gauge", 3);
    let bucket = tempfile::tempdir().expect("bucket dir");
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        "--prometheus.get_config_interval=1s".into(),
        format!("--tsdb.path={}", prometheus.data_dir().display()),
        format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.path().display()
        ),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "{}",
        sidecar.log()
    );
    let channel = crate::support::grpc::connect(sidecar.grpc_port, "test-obs");
    Rig {
        prometheus,
        sidecar,
        store: StoreClient::new(channel.clone()),
        info: InfoClient::new(channel.clone()),
        health: HealthClient::new(channel),
        start_ms: start * 1000,
        _bucket: bucket,
    }
}

impl Rig {
    fn series_request(&self, name: &str, op: i32, value: &str) -> store::SeriesRequest {
        let mut m = store_types::LabelMatcher::new();
        m.type_ = protobuf::EnumOrUnknown::from_i32(op);
        m.name = name.into();
        m.value = value.into();
        let mut req = store::SeriesRequest::new();
        (req.min_time, req.max_time) = (self.start_ms, self.start_ms + 3_600_000);
        req.matchers = vec![m];
        req
    }

    fn label_names(&self) -> grpcio::Result<store::LabelNamesResponse> {
        let mut req = store::LabelNamesRequest::new();
        (req.start, req.end) = (self.start_ms, self.start_ms + 3_600_000);
        self.store.label_names(&req)
    }

    fn label_values(&self, label: &str) -> grpcio::Result<store::LabelValuesResponse> {
        let mut req = store::LabelValuesRequest::new();
        (req.start, req.end) = (self.start_ms, self.start_ms + 3_600_000);
        req.label = label.into();
        self.store.label_values(&req)
    }

    fn metric(&self, series: &str) -> f64 {
        self.sidecar.metric(series).unwrap_or(f64::NAN)
    }

    fn shipped(&self) -> bool {
        self.sidecar
            .metric("thanos_shipper_uploads_total")
            .is_some_and(|n| n >= 1.0)
    }
}

#[test]
fn metric_families_are_the_go_sidecars() {
    let rig = start();
    assert!(
        wait_for(Duration::from_secs(20), || rig.shipped()),
        "no upload; log:\n{}",
        rig.sidecar.log()
    );
    let _ = collect(rig.store.series(&rig.series_request("s", 0, "1")));
    let ours = families(&rig.sidecar.get("/metrics").1);
    let go = go_families();
    let mut problems = Vec::new();
    for (name, expected) in &go {
        match ours.get(name) {
            None => problems.push(format!("{name}: missing")),
            Some(family) if family != expected => {
                problems.push(format!("{name}: ours {family:?}\n  Go's {expected:?}"))
            }
            Some(_) => {}
        }
    }
    for name in ours.keys() {
        if !go.contains_key(name) && !name.starts_with("go_") && !OURS_ONLY.contains(&name.as_str())
        {
            problems.push(format!("{name}: not in the Go sidecar"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn grpc_counters_move_by_the_calls_made_with_their_codes() {
    let rig = start();
    let series = |code: &str, what: &str| {
        format!(
            "grpc_server_{what}{{grpc_code=\"{code}\",grpc_method=\"Series\",grpc_service=\"thanos.Store\",grpc_type=\"server_stream\"}}"
        )
    };
    let method = |what: &str, service: &str, method: &str, kind: &str| {
        format!("grpc_server_{what}{{grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}}")
    };
    // Pre-initialised: present at 0 before any call.
    assert_eq!(rig.metric(&series("DataLoss", "handled_total")), 0.0);
    assert_eq!(
        rig.metric(&method(
            "started_total",
            "thanos.Store",
            "Series",
            "server_stream"
        )),
        0.0
    );

    for _ in 0..3 {
        rig.label_names().expect("LabelNames");
    }
    let empty = rig
        .label_values("")
        .expect_err("LabelValues without a label");
    let frames = collect(rig.store.series(&rig.series_request("s", 2, "0|1"))).expect("Series");
    collect(rig.store.series(&rig.series_request("s", 2, "("))).expect_err("bad regex");
    rig.info.info(&info::InfoRequest::new()).expect("Info");
    rig.health
        .check(&health::HealthCheckRequest::new())
        .expect("Check");

    let handled = |service: &str, name: &str, kind: &str, code: &str| {
        rig.metric(&format!(
            "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{name}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}}"
        ))
    };
    assert!(
        wait_for(Duration::from_secs(5), || handled(
            "grpc.health.v1.Health",
            "Check",
            "unary",
            "OK"
        ) == 1.0),
        "{}",
        rig.sidecar.get("/metrics").1
    );
    assert_eq!(handled("thanos.Store", "LabelNames", "unary", "OK"), 3.0);
    assert_eq!(
        rig.metric(&method(
            "msg_sent_total",
            "thanos.Store",
            "LabelNames",
            "unary"
        )),
        3.0
    );
    assert_eq!(
        handled("thanos.Store", "LabelValues", "unary", "InvalidArgument"),
        1.0,
        "{empty}"
    );
    assert_eq!(
        rig.metric(&method(
            "msg_sent_total",
            "thanos.Store",
            "LabelValues",
            "unary"
        )),
        0.0
    );
    assert_eq!(rig.metric(&series("OK", "handled_total")), 1.0);
    assert_eq!(rig.metric(&series("InvalidArgument", "handled_total")), 1.0);
    assert_eq!(
        rig.metric(&method(
            "started_total",
            "thanos.Store",
            "Series",
            "server_stream"
        )),
        2.0
    );
    assert_eq!(
        rig.metric(&method(
            "msg_received_total",
            "thanos.Store",
            "Series",
            "server_stream"
        )),
        2.0
    );
    assert_eq!(
        rig.metric(&method(
            "msg_sent_total",
            "thanos.Store",
            "Series",
            "server_stream"
        )),
        frames.len() as f64
    );
    assert_eq!(
        rig.metric("grpc_server_handling_seconds_count{grpc_method=\"Series\",grpc_service=\"thanos.Store\",grpc_type=\"server_stream\"}"),
        2.0
    );
    assert_eq!(handled("thanos.info.Info", "Info", "unary", "OK"), 1.0);
    // Only the successful Series call is observed, with its two series.
    assert_eq!(
        rig.metric("thanos_store_server_series_requested_count"),
        1.0
    );
    assert_eq!(rig.metric("thanos_store_server_series_requested_sum"), 2.0);
    assert_eq!(
        rig.metric("thanos_store_server_pending_series_requests"),
        0.0
    );
    assert!(rig.metric("prometheus_store_received_frames_count") >= 1.0);
    assert_eq!(rig.metric("grpc_req_panics_recovered_total"), 0.0);
}

/// The Thanos mixin's sidecar dashboard and alerts (mixin/dashboards/
/// sidecar.libsonnet, the Overview's sidecar row, mixin/alerts/
/// sidecar.libsonnet and absent.libsonnet), as Grafana sends them with
/// `$job` = the sidecar's job and `$interval` = 5m. The dashboard's
/// Resources row reads Go's runtime (`go_memstats_*`, `go_goroutines`,
/// `go_gc_duration_seconds`), which a Rust process does not have; it is left
/// out. Alerts are checked on what they compare, so that each has data to
/// fire on.
const MIXIN: &[(&str, &str)] = &[
    (
        "gRPC (Unary) Rate",
        r#"sum by (job, grpc_method, grpc_code) (rate(grpc_server_handled_total{job=~"thanos-sidecar", grpc_type="unary"}[5m]))"#,
    ),
    (
        "gRPC (Unary) Errors",
        r#"sum by (job, grpc_code) (rate(grpc_server_handled_total{grpc_code=~"Unknown|ResourceExhausted|Internal|Unavailable|DataLoss",job=~"thanos-sidecar", grpc_type="unary"}[5m])) / ignoring (grpc_code) group_left() sum by (job) (rate(grpc_server_handled_total{job=~"thanos-sidecar", grpc_type="unary"}[5m]))"#,
    ),
    (
        "gRPC (Unary) Duration p50",
        r#"histogram_quantile(0.50, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"thanos-sidecar", grpc_type="unary"}[5m]))) * 1"#,
    ),
    (
        "gRPC (Unary) Duration p90",
        r#"histogram_quantile(0.90, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"thanos-sidecar", grpc_type="unary"}[5m]))) * 1"#,
    ),
    (
        "gRPC (Unary) Duration p99",
        r#"histogram_quantile(0.99, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"thanos-sidecar", grpc_type="unary"}[5m]))) * 1"#,
    ),
    (
        "gRPC (Stream) Rate",
        r#"sum by (job, grpc_method, grpc_code) (rate(grpc_server_handled_total{job=~"thanos-sidecar", grpc_type="server_stream"}[5m]))"#,
    ),
    (
        "gRPC (Stream) Errors",
        r#"sum by (job, grpc_code) (rate(grpc_server_handled_total{grpc_code=~"Unknown|ResourceExhausted|Internal|Unavailable|DataLoss",job=~"thanos-sidecar", grpc_type="server_stream"}[5m])) / ignoring (grpc_code) group_left() sum by (job) (rate(grpc_server_handled_total{job=~"thanos-sidecar", grpc_type="server_stream"}[5m]))"#,
    ),
    (
        "gRPC (Stream) Duration p50",
        r#"histogram_quantile(0.50, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"thanos-sidecar", grpc_type="server_stream"}[5m]))) * 1"#,
    ),
    (
        "gRPC (Stream) Duration p90",
        r#"histogram_quantile(0.90, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"thanos-sidecar", grpc_type="server_stream"}[5m]))) * 1"#,
    ),
    (
        "gRPC (Stream) Duration p99",
        r#"histogram_quantile(0.99, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"thanos-sidecar", grpc_type="server_stream"}[5m]))) * 1"#,
    ),
    (
        "Last Updated",
        r#"time() - max by (job, bucket) (thanos_objstore_bucket_last_successful_upload_time{job=~"thanos-sidecar"})"#,
    ),
    (
        "Bucket Operations Rate",
        r#"sum by (job, operation) (rate(thanos_objstore_bucket_operations_total{job=~"thanos-sidecar"}[5m]))"#,
    ),
    (
        "Bucket Operations Errors",
        r#"sum by (job) (rate(thanos_objstore_bucket_operation_failures_total{job=~"thanos-sidecar"}[5m])) / sum by (job) (rate(thanos_objstore_bucket_operations_total{job=~"thanos-sidecar"}[5m]))"#,
    ),
    (
        "Bucket Operations Duration p50",
        r#"histogram_quantile(0.50, sum by (job, le) (rate(thanos_objstore_bucket_operation_duration_seconds_bucket{job=~"thanos-sidecar"}[5m]))) * 1"#,
    ),
    (
        "Bucket Operations Duration p90",
        r#"histogram_quantile(0.90, sum by (job, le) (rate(thanos_objstore_bucket_operation_duration_seconds_bucket{job=~"thanos-sidecar"}[5m]))) * 1"#,
    ),
    (
        "Bucket Operations Duration p99",
        r#"histogram_quantile(0.99, sum by (job, le) (rate(thanos_objstore_bucket_operation_duration_seconds_bucket{job=~"thanos-sidecar"}[5m]))) * 1"#,
    ),
    (
        "Overview: gRPC (Unary) Rate",
        r#"sum by (job, grpc_method, grpc_code) (rate(grpc_server_handled_total{grpc_type="unary"}[5m]))"#,
    ),
    (
        "Overview: gRPC (Unary) Errors",
        r#"sum by (job, grpc_code) (rate(grpc_server_handled_total{grpc_code=~"Unknown|ResourceExhausted|Internal|Unavailable|DataLoss",grpc_type="unary"}[5m])) / ignoring (grpc_code) group_left() sum by (job) (rate(grpc_server_handled_total{grpc_type="unary"}[5m]))"#,
    ),
    (
        "Overview: gRPC (Unary) Latency p99",
        r#"histogram_quantile(0.99, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{grpc_type="unary"}[5m])))"#,
    ),
    (
        "alert ThanosSidecarBucketOperationsFailed",
        r#"sum by (job, instance) (rate(thanos_objstore_bucket_operation_failures_total{job=~".*thanos-sidecar.*"}[5m]))"#,
    ),
    (
        "alert ThanosSidecarNoConnectionToStartedPrometheus",
        r#"thanos_sidecar_prometheus_up{job=~".*thanos-sidecar.*"}"#,
    ),
    (
        "alert ThanosSidecarIsDown",
        r#"up{job=~".*thanos-sidecar.*"} == 1"#,
    ),
];

#[test]
fn the_mixin_sidecar_dashboard_and_alerts_have_data() {
    let rig = start();
    // Prometheus scrapes the sidecar as a deployment would, job "thanos-sidecar".
    let mut yaml = rig
        .prometheus
        .config_yaml(Some(vec![("cluster", "test"), ("replica", "0")]));
    yaml.push_str(&format!(
        "  - job_name: thanos-sidecar\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        rig.sidecar.http_port
    ));
    std::fs::write(rig.prometheus.config_path(), yaml).expect("write prometheus.yml");
    rig.prometheus.reload();
    assert!(
        wait_for(Duration::from_secs(20), || rig.shipped()),
        "{}",
        rig.sidecar.log()
    );
    let query = |expr: &str| -> usize {
        let url = format!("/api/v1/query?query={}", url_escape(expr));
        rig.prometheus.api(&url)["result"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    // Calls of both kinds while Prometheus scrapes every second, until
    // every panel has data (rates need two scrapes that saw them).
    let mut empty = Vec::new();
    let answered = wait_for(Duration::from_secs(30), || {
        rig.label_names().expect("LabelNames");
        let _ = collect(rig.store.series(&rig.series_request("s", 0, "1")));
        empty = MIXIN
            .iter()
            .filter(|(_, expr)| query(expr) == 0)
            .map(|(name, _)| *name)
            .collect();
        empty.is_empty()
    });
    assert!(answered, "no data for: {empty:?}");
}

/// The sidecar's request lines (`started call`, `finished call`) for Info,
/// LabelNames, a Series and a failing Series, under one request-logging
/// config, log level and format.
fn request_lines(prometheus: &Prometheus, config: &str, level: &str, format: &str) -> Vec<String> {
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        format!("--request.logging-config={config}"),
        format!("--log.level={level}"),
        format!("--log.format={format}"),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "{}",
        sidecar.log()
    );
    let channel = crate::support::grpc::connect(sidecar.grpc_port, "test-rl");
    let (store, info) = (StoreClient::new(channel.clone()), InfoClient::new(channel));
    info.info(&info::InfoRequest::new()).expect("Info");
    let mut names = store::LabelNamesRequest::new();
    names.end = i64::MAX / 2;
    store.label_names(&names).expect("LabelNames");
    let mut m = store_types::LabelMatcher::new();
    m.name = "job".into();
    m.value = "prom".into();
    let mut req = store::SeriesRequest::new();
    (req.min_time, req.max_time) = (0, i64::MAX / 2);
    req.matchers = vec![m.clone()];
    collect(store.series(&req)).expect("Series");
    m.type_ = protobuf::EnumOrUnknown::from_i32(2);
    m.value = "(".into();
    req.matchers = vec![m];
    collect(store.series(&req)).expect_err("bad regex");
    // The finish line of the last call is written once it has answered.
    let calls = |log: &str| log.lines().filter(|l| l.contains("finished call")).count();
    wait_for(Duration::from_secs(2), || calls(&sidecar.log()) >= 4);
    sidecar
        .log()
        .lines()
        .filter(|l| l.contains("started call") || l.contains("finished call"))
        .map(String::from)
        .collect()
}

#[test]
fn request_logging_follows_the_config_as_thanos_does() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let both = "options: {level: INFO, decision: {log_start: true, log_end: true}}";
    let end = "grpc: {options: {level: ERROR, decision: {log_start: false, log_end: true}}}";
    let off = "options: {level: INFO, decision: {log_start: false, log_end: false}}";
    let series_only = "grpc:\n  config:\n  - {service: thanos.Store, method: Series}\n  options: {level: DEBUG, decision: {log_end: true}}\n";

    let lines = request_lines(&prometheus, both, "debug", "logfmt");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("msg=\"started call\""))
            .count(),
        4,
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("msg=\"finished call\""))
            .count(),
        4,
        "{lines:#?}"
    );
    let info = lines
        .iter()
        .find(|l| l.contains("finished call") && l.contains("grpc.service=thanos.info.Info"))
        .expect("Info's finish line");
    // Thanos' keys, in Thanos' order.
    let keys: Vec<&str> = info
        .split(' ')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "ts",
            "caller",
            "level",
            "service",
            "component",
            "msg",
            "requestID",
            "protocol",
            "grpc.component",
            "grpc.service",
            "grpc.method",
            "grpc.method_type",
            "peer.address",
            "grpc.start_time",
            "grpc.code",
            "grpc.time_ms"
        ],
        "{info}"
    );
    assert!(
        info.contains("level=debug service=gRPC/server component=sidecar"),
        "{info}"
    );
    assert!(
        info.contains("grpc.method=Info grpc.method_type=unary peer.address=127.0.0.1:"),
        "{info}"
    );
    let failed = lines
        .iter()
        .find(|l| l.contains("finished call") && l.contains("grpc.code=InvalidArgument"))
        .expect("the failing Series' finish line");
    assert!(
        failed.contains("grpc.method_type=server_stream"),
        "{failed}"
    );
    assert!(
        failed.contains("grpc.error=\"rpc error: code = InvalidArgument desc = "),
        "{failed}"
    );

    let lines = request_lines(&prometheus, end, "debug", "logfmt");
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains("finished call")),
        "{lines:#?}"
    );

    assert_eq!(
        request_lines(&prometheus, off, "debug", "logfmt"),
        Vec::<String>::new()
    );
    // Successful and InvalidArgument calls log at debug: nothing at info.
    assert_eq!(
        request_lines(&prometheus, both, "info", "logfmt"),
        Vec::<String>::new()
    );

    let lines = request_lines(&prometheus, series_only, "debug", "logfmt");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains("grpc.method=Series")),
        "{lines:#?}"
    );

    let lines = request_lines(&prometheus, both, "debug", "json");
    assert_eq!(lines.len(), 8, "{lines:#?}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["service"], "gRPC/server", "{line}");
        assert_eq!(v["protocol"], "grpc", "{line}");
        assert!(
            v["grpc.time_ms"]
                .as_str()
                .is_some_and(|t| t.parse::<f64>().is_ok()),
            "{line}"
        );
        assert!(
            v["requestID"].as_str().is_some_and(|id| id.len() == 26),
            "{line}"
        );
    }
}

#[test]
fn request_logging_shows_server_failures_at_error() {
    let mut prometheus = Prometheus::start(PrometheusOptions::default());
    let end = "options: {level: ERROR, decision: {log_end: true}}";
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        format!("--request.logging-config={end}"),
        "--prometheus.get_config_interval=30s".into(),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "{}",
        sidecar.log()
    );
    prometheus.stop();
    let channel = crate::support::grpc::connect(sidecar.grpc_port, "test-rl");
    let mut names = store::LabelNamesRequest::new();
    names.end = i64::MAX / 2;
    let err = StoreClient::new(channel)
        .label_names(&names)
        .expect_err("Prometheus is gone");
    let has_line = |log: &str| log.lines().any(|l| l.contains("finished call"));
    assert!(
        wait_for(Duration::from_secs(2), || has_line(&sidecar.log())),
        "{err}\n{}",
        sidecar.log()
    );
    let log = sidecar.log();
    let line = log
        .lines()
        .find(|l| l.contains("finished call"))
        .unwrap_or_default();
    assert!(
        line.contains("level=error service=gRPC/server component=sidecar"),
        "{line}"
    );
    assert!(
        line.contains("grpc.method=LabelNames grpc.method_type=unary"),
        "{line}"
    );
    assert!(
        line.contains("grpc.code=Internal grpc.error=\"rpc error: code = Internal desc = "),
        "{line}"
    );
}

#[test]
fn request_logging_config_errors_exit_1_naming_the_key() {
    let mut sidecar = Sidecar::spawn(
        &["--request.logging-config=grpc: {options: {decision: {log_end: true}}}".into()],
        &[],
    );
    let status = sidecar.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", sidecar.log());
    assert!(
        sidecar
            .log()
            .contains("--request.logging-config: grpc.options: level field is empty"),
        "{}",
        sidecar.log()
    );
}
