//! `thanos.Status/TSDBStatistics` from Prometheus' `/api/v1/status/tsdb`
//! (the getter `cmd/thanos/sidecar.go` gives Thanos' `pkg/status`).
//!
//! One frame whose map has the sidecar's only tenant, `""`. The request's
//! matchers are checked against the external labels alone (a mismatch gives
//! an empty map without asking Prometheus) and never forwarded; a non-empty
//! `tenant` also gives an empty map, though only after Prometheus answered,
//! as in Thanos. The head's chunk count is not carried over.

use grpcio::{RpcContext, RpcStatus, ServerStreamingSink};
use serde::Deserialize;

use super::{nullable, QUEUE};
use crate::grpc::status::{api_error, unknown};
use crate::proto::services;
use crate::proto::status::{
    HeadStatistics, Statistic, TSDBStatistics, TSDBStatisticsEntry, TSDBStatisticsRequest,
    TSDBStatisticsResponse,
};
use crate::store::matchers;
use crate::store::{Services, Store};

const PATH: &str = "/api/v1/status/tsdb";

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StatusJson {
    head_stats: HeadJson,
    #[serde(deserialize_with = "nullable")]
    series_count_by_metric_name: Vec<StatJson>,
    #[serde(deserialize_with = "nullable")]
    label_value_count_by_label_name: Vec<StatJson>,
    #[serde(deserialize_with = "nullable")]
    memory_in_bytes_by_label_name: Vec<StatJson>,
    #[serde(deserialize_with = "nullable")]
    series_count_by_label_value_pair: Vec<StatJson>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct HeadJson {
    num_series: u64,
    num_label_pairs: i64,
    min_time: i64,
    max_time: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StatJson {
    name: String,
    value: u64,
}

pub fn tsdb_statistics(
    store: &Store,
    req: &TSDBStatisticsRequest,
    out: &mut dyn FnMut(TSDBStatisticsResponse) -> Result<(), RpcStatus>,
) -> Result<(), RpcStatus> {
    // Plain errors in Thanos, hence Unknown.
    if !store.metadata.is_ready() {
        return Err(unknown("not ready"));
    }
    let matchers = matchers::convert(&req.matchers)
        .map_err(|s| unknown(format!("failed to convert matchers: {}", s.message())))?;
    let external = store.metadata.external_labels();
    let mut ours = true;
    for m in &matchers {
        if !m
            .matches(external.get(&m.name).map_or("", String::as_str))
            .map_err(unknown)?
        {
            ours = false;
            break;
        }
    }
    let mut stats = TSDBStatistics::new();
    if ours {
        let entry = fetch(store, req.limit)?;
        if req.tenant.is_empty() {
            stats.statistics.insert(String::new(), entry);
        }
    }
    let mut resp = TSDBStatisticsResponse::new();
    resp.set_statistics(stats);
    out(resp)
}

fn fetch(store: &Store, limit: i32) -> Result<TSDBStatisticsEntry, RpcStatus> {
    // Thanos wraps the error, keeping its code.
    let failed = |status: RpcStatus| {
        RpcStatus::with_message(
            status.code(),
            format!(
                "failed to get tsdb status from prometheus: {}",
                status.message()
            ),
        )
    };
    let limit_param = limit.to_string();
    let params: Vec<(&str, &str)> = if limit > 0 {
        vec![("limit", limit_param.as_str())]
    } else {
        Vec::new()
    };
    let json: Option<StatusJson> = store
        .client
        .get_data(PATH, &params, store.config_timeout)
        .map_err(|e| failed(api_error(e)))?;
    let json = json.ok_or_else(|| failed(unknown("empty data field in TSDB status response")))?;
    Ok(entry(json, limit))
}

/// The entry as Thanos rebuilds it from Prometheus' numbers: lists cut to
/// `limit` when it is positive, a negative max time read as 0, and the label
/// pair count kept only alongside index statistics.
fn entry(json: StatusJson, limit: i32) -> TSDBStatisticsEntry {
    let list = |stats: Vec<StatJson>| -> Vec<Statistic> {
        let keep = if limit > 0 {
            limit as usize
        } else {
            usize::MAX
        };
        stats
            .into_iter()
            .take(keep)
            .map(|s| {
                let mut stat = Statistic::new();
                stat.name = s.name;
                stat.value = s.value;
                stat
            })
            .collect()
    };
    let has_index = !json.series_count_by_metric_name.is_empty()
        || !json.label_value_count_by_label_name.is_empty()
        || !json.memory_in_bytes_by_label_name.is_empty()
        || !json.series_count_by_label_value_pair.is_empty()
        || json.head_stats.num_label_pairs > 0;
    let mut head = HeadStatistics::new();
    head.num_series = json.head_stats.num_series;
    head.min_time = json.head_stats.min_time;
    head.max_time = json.head_stats.max_time.max(0);
    if has_index {
        head.num_label_pairs = json.head_stats.num_label_pairs;
    }
    let mut e = TSDBStatisticsEntry::new();
    e.head_statistics = protobuf::MessageField::some(head);
    e.series_count_by_metric_name = list(json.series_count_by_metric_name);
    e.label_value_count_by_label_name = list(json.label_value_count_by_label_name);
    e.memory_in_bytes_by_label_name = list(json.memory_in_bytes_by_label_name);
    e.series_count_by_label_value_pair = list(json.series_count_by_label_value_pair);
    e
}

impl services::Status for Services {
    fn tsdb_statistics(
        &mut self,
        ctx: RpcContext,
        req: TSDBStatisticsRequest,
        sink: ServerStreamingSink<TSDBStatisticsResponse>,
    ) {
        self.stream(
            &ctx,
            crate::grpc::method::STATUS,
            "api-status",
            QUEUE,
            sink,
            move |store, out| tsdb_statistics(store, &req, out),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> StatusJson {
        serde_json::from_value(serde_json::json!({
            "headStats": {"numSeries": 7, "numLabelPairs": 12, "chunkCount": 9,
                          "minTime": 1700000000000i64, "maxTime": 1700000009000i64},
            "seriesCountByMetricName": [{"name": "a", "value": 3}, {"name": "b", "value": 2}, {"name": "c", "value": 1}],
            "labelValueCountByLabelName": [{"name": "__name__", "value": 3}],
            "memoryInBytesByLabelName": [{"name": "__name__", "value": 30}],
            "seriesCountByLabelValuePair": null
        }))
        .unwrap()
    }

    #[test]
    fn numbers_are_carried_over_but_the_chunk_count() {
        let e = entry(json(), 0);
        let h = &e.head_statistics;
        assert_eq!(
            (
                h.num_series,
                h.num_label_pairs,
                h.chunk_count,
                h.min_time,
                h.max_time
            ),
            (7, 12, 0, 1_700_000_000_000, 1_700_000_009_000)
        );
        assert_eq!(e.series_count_by_metric_name.len(), 3);
        assert_eq!(e.memory_in_bytes_by_label_name[0].value, 30);
        assert!(e.series_count_by_label_value_pair.is_empty());
        let cut = entry(json(), 2);
        let names: Vec<_> = cut
            .series_count_by_metric_name
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn an_empty_head_reads_as_thanos_reads_it() {
        let json: StatusJson = serde_json::from_value(serde_json::json!({
            "headStats": {"numSeries": 0, "numLabelPairs": 0, "chunkCount": 0,
                          "minTime": i64::MAX, "maxTime": i64::MIN},
            "seriesCountByMetricName": [], "labelValueCountByLabelName": [],
            "memoryInBytesByLabelName": [], "seriesCountByLabelValuePair": []
        }))
        .unwrap();
        let e = entry(json, 0);
        assert_eq!(
            (e.head_statistics.min_time, e.head_statistics.max_time),
            (i64::MAX, 0)
        );
    }
}
