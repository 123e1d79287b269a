//! Request logging of gRPC calls (`--request.logging-config`), in the shape
//! Thanos' go-grpc-middleware logging interceptor gives it: a debug
//! `started call` line (when `log_start`), and a `finished call` line at
//! error for the codes that mean the server failed (Unknown, Unimplemented,
//! Internal, DataLoss), at debug otherwise, with the same keys:
//! `service=gRPC/server component=sidecar requestID protocol grpc.component
//! grpc.service grpc.method grpc.method_type peer.address grpc.start_time
//! [grpc.code grpc.error] grpc.time_ms`. As in Thanos, the `level` of the
//! YAML is only validated, and the lines pass `--log.level` like any other,
//! so successful calls show at debug only. No config, no request lines.
//!
//! Differences: `grpc.request.deadline` is not logged (grpcio does not
//! expose a call's deadline as a time), and one call's two lines share one
//! `requestID` (Thanos draws a new ULID for each line unless the client
//! sends `request-id`).

use std::time::Instant;

use grpcio::{RpcContext, RpcStatusCode};

use super::method::{code_name, Kind, Method};

/// What the config asks of gRPC calls, resolved as Thanos resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    /// Also a line when a call starts (else only when it finishes).
    pub log_start: bool,
    /// `/service/method` of the calls to log; empty logs every call.
    pub methods: Vec<String>,
}

/// One logged call: what its lines share.
pub struct Entry {
    fields: Vec<(&'static str, String)>,
    start: Instant,
}

impl RequestLog {
    /// The call's entry, if this call is logged; logs its start line.
    pub fn begin(&self, method: Method, ctx: &RpcContext) -> Option<Entry> {
        if !self.methods.is_empty() {
            let full = format!("/{}/{}", method.service, method.name);
            if !self.methods.contains(&full) {
                return None;
            }
        }
        let request_id = ctx
            .request_headers()
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case("request-id"))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .collect::<Vec<_>>();
        let request_id = match <[String; 1]>::try_from(request_id) {
            Ok([id]) => id,
            Err(_) => ulid::Ulid::generate().to_string(),
        };
        let peer = ctx.peer();
        let peer = peer
            .strip_prefix("ipv4:")
            .or_else(|| peer.strip_prefix("ipv6:"))
            .unwrap_or(&peer)
            .to_string();
        let fields = vec![
            ("service", "gRPC/server".to_string()),
            ("component", "sidecar".to_string()),
            ("requestID", request_id),
            ("protocol", "grpc".to_string()),
            ("grpc.component", "server".to_string()),
            ("grpc.service", method.service.to_string()),
            ("grpc.method", method.name.to_string()),
            (
                "grpc.method_type",
                match method.kind {
                    Kind::Unary => "unary",
                    Kind::ServerStream => "server_stream",
                }
                .to_string(),
            ),
            ("peer.address", peer),
            (
                "grpc.start_time",
                chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        ];
        let entry = Entry {
            fields,
            start: Instant::now(),
        };
        if self.log_start {
            entry.line(log::Level::Debug, "started call", &[]);
        }
        Some(entry)
    }
}

impl Entry {
    /// The finish line; `error` is the status message of a failed call.
    pub fn finish(self, code: RpcStatusCode, error: Option<&str>) {
        let level = match code {
            RpcStatusCode::UNKNOWN
            | RpcStatusCode::UNIMPLEMENTED
            | RpcStatusCode::INTERNAL
            | RpcStatusCode::DATA_LOSS => log::Level::Error,
            _ => log::Level::Debug,
        };
        let mut extra = vec![("grpc.code", code_name(code).to_string())];
        if let Some(error) = error.filter(|_| code != RpcStatusCode::OK) {
            // Go prints a status error as `rpc error: code = X desc = Y`; a
            // plain error (which gRPC sends as Unknown) as its text.
            extra.push((
                "grpc.error",
                match code {
                    RpcStatusCode::UNKNOWN => error.to_string(),
                    _ => format!("rpc error: code = {} desc = {error}", code_name(code)),
                },
            ));
        }
        self.line(level, "finished call", &extra);
    }

    fn line(&self, level: log::Level, msg: &str, extra: &[(&'static str, String)]) {
        if level > log::max_level() {
            return;
        }
        // Milliseconds to the microsecond, printed as Go prints a float32.
        let ms = (self.start.elapsed().as_micros() as f32) / 1000.0;
        let mut kvs: Vec<(&str, String)> = self.fields.clone();
        kvs.extend(extra.iter().cloned());
        kvs.push(("grpc.time_ms", ms.to_string()));
        log::logger().log(
            &log::Record::builder()
                .args(format_args!("{msg}"))
                .level(level)
                .target(module_path!())
                .file(Some(file!()))
                .line(Some(line!()))
                .key_values(&kvs.as_slice())
                .build(),
        );
    }
}
