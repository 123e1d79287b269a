//! The daemon next to a real Prometheus: start-up, heartbeat, readiness,
//! credentials, refusals and shutdown, as `thanos sidecar` behaves.

use std::net::TcpStream;
use std::time::Duration;

use crate::support::{wait_for, Prometheus, PrometheusOptions, RecordingProxy, Sidecar};

/// Short heartbeat settings so tests observe changes quickly.
fn fast(prometheus_url: &str) -> Vec<String> {
    vec![
        format!("--prometheus.url={prometheus_url}"),
        "--prometheus.get_config_interval=500ms".into(),
        "--prometheus.get_config_timeout=2s".into(),
    ]
}

fn filesystem_bucket(dir: &std::path::Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}",
        dir.join("bucket").display()
    )
}

#[test]
fn waits_for_prometheus_then_becomes_ready() {
    let mut prometheus = Prometheus::prepare(PrometheusOptions::default());
    let sidecar = Sidecar::start(&fast(&prometheus.url()));

    // Prometheus is down: alive, not ready, gRPC port closed, metrics at 0.
    assert_eq!(sidecar.get("/-/healthy"), (200, "OK".to_string()));
    assert_eq!(sidecar.get("/-/ready"), (503, "NOT OK\n".to_string()));
    assert!(TcpStream::connect(("127.0.0.1", sidecar.grpc_port)).is_err());
    let metrics = sidecar.get("/metrics").1;
    assert_eq!(
        crate::support::metric_value(&metrics, "thanos_sidecar_prometheus_up"),
        Some(0.0)
    );
    assert_eq!(
        crate::support::metric_value(
            &metrics,
            "thanos_status{check=\"ready\",component=\"sidecar\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        crate::support::metric_value(
            &metrics,
            "thanos_status{check=\"healthy\",component=\"sidecar\"}"
        ),
        Some(1.0)
    );
    assert!(metrics.contains("thanos_build_info{"), "{metrics}");
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );
    assert!(metrics.contains("process_open_fds"), "{metrics}");
    assert!(metrics.contains("process_start_time_seconds"), "{metrics}");
    assert!(metrics.contains("process_cpu_seconds_total"), "{metrics}");
    assert_eq!(sidecar.get("/nope").0, 404);

    // Ready within one retry interval (500 ms) plus a second of slack.
    prometheus.resume();
    assert!(
        sidecar.wait_ready(Duration::from_millis(1500)),
        "not ready 1.5 s after Prometheus; log:\n{}",
        sidecar.log()
    );
    assert_eq!(sidecar.metric("thanos_sidecar_prometheus_up"), Some(1.0));
    assert_eq!(
        sidecar.metric("thanos_status{check=\"ready\",component=\"sidecar\"}"),
        Some(1.0)
    );
    assert!(
        sidecar.log().contains(&format!(
            "msg=\"successfully loaded prometheus version\" version={}.",
            crate::support::prometheus::major_version()
        )),
        "{}",
        sidecar.log()
    );
}

/// "Ready" is a promise to a querier: the gRPC port listens before /-/ready
/// first says 200 (Thanos says ready a moment before it listens), and a
/// sidecar that cannot open it never says ready at all.
#[test]
fn ready_only_once_the_grpc_port_listens() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let sidecar = Sidecar::start(&fast(&prometheus.url()));
    assert!(
        sidecar.wait_ready(Duration::from_secs(10)),
        "{}",
        sidecar.log()
    );
    assert!(TcpStream::connect(("127.0.0.1", sidecar.grpc_port)).is_ok());
    let log = sidecar.log();
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
    };
    assert!(
        at("listening for serving gRPC") < at("msg=\"changing probe status\" status=ready"),
        "ready before gRPC listened:\n{log}"
    );

    // Port taken: the sidecar exits 1 naming it, and was never ready.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut sidecar = Sidecar::spawn_with_grpc_port(&fast(&prometheus.url()), &[], port);
    let mut ever_ready = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sidecar.has_exited() {
        ever_ready |= sidecar.ready();
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(1));
    }
    let log = sidecar.log();
    let status = sidecar.wait_exit(Duration::from_secs(1));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(!ever_ready, "said ready without its gRPC port:\n{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    drop(taken);
}

