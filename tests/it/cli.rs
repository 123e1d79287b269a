//! The command line as operators type it: Thanos' spellings, exit codes, messages.

use std::process::Output;

use crate::support::sidecar::command;

fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run thanos-sidecar")
}

/// Runs `sidecar ARGS` (loopback listeners), expecting exit `code` and `needle` on stderr.
fn assert_fails(args: &[&str], code: i32, needle: &str) -> String {
    let mut argv = vec!["sidecar", "--http-address=127.0.0.1:0"];
    argv.extend_from_slice(args);
    let out = run(&argv);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    stderr
}

/// Every flag of `thanos sidecar`, in each spelling Thanos accepts, parses.
///
/// `--version` after the flags stops the binary once parsing succeeded, so
/// this checks the syntax of each spelling without starting the daemon.
#[test]
fn every_thanos_flag_spelling_is_accepted() {
    let cases: &[&[&str]] = &[
        &["--http-address=127.0.0.1:1"],
        &["--http-address", "127.0.0.1:1"],
        &["--http-grace-period=2m"],
        &["--http-grace-period=1m30s"],
        &["--http-grace-period=0"],
        &["--http.config=/etc/web.yml"],
        &["--grpc-address=127.0.0.1:2"],
        &["--grpc-server-tls-cert=/c", "--grpc-server-tls-key=/k"],
        &["--grpc-server-tls-client-ca=/ca"],
        &["--grpc-server-tls-min-version=1.2"],
        &[
            "--grpc-server-tls-ciphers=TLS_AES_128_GCM_SHA256",
            "--grpc-server-tls-ciphers=TLS_AES_256_GCM_SHA384",
        ],
        &["--grpc-server-tls-curves=X25519"],
        &["--grpc-server-max-connection-age=60m"],
        &["--grpc-grace-period=2m"],
        &["--grpc-grace-period=1.5m"],
        &["--prometheus.url=http://127.0.0.1:9090"],
        &["--prometheus.url", "http://127.0.0.1:9090/prefix/"],
        &["--prometheus.ready_timeout=10m"],
        &["--prometheus.get_config_interval=30s"],
        &["--prometheus.get_config_interval=1d"],
        &["--prometheus.get_config_timeout=500ms"],
        &["--prometheus.http-client-file=/c.yml"],
        &["--prometheus.http-client=basic_auth: {username: u}"],
        &["--tsdb.path=/prometheus"],
        &["--reloader.config-file=/etc/prometheus/prometheus.yml.tmpl"],
        &["--reloader.config-envsubst-file=/etc/prometheus/prometheus.yml"],
        &[
            "--reloader.rule-dir=/rules/a",
            "--reloader.rule-dir",
            "/rules/b",
        ],
        &["--reloader.watch-interval=3m"],
        &["--reloader.retry-interval=5s"],
        &["--reloader.method=http"],
        &["--reloader.method=signal"],
        &["--reloader.process-name=prometheus"],
        &["--request.logging-config-file=/r.yml"],
        &["--request.logging-config=grpc: {}"],
        &["--objstore.config-file=/bucket.yml"],
        &["--objstore.config=type: FILESYSTEM"],
        &["--shipper.upload-compacted"],
        &["--no-shipper.upload-compacted"],
        &["--hash-func=SHA256"],
        &["--hash-func="],
        &["--shipper.meta-file-name=thanos.shipper.json"],
        &["--shipper.upload-concurrency=4"],
        &["--shipper.upload-concurrency=2.9"],
        &["--store.limits.request-series=1000"],
        &["--store.limits.request-samples=0x10"],
        &["--min-time=-1d"],
        &["--min-time=2h45m"],
        &["--min-time=2024-01-02T03:04:05Z"],
        &["--min-time=2024-01-02T03:04:05+02:00"],
        &["--shipper.ignore-unequal-block-size"],
        &["--shipper.allow-out-of-order-uploads"],
        &["--shipper.skip-corrupted-blocks"],
        &["--no-shipper.skip-corrupted-blocks"],
        &["--log.level=debug"],
        &["--log.format=json"],
        &["--log.format=journald"],
        &["--tracing.config="],
        &["--enable-auto-gomemlimit"],
        &["--auto-gomemlimit.ratio=0.5"],
        &["--debug.name=edge-1"],
    ];
    for args in cases {
        let mut argv = vec!["sidecar"];
        argv.extend_from_slice(args);
        argv.push("--version");
        let out = run(&argv);
        assert!(
            out.status.success(),
            "{args:?} was rejected: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("thanos-sidecar, version"));
    }
    // Global flags may stand before the command, as in Thanos.
    assert!(run(&["--log.level=debug", "sidecar", "--version"])
        .status
        .success());
}

#[test]
fn syntax_errors_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--unknown-flag"], "unknown long flag '--unknown-flag'"),
        (
            &["--no-prometheus.url"],
            "unknown long flag '--no-prometheus.url'",
        ),
        (
            &["--shipper.upload-compacted=true"],
            "'--shipper.upload-compacted' is a boolean flag",
        ),
        (
            &["--min-time", "-1h"],
            "expected argument for flag '--min-time'",
        ),
        (&["--min-time="], "--min-time"),
        (
            &["--reloader.method=foo"],
            "enum value must be one of http,signal, got 'foo'",
        ),
        (&["--log.level=verbose"], "--log.level"),
        (&["--hash-func=MD5"], "--hash-func"),
        (
            &["--prometheus.get_config_interval=often"],
            "--prometheus.get_config_interval",
        ),
        (&["--http-grace-period=1.5h"], "--http-grace-period"),
        (
            &["--store.limits.request-series=-1"],
            "--store.limits.request-series",
        ),
        (&["--prometheus.url=not a url"], "--prometheus.url"),
        (&["--tsdb.path"], "expected argument for flag '--tsdb.path'"),
        (&["stray"], "unexpected stray"),
    ];
    for (args, needle) in cases {
        let stderr = assert_fails(args, 2, needle);
        // argh's internal spellings never leak to users.
        assert!(
            !stderr.contains("---") && !stderr.contains(".--"),
            "{stderr}"
        );
    }
}

