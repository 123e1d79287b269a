//! `thanos.Metadata/MetricMetadata` from Prometheus' `/api/v1/metadata`
//! (Thanos' `pkg/metadata/prometheus.go`): one frame with the whole map; no external labels.

use std::collections::HashMap;

use grpcio::{RpcContext, RpcStatus, ServerStreamingSink};
use serde::Deserialize;

use super::QUEUE;
use crate::grpc::status::api_error;
use crate::proto::metadata::{
    Meta, MetricMetadata, MetricMetadataEntry, MetricMetadataRequest, MetricMetadataResponse,
};
use crate::proto::services;
use crate::store::{Services, Store};

const PATH: &str = "/api/v1/metadata";

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetaJson {
    #[serde(rename = "type")]
    kind: String,
    help: String,
    unit: String,
}

pub fn metric_metadata(
    store: &Store,
    req: &MetricMetadataRequest,
    out: &mut dyn FnMut(MetricMetadataResponse) -> Result<(), RpcStatus>,
) -> Result<(), RpcStatus> {
    let limit = req.limit.to_string();
    let mut params = Vec::new();
    if !req.metric.is_empty() {
        params.push(("metric", req.metric.as_str()));
    }
    // 0 is sent too (Prometheus then answers nothing); negative is no limit.
    if req.limit >= 0 {
        params.push(("limit", limit.as_str()));
    }
    let json: HashMap<String, Vec<MetaJson>> = store
        .client
        .get_data(PATH, &params, store.api_timeout)
        .map_err(api_error)?;
    let mut resp = MetricMetadataResponse::new();
    resp.set_metadata(metadata(json));
    out(resp)
}

fn metadata(json: HashMap<String, Vec<MetaJson>>) -> MetricMetadata {
    let mut m = MetricMetadata::new();
    m.metadata = json
        .into_iter()
        .map(|(metric, metas)| {
            let mut entry = MetricMetadataEntry::new();
            entry.metas = metas
                .into_iter()
                .map(|j| {
                    let mut meta = Meta::new();
                    meta.type_ = j.kind;
                    meta.help = j.help;
                    meta.unit = j.unit;
                    meta
                })
                .collect();
            (metric, entry)
        })
        .collect();
    m
}

impl services::Metadata for Services {
    fn metric_metadata(
        &mut self,
        ctx: RpcContext,
        req: MetricMetadataRequest,
        sink: ServerStreamingSink<MetricMetadataResponse>,
    ) {
        self.stream(
            &ctx,
            crate::grpc::method::METADATA,
            "api-metadata",
            QUEUE,
            sink,
            move |store, out| metric_metadata(store, &req, out),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_meta_of_every_metric() {
        let json = serde_json::json!({
            "up": [{"type": "gauge", "help": "Up.", "unit": ""}],
            "x": [{"type": "counter", "help": "A.", "unit": "seconds"}, {"type": "gauge", "help": "B."}]
        });
        let m = metadata(serde_json::from_value(json).unwrap());
        assert_eq!(m.metadata.len(), 2);
        let x = &m.metadata["x"].metas;
        assert_eq!(
            (x[0].type_.as_str(), x[0].help.as_str(), x[0].unit.as_str()),
            ("counter", "A.", "seconds")
        );
        assert_eq!((x[1].type_.as_str(), x[1].unit.as_str()), ("gauge", ""));
        assert_eq!(m.metadata["up"].metas.len(), 1);
    }
}
