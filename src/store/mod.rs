//! The StoreAPI and Info API a Thanos Querier calls (Thanos'
//! `pkg/store/prometheus.go` and `pkg/info`).
//!
//! gRPC handlers run on the completion-queue threads and must not block, so
//! each call's work (blocking HTTP to Prometheus) runs on a named worker
//! thread ([`Workers`]); results travel back over a bounded channel that the
//! completion queue drains into the call's sink ([`Services::stream`], which
//! the services of [`crate::apis`] use too).

pub mod cli;
pub mod goregex;
pub mod histogram;
pub mod labels;
pub mod matchers;
pub mod remote_read;
pub mod series;
pub mod sort;
pub mod xor;

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{Sink, SinkExt, StreamExt};
use grpcio::{RpcContext, RpcStatus, RpcStatusCode, ServerStreamingSink, UnarySink, WriteFlags};
use prom::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use crate::grpc::metrics::{self as grpc_metrics, Call, GrpcMetrics, Method};
use crate::grpc::workers::Workers;

use crate::metadata::{Metadata, MAX_TIME};
use crate::prometheus::Client;
use crate::proto::{health, info, labels as pb_labels, services, store};

/// Frames queued between a Series worker and its client: enough to keep the
/// connection busy while the worker decodes the next remote-read frame, few
/// enough that a slow client holds little memory.
const SERIES_QUEUE: usize = 16;

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

/// The gRPC services, cheap to clone (grpcio clones one per method).
#[derive(Clone)]
pub struct Services {
    store: Arc<Store>,
    workers: Workers,
    metrics: Arc<GrpcMetrics>,
}

impl Services {
    pub fn new(store: Arc<Store>, workers: Workers, metrics: Arc<GrpcMetrics>) -> Self {
        Services {
            store,
            workers,
            metrics,
        }
    }

    /// Runs `work` on a worker and answers the unary call with its result.
    fn unary<Resp: Send + 'static>(
        &self,
        ctx: &RpcContext,
        method: Method,
        name: &'static str,
        sink: UnarySink<Resp>,
        work: impl FnOnce(&Store) -> Result<Resp, RpcStatus> + Send + 'static,
    ) {
        let call = self.metrics.call(method, ctx);
        let (tx, rx) = oneshot::channel();
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let spawned = self.workers.spawn(name, move || {
            let _ = tx.send(recover(&metrics, || work(&store)));
        });
        if let Err(status) = spawned {
            ctx.spawn(reply(call, sink, Err(status)));
            return;
        }
        ctx.spawn(async move {
            let result = match rx.await {
                Ok(result) => result,
                Err(_) => Err(internal("worker ended without an answer".into())),
            };
            reply(call, sink, result).await;
        });
    }

    /// Runs `work` on a worker and streams the frames it hands to its `out`
    /// (which blocks while `queue` frames wait for a slow client, and fails
    /// once the client is gone); an error from `work` ends the stream with
    /// that status after the frames already sent.
    pub(crate) fn stream<Resp: Send + 'static>(
        &self,
        ctx: &RpcContext,
        method: Method,
        name: &'static str,
        queue: usize,
        mut sink: ServerStreamingSink<Resp>,
        work: impl FnOnce(&Store, &mut dyn FnMut(Resp) -> Result<(), RpcStatus>) -> Result<(), RpcStatus>
            + Send
            + 'static,
    ) {
        let call = self.metrics.call(method, ctx);
        let (tx, mut rx) = mpsc::channel::<Result<Resp, RpcStatus>>(queue);
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let spawned = self.workers.spawn(name, move || {
            let mut frames = tx.clone();
            let mut out = |resp: Resp| -> Result<(), RpcStatus> {
                futures::executor::block_on(frames.send(Ok(resp)))
                    .map_err(|_| RpcStatus::new(RpcStatusCode::CANCELLED))
            };
            let result = recover(&metrics, || work(&store, &mut out));
            if let Err(status) = result {
                let mut tx = tx;
                let _ = futures::executor::block_on(tx.send(Err(status)));
            }
        });
        let ticket = match spawned {
            Ok(ticket) => ticket,
            Err(status) => {
                call.finish(status.code(), Some(status.message()));
                ctx.spawn(async move {
                    let _ = sink.fail(status).await;
                });
                return;
            }
        };
        let deadline = ctx.deadline();
        ctx.spawn(async move {
            loop {
                match next_or_gone(&mut rx, &mut sink).await {
                    Ok(Some(Ok(resp))) => {
                        if let Err(e) = sink.send((resp, WriteFlags::default())).await {
                            // Dropping `rx` (on return) stops the worker at its next frame.
                            log::debug!(err = e.to_string().as_str(); "streaming client gone");
                            ticket.give_up();
                            call.finish(RpcStatusCode::CANCELLED, Some(&e.to_string()));
                            return;
                        }
                        call.sent();
                    }
                    Ok(Some(Err(status))) => {
                        call.finish(status.code(), Some(status.message()));
                        let _ = sink.fail(status).await;
                        return;
                    }
                    Ok(None) => {
                        call.finish(RpcStatusCode::OK, None);
                        let _ = sink.close().await;
                        return;
                    }
                    Err(e) => {
                        // Cancelled or past its deadline while the worker had
                        // nothing to send, e.g. waiting for Prometheus' first byte.
                        let code = if deadline.exceeded() {
                            RpcStatusCode::DEADLINE_EXCEEDED
                        } else {
                            RpcStatusCode::CANCELLED
                        };
                        log::debug!(err = e.to_string().as_str(); "streaming client gone before the answer");
                        ticket.give_up();
                        call.finish(code, Some(&e.to_string()));
                        return;
                    }
                }
            }
        });
    }
}