#[test]
fn config_errors_exit_1_naming_the_key() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--objstore.config=x", "--objstore.config-file=/x"],
            "both objstore.config-file and objstore.config flags set.",
        ),
        (
            &["--objstore.config=type: S3\nconfig: {bucket: b, endpoint: e, bukket: x}"],
            "bukket",
        ),
        (
            &["--objstore.config=type: S3\nconfig: {bucket: b}"],
            "endpoint",
        ),
        (
            &["--objstore.config-file=/nonexistent/bucket.yml"],
            "/nonexistent/bucket.yml",
        ),
        (
            &["--objstore.config=type: FILESYSTEM\nconfig: {directory: $(SIDECAR_TEST_UNSET)}"],
            "SIDECAR_TEST_UNSET",
        ),
        (&["--request.logging-config=grpc: {optons: {}}"], "optons"),
        (
            &["--prometheus.http-client=bearer_token: a\nbearer_token_file: /t"],
            "bearer_token_file",
        ),
        (
            &["--prometheus.http-client=tls_config: {ca_file: /nonexistent/ca.pem}"],
            "/nonexistent/ca.pem",
        ),
        (&["--grpc-server-tls-cert=/c"], "--grpc-server-tls-key"),
        (&["--auto-gomemlimit.ratio=2"], "--auto-gomemlimit.ratio"),
    ];
    for (args, needle) in cases {
        let stderr = assert_fails(args, 1, needle);
        assert!(stderr.contains("level=error"), "{stderr}");
    }
}

/// A wrong type names the file, the key path and the line; a nesting bomb
/// is refused at once, naming the file (libyaml alone spends minutes on it).
#[test]
fn yaml_errors_exit_1_naming_the_file_key_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = dir.path().join("bucket.yml");
    std::fs::write(
        &bucket,
        "type: S3\nconfig:\n  endpoint: 127.0.0.1:9000\n  part_size: -5\n",
    )
    .expect("write bucket.yml");
    let flag = format!("--objstore.config-file={}", bucket.display());
    assert_fails(
        &[&flag],
        1,
        &format!("{flag}: invalid objstore config for type S3: config.part_size: invalid type: integer `-5`, expected u64 at line 4 column 14"),
    );

    let bomb = dir.path().join("bomb.yml");
    std::fs::write(&bomb, format!("type: S3\nconfig: {}", "[".repeat(100_000)))
        .expect("write bomb.yml");
    let flag = format!("--objstore.config-file={}", bomb.display());
    assert_fails(
        &[&flag],
        1,
        &format!("{flag}: invalid objstore config: YAML nested deeper than 128 levels at line 2"),
    );
}

#[test]
fn help_shows_thanos_spellings() {
    let out = run(&["sidecar", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--prometheus.url=URL",
        "--prometheus.ready_timeout=DURATION",
        "--tsdb.path=PATH",
        "--objstore.config-file=FILE",
        "--[no-]shipper.upload-compacted",
        "--reloader.rule-dir=DIR",
        "--min-time=TIME",
        "--log.format=FORMAT",
    ] {
        assert!(help.contains(needle), "missing {needle} in help:\n{help}");
    }
    // Hidden flags stay hidden, as in Thanos.
    assert!(!help.contains("skip-corrupted-blocks"));
    let top = run(&["--help"]);
    assert!(String::from_utf8_lossy(&top.stdout).contains("sidecar"));
}

#[test]
fn version() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "thanos-sidecar, version {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}
