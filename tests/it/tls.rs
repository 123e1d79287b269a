//! TLS and authentication on every connection the sidecar has: the gRPC
//! server (`--grpc-server-tls-*`), the HTTP server (`--http.config`), and a
//! Prometheus that itself demands TLS, a client certificate and basic auth.
//! Secrets never show in logs, `/metrics` or `--help`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use grpcio::{CallOption, ChannelBuilder, ChannelCredentialsBuilder, EnvBuilder, Environment};
use thanos_sidecar::proto::services::StoreClient;
use thanos_sidecar::proto::{store, store_types};

use crate::support::sidecar::command;
use crate::support::{wait_for, ConnectProxy, Pki, Prometheus, PrometheusOptions, Sidecar};

fn fast(prometheus_url: &str) -> Vec<String> {
    vec![
        format!("--prometheus.url={prometheus_url}"),
        "--prometheus.get_config_interval=500ms".into(),
        "--prometheus.get_config_timeout=2s".into(),
    ]
}

fn grpc_env() -> Arc<Environment> {
    Arc::new(
        EnvBuilder::new()
            .cq_count(1)
            .name_prefix("test-tls")
            .build(),
    )
}

/// How a test client reaches the gRPC port.
enum Creds<'a> {
    Plain,
    /// Trusting `ca`, presenting `client` (cert and key) if given.
    Tls {
        ca: &'a Path,
        client: Option<(&'a Path, &'a Path)>,
    },
}

/// A fresh channel (its own subchannel, so no connection is shared between
/// clients with different credentials).
fn store_client(env: &Arc<Environment>, port: u16, creds: Creds) -> StoreClient {
    let builder = ChannelBuilder::new(env.clone()).use_local_subchannel_pool(true);
    let builder = match creds {
        Creds::Plain => builder,
        Creds::Tls { ca, client } => {
            let mut credentials = ChannelCredentialsBuilder::new().root_cert(Pki::read(ca));
            if let Some((cert, key)) = client {
                credentials = credentials.cert(Pki::read(cert), Pki::read(key));
            }
            builder.set_credentials(credentials.build())
        }
    };
    StoreClient::new(builder.connect(&format!("127.0.0.1:{port}")))
}

/// Now and a day ago, in ms.
fn last_day() -> (i64, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (now - 86_400_000, now + 3_600_000)
}

fn label_names(client: &StoreClient) -> grpcio::Result<Vec<String>> {
    let mut req = store::LabelNamesRequest::new();
    (req.start, req.end) = last_day();
    client
        .label_names_opt(&req, CallOption::default().timeout(Duration::from_secs(3)))
        .map(|r| r.names)
}

fn grpc_tls_args(pki: &Pki, key: &str) -> Vec<String> {
    vec![
        format!("--grpc-server-tls-cert={}", pki.cert("server").display()),
        format!("--grpc-server-tls-key={}", pki.key(key).display()),
        format!("--grpc-server-tls-client-ca={}", pki.cert("ca").display()),
    ]
}

