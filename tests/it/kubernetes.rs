//! The sidecar started with the argument vectors Kubernetes generators give
//! `thanos sidecar`, as they reach the container (Kubernetes has already
//! expanded `$(VAR)`): each must come up next to a real Prometheus, say ready
//! on `/-/ready` and answer `thanos.info.Info` on its gRPC address.
//!
//! Sources, read in each generator's code (the vectors are theirs, with this
//! machine's free ports and paths in place of 9090, 10901, 10902 and the
//! mounts):
//! - prometheus-operator v0.93 (`pkg/prometheus/server/statefulset.go`,
//!   `createThanosContainer`): `--grpc-address=:10901`, a Prometheus URL
//!   ending in `/` or in the route prefix, `--prometheus.http-client-file`,
//!   objstore and shipper flags, gRPC TLS.
//! - prometheus-operator v0.60 (2022, `pkg/prometheus/statefulset.go`): the
//!   inline JSON `--prometheus.http-client` and `additionalArgs`.
//! - prometheus-operator v0.24–v0.49 (until 2021): `[$(POD_IP)]:10901`, a
//!   bracketed IPv4 address.
//! - bitnami kube-prometheus and prometheus charts: `0.0.0.0:10901`,
//!   `--tsdb.path=/prometheus/`, `--objstore.config=$(OBJSTORE_CONFIG)`.
//!
//! kube-thanos generates no sidecar arguments (it relies on the operator).

use std::path::Path;
use std::time::Duration;

use grpcio::{CallOption, ChannelCredentialsBuilder};
use thanos_sidecar::proto::info;
use thanos_sidecar::proto::services::InfoClient;

use crate::support::{free_port, wait_for, Pki, Prometheus, PrometheusOptions, Sidecar};

/// The sidecar from `argv`, ready, with its Info answer over `tls` (a CA
/// to trust) or plain text.
fn start_ready(
    generator: &str,
    argv: Vec<String>,
    env: &[(&str, &str)],
    http_port: u16,
    grpc_port: u16,
    tls: Option<&Path>,
) -> (Sidecar, info::InfoResponse) {
    let sidecar = Sidecar::spawn_argv(&argv, env, http_port, grpc_port);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "{generator}: not ready with {argv:?}; log:\n{}",
        sidecar.log()
    );
    let builder = crate::support::grpc::builder("test-k8s");
    let builder = match tls {
        Some(ca) => builder.set_credentials(
            ChannelCredentialsBuilder::new()
                .root_cert(Pki::read(ca))
                .build(),
        ),
        None => builder,
    };
    let client = InfoClient::new(builder.connect(&format!("127.0.0.1:{grpc_port}")));
    let resp = client
        .info_opt(
            &info::InfoRequest::new(),
            CallOption::default().timeout(Duration::from_secs(5)),
        )
        .unwrap_or_else(|e| panic!("{generator}: Info failed: {e}; log:\n{}", sidecar.log()));
    assert_eq!(resp.ComponentType, "sidecar", "{generator}");
    assert!(!resp.label_sets.is_empty(), "{generator}: {resp:?}");
    (sidecar, resp)
}

fn argv(args: &[String]) -> Vec<String> {
    std::iter::once("sidecar".to_string())
        .chain(args.iter().cloned())
        .collect()
}

/// Prometheus with a block in its own TSDB (the operator's `/prometheus`)
/// for the shipper to find.
fn with_a_block(options: PrometheusOptions) -> Prometheus {
    Prometheus::start_with_gauge(options, "k8s_up", 1).0
}

/// Waits until the shipper file in `tsdb` lists a block that is in `bucket`.
fn assert_shipped(generator: &str, sidecar: &Sidecar, tsdb: &Path, bucket: &Path) {
    let shipped = wait_for(Duration::from_secs(20), || {
        let Ok(text) = std::fs::read_to_string(tsdb.join("thanos.shipper.json")) else {
            return false;
        };
        let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
            return false;
        };
        state["uploaded"].as_array().is_some_and(|ids| {
            !ids.is_empty()
                && ids.iter().all(|id| {
                    id.as_str()
                        .is_some_and(|id| bucket.join(id).join("meta.json").is_file())
                })
        })
    });
    assert!(
        shipped,
        "{generator}: no block shipped; log:\n{}",
        sidecar.log()
    );
}

fn http_client_file(dir: &Path) -> String {
    // As the operator writes its Secret (yaml.v2 of the generated config).
    let path = dir.join("prometheus.http-client-file.yaml");
    std::fs::write(&path, "tls_config:\n  insecure_skip_verify: true\n").expect("write file");
    path.display().to_string()
}

#[test]
fn prometheus_operator_current_default() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let (http, grpc) = (free_port(), free_port());
    let client_file = http_client_file(prometheus.dir());
    let argv = argv(&[
        // routePrefix "/" cleaned: the URL ends with a slash.
        format!("--prometheus.url=http://localhost:{}/", prometheus.port),
        format!("--grpc-address=:{grpc}"),
        format!("--http-address=:{http}"),
        format!("--prometheus.http-client-file={client_file}"),
    ]);
    let (sidecar, _) = start_ready("prometheus-operator v0.93", argv, &[], http, grpc, None);
    // Every interface: IPv6 clients too, where the host has IPv6.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let (code, _) = crate::support::http_get(&format!("http://[::1]:{http}/-/ready"));
        assert_eq!(code, 200, "{}", sidecar.log());
        assert!(std::net::TcpStream::connect(("::1", grpc)).is_ok());
    }
}

