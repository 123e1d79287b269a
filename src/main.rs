//! The daemon's story: parse the flags, learn about Prometheus, serve, stop in order.

use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::select;

use thanos_sidecar::flags::{self, Config, Parsed};
use thanos_sidecar::{
    actor, allocator, build_info, grpc, heartbeat, http, logging, metadata, objstore, prometheus,
    reloader, sd_notify, shipper, signals, store, Event,
};

// The static binary's allocator (Cargo.toml says why): mimalloc serves
// Rust's allocations directly and, through `override`, every C `malloc`.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    allocator::give_freed_pages_back_at_once();
    let argv: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect()
    {
        Ok(argv) => argv,
        Err(bad) => {
            eprintln!("thanos-sidecar: error: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(2);
        }
    };
    // `store ...` is a client for operators, not a Thanos command: it has
    // its own small parser and never starts the daemon.
    if argv.first().map(String::as_str) == Some("store") {
        return match store::cli::run(&argv[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("thanos-sidecar store: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match flags::parse(&argv) {
        Ok(Parsed::Sidecar(args)) => args,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            print!("{}", build_info::version_text());
            return ExitCode::SUCCESS;
        }
        Err(flags::UsageError(message)) => {
            eprintln!("thanos-sidecar: error: {message}, try --help");
            return ExitCode::from(2);
        }
    };
    logging::init(args.log_level(), args.log_format(), args.debug_name());
    logging::route_grpc_core();
    match run(&args) {
        Ok(()) => {
            log::info!("exiting");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!(err = e.as_str(); "running command failed");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &flags::Args) -> Result<(), String> {
    let config = Config::new(args, |warning| log::warn!("{warning}"))?;
    refuse_unimplemented(&config)?;
    if config.objstore.is_none() {
        log::info!("no supported bucket was configured, uploads will be disabled");
    }
    log::info!("starting sidecar");

    // Everything a component measures goes into this registry, served on /metrics.
    let registry = prom::Registry::new();
    build_info::register(&registry).map_err(|e| e.to_string())?;
    let metadata = Arc::new(
        metadata::Metadata::new(&registry, config.store.min_time).map_err(|e| e.to_string())?,
    );
    // With uploads on, the bucket (and its metrics) exist from the start; the
    // shipper starts once Prometheus' external labels are known.
    let bucket = match &config.objstore {
        Some(objstore) => {
            shipper::check_wal(&config.tsdb_path);
            Some(objstore::open(objstore, &registry).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let client = prometheus::Client::new(
        config.prometheus.url.clone(),
        &config.prometheus.http_client,
    )
    .map_err(|e| format!("--prometheus.http-client: {e}"))?;
    let store = Arc::new(
        store::Store::new(
            client.clone(),
            metadata.clone(),
            store::Limits {
                series: config.store.request_series_limit,
                samples: config.store.request_samples_limit,
            },
            config.prometheus.get_config_timeout,
            &registry,
        )
        .map_err(|e| e.to_string())?,
    );

    // Registered now, like the rest: the gRPC server starts once Prometheus
    // is ready, but its methods' series exist from start-up, as in Thanos.
    // The request log (--request.logging-config) rides on the same calls.
    let grpc_metrics = Arc::new(
        grpc::metrics::GrpcMetrics::new(&registry, config.request_logging.clone())
            .map_err(|e| e.to_string())?,
    );

    // Capacity 16: a handful of signals and one event per component; the main
    // loop drains it at once, so senders never wait in practice.
    let (events_sender, events) = crossbeam_channel::bounded(16);
    let signals =
        signals::spawn(events_sender.clone()).map_err(|e| format!("signal handler: {e}"))?;
    let http = http::spawn(
        &config.http.address,
        config.http.web_config.as_deref(),
        registry.clone(),
        metadata.clone(),
    )?;
    let heartbeat = heartbeat::spawn(
        heartbeat::Config {
            interval: config.prometheus.get_config_interval,
            timeout: config.prometheus.get_config_timeout,
            upload_check: config.objstore.as_ref().map(|_| heartbeat::UploadCheck {
                tsdb_path: config.tsdb_path.clone(),
                shipper_meta_file_name: config.shipper.meta_file_name.clone(),
                ignore_unequal_block_size: config.shipper.ignore_unequal_block_size,
            }),
        },
        client.clone(),
        metadata.clone(),
        &registry,
        events_sender.clone(),
    )
    .map_err(|e| format!("heartbeat: {e}"))?;
    let reloader = reloader::spawn(&config.reloader, client, &registry)?;

    // With uploads on, Thanos gives Prometheus `--prometheus.ready_timeout` to
    // show its external labels; the shipper cannot label blocks without them.
    let ready_deadline = match config.objstore {
        Some(_) => crossbeam_channel::after(config.prometheus.ready_timeout),
        None => crossbeam_channel::never(),
    };
    // systemd (Type=notify) hears when we serve, how we are, and that we live.
    let systemd = sd_notify::Notifier::from_env();
    systemd.status("waiting for Prometheus");
    let watchdog = match systemd.watchdog_interval() {
        Some(interval) => crossbeam_channel::tick(interval),
        None => crossbeam_channel::never(),
    };
    let mut started = false;
    let mut grpc = None;
    let mut shipper = None;
    // The watchdog is fed only while each of these shows progress in time.
    let mut actors: Vec<Arc<actor::Progress>> = vec![heartbeat.progress()];
    actors.extend(reloader.progress());
    let result = loop {
        select! {
            recv(events) -> event => match event {
                Ok(Event::PrometheusReady) if !started => {
                    started = true;
                    // Thanos opens the gRPC port only once Prometheus is known.
                    let services = |calls| store::services(store.clone(), calls);
                    match grpc::start(&config.grpc, metadata.clone(), grpc_metrics.clone(), services) {
                        Ok(server) => grpc = Some(server),
                        Err(e) => break Err(e),
                    }
                    // The shipper labels blocks with the external labels just
                    // loaded. Prometheus in agent mode writes none (the
                    // heartbeat said so in the log).
                    if let Some(bucket) = bucket.as_ref().filter(|_| !metadata.agent_mode()) {
                        match start_shipper(&config, bucket, &metadata, &registry, &events_sender) {
                            Ok(handle) => {
                                actors.push(handle.progress());
                                shipper = Some(handle);
                            }
                            Err(e) => break Err(e),
                        }
                    }
                    // Ready only now that gRPC listens: readiness is the
                    // heartbeat's "Prometheus is up" and this "serving".
                    metadata.set_serving(true);
                    systemd.ready("serving; Prometheus is up");
                }
                Ok(Event::PrometheusReady) => {}
                Ok(Event::Fatal(e)) => break Err(e),
                Ok(Event::Signal("hangup")) => log::info!("caught signal hangup; ignoring"),
                Ok(Event::Signal(name)) => {
                    log::info!(sig = name; "caught signal. Exiting.");
                    break Ok(());
                }
                Err(_) => break Ok(()),
            },
            // Pinged from this loop, and only while every actor is making
            // progress, so a wedged loop or actor gets us restarted.
            recv(watchdog) -> _ => if actor::all_alive(&actors) {
                systemd.watchdog();
            },
            recv(ready_deadline) -> _ => if !started {
                break Err(format!(
                    "aborting as no external labels found after waiting {} (--prometheus.ready_timeout): \
                     not uploading as no external labels are configured yet - is Prometheus healthy/reachable?",
                    thanos_sidecar::values::format_model_duration(config.prometheus.ready_timeout)
                ));
            },
        }
    };

    // Nobody reads events any more: senders (signals, heartbeat, shipper)
    // must see a closed channel rather than block a join below on a full one.
    drop(events);

    // Shut down in Thanos' order: HTTP (not ready first, so probes see it),
    // heartbeat, reloader, gRPC (grace period), shipper (an upload in flight is
    // abandoned, not recorded), signals. The heartbeat and the reloader are
    // told first and joined after gRPC's grace period, so a call of theirs
    // stuck on a hung Prometheus ends (or is given up) meanwhile: shutdown
    // takes the grace period and a moment, whatever is blocked.
    systemd.stopping();
    metadata.set_serving(false);
    drop(http);
    metadata.set_healthy(false);
    let (mut heartbeat, mut reloader) = (heartbeat, reloader);
    heartbeat.stop();
    reloader.stop();
    drop(grpc);
    drop(heartbeat);
    drop(reloader);
    drop(shipper);
    drop(signals);
    result
}

/// The shipper, once Prometheus' external labels are known.
fn start_shipper(
    config: &Config,
    bucket: &Arc<dyn objstore::Bucket>,
    metadata: &Arc<metadata::Metadata>,
    registry: &prom::Registry,
    events: &crossbeam_channel::Sender<Event>,
) -> Result<shipper::Handle, String> {
    let options = shipper::Options {
        tsdb_path: config.tsdb_path.clone(),
        meta_file_name: config.shipper.meta_file_name.clone(),
        upload_compacted: config.shipper.upload_compacted,
        hash_sha256: config.shipper.hash_sha256,
        upload_concurrency: config.shipper.upload_concurrency,
        allow_out_of_order_uploads: config.shipper.allow_out_of_order_uploads,
        skip_corrupted_blocks: config.shipper.skip_corrupted_blocks,
    };
    shipper::spawn(
        options,
        bucket.clone(),
        metadata.clone(),
        registry,
        events.clone(),
    )
    .map_err(|e| format!("shipper: {e}"))
}

/// Flags whose feature this build does not have. Starting without them
/// would look like success while silently doing less, so the daemon refuses
/// instead. gRPC's C core picks the TLS cipher suites and curves itself.
fn refuse_unimplemented(config: &Config) -> Result<(), String> {
    let Some(tls) = &config.grpc.tls else {
        return Ok(());
    };
    let missing = [
        (!tls.ciphers.is_empty(), "--grpc-server-tls-ciphers"),
        (!tls.curves.is_empty(), "--grpc-server-tls-curves"),
    ];
    match missing.iter().find(|(set, _)| *set) {
        Some((_, flag)) => Err(format!(
            "{flag} is not supported by thanos-sidecar: gRPC's C core chooses them itself; leave it unset"
        )),
        None => Ok(()),
    }
}
