//! gRPC statuses as Thanos answers them: which code a failure becomes.

use grpcio::{RpcStatus, RpcStatusCode};

use crate::prometheus;

/// Plain (non-status) errors in Thanos surface as gRPC Unknown.
pub fn unknown(message: impl Into<String>) -> RpcStatus {
    RpcStatus::with_message(RpcStatusCode::UNKNOWN, message.into())
}

pub fn invalid_argument(message: impl Into<String>) -> RpcStatus {
    RpcStatus::with_message(RpcStatusCode::INVALID_ARGUMENT, message.into())
}

pub fn internal(message: impl Into<String>) -> RpcStatus {
    RpcStatus::with_message(RpcStatusCode::INTERNAL, message.into())
}

/// Maps a failed JSON API call to the code Thanos returns
/// (`pkg/promclient/promclient.go`'s errors through the gRPC server).
pub fn api_error(e: prometheus::Error) -> RpcStatus {
    let code = match &e {
        prometheus::Error::Status { code: 400, .. } => RpcStatusCode::INVALID_ARGUMENT,
        prometheus::Error::Status { code: 404, .. } => RpcStatusCode::NOT_FOUND,
        prometheus::Error::Status { code: 503, .. } => RpcStatusCode::UNAVAILABLE,
        _ => RpcStatusCode::INTERNAL,
    };
    RpcStatus::with_message(code, e.to_string())
}