#[test]
fn prometheus_operator_current_with_route_prefix_https_objstore_and_delayed_compaction() {
    let pki = Pki::new();
    let web = pki.dir().join("prometheus-web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            pki.cert("server").display(),
            pki.key("server").display()
        ),
    )
    .expect("write web config");
    let prometheus = with_a_block(PrometheusOptions {
        extra_args: vec![format!("--web.config.file={}", web.display())],
        https: true,
        route_prefix: "/prom",
        ..Default::default()
    });
    let bucket = prometheus.dir().join("bucket");
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let (http, grpc) = (free_port(), free_port());
    let client_file = http_client_file(prometheus.dir());
    let tsdb = prometheus.data_dir();
    let argv = argv(&[
        // routePrefix "/prom/" cleaned to "/prom"; web TLS makes it https.
        format!(
            "--prometheus.url=https://localhost:{}/prom",
            prometheus.port
        ),
        format!("--grpc-address=127.0.0.1:{grpc}"),
        format!("--http-address=127.0.0.1:{http}"),
        // $(OBJSTORE_CONFIG), expanded by Kubernetes: the Secret's YAML,
        // newlines and all, in one argument.
        format!("--objstore.config={objstore}"),
        format!("--tsdb.path={}", tsdb.display()),
        "--shipper.meta-file-name=thanos.shipper.json".into(),
        "--shipper.ignore-unequal-block-size".into(),
        "--log.level=info".into(),
        "--log.format=logfmt".into(),
        "--prometheus.ready_timeout=10m".into(),
        "--prometheus.get_config_timeout=30s".into(),
        "--prometheus.get_config_interval=1s".into(),
        format!("--prometheus.http-client-file={client_file}"),
    ]);
    let (sidecar, _) = start_ready(
        "prometheus-operator v0.93 (objstore)",
        argv,
        &[],
        http,
        grpc,
        None,
    );
    assert_shipped("prometheus-operator v0.93", &sidecar, &tsdb, &bucket);
}

#[test]
fn prometheus_operator_current_with_grpc_tls() {
    let pki = Pki::new();
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let (http, grpc) = (free_port(), free_port());
    let client_file = http_client_file(prometheus.dir());
    let argv = argv(&[
        format!("--prometheus.url=http://localhost:{}/", prometheus.port),
        format!("--grpc-address=:{grpc}"),
        format!("--http-address=:{http}"),
        format!("--grpc-server-tls-cert={}", pki.cert("server").display()),
        format!("--grpc-server-tls-key={}", pki.key("server").display()),
        "--grpc-server-tls-min-version=1.3".into(),
        format!("--prometheus.http-client-file={client_file}"),
    ]);
    let ca = pki.cert("ca");
    start_ready(
        "prometheus-operator v0.93 (gRPC TLS)",
        argv,
        &[],
        http,
        grpc,
        Some(&ca),
    );
}

#[test]
fn prometheus_operator_2022_inline_http_client_and_additional_args() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let (http, grpc) = (free_port(), free_port());
    let argv = argv(&[
        format!("--prometheus.url=http://localhost:{}/", prometheus.port),
        r#"--prometheus.http-client={"tls_config": {"insecure_skip_verify":true}}"#.into(),
        format!("--grpc-address=:{grpc}"),
        format!("--http-address=:{http}"),
        "--log.level=info".into(),
        // spec.thanos.additionalArgs, from the operator's own test.
        "--reloader.watch-interval=5m".into(),
    ]);
    start_ready("prometheus-operator v0.60", argv, &[], http, grpc, None);
}

#[test]
fn prometheus_operator_before_2021_bracketed_pod_ip() {
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let (http, grpc) = (free_port(), free_port());
    // [$(POD_IP)]:10901 with the pod's IPv4 address expanded.
    let argv = argv(&[
        format!("--prometheus.url=http://localhost:{}/", prometheus.port),
        format!("--grpc-address=[127.0.0.1]:{grpc}"),
        format!("--http-address=[127.0.0.1]:{http}"),
    ]);
    start_ready("prometheus-operator v0.49", argv, &[], http, grpc, None);
}

#[test]
fn bitnami_charts_all_interfaces_and_tsdb_path_with_slash() {
    let prometheus = with_a_block(PrometheusOptions::default());
    let bucket = prometheus.dir().join("bucket");
    let (http, grpc) = (free_port(), free_port());
    let tsdb = prometheus.data_dir();
    let argv = argv(&[
        format!("--prometheus.url=http://localhost:{}", prometheus.port),
        format!("--grpc-address=0.0.0.0:{grpc}"),
        format!("--http-address=0.0.0.0:{http}"),
        format!("--tsdb.path={}/", tsdb.display()),
        format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
        // An extraArgs item.
        "--log.level=debug".into(),
    ]);
    let (sidecar, _) = start_ready("bitnami kube-prometheus", argv, &[], http, grpc, None);
    assert_shipped("bitnami kube-prometheus", &sidecar, &tsdb, &bucket);
}

#[test]
fn a_listen_address_go_refuses_exits_1_naming_the_flag() {
    for (flag, value, why) in [
        ("--grpc-address", "10901", "missing port in address"),
        ("--http-address", "[::1:10902", "missing ']' in address"),
        // An unexpanded $(POD_IP): the variable was not defined.
        ("--grpc-address", "[$(POD_IP)]:10901", "cannot resolve host"),
    ] {
        let argv = argv(&[format!("{flag}={value}")]);
        let mut sidecar = Sidecar::spawn_argv(&argv, &[], free_port(), free_port());
        let status = sidecar.wait_exit(Duration::from_secs(10));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "{value}: {}",
            sidecar.log()
        );
        let log = sidecar.log();
        assert!(
            log.contains(&format!("{flag}={value}: address {value}: {why}")),
            "{value}: {log}"
        );
    }
}
