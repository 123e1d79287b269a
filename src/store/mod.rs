//! The StoreAPI and Info API a Thanos Querier calls (Thanos'
//! `pkg/store/prometheus.go` and `pkg/info`).
//!
//! Each call's work runs on a worker thread through [`Calls`]
//! (`crate::grpc::calls`); [`Services`] binds it to the [`Store`] every
//! handler reads, for these services and those of [`crate::apis`].

pub mod cli;
pub mod goregex;
pub mod histogram;
pub mod labels;
pub mod matchers;
pub mod remote_read;
pub mod series;
pub mod sort;
pub mod wire;
pub mod xor;

use std::sync::Arc;
use std::time::Duration;

use grpcio::{RpcContext, RpcStatus, RpcStatusCode, ServerStreamingSink, UnarySink};
use prom::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use crate::grpc::calls::{reply, Calls};
use crate::grpc::method::{self as grpc_metrics, Method};
use crate::grpc::status::unknown;
use crate::metadata::{Metadata, MAX_TIME};
use crate::prometheus::Client;
use crate::proto::{info, labels as pb_labels, services, store};
use crate::values::now_ms;

/// Frames queued between a Series worker and its client: enough to keep the
/// connection busy while the worker scans the next remote-read frame (gRPC's
/// transport and the socket buffer more behind them), few enough that a
/// slow client holds little memory: each queued answer keeps its
/// remote-read frame alive. 4 serves as fast as 16 did and holds ~1.5 MB
/// less under 50 concurrent calls (BENCHMARKS.md, Memory over calls served).
pub const SERIES_QUEUE: usize = 4;

/// `--store.limits.request-series` and `--store.limits.request-samples`; 0 = none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub series: u64,
    pub samples: u64,
}

/// What every handler shares.
pub struct Store {
    pub client: Client,
    pub metadata: Arc<Metadata>,
    pub limits: Limits,
    /// `thanos_store_selects_dropped_total{reason}`.
    pub dropped: IntCounterVec,
    pub metrics: StoreMetrics,
    /// Timeout of JSON API calls (labels, series).
    pub api_timeout: Duration,
    /// Timeout of a whole remote read.
    pub read_timeout: Duration,
    /// `--prometheus.get_config_timeout`, which Thanos also gives the TSDB
    /// status call.
    pub config_timeout: Duration,
}

impl Store {
    pub fn new(
        client: Client,
        metadata: Arc<Metadata>,
        limits: Limits,
        config_timeout: Duration,
        registry: &Registry,
    ) -> Result<Store, prom::Error> {
        let dropped = IntCounterVec::new(
            Opts::new(
                "thanos_store_selects_dropped_total",
                "Number of select queries that were dropped due to configured limits.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(dropped.clone()))?;
        for reason in ["series", "chunks"] {
            dropped.with_label_values(&[reason]);
        }
        Ok(Store {
            client,
            metadata,
            limits,
            dropped,
            metrics: StoreMetrics::new(registry)?,
            api_timeout: Duration::from_secs(120),
            read_timeout: series::READ_TIMEOUT,
            config_timeout,
        })
    }
}

/// What Thanos' instrumented store server (`pkg/store/telemetry.go`) and
/// Prometheus store (`pkg/store/prometheus.go`) measure of `Series`.
pub struct StoreMetrics {
    /// Series in each successful answer.
    pub series_requested: Histogram,
    /// Chunks in each successful answer.
    pub chunks_requested: Histogram,
    /// `Series` calls in flight. (Thanos sets it when a call starts and
    /// never lowers it, so it shows the count at the last call's start.)
    pub pending: IntGauge,
    /// Remote-read frames in each streamed answer from Prometheus.
    pub received_frames: Histogram,
}

impl StoreMetrics {
    fn new(registry: &Registry) -> Result<StoreMetrics, prom::Error> {
        let histogram =
            |name: &str, help: &str, buckets: &[f64]| -> Result<Histogram, prom::Error> {
                let h =
                    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let pending = IntGauge::new(
            "thanos_store_server_pending_series_requests",
            "Number of pending series requests",
        )?;
        registry.register(Box::new(pending.clone()))?;
        Ok(StoreMetrics {
            series_requested: histogram(
                "thanos_store_server_series_requested",
                "Number of requested series for Series calls",
                &[1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6],
            )?,
            chunks_requested: histogram(
                "thanos_store_server_chunks_requested",
                "Number of requested chunks for Series calls",
                &[1.0, 100.0, 1e3, 1e4, 1e5, 1e7, 1e8, 1e9],
            )?,
            pending,
            received_frames: histogram(
                "prometheus_store_received_frames",
                "Number of frames received per streamed response.",
                &[10.0, 100.0, 1e3, 1e4, 1e5],
            )?,
        })
    }

    /// Counts one `Series` call in flight until dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.pending.inc();
        InFlight(&self.pending)
    }

    /// Counts the frames of one streamed answer, observed when dropped.
    pub fn frames(&self) -> Frames<'_> {
        Frames {
            histogram: &self.received_frames,
            count: 0,
        }
    }
}

pub struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Frames<'a> {
    histogram: &'a Histogram,
    pub count: u64,
}