#[test]
fn readiness_follows_prometheus() {
    let mut prometheus = Prometheus::start(PrometheusOptions::default());
    let sidecar = Sidecar::start(&fast(&prometheus.url()));
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );

    prometheus.stop();
    assert!(
        wait_for(Duration::from_secs(5), || !sidecar.ready()),
        "still ready after Prometheus stopped"
    );
    assert_eq!(sidecar.get("/-/ready"), (503, "NOT OK\n".to_string()));
    assert_eq!(sidecar.metric("thanos_sidecar_prometheus_up"), Some(0.0));
    assert!(
        sidecar.log().contains("msg=\"updating timestamps failed\""),
        "{}",
        sidecar.log()
    );
    // Prometheus going away never stops the daemon.
    assert_eq!(sidecar.get("/-/healthy").0, 200);

    prometheus.resume();
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );
    assert_eq!(sidecar.metric("thanos_sidecar_prometheus_up"), Some(1.0));
}

#[test]
fn external_labels_follow_prometheus_reloads() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let sidecar = Sidecar::start(&fast(&prometheus.url()));
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );

    prometheus.write_config(Some(vec![("cluster", "moved"), ("replica", "1")]));
    prometheus.reload();
    let changed = wait_for(Duration::from_secs(5), || {
        sidecar
            .log()
            .contains(r#"msg="prometheus external labels changed" external_labels="{cluster=\"moved\", replica=\"1\"}""#)
    });
    assert!(changed, "{}", sidecar.log());
    assert!(sidecar.ready());
}

#[test]
fn refuses_prometheus_without_external_labels() {
    let prometheus = Prometheus::start(PrometheusOptions {
        external_labels: None,
        ..Default::default()
    });
    let mut sidecar = Sidecar::start(&fast(&prometheus.url()));
    let status = sidecar.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", sidecar.log());
    let log = sidecar.log();
    assert!(log.contains("level=error"), "{log}");
    assert!(
        log.contains("no external labels configured on Prometheus server"),
        "{log}"
    );
    assert!(log.contains("storage.md#external-labels"), "{log}");
}

#[test]
fn uploads_refuse_prometheus_that_compacts() {
    let prometheus = Prometheus::start(PrometheusOptions {
        max_block_duration: "1d",
        ..Default::default()
    });
    let mut args = fast(&prometheus.url());
    args.push(filesystem_bucket(prometheus.dir()));
    args.push(format!("--tsdb.path={}", prometheus.data_dir().display()));
    args.push("--prometheus.ready_timeout=3s".into());
    let mut sidecar = Sidecar::start(&args);
    let status = sidecar.wait_exit(Duration::from_secs(15));
    let log = sidecar.log();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(
        log.contains("failed to validate prometheus flags. Is Prometheus running? Retrying"),
        "{log}"
    );
    assert!(log.contains("Max time is 1d and Min time is 2h"), "{log}");
    assert!(
        log.contains("no external labels found after waiting 3s (--prometheus.ready_timeout)"),
        "{log}"
    );
    assert!(
        !log.contains("successfully loaded prometheus external labels"),
        "{log}"
    );

    // The hidden escape hatch accepts it, with a warning.
    args.push("--shipper.ignore-unequal-block-size".into());
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );
    assert!(
        sidecar.log().contains("block may be missing"),
        "{}",
        sidecar.log()
    );
}

#[test]
fn basic_auth_reaches_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("hunter2", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  admin: {hash}\n")).unwrap();
    let prometheus = Prometheus::start(PrometheusOptions {
        extra_args: vec![format!("--web.config.file={}", web.display())],
        scrape_self: false,
        ..Default::default()
    });

    // Without credentials Prometheus answers 401: never ready.
    let anonymous = Sidecar::start(&fast(&prometheus.url()));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!anonymous.ready());
    assert!(anonymous.log().contains("got 401"), "{}", anonymous.log());

    let mut args = fast(&prometheus.url());
    args.push("--prometheus.http-client=basic_auth: {username: admin, password: hunter2}".into());
    let inline = Sidecar::start(&args);
    assert!(
        inline.wait_ready(Duration::from_secs(5)),
        "{}",
        inline.log()
    );

    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "hunter2\n").unwrap();
    let client = dir.path().join("client.yml");
    std::fs::write(
        &client,
        format!(
            "basic_auth:\n  username: admin\n  password_file: {}\n",
            password_file.display()
        ),
    )
    .unwrap();
    let mut args = fast(&prometheus.url());
    args.push(format!(
        "--prometheus.http-client-file={}",
        client.display()
    ));
    let from_file = Sidecar::start(&args);
    assert!(
        from_file.wait_ready(Duration::from_secs(5)),
        "{}",
        from_file.log()
    );
}

