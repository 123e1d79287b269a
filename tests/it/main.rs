//! Integration tests: the sidecar binary against a real Prometheus.
//!
//! One test binary (faster to link than one per file); one module per concern.

mod apis;
mod azure;
mod cli;
mod daemon;
mod gcs;
mod hostile;
mod kubernetes;
mod matchers;
mod memory;
mod observability;
mod prom3;
mod reloader;
mod shipper;
mod static_build;
mod store;
mod support;
mod systemd;
mod tls;