impl Drop for Frames<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.count as f64);
    }
}

/// The StoreAPI, Info and the APIs of [`crate::apis`], for the gRPC server.
pub fn services(store: Arc<Store>, calls: Calls) -> Vec<grpcio::Service> {
    let services = Services::new(store, calls);
    vec![
        services::create_store(services.clone()),
        services::create_rules(services.clone()),
        services::create_targets(services.clone()),
        services::create_metadata(services.clone()),
        services::create_exemplars(services.clone()),
        services::create_status(services.clone()),
        services::create_info(services),
    ]
}

/// The gRPC services, cheap to clone (grpcio clones one per method).
#[derive(Clone)]
pub struct Services {
    store: Arc<Store>,
    calls: Calls,
}

impl Services {
    pub fn new(store: Arc<Store>, calls: Calls) -> Self {
        Services { store, calls }
    }

    /// Runs `work` on a worker and answers the unary call with its result.
    pub(crate) fn unary<Resp: Send + 'static>(
        &self,
        ctx: &RpcContext,
        method: Method,
        name: &'static str,
        sink: UnarySink<Resp>,
        work: impl FnOnce(&Store) -> Result<Resp, RpcStatus> + Send + 'static,
    ) {
        let store = self.store.clone();
        self.calls
            .unary(ctx, method, name, sink, move || work(&store));
    }

    /// Runs `work` on a worker and streams the frames it hands to `out`
    /// (see [`Calls::stream`]).
    pub(crate) fn stream<Resp: Send + 'static>(
        &self,
        ctx: &RpcContext,
        method: Method,
        name: &'static str,
        queue: usize,
        sink: ServerStreamingSink<Resp>,
        work: impl FnOnce(&Store, &mut dyn FnMut(Resp) -> Result<(), RpcStatus>) -> Result<(), RpcStatus>
            + Send
            + 'static,
    ) {
        let store = self.store.clone();
        self.calls
            .stream(ctx, method, name, queue, sink, move |out| work(&store, out));
    }
}

impl services::Store for Services {
    fn info(
        &mut self,
        ctx: RpcContext,
        _req: store::InfoRequest,
        sink: UnarySink<store::InfoResponse>,
    ) {
        // Cheap and non-blocking: answered on the completion queue.
        let call = self.calls.call(grpc_metrics::STORE_INFO, &ctx);
        ctx.spawn(reply(call, sink, legacy_info(&self.store.metadata)));
    }

    fn series(
        &mut self,
        ctx: RpcContext,
        req: store::SeriesRequest,
        sink: ServerStreamingSink<wire::Response>,
    ) {
        self.stream(
            &ctx,
            grpc_metrics::STORE_SERIES,
            "store-series",
            SERIES_QUEUE,
            sink,
            move |store, out| series::series(store, req, out),
        );
    }

    fn label_names(
        &mut self,
        ctx: RpcContext,
        req: store::LabelNamesRequest,
        sink: UnarySink<store::LabelNamesResponse>,
    ) {
        self.unary(
            &ctx,
            grpc_metrics::STORE_LABEL_NAMES,
            "store-labels",
            sink,
            move |store| labels::label_names(store, &req),
        );
    }

