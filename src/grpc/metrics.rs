//! Server-side gRPC metrics as Thanos exposes them (go-grpc-middleware's
//! Prometheus provider, set up in Thanos' `pkg/server/grpc/grpc.go`), so the
//! mixin's gRPC panels and alerts read a Rust sidecar as they read a Go one:
//! `grpc_server_{started,handled,msg_received,msg_sent}_total` and the
//! `grpc_server_handling_seconds` histogram per service, method and call
//! type, plus `grpc_req_panics_recovered_total`.
//!
//! Every method registered before Thanos' `InitializeMetrics` runs exists
//! from start-up with all 17 codes at 0 (so error ratios read 0, not "no
//! data"); the health service, registered after it there, appears once
//! called. A call costs one label lookup when it starts and one atomic add
//! per message it sends.
//!
//! The request log (`request_log`) rides on the same [`Call`], so every path
//! that counts a call also logs it when `--request.logging-config` asks.

use std::time::Instant;

use grpcio::{RpcContext, RpcStatusCode};
use prom::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use super::method::{
    code_name, Method, CODES, EXEMPLARS, INFO, METADATA, RULES, STATUS, STORE_INFO,
    STORE_LABEL_NAMES, STORE_LABEL_VALUES, STORE_SERIES, TARGETS,
};
use super::request_log::{Entry, RequestLog};

/// The methods that exist in the metrics from start-up: everything served
/// but health (and `thanos.Store/Info`, which Thanos no longer serves but
/// queriers before v0.37 call, is ours to pre-initialise like the rest).
const INITIALIZED: [Method; 10] = [
    STORE_INFO,
    STORE_SERIES,
    STORE_LABEL_NAMES,
    STORE_LABEL_VALUES,
    INFO,
    RULES,
    TARGETS,
    METADATA,
    EXEMPLARS,
    STATUS,
];

/// Thanos' buckets for `grpc_server_handling_seconds`.
const HANDLING_BUCKETS: [f64; 14] = [
    0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

pub struct GrpcMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    received: IntCounterVec,
    sent: IntCounterVec,
    handling: HistogramVec,
    panics: IntCounter,
    request_log: Option<RequestLog>,
}

impl GrpcMetrics {
    pub fn new(
        registry: &Registry,
        request_log: Option<RequestLog>,
    ) -> Result<GrpcMetrics, prom::Error> {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prom::Error> {
                let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(vec.clone()))?;
                Ok(vec)
            };
        let handled_labels = ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];
        let metrics = GrpcMetrics {
            started: counter(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &labels,
            )?,
            handled: counter(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &handled_labels,
            )?,
            received: counter(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                &labels,
            )?,
            sent: counter(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                &labels,
            )?,
            handling: {
                let vec = HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                    )
                    .buckets(HANDLING_BUCKETS.to_vec()),
                    &labels,
                )?;
                registry.register(Box::new(vec.clone()))?;
                vec
            },
            panics: {
                let counter = IntCounter::new(
                    "grpc_req_panics_recovered_total",
                    "Total number of gRPC requests recovered from internal panic.",
                )?;
                registry.register(Box::new(counter.clone()))?;
                counter
            },
            request_log,
        };
        for m in INITIALIZED {
            let values = m.labels();
            metrics.started.with_label_values(&values);
            metrics.received.with_label_values(&values);
            metrics.sent.with_label_values(&values);
            metrics.handling.with_label_values(&values);
            for (_, code) in CODES {
                metrics
                    .handled
                    .with_label_values(&[values[0], values[1], values[2], code]);
            }
        }
        Ok(metrics)
    }

    /// A call of `method` arrived on `ctx`: counted, and logged if asked.
    pub fn call(&self, method: Method, ctx: &RpcContext) -> Call {
        let mut call = self.start(method);
        call.log = self.request_log.as_ref().and_then(|l| l.begin(method, ctx));
        call
    }

    /// A call of `method` begins (its one request message has arrived).
    pub fn start(&self, method: Method) -> Call {
        let values = method.labels();
        self.started.with_label_values(&values).inc();
        self.received.with_label_values(&values).inc();
        Call {
            handled: self.handled.clone(),
            method,
            sent: self.sent.with_label_values(&values),
            handling: self.handling.with_label_values(&values),
            start: Instant::now(),
            log: None,
        }
    }

    /// A handler panicked; its call ends Internal.
    pub fn panic_recovered(&self) {
        self.panics.inc();
    }
}