#[test]
fn bearer_token_reaches_prometheus() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let proxy = RecordingProxy::start(&prometheus.url());
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let mut args = fast(&proxy.url());
    args.push(format!(
        "--prometheus.http-client=bearer_token_file: {}",
        token.display()
    ));
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );

    let requests = proxy.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.url.as_str()).collect();
    assert!(paths.contains(&"/api/v1/status/buildinfo"), "{paths:?}");
    assert!(paths.contains(&"/api/v1/status/config"), "{paths:?}");
    assert!(paths.contains(&"/metrics"), "{paths:?}");
    for r in &requests {
        assert_eq!(r.header("Authorization"), Some("Bearer s3cret"), "{r:?}");
        let expected_agent = match r.url.as_str() {
            "/api/v1/status/buildinfo" | "/api/v1/status/config" => "thanos-sidecar".to_string(),
            _ => format!("Thanos/{}", env!("CARGO_PKG_VERSION")),
        };
        assert_eq!(
            r.header("User-Agent"),
            Some(expected_agent.as_str()),
            "{r:?}"
        );
    }

    // The token file is read per request: a rotated token applies at once.
    std::fs::write(&token, "rotated").unwrap();
    let seen = wait_for(Duration::from_secs(3), || {
        proxy
            .requests()
            .iter()
            .any(|r| r.header("Authorization") == Some("Bearer rotated"))
    });
    assert!(seen);
}

#[test]
fn proxy_url_carries_every_request() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let proxy = RecordingProxy::start("http://unused.invalid");
    let mut args = fast(&prometheus.url());
    args.push(format!(
        "--prometheus.http-client=proxy_url: {}",
        proxy.url()
    ));
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );
    let requests = proxy.requests();
    // Sent to the proxy in absolute form, naming Prometheus.
    let urls: Vec<&str> = requests.iter().map(|r| r.url.as_str()).collect();
    assert!(
        urls.contains(&format!("{}/api/v1/status/config", prometheus.url()).as_str()),
        "{urls:?}"
    );
    assert!(
        urls.iter().all(|u| u.starts_with(&prometheus.url())),
        "{urls:?}"
    );
}

#[test]
fn sigterm_stops_promptly_and_cleanly() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let mut sidecar = Sidecar::start(&fast(&prometheus.url()));
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );
    sidecar.terminate();
    // Well before the 2m grace periods: nothing is in flight.
    let status = sidecar.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", sidecar.log());
    let log = sidecar.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("msg=exiting"), "{log}");
    assert!(
        log.contains("msg=\"caught signal. Exiting.\" sig=terminated"),
        "{log}"
    );
}

#[test]
fn json_logs() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let mut args = fast(&prometheus.url());
    args.insert(0, "--log.format=json".into());
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(5)),
        "{}",
        sidecar.log()
    );
    let log = sidecar.log();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["ts", "caller", "level", "msg"] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert!(
        log.contains("\"msg\":\"successfully loaded prometheus external labels\""),
        "{log}"
    );
}

#[test]
fn sigterm_during_the_flags_check_stops_at_once() {
    // Uploads on and Prometheus down: the flags check retries inside one
    // attempt for up to --prometheus.get_config_timeout (30 s by default).
    let prometheus = Prometheus::prepare(PrometheusOptions::default());
    let mut sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        filesystem_bucket(prometheus.dir()),
        format!("--tsdb.path={}", prometheus.data_dir().display()),
    ]);
    std::thread::sleep(Duration::from_millis(500));
    sidecar.terminate();
    let status = sidecar.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", sidecar.log());
}

