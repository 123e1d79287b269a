//! `thanos.Targets/Targets` from Prometheus' `/api/v1/targets` (Thanos' `pkg/targets/prometheus.go`).
//!
//! One frame with the whole discovery. Active targets get the external
//! labels on both their discovered and their final labels; dropped targets
//! on their discovered labels, which is all they have.

use grpcio::{RpcContext, RpcStatus, ServerStreamingSink};
use protobuf::MessageField;
use serde::Deserialize;

use super::{
    decode_error, enum_value, filter_param, nullable, timestamp, with_external, zlabels, QUEUE,
};
use crate::grpc::status::api_error;
use crate::prometheus::Labels;
use crate::proto::services;
use crate::proto::targets::{
    ActiveTarget, DroppedTarget, TargetDiscovery, TargetHealth, TargetsRequest, TargetsResponse,
};
use crate::store::{Services, Store};

const PATH: &str = "/api/v1/targets";

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DiscoveryJson {
    #[serde(deserialize_with = "nullable")]
    active_targets: Vec<ActiveJson>,
    #[serde(deserialize_with = "nullable")]
    dropped_targets: Vec<DroppedJson>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ActiveJson {
    #[serde(deserialize_with = "nullable")]
    discovered_labels: Labels,
    #[serde(deserialize_with = "nullable")]
    labels: Labels,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: Option<String>,
    last_scrape_duration: f64,
    health: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DroppedJson {
    #[serde(deserialize_with = "nullable")]
    discovered_labels: Labels,
}

pub fn targets(
    store: &Store,
    req: &TargetsRequest,
    out: &mut dyn FnMut(TargetsResponse) -> Result<(), RpcStatus>,
) -> Result<(), RpcStatus> {
    // An unknown state goes as its number; Prometheus then lists neither kind.
    let state = filter_param(req.state);
    let params: Vec<(&str, &str)> = state.iter().map(|s| ("state", s.as_str())).collect();
    let json: DiscoveryJson = store
        .client
        .get_data(PATH, &params, store.api_timeout)
        .map_err(api_error)?;
    let discovery =
        discovery(json, &store.metadata.external_labels()).map_err(|e| decode_error(PATH, e))?;
    let mut resp = TargetsResponse::new();
    resp.set_targets(discovery);
    out(resp)
}

fn discovery(json: DiscoveryJson, external: &Labels) -> Result<TargetDiscovery, String> {
    let mut d = TargetDiscovery::new();
    d.activeTargets = json
        .active_targets
        .into_iter()
        .map(|t| active(t, external))
        .collect::<Result<_, _>>()?;
    d.droppedTargets = json
        .dropped_targets
        .into_iter()
        .map(|t| {
            let mut dropped = DroppedTarget::new();
            dropped.discoveredLabels = zlabels(&with_external(t.discovered_labels, external));
            dropped
        })
        .collect();
    Ok(d)
}

fn active(json: ActiveJson, external: &Labels) -> Result<ActiveTarget, String> {
    let mut t = ActiveTarget::new();
    t.discoveredLabels = zlabels(&with_external(json.discovered_labels, external));
    t.labels = zlabels(&with_external(json.labels, external));
    t.scrapePool = json.scrape_pool;
    t.scrapeUrl = json.scrape_url;
    t.globalUrl = json.global_url;
    t.lastError = json.last_error;
    t.lastScrape = MessageField::some(timestamp(json.last_scrape.as_deref())?);
    t.lastScrapeDuration = json.last_scrape_duration;
    t.health = enum_value::<TargetHealth>("targetHealth", json.health.as_deref())?.into();
    Ok(t)
}

impl services::Targets for Services {
    fn targets(
        &mut self,
        ctx: RpcContext,
        req: TargetsRequest,
        sink: ServerStreamingSink<TargetsResponse>,
    ) {
        self.stream(
            &ctx,
            crate::grpc::method::TARGETS,
            "api-targets",
            QUEUE,
            sink,
            move |store, out| targets(store, &req, out),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_and_dropped_targets() {
        let json = serde_json::json!({
            "activeTargets": [{
                "discoveredLabels": {"__address__": "h:1", "job": "j"},
                "labels": {"instance": "h:1", "job": "j", "cluster": "local"},
                "scrapePool": "j", "scrapeUrl": "http://h:1/metrics", "globalUrl": "http://h:1/metrics",
                "lastError": "", "lastScrape": "2026-12-04T02:00:01.25Z", "lastScrapeDuration": 0.002,
                "health": "up", "scrapeInterval": "1s", "scrapeTimeout": "1s"
            }, {
                "discoveredLabels": {}, "labels": {}, "lastError": "connection refused", "health": "down"
            }],
            "droppedTargets": [{"discoveredLabels": {"__address__": "h:2"}}]
        });
        let external: Labels = [("cluster".to_string(), "test".to_string())].into();
        let d = discovery(serde_json::from_value(json).unwrap(), &external).unwrap();
        let t = &d.activeTargets[0];
        let names = |s: &crate::proto::labels::ZLabelSet| -> Vec<String> {
            s.labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect()
        };
        assert_eq!(
            names(&t.discoveredLabels),
            ["__address__=h:1", "cluster=test", "job=j"]
        );
        assert_eq!(names(&t.labels), ["cluster=test", "instance=h:1", "job=j"]);
        assert_eq!(t.health.enum_value(), Ok(TargetHealth::UP));
        assert_eq!(
            (t.lastScrape.nanos, t.lastScrapeDuration),
            (250_000_000, 0.002)
        );
        assert_eq!(t.scrapeUrl, "http://h:1/metrics");
        let down = &d.activeTargets[1];
        assert_eq!(down.health.enum_value(), Ok(TargetHealth::DOWN));
        assert_eq!(down.lastError, "connection refused");
        assert_eq!(names(&down.labels), ["cluster=test"]);
        assert_eq!(
            names(&d.droppedTargets[0].discoveredLabels),
            ["__address__=h:2", "cluster=test"]
        );
        let bad = serde_json::json!({"activeTargets": [{"health": "sideways"}]});
        assert!(discovery(serde_json::from_value(bad).unwrap(), &external).is_err());
    }
}
