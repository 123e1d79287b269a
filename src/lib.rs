//! thanos-sidecar: a small, thread-based drop-in replacement for `thanos sidecar`.
//!
//! Each concern is a module; `main.rs` wires them. Threads are actors behind
//! handles: dropping a handle closes its inbox and joins the thread.

pub mod actor;
pub mod apis;
pub mod build_info;
pub mod envsubst;
pub mod fault;
pub mod flags;
pub mod grpc;
pub mod heartbeat;
pub mod http;
pub mod listen;
pub mod logging;
pub mod metadata;
pub mod objstore;
pub mod prometheus;
pub mod proto;
pub mod reloader;
pub mod sd_notify;
pub mod shipper;
pub mod signals;
pub mod store;
pub mod tls;
pub mod yaml;

/// What the threads tell the main loop.
#[derive(Debug)]
pub enum Event {
    /// Start-up found Prometheus with external labels: serving may begin.
    PrometheusReady,
    /// A component cannot go on; the daemon stops and exits 1.
    Fatal(String),
    /// SIGINT or SIGTERM (stop) or SIGHUP (logged only), by name.
    Signal(&'static str),
}
