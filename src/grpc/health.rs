//! `grpc.health.v1.Health`, as Thanos' gRPC server registers it.

use std::sync::Arc;

use grpcio::{RpcContext, RpcStatus, RpcStatusCode, UnarySink};

use super::calls::reply;
use super::method;
use super::metrics::GrpcMetrics;
use crate::metadata::Metadata;
use crate::proto::{health, services};

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
        let call = self.metrics.call(method::HEALTH_CHECK, &ctx);
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