/// The worker's next message, or the error that ended the call meanwhile.
/// A server-streaming sink learns of its call's end (the client cancelled,
/// or the deadline passed and gRPC cancelled it) in `poll_ready`, which
/// also registers this task to be woken by it; waiting on `rx` alone would
/// only notice at the next send, which may be an hour away.
async fn next_or_gone<T, Resp>(
    rx: &mut mpsc::Receiver<T>,
    sink: &mut ServerStreamingSink<Resp>,
) -> Result<Option<T>, grpcio::Error> {
    futures::future::poll_fn(|cx| {
        if let Poll::Ready(Err(e)) = Pin::new(&mut *sink).poll_ready(cx) {
            return Poll::Ready(Err(e));
        }
        rx.poll_next_unpin(cx).map(Ok)
    })
    .await
}

/// Answers a unary call: counts it as Thanos' interceptors do (the response
/// is a message sent once the handler succeeded), then writes it.
async fn reply<T>(call: Call, sink: UnarySink<T>, result: Result<T, RpcStatus>) {
    let sent = match result {
        Ok(resp) => {
            call.sent();
            call.finish(RpcStatusCode::OK, None);
            sink.success(resp).await
        }
        Err(status) => {
            call.finish(status.code(), Some(status.message()));
            sink.fail(status).await
        }
    };
    if let Err(e) = sent {
        log::debug!(err = e.to_string().as_str(); "answering a gRPC call failed");
    }
}

/// Runs a handler's work; a panic in it becomes an Internal status carrying
/// the panic's message and is counted, as Thanos' recovery interceptor does,
/// instead of ending the call without an answer.
fn recover<T>(
    metrics: &GrpcMetrics,
    work: impl FnOnce() -> Result<T, RpcStatus>,
) -> Result<T, RpcStatus> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        metrics.panic_recovered();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        log::error!(panic = message.as_str(); "recovered from panic");
        Err(internal(message))
    })
}

fn internal(message: String) -> RpcStatus {
    RpcStatus::with_message(RpcStatusCode::INTERNAL, message)
}

impl services::Store for Services {
    fn info(
        &mut self,
        ctx: RpcContext,
        _req: store::InfoRequest,
        sink: UnarySink<store::InfoResponse>,
    ) {
        // Cheap and non-blocking: answered on the completion queue.
        let call = self.metrics.call(grpc_metrics::STORE_INFO, &ctx);
        ctx.spawn(reply(call, sink, legacy_info(&self.store.metadata)));
    }

    fn series(
        &mut self,
        ctx: RpcContext,
        req: store::SeriesRequest,
        sink: ServerStreamingSink<store::SeriesResponse>,
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
        let call = self.metrics.call(grpc_metrics::INFO, &ctx);
        ctx.spawn(reply(call, sink, info_response(&self.store.metadata)));
    }
}

/// `grpc.health.v1.Health`: the empty service name follows readiness.
#[derive(Clone)]
pub struct Health {
    pub metadata: Arc<Metadata>,
    pub metrics: Arc<GrpcMetrics>,
}

impl services::Health for Health {
    fn check(
        &mut self,
        ctx: RpcContext,
        req: health::HealthCheckRequest,
        sink: UnarySink<health::HealthCheckResponse>,
    ) {
        use health::health_check_response::ServingStatus;
        let call = self.metrics.call(grpc_metrics::HEALTH_CHECK, &ctx);
        let result = if req.service.is_empty() {
            let mut resp = health::HealthCheckResponse::new();
            resp.status = if self.metadata.is_ready() {
                ServingStatus::SERVING
            } else {
                ServingStatus::NOT_SERVING
            }
            .into();
            Ok(resp)
        } else {
            Err(RpcStatus::with_message(
                RpcStatusCode::NOT_FOUND,
                "unknown service".into(),
            ))
        };
        ctx.spawn(reply(call, sink, result));
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
        return Err(series::unknown("Not ready"));
    }
    let external = metadata.external_labels();
    let min_time = metadata.min_time(series::now_ms());
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
        return Err(series::unknown("Not ready"));
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
    resp.min_time = metadata.min_time(series::now_ms());
    resp.max_time = MAX_TIME;
    resp.storeType = store::StoreType::SIDECAR.into();
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_calls_work_is_answered_internal_and_counted() {
        let registry = Registry::new();
        let metrics = GrpcMetrics::new(&registry, None).unwrap();
        let result: Result<(), RpcStatus> = recover(&metrics, || panic!("index out of bounds"));
        let status = result.unwrap_err();
        assert_eq!(status.code(), RpcStatusCode::INTERNAL);
        assert_eq!(status.message(), "index out of bounds");
        let panics = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "grpc_req_panics_recovered_total")
            .map(|f| f.get_metric()[0].get_counter().get_value());
        assert_eq!(panics, Some(1.0));
        assert_eq!(recover(&metrics, || Ok(7)).unwrap(), 7);
    }
}