    fn label_values(
        &mut self,
        ctx: RpcContext,
        req: store::LabelValuesRequest,
        sink: UnarySink<store::LabelValuesResponse>,
    ) {
        self.unary(
            &ctx,
            grpc_metrics::STORE_LABEL_VALUES,
            "store-values",
            sink,
            move |store| labels::label_values(store, &req),
        );
    }
}

impl services::Info for Services {
    fn info(
        &mut self,
        ctx: RpcContext,
        _req: info::InfoRequest,
        sink: UnarySink<info::InfoResponse>,
    ) {
        let call = self.calls.call(grpc_metrics::INFO, &ctx);
        ctx.spawn(reply(call, sink, info_response(&self.store.metadata)));
    }
}

pub(crate) fn label_set(labels: &crate::prometheus::Labels) -> Vec<pb_labels::Label> {
    labels
        .iter()
        .map(|(n, v)| {
            let mut l = pb_labels::Label::new();
            l.name = n.clone();
            l.value = v.clone();
            l
        })
        .collect()
}

/// `thanos.info.Info/Info` (Thanos' `pkg/info`): fails with `Not ready` until ready.
pub fn info_response(metadata: &Metadata) -> Result<info::InfoResponse, RpcStatus> {
    if !metadata.is_ready() {
        return Err(unknown("Not ready"));
    }
    let external = metadata.external_labels();
    let min_time = metadata.min_time(now_ms());
    let mut resp = info::InfoResponse::new();
    resp.ComponentType = "sidecar".into();
    let mut zset = pb_labels::ZLabelSet::new();
    zset.labels = label_set(&external);
    if !external.is_empty() {
        resp.label_sets.push(zset.clone());
    }
    // In agent mode Prometheus answers only its targets and metadata; a
    // querier asks a sidecar only for what its Info advertises.
    if metadata.agent_mode() {
        resp.metric_metadata = protobuf::MessageField::some(info::MetricMetadataInfo::new());
        resp.targets = protobuf::MessageField::some(info::TargetsInfo::new());
        return Ok(resp);
    }
    let mut store = info::StoreInfo::new();
    store.min_time = min_time;
    store.max_time = MAX_TIME;
    store.supports_sharding = true;
    store.supports_without_replica_labels = true;
    store.supports_projections = false;
    if !external.is_empty() {
        let mut tsdb = info::TSDBInfo::new();
        tsdb.labels = protobuf::MessageField::some(zset);
        tsdb.min_time = min_time;
        tsdb.max_time = MAX_TIME;
        store.tsdb_infos.push(tsdb);
    }
    resp.store = protobuf::MessageField::some(store);
    // Present messages advertise the APIs of `crate::apis`; exemplars with
    // min and max time 0, as Thanos' sidecar sends them.
    resp.rules = protobuf::MessageField::some(info::RulesInfo::new());
    resp.metric_metadata = protobuf::MessageField::some(info::MetricMetadataInfo::new());
    resp.targets = protobuf::MessageField::some(info::TargetsInfo::new());
    resp.exemplars = protobuf::MessageField::some(info::ExemplarsInfo::new());
    resp.status = protobuf::MessageField::some(info::StatusInfo::new());
    Ok(resp)
}

/// What StoreAPI calls get from a sidecar whose Prometheus runs in agent mode.
pub(crate) fn refuse_in_agent_mode(metadata: &Metadata) -> Result<(), RpcStatus> {
    if metadata.agent_mode() {
        return Err(RpcStatus::with_message(
            RpcStatusCode::FAILED_PRECONDITION,
            "Prometheus runs in agent mode: it keeps no TSDB to query".into(),
        ));
    }
    Ok(())
}

/// The legacy `thanos.Store/Info` that queriers before v0.37 call.
pub fn legacy_info(metadata: &Metadata) -> Result<store::InfoResponse, RpcStatus> {
    if !metadata.is_ready() {
        return Err(unknown("Not ready"));
    }
    refuse_in_agent_mode(metadata)?;
    let external = metadata.external_labels();
    let mut resp = store::InfoResponse::new();
    resp.labels = label_set(&external);
    if !external.is_empty() {
        let mut set = pb_labels::LabelSet::new();
        set.labels = label_set(&external);
        resp.label_sets.push(set);
    }
    resp.min_time = metadata.min_time(now_ms());
    resp.max_time = MAX_TIME;
    resp.storeType = store::StoreType::SIDECAR.into();
    Ok(resp)
}