#[test]
fn grpc_tls_serves_only_clients_with_a_certificate_of_the_ca() {
    let pki = Pki::new();
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let mut args = fast(&prometheus.url());
    args.extend(grpc_tls_args(&pki, "server"));
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(10)),
        "{}",
        sidecar.log()
    );
    let env = grpc_env();
    let port = sidecar.grpc_port;
    let (ca, other_ca) = (pki.cert("ca"), pki.cert("other-ca"));
    let client = (pki.cert("client"), pki.key("client"));
    let rogue = (pki.cert("rogue-client"), pki.key("rogue-client"));

    let good = store_client(
        &env,
        port,
        Creds::Tls {
            ca: &ca,
            client: Some((&client.0, &client.1)),
        },
    );
    // Prometheus scrapes itself every second, the first time some 5 s
    // after it started.
    let scraped = wait_for(Duration::from_secs(20), || {
        label_names(&good).is_ok_and(|names| names.contains(&"__name__".to_string()))
    });
    assert!(
        scraped,
        "{:?}; Prometheus: {:?}; {}",
        label_names(&good),
        crate::support::http_get(&format!("{}/api/v1/labels", prometheus.url())),
        sidecar.log()
    );

    let refused = [
        ("plaintext", Creds::Plain),
        (
            "no client certificate",
            Creds::Tls {
                ca: &ca,
                client: None,
            },
        ),
        (
            "client certificate of another CA",
            Creds::Tls {
                ca: &ca,
                client: Some((&rogue.0, &rogue.1)),
            },
        ),
        (
            "server not trusted",
            Creds::Tls {
                ca: &other_ca,
                client: Some((&client.0, &client.1)),
            },
        ),
    ];
    for (what, creds) in refused {
        let result = label_names(&store_client(&env, port, creds));
        match result {
            Err(grpcio::Error::RpcFailure(s)) => assert_eq!(
                s.code(),
                grpcio::RpcStatusCode::UNAVAILABLE,
                "{what}: {s:?}"
            ),
            other => panic!("{what}: expected a refused connection, got {other:?}"),
        }
    }
    // The good client still works after the refusals.
    assert!(label_names(&good).is_ok());

    // gRPC's C core logged the refused handshakes through our logger, in
    // logfmt, not in its own `E1205 17:22:08.077 ... file.cc:1420] ...`
    // shape; and its info chatter stays out at the default level.
    let logged = wait_for(Duration::from_secs(5), || {
        sidecar.log().lines().any(|l| {
            l.contains("caller=ssl_transport_security.cc:")
                && l.contains("level=error")
                && l.contains("msg=\"Handshake failed")
        })
    });
    let log = sidecar.log();
    assert!(logged, "no handshake failure in logfmt:\n{log}");
    let raw = regex::Regex::new(r"^[DIWE]\d{4} ").unwrap();
    assert!(
        !log.lines().any(|l| raw.is_match(l)),
        "a raw gRPC line:\n{log}"
    );
    assert!(!log.contains("grpc epoll fd"), "{log}");
}

#[test]
fn grpc_tls_picks_up_a_rotated_certificate() {
    let pki = Pki::new();
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(pki.cert("server"), &cert).unwrap();
    std::fs::copy(pki.key("server"), &key).unwrap();
    let mut args = fast(&prometheus.url());
    args.push(format!("--grpc-server-tls-cert={}", cert.display()));
    args.push(format!("--grpc-server-tls-key={}", key.display()));
    let sidecar = Sidecar::start(&args);
    assert!(sidecar.wait_ready(Duration::from_secs(10)));
    let env = grpc_env();
    let trusting = |ca: &Path| {
        label_names(&store_client(
            &env,
            sidecar.grpc_port,
            Creds::Tls { ca, client: None },
        ))
    };
    assert!(trusting(&pki.cert("ca")).is_ok(), "{}", sidecar.log());
    assert!(trusting(&pki.cert("other-ca")).is_err());

    // Rotate to a certificate of the other CA, key first (as cert-manager
    // writes them): new connections get the new pair.
    pki.leaf("rotated", "other-ca", "serverAuth");
    std::fs::copy(pki.key("rotated"), &key).unwrap();
    std::fs::copy(pki.cert("rotated"), &cert).unwrap();
    let rotated = wait_for(Duration::from_secs(5), || {
        trusting(&pki.cert("other-ca")).is_ok()
    });
    assert!(rotated, "{}", sidecar.log());
    assert!(trusting(&pki.cert("ca")).is_err());
}