impl Method {
    fn labels(&self) -> [&'static str; 3] {
        [self.kind.label(), self.service, self.name]
    }
}

/// One call in flight: counts what it sends, then how it ended.
pub struct Call {
    handled: IntCounterVec,
    method: Method,
    sent: IntCounter,
    handling: Histogram,
    start: Instant,
    log: Option<Entry>,
}

impl Call {
    /// A response message went out.
    pub fn sent(&self) {
        self.sent.inc();
    }

    /// The handler is done, with `code` (and the status message of a
    /// failed call).
    pub fn finish(self, code: RpcStatusCode, error: Option<&str>) {
        let [kind, service, name] = self.method.labels();
        self.handled
            .with_label_values(&[kind, service, name, code_name(code)])
            .inc();
        self.handling.observe(self.start.elapsed().as_secs_f64());
        if let Some(entry) = self.log {
            entry.finish(code, error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::method::HEALTH_CHECK;

    fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        registry
            .gather()
            .into_iter()
            .find(|f| f.name() == name)?
            .get_metric()
            .iter()
            .find(|m| {
                labels.iter().all(|(n, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *n && l.value() == *v)
                })
            })
            .map(|m| {
                if m.get_histogram().get_sample_count() > 0 {
                    m.get_histogram().get_sample_count() as f64
                } else {
                    m.get_counter().get_value()
                }
            })
    }

    #[test]
    fn methods_exist_from_start_up_with_every_code_but_health() {
        let registry = Registry::new();
        let _metrics = GrpcMetrics::new(&registry, None).unwrap();
        let handled = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "grpc_server_handled_total")
            .unwrap();
        assert_eq!(handled.get_metric().len(), INITIALIZED.len() * CODES.len());
        let series = [("grpc_method", "Series"), ("grpc_code", "DataLoss")];
        assert_eq!(
            value(&registry, "grpc_server_handled_total", &series),
            Some(0.0)
        );
        let health = [("grpc_service", "grpc.health.v1.Health")];
        assert_eq!(value(&registry, "grpc_server_started_total", &health), None);
    }

    #[test]
    fn a_call_counts_start_messages_code_and_latency() {
        let registry = Registry::new();
        let metrics = GrpcMetrics::new(&registry, None).unwrap();
        let call = metrics.start(STORE_SERIES);
        call.sent();
        call.sent();
        call.finish(RpcStatusCode::INVALID_ARGUMENT, Some("bad matcher"));
        metrics.start(HEALTH_CHECK).finish(RpcStatusCode::OK, None);
        let series = [("grpc_method", "Series"), ("grpc_type", "server_stream")];
        assert_eq!(
            value(&registry, "grpc_server_started_total", &series),
            Some(1.0)
        );
        assert_eq!(
            value(&registry, "grpc_server_msg_received_total", &series),
            Some(1.0)
        );
        assert_eq!(
            value(&registry, "grpc_server_msg_sent_total", &series),
            Some(2.0)
        );
        assert_eq!(
            value(&registry, "grpc_server_handling_seconds", &series),
            Some(1.0)
        );
        let invalid = [("grpc_method", "Series"), ("grpc_code", "InvalidArgument")];
        assert_eq!(
            value(&registry, "grpc_server_handled_total", &invalid),
            Some(1.0)
        );
        let health = [("grpc_method", "Check"), ("grpc_code", "OK")];
        assert_eq!(
            value(&registry, "grpc_server_handled_total", &health),
            Some(1.0)
        );
        assert_eq!(code_name(RpcStatusCode::CANCELLED), "Canceled");
    }
}
