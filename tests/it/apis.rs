//! Rules, Targets, Metadata, Exemplars and Status over gRPC against a real
//! Prometheus 2.42 (Thanos' `pkg/*/prometheus.go` for each): rule files with recording and alerting
//! rules, scrape targets (itself, the sidecar, an OpenMetrics endpoint with
//! exemplars served from here, a dead one and a relabel-dropped one).
//!
//! The sidecar talks to Prometheus through a recording proxy, so each gRPC
//! answer is checked against the very JSON Prometheus sent for it, and the
//! parameters the sidecar forwarded are checked too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use grpcio::{ChannelBuilder, EnvBuilder, RpcStatus, RpcStatusCode};
use serde_json::Value;
use thanos_sidecar::proto::services::{
    ExemplarsClient, InfoClient, MetadataClient, RulesClient, StatusClient, TargetsClient,
};
use thanos_sidecar::proto::{
    exemplars, info, labels, metadata, rules, status, store_types, targets,
};

use crate::support::grpc::collect;
use crate::support::{
    free_port, http_get, wait_for, Prometheus, PrometheusOptions, RecordingProxy, Sidecar,
    ThanosQuery,
};

type Labels = BTreeMap<String, String>;

const RULES: &str = "\
groups:
  - name: recording
    interval: 1s
    rules:
      - record: it:up:sum
        expr: sum(up)
        labels:
          team: a
          replica: \"9\"
  - name: alerting
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1) > 0
        labels:
          severity: page
          replica: \"9\"
        annotations:
          summary: always
      - alert: LongPending
        expr: vector(1) > 0
        for: 1h
        keep_firing_for: 5m
      - alert: NeverFires
        expr: vector(1) > 2
";