/// A Prometheus in agent mode keeps no TSDB. With uploads on, the Go
/// sidecar's flags check fails for ever (Thanos issue #6606); this sidecar
/// says once why it stands down, becomes ready (probes, reloader, Targets
/// and Metadata work), advertises no StoreAPI, answers StoreAPI calls
/// FailedPrecondition, and starts no shipper.
#[test]
fn agent_mode_prometheus_gets_probes_and_apis_but_no_store_or_uploads() {
    use thanos_sidecar::proto::services::{InfoClient, StoreClient};
    use thanos_sidecar::proto::{info, store};

    let prometheus = Prometheus::start(PrometheusOptions {
        agent: true,
        ..PrometheusOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut args = fast(&prometheus.url());
    args.push(format!("--tsdb.path={}", prometheus.data_dir().display()));
    args.push(filesystem_bucket(dir.path()));
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(10)),
        "{}",
        sidecar.log()
    );
    assert_eq!(
        sidecar.metric("thanos_sidecar_prometheus_agent_mode"),
        Some(1.0)
    );
    let log = sidecar.log();
    assert_eq!(
        log.matches("Prometheus runs in agent mode").count(),
        1,
        "{log}"
    );

    let channel = crate::support::grpc::connect(sidecar.grpc_port, "agent");
    let answer = InfoClient::new(channel.clone())
        .info(&info::InfoRequest::new())
        .expect("Info");
    assert!(answer.store.is_none(), "{answer:?}");
    assert!(answer.targets.is_some() && answer.metric_metadata.is_some());
    assert!(answer.rules.is_none() && answer.exemplars.is_none());
    let store = StoreClient::new(channel);
    let req = crate::support::grpc::series_of_metric("up");
    let status = crate::support::grpc::collect(store.series(&req)).unwrap_err();
    assert_eq!(status.code(), grpcio::RpcStatusCode::FAILED_PRECONDITION);
    assert!(status.message().contains("agent mode"), "{status:?}");
    let refused = store
        .label_names(&store::LabelNamesRequest::new())
        .unwrap_err();
    assert!(
        matches!(&refused, grpcio::Error::RpcFailure(s) if s.code() == grpcio::RpcStatusCode::FAILED_PRECONDITION),
        "{refused:?}"
    );
    // Still ready a few beats later, and nothing was uploaded.
    std::thread::sleep(Duration::from_secs(2));
    assert!(sidecar.ready(), "{}", sidecar.log());
    let bucket = dir.path().join("bucket");
    let objects = std::fs::read_dir(&bucket).map(|d| d.count()).unwrap_or(0);
    assert_eq!(objects, 0);
    assert!(!sidecar.log().contains("shipper"), "{}", sidecar.log());
}

/// An ordinary Prometheus is not taken for an agent.
#[test]
fn server_mode_prometheus_is_not_agent_mode() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let sidecar = Sidecar::start(&fast(&prometheus.url()));
    assert!(
        sidecar.wait_ready(Duration::from_secs(10)),
        "{}",
        sidecar.log()
    );
    assert_eq!(
        sidecar.metric("thanos_sidecar_prometheus_agent_mode"),
        Some(0.0)
    );
    assert!(!sidecar.log().contains("agent mode"), "{}", sidecar.log());
}

/// With the default 30 s heartbeat, a sidecar started before its Prometheus
/// is ready at most 2 s after Prometheus is (Thanos retries its first
/// external-labels fetch every 2 s).
#[test]
fn a_late_prometheus_is_picked_up_within_two_seconds() {
    let mut prometheus = Prometheus::prepare(PrometheusOptions::default());
    let sidecar = Sidecar::start(&[format!("--prometheus.url={}", prometheus.url())]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!sidecar.ready());
    // Returns once Prometheus answers /-/ready.
    prometheus.resume();
    assert!(
        sidecar.wait_ready(Duration::from_millis(2500)),
        "not ready 2.5 s after Prometheus: {}",
        sidecar.log()
    );
}

/// A storm of SIGTERMs while a gRPC call is stuck on a Prometheus that
/// stopped answering: the sidecar still exits within its grace period and a
/// second, whatever is still blocked.
#[test]
fn shutdown_with_a_stuck_call_and_fifty_sigterms_ends_within_grace_plus_one_second() {
    use thanos_sidecar::proto::services::StoreClient;

    let prometheus = Prometheus::start(PrometheusOptions::default());
    let mut args = fast(&prometheus.url());
    args.push("--grpc-grace-period=2s".into());
    let mut sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(10)),
        "{}",
        sidecar.log()
    );
    let prometheus_pid = prometheus.pid().expect("Prometheus runs").to_string();
    let kill = |signal: &str, pid: &str| {
        let _ = std::process::Command::new("kill")
            .args([signal, pid])
            .status();
    };
    kill("-STOP", &prometheus_pid);
    let client = StoreClient::new(crate::support::grpc::connect(sidecar.grpc_port, "stuck"));
    let req = crate::support::grpc::series_of_metric("up");
    let stuck = std::thread::spawn(move || crate::support::grpc::collect(client.series(&req)));
    std::thread::sleep(Duration::from_millis(500));

    let t = std::time::Instant::now();
    let pid = sidecar.pid().to_string();
    for _ in 0..50 {
        kill("-TERM", &pid);
        std::thread::sleep(Duration::from_millis(10));
    }
    let exited = sidecar.wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    kill("-CONT", &prometheus_pid);
    assert!(exited.is_some(), "still running: {}", sidecar.log());
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?} with a 2 s grace period: {}",
        sidecar.log()
    );
    assert!(stuck.join().expect("caller").is_err());
}
