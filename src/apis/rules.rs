//! `thanos.Rules/Rules` from Prometheus' `/api/v1/rules` (Thanos' `pkg/rules/prometheus.go`).
//!
//! One frame per rule group, in Prometheus' order. Each rule's labels get
//! the external labels; the alerts (instances) of an alerting rule are sent
//! as Prometheus reports them. The request's name, group, file and matcher
//! filters are neither forwarded nor applied, as in Thanos.

use grpcio::{RpcContext, RpcStatus, ServerStreamingSink};
use protobuf::MessageField;
use serde::Deserialize;

use super::{
    decode_error, enum_value, filter_param, nullable, timestamp, with_external, zlabels, QUEUE,
};
use crate::grpc::status::api_error;
use crate::prometheus::Labels;
use crate::proto::rules::{
    Alert, AlertInstance, AlertState, RecordingRule, Rule, RuleGroup, RulesRequest, RulesResponse,
};
use crate::proto::services;
use crate::proto::store_types::PartialResponseStrategy;
use crate::store::{Services, Store};

const PATH: &str = "/api/v1/rules";

#[derive(Deserialize, Default)]
#[serde(default)]
struct RuleDiscovery {
    #[serde(deserialize_with = "nullable")]
    groups: Vec<GroupJson>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct GroupJson {
    name: String,
    file: String,
    /// Decoded by kind once its `type` is known.
    #[serde(deserialize_with = "nullable")]
    rules: Vec<serde_json::Value>,
    interval: f64,
    evaluation_time: f64,
    last_evaluation: Option<String>,
    limit: i64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RecordingJson {
    name: String,
    query: String,
    #[serde(deserialize_with = "nullable")]
    labels: Labels,
    health: String,
    last_error: String,
    evaluation_time: f64,
    last_evaluation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AlertingJson {
    state: Option<String>,
    name: String,
    query: String,
    duration: f64,
    #[serde(deserialize_with = "nullable")]
    labels: Labels,
    #[serde(deserialize_with = "nullable")]
    annotations: Labels,
    #[serde(deserialize_with = "nullable")]
    alerts: Vec<AlertJson>,
    health: String,
    last_error: String,
    evaluation_time: f64,
    last_evaluation: Option<String>,
    keep_firing_for: f64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AlertJson {
    #[serde(deserialize_with = "nullable")]
    labels: Labels,
    #[serde(deserialize_with = "nullable")]
    annotations: Labels,
    state: Option<String>,
    active_at: Option<String>,
    value: String,
}

pub fn rules(
    store: &Store,
    req: &RulesRequest,
    out: &mut dyn FnMut(RulesResponse) -> Result<(), RpcStatus>,
) -> Result<(), RpcStatus> {
    // An unknown type goes as its number, for Prometheus to refuse.
    let kind = filter_param(req.type_);
    let params: Vec<(&str, &str)> = kind.iter().map(|k| ("type", k.as_str())).collect();
    let discovery: RuleDiscovery = store
        .client
        .get_data(PATH, &params, store.api_timeout)
        .map_err(api_error)?;
    let external = store.metadata.external_labels();
    let groups = discovery
        .groups
        .into_iter()
        .map(|g| group(g, &external))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| decode_error(PATH, e))?;
    for g in groups {
        let mut resp = RulesResponse::new();
        resp.set_group(g);
        out(resp)?;
    }
    Ok(())
}

fn group(json: GroupJson, external: &Labels) -> Result<RuleGroup, String> {
    let mut g = RuleGroup::new();
    g.rules = json
        .rules
        .into_iter()
        .map(|r| rule(r, external))
        .collect::<Result<_, _>>()?;
    g.name = json.name;
    g.file = json.file;
    g.interval = json.interval;
    g.evaluation_duration_seconds = json.evaluation_time;
    g.last_evaluation = MessageField::some(timestamp(json.last_evaluation.as_deref())?);
    g.limit = json.limit;
    // Prometheus has no partial responses; Thanos marks every group ABORT.
    g.PartialResponseStrategy = PartialResponseStrategy::ABORT.into();
    Ok(g)
}

/// A rule of the kind its JSON `type` names (case-insensitive).
fn rule(json: serde_json::Value, external: &Labels) -> Result<Rule, String> {
    let kind = json
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut r = Rule::new();
    match kind.as_str() {
        "recording" => {
            let json: RecordingJson =
                serde_json::from_value(json).map_err(|e| format!("rule: recording rule: {e}"))?;
            let mut rec = RecordingRule::new();
            rec.labels = zlabels(&with_external(json.labels, external));
            rec.name = json.name;
            rec.query = json.query;
            rec.health = json.health;
            rec.last_error = json.last_error;
            rec.evaluation_duration_seconds = json.evaluation_time;
            rec.last_evaluation = MessageField::some(timestamp(json.last_evaluation.as_deref())?);
            r.set_recording(rec);
        }
        "alerting" => {
            let json: AlertingJson =
                serde_json::from_value(json).map_err(|e| format!("rule: alerting rule: {e}"))?;
            let mut a = Alert::new();
            a.state = enum_value::<AlertState>("alertState", json.state.as_deref())?.into();
            a.labels = zlabels(&with_external(json.labels, external));
            a.annotations = zlabels(&json.annotations);
            a.alerts = json
                .alerts
                .into_iter()
                .map(alert)
                .collect::<Result<_, _>>()?;
            a.name = json.name;
            a.query = json.query;
            a.duration_seconds = json.duration;
            a.health = json.health;
            a.last_error = json.last_error;
            a.evaluation_duration_seconds = json.evaluation_time;
            a.last_evaluation = MessageField::some(timestamp(json.last_evaluation.as_deref())?);
            a.keep_firing_for_seconds = json.keep_firing_for;
            r.set_alert(a);
        }
        "" => return Err(format!("rule: no type field provided: {json}")),
        other => return Err(format!("rule: unknown type field provided {other}")),
    }
    Ok(r)
}

/// An alert instance, untouched: Prometheus reports no external labels on
/// it and Thanos adds none.
fn alert(json: AlertJson) -> Result<AlertInstance, String> {
    let mut a = AlertInstance::new();
    a.labels = zlabels(&json.labels);
    a.annotations = zlabels(&json.annotations);
    a.state = enum_value::<AlertState>("alertState", json.state.as_deref())?.into();
    if let Some(active_at) = json.active_at.as_deref() {
        a.active_at = MessageField::some(timestamp(Some(active_at))?);
    }
    a.value = json.value;
    Ok(a)
}

impl services::Rules for Services {
    fn rules(
        &mut self,
        ctx: RpcContext,
        req: RulesRequest,
        sink: ServerStreamingSink<RulesResponse>,
    ) {
        self.stream(
            &ctx,
            crate::grpc::method::RULES,
            "api-rules",
            QUEUE,
            sink,
            move |store, out| rules(store, &req, out),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external() -> Labels {
        [("cluster", "test"), ("replica", "0")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .into()
    }

    fn pairs(set: &crate::proto::labels::ZLabelSet) -> Vec<(String, String)> {
        set.labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }

    #[test]
    fn a_group_of_both_kinds() {
        let json = serde_json::json!({
            "name": "g", "file": "/r.yml", "interval": 1, "limit": 0,
            "evaluationTime": 0.0005, "lastEvaluation": "2026-12-04T02:00:00.5Z",
            "rules": [
                {"type": "recording", "name": "r", "query": "sum(up)", "labels": {"team": "a", "replica": "9"},
                 "health": "ok", "evaluationTime": 0.25, "lastEvaluation": "2026-12-04T02:00:00Z"},
                {"type": "Alerting", "name": "A", "query": "vector(1) > 0", "duration": 60, "keepFiringFor": 30,
                 "state": "firing", "labels": {}, "annotations": {"summary": "s"}, "health": "ok",
                 "lastError": "boom",
                 "alerts": [{"labels": {"alertname": "A"}, "annotations": {}, "state": "firing",
                             "activeAt": "2026-12-04T01:59:59Z", "value": "1e+00"},
                            {"labels": {"alertname": "A"}, "annotations": {}, "state": "pending", "value": "1e+00"}]}
            ]
        });
        let json: GroupJson = serde_json::from_value(json).unwrap();
        let g = group(json, &external()).unwrap();
        assert_eq!(
            g.PartialResponseStrategy.enum_value(),
            Ok(PartialResponseStrategy::ABORT)
        );
        assert_eq!((g.name.as_str(), g.file.as_str()), ("g", "/r.yml"));
        assert_eq!((g.interval, g.evaluation_duration_seconds), (1.0, 0.0005));
        assert_eq!(g.last_evaluation.nanos, 500_000_000);
        let rec = g.rules[0].recording();
        assert_eq!(
            pairs(&rec.labels),
            [
                ("cluster".to_string(), "test".to_string()),
                ("replica".into(), "0".into()),
                ("team".into(), "a".into())
            ]
        );
        assert_eq!(rec.evaluation_duration_seconds, 0.25);
        let alert = g.rules[1].alert();
        assert_eq!(alert.state.enum_value(), Ok(AlertState::FIRING));
        assert_eq!(
            (alert.duration_seconds, alert.keep_firing_for_seconds),
            (60.0, 30.0)
        );
        assert_eq!(alert.last_error, "boom");
        assert_eq!(pairs(&alert.labels).len(), 2);
        assert_eq!(pairs(&alert.annotations), [("summary".into(), "s".into())]);
        // Never evaluated: Go's zero time.
        assert_eq!(
            alert.last_evaluation.seconds,
            super::super::GO_ZERO_TIME_SECONDS
        );
        assert_eq!(alert.alerts.len(), 2);
        assert_eq!(
            pairs(&alert.alerts[0].labels),
            [("alertname".into(), "A".into())]
        );
        assert!(alert.alerts[0].active_at.is_some());
        assert!(alert.alerts[1].active_at.is_none());
        assert_eq!(alert.alerts[1].state.enum_value(), Ok(AlertState::PENDING));
        assert_eq!(alert.alerts[0].value, "1e+00");
        assert_eq!(
            alert.alerts[0].PartialResponseStrategy.enum_value(),
            Ok(PartialResponseStrategy::WARN)
        );
    }

    #[test]
    fn bad_kinds_and_states_fail() {
        for json in [
            serde_json::json!({"name": "r"}),
            serde_json::json!({"type": "other"}),
            serde_json::json!({"type": "alerting", "state": "burning"}),
            serde_json::json!({"type": "alerting", "alerts": [{"state": ""}]}),
            serde_json::json!({"type": "recording", "labels": "x"}),
            serde_json::json!({"type": "recording", "lastEvaluation": "never"}),
        ] {
            assert!(rule(json.clone(), &external()).is_err(), "{json}");
        }
    }
}
