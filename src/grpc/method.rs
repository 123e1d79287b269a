//! The gRPC methods the sidecar serves, named as go-grpc-middleware labels
//! them, and Go's names of status codes: what the metrics and the request
//! log both speak of.

use grpcio::RpcStatusCode;

/// How a method streams, as go-grpc-middleware names it in `grpc_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unary,
    ServerStream,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStream => "server_stream",
        }
    }
}

/// One method of one service, as its labels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    pub service: &'static str,
    pub name: &'static str,
    pub kind: Kind,
}

const fn method(service: &'static str, name: &'static str, kind: Kind) -> Method {
    Method {
        service,
        name,
        kind,
    }
}

pub const STORE_INFO: Method = method("thanos.Store", "Info", Kind::Unary);
pub const STORE_SERIES: Method = method("thanos.Store", "Series", Kind::ServerStream);
pub const STORE_LABEL_NAMES: Method = method("thanos.Store", "LabelNames", Kind::Unary);
pub const STORE_LABEL_VALUES: Method = method("thanos.Store", "LabelValues", Kind::Unary);
pub const INFO: Method = method("thanos.info.Info", "Info", Kind::Unary);
pub const RULES: Method = method("thanos.Rules", "Rules", Kind::ServerStream);
pub const TARGETS: Method = method("thanos.Targets", "Targets", Kind::ServerStream);
pub const METADATA: Method = method("thanos.Metadata", "MetricMetadata", Kind::ServerStream);
pub const EXEMPLARS: Method = method("thanos.Exemplars", "Exemplars", Kind::ServerStream);
pub const STATUS: Method = method("thanos.Status", "TSDBStatistics", Kind::ServerStream);
pub const HEALTH_CHECK: Method = method("grpc.health.v1.Health", "Check", Kind::Unary);

/// Go's `codes.Code` names, in code order (the `grpc_code` label values).
pub const CODES: [(RpcStatusCode, &str); 17] = [
    (RpcStatusCode::OK, "OK"),
    (RpcStatusCode::CANCELLED, "Canceled"),
    (RpcStatusCode::UNKNOWN, "Unknown"),
    (RpcStatusCode::INVALID_ARGUMENT, "InvalidArgument"),
    (RpcStatusCode::DEADLINE_EXCEEDED, "DeadlineExceeded"),
    (RpcStatusCode::NOT_FOUND, "NotFound"),
    (RpcStatusCode::ALREADY_EXISTS, "AlreadyExists"),
    (RpcStatusCode::PERMISSION_DENIED, "PermissionDenied"),
    (RpcStatusCode::RESOURCE_EXHAUSTED, "ResourceExhausted"),
    (RpcStatusCode::FAILED_PRECONDITION, "FailedPrecondition"),
    (RpcStatusCode::ABORTED, "Aborted"),
    (RpcStatusCode::OUT_OF_RANGE, "OutOfRange"),
    (RpcStatusCode::UNIMPLEMENTED, "Unimplemented"),
    (RpcStatusCode::INTERNAL, "Internal"),
    (RpcStatusCode::UNAVAILABLE, "Unavailable"),
    (RpcStatusCode::DATA_LOSS, "DataLoss"),
    (RpcStatusCode::UNAUTHENTICATED, "Unauthenticated"),
];

/// Go's name of a status code (`Canceled`, `InvalidArgument`, ...).
pub fn code_name(code: RpcStatusCode) -> &'static str {
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
        .unwrap_or("Unknown")
}
