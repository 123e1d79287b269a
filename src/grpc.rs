//! The gRPC server on `--grpc-address`: StoreAPI, Info, Rules, Targets,
//! Metadata, Exemplars, Status and health services, in plain text or with
//! TLS (`--grpc-server-tls-*`, see `tls`).
//!
//! Started by `main` once Prometheus is known to be ready (Thanos keeps the
//! port closed until then). Dropping the [`Handle`] stops it gracefully:
//! no new calls, in-flight calls get `--grpc-grace-period`, then the rest are
//! cancelled and every worker thread is joined.

pub mod calls;
pub mod health;
pub mod method;
pub mod metrics;
pub mod request_log;
pub mod status;
pub mod tls;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use grpcio::{
    ChannelBuilder, EnvBuilder, Environment, Server, ServerBuilder, ServerCredentials, Service,
};

use crate::listen::ListenAddress;
use crate::metadata::Metadata;
use crate::proto::services;
use calls::Calls;
use health::Health;
use metrics::GrpcMetrics;
use tls::GrpcTls;
use workers::Workers;

/// `--grpc-address`, `--grpc-server-*` and `--grpc-grace-period`, as the
/// flags read them.
#[derive(Debug)]
pub struct GrpcServerConfig {
    pub address: ListenAddress,
    pub tls: Option<GrpcTls>,
    pub max_connection_age: Duration,
    pub grace_period: Duration,
    /// Calls worked on at once, and calls waiting beyond them.
    pub max_workers: usize,
    pub max_queued_calls: usize,
}

/// Completion-queue threads. One keeps a 1–2 core host's CPU for the work
/// itself: handlers only hand calls to workers and move finished frames.
const CQ_THREADS: usize = 1;

pub struct Handle {
    // Field order is drop order: the server before its environment.
    server: Option<Server>,
    _env: Arc<Environment>,
    workers: Workers,
    grace_period: Duration,
    /// The port actually bound (useful with `:0`).
    pub port: u16,
}

/// Serves what `services` registers (given the calls' machinery to run
/// them on), and the health service.
pub fn start(
    config: &GrpcServerConfig,
    metadata: Arc<Metadata>,
    metrics: Arc<GrpcMetrics>,
    services: impl FnOnce(Calls) -> Vec<Service>,
) -> Result<Handle, String> {
    let env = Arc::new(
        EnvBuilder::new()
            .cq_count(CQ_THREADS)
            .name_prefix("grpc-cq")
            .build(),
    );
    let mut args = ChannelBuilder::new(env.clone())
        // Thanos allows messages up to 2^31-1 bytes both ways.
        .max_receive_message_len(i32::MAX)
        .max_send_message_len(i32::MAX)
        // grpc-go's enforcement defaults as Thanos runs them: pings at most
        // every 10 s, none without an active call.
        .http2_min_recv_ping_interval_without_data(Duration::from_secs(10));
    let age = config.max_connection_age;
    if !age.is_zero() && age.as_millis() < i32::MAX as u128 {
        args = args.raw_cfg_int(c"grpc.max_connection_age_ms".into(), age.as_millis() as i32);
    }
    let workers = Workers::new(config.max_workers, config.max_queued_calls);
    let mut builder = ServerBuilder::new(env.clone()).channel_args(args.build_args());
    for service in services(Calls::new(workers.clone(), metrics.clone())) {
        builder = builder.register_service(service);
    }
    let mut server = builder
        .register_service(services::create_health(Health { metadata, metrics }))
        .build()
        .map_err(|e| format!("gRPC server: {e}"))?;
    let credentials = match &config.tls {
        Some(config) => tls::credentials(config)?,
        None => ServerCredentials::insecure(),
    };
    let port = server
        .add_listening_port(config.address.grpc_target(), credentials)
        .map_err(|e| format!("listen on --grpc-address={}: {e}", config.address))?;
    server.start();
    log::info!(address = config.address.to_string().as_str(), port = port, service = "gRPC/server"; "listening for serving gRPC");
    Ok(Handle {
        server: Some(server),
        _env: env,
        workers,
        grace_period: config.grace_period,
        port,
    })
}

/// How long shutdown waits, after the grace period, for workers to end.
const JOIN_PATIENCE: Duration = Duration::from_millis(500);

impl Drop for Handle {
    fn drop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let shutdown = server.shutdown();
        // Capacity 1: the waiter sends once, then ends.
        let (done, finished) = crossbeam_channel::bounded(1);
        let waiter = jod_thread::Builder::new()
            .name("grpc-shutdown".into())
            .spawn(move || {
                let _ = futures::executor::block_on(shutdown);
                let _ = done.send(());
            });
        match waiter {
            Ok(waiter) => {
                if finished.recv_timeout(self.grace_period).is_err() {
                    log::info!("gRPC grace period over; cancelling calls still running");
                    server.cancel_all_calls();
                }
                drop(waiter);
            }
            Err(_) => server.cancel_all_calls(),
        }
        drop(server);
        // Calls cancelled above end at their next frame; one still waiting
        // on Prometheus is not waited for long.
        self.workers.join_all(JOIN_PATIENCE);
        log::info!(service = "gRPC/server"; "internal server is shutdown gracefully");
    }
}