#[test]
fn bad_grpc_tls_files_exit_1_naming_the_file() {
    let pki = Pki::new();
    let run = |args: Vec<String>| {
        let out = command()
            .arg("sidecar")
            .arg("--http-address=127.0.0.1:0")
            .arg("--grpc-address=127.0.0.1:0")
            .args(args)
            .output()
            .expect("run thanos-sidecar");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stderr) = run(grpc_tls_args(&pki, "client"));
    assert_eq!(code, Some(1), "{stderr}");
    let key = pki.key("client").display().to_string();
    assert!(stderr.contains(&key), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(stderr.contains("--grpc-server-tls-key"), "{stderr}");

    let mut args = grpc_tls_args(&pki, "server");
    args[0] = "--grpc-server-tls-cert=/nonexistent/tls.crt".into();
    let (code, stderr) = run(args);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/tls.crt"), "{stderr}");

    let mut args = grpc_tls_args(&pki, "server");
    args[2] = format!("--grpc-server-tls-client-ca={}", pki.key("ca").display());
    let (code, stderr) = run(args);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--grpc-server-tls-client-ca"), "{stderr}");

    // Suites and curves cannot be chosen in gRPC's C core: refused, not ignored.
    let mut args = grpc_tls_args(&pki, "server");
    args.push("--grpc-server-tls-curves=X25519".into());
    let (code, stderr) = run(args);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--grpc-server-tls-curves"), "{stderr}");
}

/// An HTTPS agent trusting `ca`, presenting `client` if given.
fn https_agent(ca: &Path, client: Option<(&Path, &Path)>) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    for cert in thanos_sidecar::tls::parse_certs(&Pki::read(ca), "ca").unwrap() {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let certs = thanos_sidecar::tls::parse_certs(&Pki::read(cert), "cert").unwrap();
            let key = thanos_sidecar::tls::parse_key(&Pki::read(key), "key").unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .tls_config(Arc::new(config))
        .build()
}

/// Status of a GET (0 when no HTTP answer came) and the `WWW-Authenticate` header.
fn get(agent: &ureq::Agent, url: &str, auth: Option<(&str, &str)>) -> (u16, Option<String>) {
    let mut req = agent.get(url);
    if let Some((user, password)) = auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.set("Authorization", &format!("Basic {token}"));
    }
    match req.call() {
        Ok(resp) => (
            resp.status(),
            resp.header("WWW-Authenticate").map(String::from),
        ),
        Err(ureq::Error::Status(code, resp)) => {
            (code, resp.header("WWW-Authenticate").map(String::from))
        }
        Err(ureq::Error::Transport(_)) => (0, None),
    }
}

#[test]
fn http_config_serves_tls_with_basic_auth_and_client_certificates() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("hunter2", 4).unwrap();
    let tls = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        pki.cert("server").display(),
        pki.key("server").display()
    );
    std::fs::write(
        &web,
        format!("{tls}http_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  admin: {hash}\n"),
    )
    .unwrap();
    // No Prometheus: the HTTP server is up before it is found.
    let mut sidecar = Sidecar::spawn(
        &[
            "--prometheus.url=http://127.0.0.1:1".into(),
            format!("--http.config={}", web.display()),
        ],
        &[],
    );
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", sidecar.http_port);
    let agent = https_agent(&pki.cert("ca"), None);
    let up = wait_for(Duration::from_secs(10), || {
        get(&agent, &url("/-/healthy"), None).0 == 401
    });
    assert!(up, "{}", sidecar.log());

    assert_eq!(
        get(&agent, &url("/metrics"), Some(("admin", "hunter2"))).0,
        200
    );
    assert_eq!(
        get(&agent, &url("/-/healthy"), Some(("admin", "hunter2"))).0,
        200
    );
    let (code, challenge) = get(&agent, &url("/metrics"), Some(("admin", "hunter3")));
    assert_eq!((code, challenge.as_deref()), (401, Some("Basic")));
    assert_eq!(
        get(&agent, &url("/metrics"), Some(("root", "hunter2"))).0,
        401
    );
    let frame = agent
        .get(&url("/-/healthy"))
        .call()
        .err()
        .and_then(|e| e.into_response())
        .and_then(|r| r.header("X-Frame-Options").map(String::from));
    assert_eq!(frame.as_deref(), Some("deny"));
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain =
        crate::support::http_get(&format!("http://127.0.0.1:{}/-/healthy", sidecar.http_port));
    assert_ne!(plain.0, 200);
    assert_ne!(plain.0, 401);
    // A client that does not trust the server's CA gets nothing.
    let untrusting = https_agent(&pki.cert("other-ca"), None);
    assert_eq!(
        get(&untrusting, &url("/-/healthy"), Some(("admin", "hunter2"))).0,
        0
    );

    // The file is read per handshake: requiring client certificates applies
    // to the next connection.
    std::fs::write(
        &web,
        format!(
            "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            pki.cert("ca").display()
        ),
    )
    .unwrap();
    let fresh = https_agent(&pki.cert("ca"), None);
    assert_eq!(get(&fresh, &url("/-/healthy"), None).0, 0);
    let rogue = https_agent(
        &pki.cert("ca"),
        Some((&pki.cert("rogue-client"), &pki.key("rogue-client"))),
    );
    assert_eq!(get(&rogue, &url("/-/healthy"), None).0, 0);
    let with_cert = https_agent(
        &pki.cert("ca"),
        Some((&pki.cert("client"), &pki.key("client"))),
    );
    // And the users are gone from the new file: no password needed.
    assert_eq!(get(&with_cert, &url("/-/healthy"), None).0, 200);
    assert!(!sidecar.has_exited());
}