/// An OpenMetrics endpoint whose counters carry a new exemplar per scrape
/// (no timestamp: Prometheus gives it the scrape's).
struct OpenMetrics {
    port: u16,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl OpenMetrics {
    fn start() -> OpenMetrics {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("listen"));
        let port = server.server_addr().to_ip().expect("IP listener").port();
        let srv = server.clone();
        let thread = std::thread::spawn(move || {
            for (n, req) in (1u64..).zip(srv.incoming_requests()) {
                // Series `/b` has a `replica` of its own, and so has its
                // exemplar: the sidecar overrides the first, not the second.
                let body = format!(
                    "# TYPE it_exemplar counter\n# HELP it_exemplar Requests with a trace.\n\
                     it_exemplar_total{{path=\"/a\"}} {n} # {{trace_id=\"a{n}\"}} 1.5\n\
                     it_exemplar_total{{path=\"/b\",replica=\"9\"}} {} # {{trace_id=\"b{n}\",replica=\"9\"}} 2.5\n\
                     # EOF\n",
                    2 * n
                );
                let header = tiny_http::Header::from_bytes(
                    "Content-Type",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .expect("header");
                let _ = req.respond(tiny_http::Response::from_string(body).with_header(header));
            }
        });
        OpenMetrics {
            port,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for OpenMetrics {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Rig {
    sidecar: Sidecar,
    proxy: RecordingProxy,
    prometheus: Prometheus,
    _openmetrics: OpenMetrics,
    channel: grpcio::Channel,
}

impl Rig {
    fn start() -> Rig {
        let openmetrics = OpenMetrics::start();
        let prometheus = Prometheus::prepare(PrometheusOptions {
            extra_args: vec!["--enable-feature=exemplar-storage".into()],
            ..Default::default()
        });
        std::fs::write(prometheus.dir().join("rules.yml"), RULES).expect("write rules");
        let dead = free_port();
        write_config(&prometheus, openmetrics.port, dead, None);
        let mut prometheus = prometheus;
        prometheus.resume();
        let proxy = RecordingProxy::start(&prometheus.url());
        let sidecar = Sidecar::start(&[
            format!("--prometheus.url={}", proxy.url()),
            "--prometheus.get_config_interval=500ms".into(),
            "--prometheus.get_config_timeout=2s".into(),
        ]);
        assert!(
            sidecar.wait_ready(Duration::from_secs(20)),
            "not ready: {}",
            sidecar.log()
        );
        // Now that its port is known, Prometheus scrapes the sidecar too.
        write_config(&prometheus, openmetrics.port, dead, Some(sidecar.http_port));
        prometheus.reload();
        let env = Arc::new(
            EnvBuilder::new()
                .cq_count(1)
                .name_prefix("test-grpc")
                .build(),
        );
        let channel = ChannelBuilder::new(env).connect(&format!("127.0.0.1:{}", sidecar.grpc_port));
        Rig {
            sidecar,
            proxy,
            prometheus,
            _openmetrics: openmetrics,
            channel,
        }
    }

    /// Waits until Prometheus' own answer at `path` satisfies `ready`.
    fn wait_prometheus(&self, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let ok = wait_for(Duration::from_secs(20), || {
            let (code, body) = http_get(&format!("{}{path}", self.prometheus.url()));
            last = serde_json::from_str::<Value>(&body).unwrap_or_default()["data"].clone();
            code == 200 && ready(&last)
        });
        assert!(ok, "{path} never got there; last: {last}");
        last
    }

    /// The last request the sidecar sent to `path`, with Prometheus' answer.
    fn sent(&self, path: &str) -> crate::support::proxy::Recorded {
        self.proxy
            .requests_to(path)
            .pop()
            .unwrap_or_else(|| panic!("the sidecar sent nothing to {path}"))
    }

    fn sent_count(&self, path: &str) -> usize {
        self.proxy.requests_to(path).len()
    }
}

/// Prometheus' config: scrapes itself, the OpenMetrics endpoint, a port
/// nobody listens on, a target relabelling drops, and (once it runs) the
/// sidecar; loads the rule file.
fn write_config(prometheus: &Prometheus, openmetrics: u16, dead: u16, sidecar: Option<u16>) {
    let job = |name: &str, port: u16| {
        format!(
            "  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
    };
    // `config_yaml` ends inside `scrape_configs`, after the job scraping itself.
    let mut yaml = prometheus.config_yaml(Some(vec![("cluster", "test"), ("replica", "0")]));
    yaml.push_str(&job("exemplars", openmetrics));
    yaml.push_str(&job("dead", dead));
    yaml.push_str(&job("dropped", 1));
    yaml.push_str(
        "    relabel_configs:\n      - action: drop\n        source_labels: [__address__]\n        regex: '.*'\n",
    );
    if let Some(port) = sidecar {
        yaml.push_str(&job("sidecar", port));
    }
    let rules = prometheus.dir().join("rules.yml");
    yaml.push_str(&format!("rule_files:\n  - {}\n", rules.display()));
    std::fs::write(prometheus.config_path(), yaml).expect("write prometheus.yml");
}

fn external() -> Labels {
    [("cluster", "test"), ("replica", "0")]
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .into()
}

/// A label set as a map, after checking it is sorted by name.
fn labels_of(set: &labels::ZLabelSet) -> Labels {
    let names: Vec<&str> = set.labels.iter().map(|l| l.name.as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "unsorted {names:?}");
    set.labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn json_labels(v: &Value) -> Labels {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn with_external(mut labels: Labels) -> Labels {
    labels.extend(external());
    labels
}

/// An RFC 3339 string as (seconds, nanos).
fn time_of(v: &Value) -> (i64, i32) {
    let text = v.as_str().unwrap_or_else(|| panic!("no time in {v}"));
    let t = chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
    (t.timestamp(), t.timestamp_subsec_nanos() as i32)
}

fn ts(t: &protobuf::MessageField<protobuf::well_known_types::timestamp::Timestamp>) -> (i64, i32) {
    assert!(t.is_some(), "timestamp missing");
    (t.seconds, t.nanos)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

fn param(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds as the seconds Prometheus takes.
fn seconds(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

fn assert_group(got: &rules::RuleGroup, want: &Value) {
    assert_eq!(got.name, str_of(&want["name"]));
    assert_eq!(got.file, str_of(&want["file"]));
    assert_eq!(got.interval, f64_of(&want["interval"]));
    assert_eq!(
        got.evaluation_duration_seconds,
        f64_of(&want["evaluationTime"])
    );
    assert_eq!(ts(&got.last_evaluation), time_of(&want["lastEvaluation"]));
    assert_eq!(got.limit, want["limit"].as_i64().unwrap_or_default());
    assert_eq!(got.PartialResponseStrategy.value(), 1, "ABORT");
    let want_rules = want["rules"].as_array().expect("rules");
    assert_eq!(got.rules.len(), want_rules.len(), "{}", got.name);
    for (rule, want) in got.rules.iter().zip(want_rules) {
        match str_of(&want["type"]) {
            "recording" => {
                assert!(rule.has_recording(), "{want}");
                let r = rule.recording();
                assert_eq!(r.name, str_of(&want["name"]));
                assert_eq!(r.query, str_of(&want["query"]));
                assert_eq!(r.health, str_of(&want["health"]));
                assert_eq!(r.last_error, str_of(&want["lastError"]));
                assert_eq!(
                    r.evaluation_duration_seconds,
                    f64_of(&want["evaluationTime"])
                );
                assert_eq!(ts(&r.last_evaluation), time_of(&want["lastEvaluation"]));
                assert_eq!(
                    labels_of(&r.labels),
                    with_external(json_labels(&want["labels"]))
                );
            }
            "alerting" => {
                assert!(rule.has_alert(), "{want}");
                let a = rule.alert();
                assert_eq!(a.name, str_of(&want["name"]));
                assert_eq!(a.query, str_of(&want["query"]));
                assert_eq!(
                    a.state.enum_value().map(|s| format!("{s:?}")),
                    Ok(str_of(&want["state"]).to_uppercase())
                );
                assert_eq!(a.duration_seconds, f64_of(&want["duration"]));
                assert_eq!(a.keep_firing_for_seconds, f64_of(&want["keepFiringFor"]));
                assert_eq!(a.health, str_of(&want["health"]));
                assert_eq!(
                    a.evaluation_duration_seconds,
                    f64_of(&want["evaluationTime"])
                );
                assert_eq!(ts(&a.last_evaluation), time_of(&want["lastEvaluation"]));
                assert_eq!(
                    labels_of(&a.labels),
                    with_external(json_labels(&want["labels"]))
                );
                assert_eq!(labels_of(&a.annotations), json_labels(&want["annotations"]));
                let instances = want["alerts"].as_array().expect("alerts");
                assert_eq!(a.alerts.len(), instances.len());
                for (got, want) in a.alerts.iter().zip(instances) {
                    // Instances go as Prometheus reports them: no external labels.
                    assert_eq!(labels_of(&got.labels), json_labels(&want["labels"]));
                    assert_eq!(
                        labels_of(&got.annotations),
                        json_labels(&want["annotations"])
                    );
                    assert_eq!(
                        got.state.enum_value().map(|s| format!("{s:?}")),
                        Ok(str_of(&want["state"]).to_uppercase())
                    );
                    assert_eq!(ts(&got.active_at), time_of(&want["activeAt"]));
                    assert_eq!(got.value, str_of(&want["value"]));
                }
            }
            other => panic!("rule type {other:?}"),
        }
    }
}

#[test]
fn rules_by_type_with_external_labels_on_rules_only() {
    let rig = Rig::start();
    // Every rule evaluated, the alerts in their states.
    rig.wait_prometheus("/api/v1/rules", |data| {
        let rules: Vec<&Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let states: Vec<&str> = rules.iter().map(|r| str_of(&r["state"])).collect();
        rules.len() == 4
            && states.contains(&"firing")
            && states.contains(&"pending")
            && rules
                .iter()
                .all(|r| !str_of(&r["lastEvaluation"]).starts_with("0001"))
    });
    let client = RulesClient::new(rig.channel.clone());
    use rules::rules_request::Type;
    for (kind, sent_type) in [
        (Type::ALL, None),
        (Type::ALERT, Some("alert")),
        (Type::RECORD, Some("record")),
    ] {
        let mut req = rules::RulesRequest::new();
        req.type_ = kind.into();
        // Filters Thanos neither forwards nor applies.
        req.rule_name = vec!["NoSuchRule".into()];
        req.matcher_string = vec!["{job=\"nope\"}".into()];
        req.file = vec!["/nowhere.yml".into()];
        let frames = collect(client.rules(&req)).expect("Rules");
        let sent = rig.sent("/api/v1/rules");
        let want_query = sent_type.map(|t| param(&[("type", t)])).unwrap_or_default();
        assert_eq!(sent.query(), want_query, "{kind:?}");
        let want = sent.json()["data"]["groups"].clone();
        let want = want.as_array().expect("groups");
        assert_eq!(frames.len(), want.len(), "{kind:?}: one frame per group");
        assert!(!frames.is_empty());
        for (frame, want) in frames.iter().zip(want) {
            assert!(frame.has_group(), "{frame:?}");
            assert_group(frame.group(), want);
        }
        let all: Vec<&rules::Rule> = frames.iter().flat_map(|f| &f.group().rules).collect();
        let alerts: Vec<&rules::Alert> = all
            .iter()
            .filter(|r| r.has_alert())
            .map(|r| r.alert())
            .collect();
        let recordings = all.iter().filter(|r| r.has_recording()).count();
        match kind {
            Type::ALL => {
                assert_eq!((alerts.len(), recordings), (3, 1));
                let states: Vec<_> = alerts.iter().map(|a| a.state.value()).collect();
                // FIRING, PENDING, INACTIVE, in the rule file's order.
                assert_eq!(states, [3, 2, 1]);
                // The rule's own `replica` loses to the external one; the
                // alert keeps the one Prometheus gave it.
                let firing = alerts[0];
                assert_eq!(labels_of(&firing.labels)["replica"], "0");
                assert_eq!(labels_of(&firing.alerts[0].labels)["replica"], "9");
                assert!(!labels_of(&firing.alerts[0].labels).contains_key("cluster"));
                let rec = all.iter().find(|r| r.has_recording()).expect("recording");
                let rec = labels_of(&rec.recording().labels);
                assert_eq!(
                    rec,
                    with_external([("team".to_string(), "a".to_string())].into())
                );
            }
            Type::ALERT => assert_eq!((alerts.len(), recordings), (3, 0)),
            Type::RECORD => assert_eq!((alerts.len(), recordings), (0, 1)),
        }
    }

    // An unknown type goes as its number; Prometheus refuses it.
    let mut req = rules::RulesRequest::new();
    req.type_ = protobuf::EnumOrUnknown::from_i32(7);
    let err = collect(client.rules(&req)).expect_err("type 7");
    assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT, "{err:?}");
    assert!(
        err.message().contains("expected 2xx response, got 400"),
        "{err:?}"
    );
    assert_eq!(rig.sent("/api/v1/rules").query(), param(&[("type", "7")]));
}

#[test]
fn targets_by_state_with_external_labels() {
    let rig = Rig::start();
    // Every active target scraped once, the sidecar's among them.
    rig.wait_prometheus("/api/v1/targets", |data| {
        let active = data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        active.len() == 4
            && active.iter().all(|t| str_of(&t["health"]) != "unknown")
            && data["droppedTargets"]
                .as_array()
                .is_some_and(|d| d.len() == 1)
    });
    let client = TargetsClient::new(rig.channel.clone());
    use targets::targets_request::State;
    for (state, sent_state) in [
        (State::ANY, None),
        (State::ACTIVE, Some("active")),
        (State::DROPPED, Some("dropped")),
    ] {
        let mut req = targets::TargetsRequest::new();
        req.state = state.into();
        let frames = collect(client.targets(&req)).expect("Targets");
        let sent = rig.sent("/api/v1/targets");
        let want_query = sent_state
            .map(|s| param(&[("state", s)]))
            .unwrap_or_default();
        assert_eq!(sent.query(), want_query, "{state:?}");
        assert_eq!(frames.len(), 1, "{state:?}: one frame");
        assert!(frames[0].has_targets());
        let got = frames[0].targets();
        let want = sent.json()["data"].clone();
        let want_active = want["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let want_dropped = want["droppedTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(got.activeTargets.len(), want_active.len());
        assert_eq!(got.droppedTargets.len(), want_dropped.len());
        for (t, want) in got.activeTargets.iter().zip(&want_active) {
            assert_eq!(
                labels_of(&t.discoveredLabels),
                with_external(json_labels(&want["discoveredLabels"]))
            );
            assert_eq!(
                labels_of(&t.labels),
                with_external(json_labels(&want["labels"]))
            );
            assert_eq!(t.scrapePool, str_of(&want["scrapePool"]));
            assert_eq!(t.scrapeUrl, str_of(&want["scrapeUrl"]));
            assert_eq!(t.globalUrl, str_of(&want["globalUrl"]));
            assert_eq!(t.lastError, str_of(&want["lastError"]));
            assert_eq!(ts(&t.lastScrape), time_of(&want["lastScrape"]));
            assert_eq!(t.lastScrapeDuration, f64_of(&want["lastScrapeDuration"]));
            assert_eq!(
                t.health.enum_value().map(|h| format!("{h:?}")),
                Ok(str_of(&want["health"]).to_uppercase())
            );
        }
        for (t, want) in got.droppedTargets.iter().zip(&want_dropped) {
            assert_eq!(
                labels_of(&t.discoveredLabels),
                with_external(json_labels(&want["discoveredLabels"]))
            );
        }
        let health: BTreeMap<&str, i32> = got
            .activeTargets
            .iter()
            .map(|t| (t.scrapePool.as_str(), t.health.value()))
            .collect();
        match state {
            State::ANY | State::ACTIVE => {
                // UP = 1, DOWN = 0.
                let want: BTreeMap<&str, i32> =
                    [("dead", 0), ("exemplars", 1), ("prom", 1), ("sidecar", 1)].into();
                assert_eq!(health, want);
            }
            State::DROPPED => assert!(health.is_empty()),
        }
        let dropped = got.droppedTargets.len();
        assert_eq!(
            dropped,
            if state == State::ACTIVE { 0 } else { 1 },
            "{state:?}"
        );
    }

    // The Info API advertises every one of these APIs.
    let resp = InfoClient::new(rig.channel.clone())
        .info(&info::InfoRequest::new())
        .expect("Info");
    assert!(resp.rules.is_some() && resp.targets.is_some() && resp.metric_metadata.is_some());
    assert!(resp.status.is_some() && resp.query.is_none());
    assert!(resp.exemplars.is_some());
    assert_eq!((resp.exemplars.min_time, resp.exemplars.max_time), (0, 0));
}

fn metadata_map(
    frames: &[metadata::MetricMetadataResponse],
) -> BTreeMap<String, Vec<(String, String, String)>> {
    assert_eq!(frames.len(), 1, "one frame");
    assert!(frames[0].has_metadata());
    frames[0]
        .metadata()
        .metadata
        .iter()
        .map(|(metric, entry)| {
            let metas = entry
                .metas
                .iter()
                .map(|m| (m.type_.clone(), m.help.clone(), m.unit.clone()))
                .collect();
            (metric.clone(), metas)
        })
        .collect()
}

fn json_metadata(data: &Value) -> BTreeMap<String, Vec<(String, String, String)>> {
    data.as_object()
        .expect("metadata map")
        .iter()
        .map(|(metric, metas)| {
            let metas = metas
                .as_array()
                .expect("metas")
                .iter()
                .map(|m| {
                    (
                        str_of(&m["type"]).to_string(),
                        str_of(&m["help"]).to_string(),
                        str_of(&m["unit"]).to_string(),
                    )
                })
                .collect();
            (metric.clone(), metas)
        })
        .collect()
}

#[test]
fn metric_metadata_limits_and_metric_filter() {
    let rig = Rig::start();
    rig.wait_prometheus("/api/v1/metadata", |data| {
        [
            "prometheus_build_info",
            "it_exemplar",
            "thanos_sidecar_prometheus_up",
        ]
        .iter()
        .all(|m| data.get(m).is_some())
    });
    let client = MetadataClient::new(rig.channel.clone());
    let call = |metric: &str, limit: i32| {
        let mut req = metadata::MetricMetadataRequest::new();
        req.metric = metric.into();
        req.limit = limit;
        let frames = collect(client.metric_metadata(&req)).expect("MetricMetadata");
        let sent = rig.sent("/api/v1/metadata");
        (metadata_map(&frames), sent)
    };

    let (got, sent) = call("prometheus_build_info", -1);
    assert_eq!(sent.query(), param(&[("metric", "prometheus_build_info")]));
    assert_eq!(got, json_metadata(&sent.json()["data"]));
    assert_eq!(got.len(), 1);
    assert_eq!(got["prometheus_build_info"][0].0, "gauge");

    // Unlimited: everything, the sidecar's and the OpenMetrics endpoint's too.
    let (got, sent) = call("", -1);
    assert!(sent.query().is_empty(), "{:?}", sent.query());
    assert_eq!(got, json_metadata(&sent.json()["data"]));
    assert_eq!(got["it_exemplar"][0].0, "counter");
    assert_eq!(got["it_exemplar"][0].1, "Requests with a trace.");
    assert!(got.contains_key("thanos_sidecar_prometheus_up"));
    let everything = got.len();
    assert!(everything > 10);

    // 0 is forwarded, and Prometheus answers nothing.
    let (got, sent) = call("", 0);
    assert_eq!(sent.query(), param(&[("limit", "0")]));
    assert!(got.is_empty(), "{got:?}");

    let (got, sent) = call("", 2);
    assert_eq!(sent.query(), param(&[("limit", "2")]));
    assert_eq!(got, json_metadata(&sent.json()["data"]));
    assert_eq!(got.len(), 2);

    let (got, _) = call("no_such_metric", -1);
    assert!(got.is_empty());
}

/// Exemplar data as (series labels, [(exemplar labels, value, ts ms)]).
type ExemplarSet = Vec<(Labels, Vec<(Labels, f64, i64)>)>;

fn exemplar_set(frames: &[exemplars::ExemplarsResponse]) -> ExemplarSet {
    frames
        .iter()
        .map(|f| {
            assert!(f.has_data(), "{f:?}");
            let d = f.data();
            let list = d
                .exemplars
                .iter()
                .map(|e| (labels_of(&e.labels), e.value, e.ts))
                .collect();
            (labels_of(&d.seriesLabels), list)
        })
        .collect()
}

/// Prometheus' JSON as the sidecar should send it: series labels extended.
fn json_exemplars(data: &Value) -> ExemplarSet {
    data.as_array()
        .expect("exemplar data")
        .iter()
        .map(|d| {
            let list = d["exemplars"]
                .as_array()
                .expect("exemplars")
                .iter()
                .map(|e| {
                    let value: f64 = str_of(&e["value"]).parse().expect("value");
                    let ms = (f64_of(&e["timestamp"]) * 1000.0).round() as i64;
                    (json_labels(&e["labels"]), value, ms)
                })
                .collect();
            (with_external(json_labels(&d["seriesLabels"])), list)
        })
        .collect()
}

#[test]
fn exemplars_in_a_time_range() {
    let rig = Rig::start();
    let start = now_ms() - 60_000;
    let query = |start: i64, end: i64| {
        format!(
            "/api/v1/query_exemplars?query=it_exemplar_total&start={}&end={}",
            seconds(start),
            seconds(end)
        )
    };
    rig.wait_prometheus(&query(start, now_ms() + 60_000), |data| {
        data.as_array().is_some_and(|d| {
            d.len() == 2
                && d.iter()
                    .all(|s| s["exemplars"].as_array().is_some_and(|e| e.len() >= 4))
        })
    });
    let client = ExemplarsClient::new(rig.channel.clone());
    let call = |q: &str, start: i64, end: i64| {
        let mut req = exemplars::ExemplarsRequest::new();
        req.query = q.into();
        req.start = start;
        req.end = end;
        collect(client.exemplars(&req))
    };

    let end = now_ms();
    let frames = call("it_exemplar_total", start, end).expect("Exemplars");
    let sent = rig.sent("/api/v1/query_exemplars");
    assert_eq!(
        sent.query(),
        param(&[
            ("query", "it_exemplar_total"),
            ("start", &seconds(start)),
            ("end", &seconds(end))
        ])
    );
    let got = exemplar_set(&frames);
    assert_eq!(got, json_exemplars(&sent.json()["data"]));
    assert_eq!(got.len(), 2, "one frame per series");
    // `/b` has its own `replica`: the external one wins on the series, the
    // exemplar keeps its own.
    let b = got
        .iter()
        .find(|(s, _)| s["path"] == "/b")
        .expect("series /b");
    assert_eq!(b.0["replica"], "0");
    assert_eq!(b.0["cluster"], "test");
    assert!(b.1.iter().all(|(l, v, _)| l["replica"] == "9" && *v == 2.5));

    // A narrower range in the past: what Prometheus itself answers for it,
    // and fewer exemplars than the whole.
    let times: Vec<i64> = got[0].1.iter().map(|(_, _, ts)| *ts).collect();
    assert!(times.len() >= 4);
    let (from, to) = (times[1], times[2]);
    let narrow = exemplar_set(&call("it_exemplar_total", from, to).expect("narrow"));
    let direct = rig.prometheus.api(&query(from, to));
    assert_eq!(narrow, json_exemplars(&direct));
    let count = |set: &ExemplarSet| set.iter().map(|(_, e)| e.len()).sum::<usize>();
    assert!(
        count(&narrow) >= 2 && count(&narrow) < count(&got),
        "{narrow:?}"
    );
    assert!(narrow
        .iter()
        .flat_map(|(_, e)| e)
        .all(|(_, _, ts)| (from..=to).contains(ts)));

    // No exemplars: no frames.
    let none = call("up", start, end).expect("up");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(
        rig.sent("/api/v1/query_exemplars").json()["data"],
        serde_json::json!([])
    );

    // A query Prometheus cannot parse is the client's error.
    let err = call("it_exemplar_total{", start, end).expect_err("bad query");
    assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT, "{err:?}");
    assert!(err.message().contains("got 400"), "{err:?}");
    assert!(err.message().contains("parse error"), "{err:?}");
}

fn matcher(t: i32, name: &str, value: &str) -> store_types::LabelMatcher {
    let mut m = store_types::LabelMatcher::new();
    m.type_ = protobuf::EnumOrUnknown::from_i32(t);
    m.name = name.into();
    m.value = value.into();
    m
}

fn stat_list(list: &[status::Statistic]) -> Vec<(String, u64)> {
    list.iter().map(|s| (s.name.clone(), s.value)).collect()
}

fn json_stat_list(v: &Value, limit: usize) -> Vec<(String, u64)> {
    v.as_array()
        .expect("statistics")
        .iter()
        .take(limit)
        .map(|s| {
            (
                str_of(&s["name"]).to_string(),
                s["value"].as_u64().expect("value"),
            )
        })
        .collect()
}

fn assert_entry(got: &status::TSDBStatisticsEntry, want: &Value, limit: usize) {
    let head = &got.head_statistics;
    let want_head = &want["headStats"];
    assert_eq!(
        head.num_series,
        want_head["numSeries"].as_u64().expect("numSeries")
    );
    assert_eq!(
        head.num_label_pairs,
        want_head["numLabelPairs"].as_i64().expect("pairs")
    );
    assert_eq!(
        head.min_time,
        want_head["minTime"].as_i64().expect("minTime")
    );
    assert_eq!(
        head.max_time,
        want_head["maxTime"].as_i64().expect("maxTime")
    );
    // Thanos does not carry the chunk count over.
    assert!(want_head["chunkCount"].as_i64().expect("chunkCount") > 0);
    assert_eq!(head.chunk_count, 0);
    for (got, key) in [
        (&got.series_count_by_metric_name, "seriesCountByMetricName"),
        (
            &got.label_value_count_by_label_name,
            "labelValueCountByLabelName",
        ),
        (
            &got.memory_in_bytes_by_label_name,
            "memoryInBytesByLabelName",
        ),
        (
            &got.series_count_by_label_value_pair,
            "seriesCountByLabelValuePair",
        ),
    ] {
        let want = json_stat_list(&want[key], limit);
        assert!(!want.is_empty(), "{key}");
        assert_eq!(stat_list(got), want, "{key}");
    }
}

#[test]
fn tsdb_statistics_by_external_label_matchers_and_tenant() {
    let rig = Rig::start();
    // Prometheus keeps its index statistics for 30 s: ask only once
    // scrapes have filled the head.
    rig.wait_prometheus("/api/v1/query?query=up", |data| {
        data["result"].as_array().is_some_and(|r| r.len() >= 3)
    });
    rig.wait_prometheus("/api/v1/status/tsdb", |data| {
        data["headStats"]["chunkCount"].as_i64() > Some(0)
            && data["seriesCountByLabelValuePair"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
    });
    let client = StatusClient::new(rig.channel.clone());
    let path = "/api/v1/status/tsdb";
    let call = |req: &status::TSDBStatisticsRequest| {
        let frames = collect(client.tsdb_statistics(req))?;
        assert_eq!(frames.len(), 1, "one frame");
        assert!(frames[0].has_statistics());
        Ok::<_, RpcStatus>(frames[0].statistics().statistics.clone())
    };

    let got = call(&status::TSDBStatisticsRequest::new()).expect("TSDBStatistics");
    let sent = rig.sent(path);
    assert!(sent.query().is_empty(), "{:?}", sent.query());
    assert_eq!(got.keys().collect::<Vec<_>>(), [""]);
    assert_entry(&got[""], &sent.json()["data"], usize::MAX);

    // Prometheus 2.42 ignores `limit` (3.x applies it); the answer is cut
    // all the same.
    let mut req = status::TSDBStatisticsRequest::new();
    req.limit = 2;
    let got = call(&req).expect("limit 2");
    let sent = rig.sent(path);
    assert_eq!(sent.query(), param(&[("limit", "2")]));
    let listed = json_stat_list(&sent.json()["data"]["seriesCountByMetricName"], 100).len();
    if crate::support::prometheus::major_version() == 2 {
        assert!(listed > 2, "{listed}");
    } else {
        assert_eq!(listed, 2);
    }
    assert_entry(&got[""], &sent.json()["data"], 2);

    // Matchers the external labels satisfy: answered, matchers not forwarded.
    for matchers in [
        vec![matcher(0, "cluster", "test")],
        vec![matcher(2, "replica", "0|1"), matcher(1, "cluster", "other")],
        vec![matcher(3, "job", "prom")],
    ] {
        let mut req = status::TSDBStatisticsRequest::new();
        req.matchers = matchers.clone();
        let got = call(&req).expect("matching");
        let sent = rig.sent(path);
        assert!(sent.query().is_empty(), "{:?}", sent.query());
        assert_eq!(got.keys().collect::<Vec<_>>(), [""], "{matchers:?}");
        assert_entry(&got[""], &sent.json()["data"], usize::MAX);
    }

    // Not ours: an empty map, and Prometheus is not asked. A label that is
    // not external reads as empty, so `job="prom"` is not ours either.
    for matchers in [
        vec![matcher(0, "cluster", "other")],
        vec![matcher(0, "cluster", "test"), matcher(1, "replica", "0")],
        vec![matcher(0, "job", "prom")],
    ] {
        let before = rig.sent_count(path);
        let mut req = status::TSDBStatisticsRequest::new();
        req.matchers = matchers.clone();
        let got = call(&req).expect("not matching");
        assert!(got.is_empty(), "{matchers:?}: {got:?}");
        assert_eq!(rig.sent_count(path), before, "{matchers:?}");
    }

    // A tenant: the sidecar has only "", so nothing (after asking, as Thanos does).
    let before = rig.sent_count(path);
    let mut req = status::TSDBStatisticsRequest::new();
    req.tenant = "team-a".into();
    let got = call(&req).expect("tenant");
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(rig.sent_count(path), before + 1);

    // A matcher that cannot be compiled: a plain error in Thanos.
    let mut req = status::TSDBStatisticsRequest::new();
    req.matchers = vec![matcher(2, "cluster", "(")];
    let err = call(&req).expect_err("bad regex");
    assert_eq!(err.code(), RpcStatusCode::UNKNOWN, "{err:?}");
    assert!(
        err.message().contains("failed to convert matchers"),
        "{err:?}"
    );
}

#[test]
fn errors_when_prometheus_is_gone() {
    let mut rig = Rig::start();
    rig.prometheus.stop();
    // The proxy answers 502 for the missing Prometheus; the heartbeat
    // through it fails and the sidecar turns not ready.
    assert!(
        wait_for(Duration::from_secs(10), || !rig.sidecar.ready()),
        "still ready"
    );
    let internal = |what: &str, result: Result<usize, RpcStatus>| {
        let err = result.expect_err(what);
        assert_eq!(err.code(), RpcStatusCode::INTERNAL, "{what}: {err:?}");
        assert!(err.message().contains("got 502"), "{what}: {err:?}");
    };
    let rules = RulesClient::new(rig.channel.clone());
    internal(
        "rules",
        collect(rules.rules(&rules::RulesRequest::new())).map(|f| f.len()),
    );
    let targets = TargetsClient::new(rig.channel.clone());
    internal(
        "targets",
        collect(targets.targets(&targets::TargetsRequest::new())).map(|f| f.len()),
    );
    let metadata = MetadataClient::new(rig.channel.clone());
    internal(
        "metadata",
        collect(metadata.metric_metadata(&metadata::MetricMetadataRequest::new())).map(|f| f.len()),
    );
    let exemplars = ExemplarsClient::new(rig.channel.clone());
    let mut req = exemplars::ExemplarsRequest::new();
    req.query = "up".into();
    internal(
        "exemplars",
        collect(exemplars.exemplars(&req)).map(|f| f.len()),
    );
    // Status answers only while ready, with Thanos' plain error.
    let status = StatusClient::new(rig.channel.clone());
    let err = collect(status.tsdb_statistics(&status::TSDBStatisticsRequest::new()))
        .expect_err("status while not ready");
    assert_eq!(err.code(), RpcStatusCode::UNKNOWN, "{err:?}");
    assert_eq!(err.message(), "not ready");
}

/// A real Thanos Querier (`THANOS_BIN`, skipped when unset) in front of the
/// sidecar serves its rules, targets, metadata, exemplars and TSDB status.
#[test]
fn thanos_query_serves_the_apis_through_the_sidecar() {
    let Some(thanos) = ThanosQuery::binary() else {
        return;
    };
    let rig = Rig::start();
    let query = ThanosQuery::start(&thanos, rig.sidecar.grpc_port, &[], rig.prometheus.dir());
    let base = query.url();
    let get = |path: &str| -> Value {
        let (code, body) = http_get(&format!("{base}{path}"));
        if code != 200 {
            return Value::Null;
        }
        serde_json::from_str::<Value>(&body).unwrap_or_default()["data"].clone()
    };

    // Rules: the querier merges what the sidecar streams, labels included.
    let mut rules = Value::Null;
    assert!(
        wait_for(Duration::from_secs(30), || {
            rules = get("/api/v1/rules");
            rules["groups"].as_array().is_some_and(|g| g.len() == 2)
        }),
        "no rules through the querier: {rules}\n{}",
        query.log()
    );
    let recording = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .find(|r| str_of(&r["type"]) == "recording")
        .expect("the recording rule")
        .clone();
    assert_eq!(
        json_labels(&recording["labels"]),
        with_external([("team".to_string(), "a".to_string())].into())
    );
    let rules_by_type = get("/api/v1/rules?type=alert");
    let alerting = rules_by_type["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .count();
    assert_eq!(alerting, 3, "{rules_by_type}");

    // Targets, with the external labels.
    let mut targets = Value::Null;
    assert!(
        wait_for(Duration::from_secs(10), || {
            targets = get("/api/v1/targets");
            targets["activeTargets"]
                .as_array()
                .is_some_and(|t| t.len() == 4)
        }),
        "no targets through the querier: {targets}"
    );
    for t in targets["activeTargets"].as_array().into_iter().flatten() {
        assert_eq!(json_labels(&t["labels"])["cluster"], "test", "{t}");
    }
    assert_eq!(targets["droppedTargets"].as_array().map(Vec::len), Some(1));

    // Metadata.
    // Metadata, once Prometheus has scraped itself.
    let mut meta = Value::Null;
    assert!(
        wait_for(Duration::from_secs(10), || {
            meta = get("/api/v1/metadata?metric=prometheus_build_info");
            str_of(&meta["prometheus_build_info"][0]["type"]) == "gauge"
        }),
        "no metadata through the querier: {meta}"
    );

    // Exemplars, by the series' external labels.
    let mut ex = Value::Null;
    assert!(
        wait_for(Duration::from_secs(20), || {
            let now = now_ms();
            ex = get(&format!(
                "/api/v1/query_exemplars?query=it_exemplar_total&start={}&end={}",
                seconds(now - 300_000),
                seconds(now)
            ));
            ex.as_array().is_some_and(|d| d.len() == 2)
        }),
        "no exemplars through the querier: {ex}\n{:?}\n{}",
        rig.proxy
            .requests_to("/api/v1/query_exemplars")
            .last()
            .map(|r| (
                r.url.clone(),
                String::from_utf8_lossy(&r.response).to_string()
            )),
        query.log()
    );
    for d in ex.as_array().into_iter().flatten() {
        assert_eq!(json_labels(&d["seriesLabels"])["cluster"], "test", "{d}");
        assert!(d["exemplars"].as_array().is_some_and(|e| !e.is_empty()));
    }
    // TSDB statistics: the querier asks with a limit and, here, with
    // matchers on the external labels.
    let tsdb = get("/api/v1/status/tsdb?limit=3");
    assert!(tsdb["headStats"]["numSeries"].as_u64() > Some(0), "{tsdb}");
    assert_eq!(tsdb["headStats"]["chunkCount"].as_i64(), Some(0), "{tsdb}");
    assert!(tsdb["seriesCountByMetricName"]
        .as_array()
        .is_some_and(|l| l.len() <= 3));
    assert_eq!(
        rig.sent("/api/v1/status/tsdb").query(),
        param(&[("limit", "3")])
    );
    let ours = get("/api/v1/status/tsdb?match[]=%7Bcluster%3D%22test%22%7D");
    assert!(ours["headStats"]["numSeries"].as_u64() > Some(0), "{ours}");
    let other = get("/api/v1/status/tsdb?match[]=%7Bcluster%3D%22other%22%7D");
    assert_eq!(other["headStats"]["numSeries"].as_u64(), Some(0), "{other}");

    // Everything came through the sidecar, which asked Prometheus.
    for path in [
        "/api/v1/rules",
        "/api/v1/targets",
        "/api/v1/metadata",
        "/api/v1/query_exemplars",
        "/api/v1/status/tsdb",
    ] {
        assert!(rig.sent_count(path) > 0, "{path}");
    }
}