#[test]
fn bad_http_config_exits_1_naming_the_key() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "tls_server_config:\n  cert_fil: x\n".to_string(),
            "cert_fil",
        ),
        (
            "basic_auth_users:\n  admin: not-bcrypt\n".to_string(),
            "admin",
        ),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                pki.cert("server").display(),
                pki.key("client").display()
            ),
            "does not match",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n"
                .to_string(),
            "missing.pem",
        ),
    ];
    for (yaml, needle) in cases {
        let web = dir.path().join("web.yml");
        std::fs::write(&web, &yaml).unwrap();
        let out = command()
            .arg("sidecar")
            .arg("--http-address=127.0.0.1:0")
            .arg(format!("--http.config={}", web.display()))
            .output()
            .expect("run thanos-sidecar");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {stderr}");
        assert!(stderr.contains(needle), "{yaml}: {stderr}");
        assert!(stderr.contains("--http.config"), "{yaml}: {stderr}");
    }
}

/// A Prometheus that serves only HTTPS to clients with a certificate of the
/// test CA and the right password, with a little data in its TSDB.
fn guarded_prometheus(pki: &Pki, hash: &str) -> Prometheus {
    let web = pki.dir().join("prometheus-web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  admin: {hash}\n",
            pki.cert("server").display(),
            pki.key("server").display(),
            pki.cert("ca").display()
        ),
    )
    .unwrap();
    let mut prometheus = Prometheus::prepare(PrometheusOptions {
        extra_args: vec![format!("--web.config.file={}", web.display())],
        scrape_self: false,
        https: true,
        ..Default::default()
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let start = now / 3600 * 3600 - 3 * 3600;
    let mut om = String::from("# TYPE guarded_up gauge\n");
    for n in 0..60 {
        om.push_str(&format!("guarded_up{{job=\"tls\"}} 1 {}\n", start + n * 60));
    }
    om.push_str("# EOF\n");
    prometheus.create_blocks(&om);
    prometheus.resume();
    prometheus
}

#[test]
fn sidecar_reaches_a_prometheus_that_demands_tls_and_basic_auth() {
    let pki = Pki::new();
    let hash = bcrypt::hash("hunter2", 4).unwrap();
    let prometheus = guarded_prometheus(&pki, &hash);
    let password = pki.dir().join("password");
    std::fs::write(&password, "hunter2\n").unwrap();
    let client = |with_cert: bool| {
        let cert = if with_cert {
            format!(
                "  cert_file: {}\n  key_file: {}\n",
                pki.cert("client").display(),
                pki.key("client").display()
            )
        } else {
            String::new()
        };
        format!(
            "--prometheus.http-client=basic_auth:\n  username: admin\n  password_file: {}\ntls_config:\n  ca_file: {}\n{cert}",
            password.display(),
            pki.cert("ca").display()
        )
    };

    // Without a client certificate the handshake fails: never ready.
    let mut args = fast(&prometheus.url());
    args.push(client(false));
    let refused = Sidecar::start(&args);

    let mut args = fast(&prometheus.url());
    args.push(client(true));
    let sidecar = Sidecar::start(&args);
    assert!(
        sidecar.wait_ready(Duration::from_secs(10)),
        "{}\nPrometheus:\n{}",
        sidecar.log(),
        prometheus.log()
    );
    assert!(!refused.ready(), "{}", refused.log());

    let env = grpc_env();
    let store = store_client(&env, sidecar.grpc_port, Creds::Plain);
    let names = label_names(&store).unwrap();
    assert!(names.contains(&"job".to_string()), "{names:?}");
    // Series goes through remote read: the chunks come over TLS too.
    let mut req = store::SeriesRequest::new();
    (req.min_time, req.max_time) = last_day();
    let mut m = store_types::LabelMatcher::new();
    m.name = "__name__".into();
    m.value = "guarded_up".into();
    req.matchers = vec![m];
    let frames = {
        use futures::StreamExt;
        let mut stream = store
            .series_opt(&req, CallOption::default().timeout(Duration::from_secs(5)))
            .unwrap();
        futures::executor::block_on(async {
            let mut series = 0;
            while let Some(frame) = stream.next().await {
                let frame = frame.unwrap();
                if frame.has_series() {
                    assert!(!frame.series().chunks.is_empty(), "{frame:?}");
                    series += 1;
                }
            }
            series
        })
    };
    assert_eq!(frames, 1);

    // Through an HTTPS proxy (`proxy_url`, CONNECT): TLS and basic auth
    // end to end, the proxy sees only a tunnel.
    let proxy = ConnectProxy::start();
    let mut args = fast(&prometheus.url());
    args.push(format!("{}proxy_url: {}\n", client(true), proxy.url()));
    let proxied = Sidecar::start(&args);
    assert!(
        proxied.wait_ready(Duration::from_secs(10)),
        "{}",
        proxied.log()
    );
    assert!(proxy.tunnels() >= 1);

    // A wrong password (the file is read per request) makes it unready.
    std::fs::write(&password, "wrong").unwrap();
    let unready = wait_for(Duration::from_secs(5), || !sidecar.ready());
    assert!(unready, "{}", sidecar.log());
    assert!(sidecar.log().contains("401"), "{}", sidecar.log());
}

#[test]
fn secrets_stay_out_of_logs_metrics_and_help() {
    const PASSWORD: &str = "pa55-never-shown";
    const TOKEN: &str = "t0ken-never-shown";
    let pki = Pki::new();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let prometheus = guarded_prometheus(&pki, &hash);
    let tls = format!(
        "tls_config:\n  ca_file: {}\n  cert_file: {}\n  key_file: {}\n",
        pki.cert("ca").display(),
        pki.cert("client").display(),
        pki.key("client").display()
    );
    let debug = |extra: &str| {
        let mut args = fast(&prometheus.url());
        args.push(format!("--prometheus.http-client={extra}{tls}"));
        args.insert(0, "--log.level=debug".into());
        args
    };

    // Basic auth, right and wrong password; a bearer token (Prometheus
    // answers 401 to it); the password in the URL of a Prometheus that is down.
    let with_password = Sidecar::start(&debug(&format!(
        "basic_auth:\n  username: admin\n  password: {PASSWORD}\n"
    )));
    let wrong_password = Sidecar::start(&debug(&format!(
        "basic_auth:\n  username: admin\n  password: {PASSWORD}-wrong\n"
    )));
    let with_token = Sidecar::start(&debug(&format!("bearer_token: {TOKEN}\n")));
    let mut down = fast(&format!("https://admin:{PASSWORD}@127.0.0.1:1"));
    down.insert(0, "--log.level=debug".into());
    let url_password = Sidecar::start(&down);
    // The password in the URL of a Prometheus that is up: the HTTP client
    // sends it as basic auth, and its debug lines quote the URL.
    let mut up = debug("");
    up[1] = format!(
        "--prometheus.url=https://admin:{PASSWORD}@{}",
        prometheus.url().trim_start_matches("https://")
    );
    let url_password_up = Sidecar::start(&up);
    // An S3 key pair in the objstore config the shipper starts with.
    let tsdb = tempfile::tempdir().unwrap();
    let mut s3 = debug(&format!(
        "basic_auth:\n  username: admin\n  password: {PASSWORD}\n"
    ));
    s3.push(format!("--tsdb.path={}", tsdb.path().display()));
    s3.push(format!(
        "--objstore.config=type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:1\n  insecure: true\n  access_key: AKIA{TOKEN}\n  secret_key: {TOKEN}\n"
    ));
    let s3_secret = Sidecar::start(&s3);
    assert!(
        with_password.wait_ready(Duration::from_secs(10)),
        "{}",
        with_password.log()
    );
    assert!(
        url_password_up.wait_ready(Duration::from_secs(10)),
        "{}",
        url_password_up.log()
    );
    assert!(
        s3_secret.wait_ready(Duration::from_secs(10)),
        "{}",
        s3_secret.log()
    );
    std::thread::sleep(Duration::from_secs(2));

    for sidecar in [
        &with_password,
        &wrong_password,
        &with_token,
        &url_password,
        &url_password_up,
        &s3_secret,
    ] {
        let log = sidecar.log();
        let metrics = sidecar.get("/metrics").1;
        assert!(
            metrics.contains("thanos_sidecar_prometheus_up"),
            "{metrics}"
        );
        for secret in [PASSWORD, TOKEN] {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
            assert!(!metrics.contains(secret), "{secret} in /metrics");
        }
    }
    // The failing ones did log their failures (at debug level or above).
    assert!(
        wrong_password.log().contains("401"),
        "{}",
        wrong_password.log()
    );
    assert!(
        url_password.log().contains("xxxxx"),
        "{}",
        url_password.log()
    );

    let help = command()
        .args(["sidecar", "--prometheus.http-client"])
        .arg(format!("bearer_token: {TOKEN}"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help =
        String::from_utf8_lossy(&help.stdout).to_string() + &String::from_utf8_lossy(&help.stderr);
    assert!(help.contains("--prometheus.http-client"), "{help}");
    assert!(!help.contains(TOKEN), "{help}");
}

/// With `THANOS_BIN` set: a real `thanos query` reaches the TLS sidecar with
/// its client certificate (mutual TLS), and gets nothing without one.
#[test]
fn thanos_query_reaches_the_sidecar_over_mutual_tls() {
    let Ok(thanos) = std::env::var("THANOS_BIN") else {
        eprintln!("THANOS_BIN is not set; skipping the Thanos Querier check");
        return;
    };
    let pki = Pki::new();
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let mut args = fast(&prometheus.url());
    args.extend(grpc_tls_args(&pki, "server"));
    let sidecar = Sidecar::start(&args);
    assert!(sidecar.wait_ready(Duration::from_secs(10)));

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let query = |with_cert: bool, log: &str| {
        let http = crate::support::free_port();
        let mut cmd = std::process::Command::new(&thanos);
        cmd.arg("query")
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!(
                "--grpc-address=127.0.0.1:{}",
                crate::support::free_port()
            ))
            .arg(format!("--endpoint=127.0.0.1:{}", sidecar.grpc_port))
            .arg("--grpc-client-tls-secure")
            .arg(format!("--grpc-client-tls-ca={}", pki.cert("ca").display()));
        if with_cert {
            cmd.arg(format!(
                "--grpc-client-tls-cert={}",
                pki.cert("client").display()
            ))
            .arg(format!(
                "--grpc-client-tls-key={}",
                pki.key("client").display()
            ));
        }
        let log = std::fs::File::create(pki.dir().join(log)).expect("log");
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start thanos query");
        (Kill(child), format!("http://127.0.0.1:{http}"))
    };
    let answers = |base: &str| {
        let (code, body) = crate::support::http_get(&format!(
            "{base}/api/v1/query?query=up%7Bcluster%3D%22test%22%7D"
        ));
        code == 200 && body.contains("\"cluster\":\"test\"")
    };
    let (_with, with_url) = query(true, "query-with-cert.log");
    let (_without, without_url) = query(false, "query-without-cert.log");
    let served = wait_for(Duration::from_secs(30), || answers(&with_url));
    assert!(
        served,
        "thanos query never answered from the sidecar:\n{}",
        std::fs::read_to_string(pki.dir().join("query-with-cert.log")).unwrap_or_default()
    );
    assert!(!answers(&without_url));
}
