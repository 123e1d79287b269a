//! The reloader against a real Prometheus: templates, `$(VAR)`, gzip, rule
//! dirs, ConfigMap symlink swaps, failures and retries, HTTP and SIGHUP.
//!
//! Most tests set `--reloader.watch-interval=10m`, so only file events can
//! explain a reload seen within the test's wait.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{free_port, wait_for, Prometheus, PrometheusOptions, RecordingProxy, Sidecar};

/// Generous: a functional wait, not a speed claim (see scripts/bench-reload).
const WAIT: Duration = Duration::from_secs(20);
/// Never set in a test environment.
const UNSET_VAR: &str = "RELOADER_IT_SURELY_UNSET_VAR";

/// A Prometheus config with the fixture's external labels and self-scrape,
/// plus a dead-target job per name and, optionally, a rule-file glob.
fn template(p: &Prometheus, jobs: &[&str], rules: Option<&Path>) -> String {
    let mut yaml = p.config_yaml(Some(vec![("cluster", "test"), ("replica", "0")]));
    for job in jobs {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:9']\n"
        ));
    }
    if let Some(dir) = rules {
        yaml.push_str(&format!("rule_files:\n  - {}/*.yml\n", dir.display()));
    }
    yaml
}

/// Sidecar flags: the template is expanded into the file Prometheus loads.
/// A flag in `extra` replaces the default of the same name (kingpin refuses
/// a repeated single-valued flag).
fn args(url: &str, template: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let name = |flag: &str| flag.split('=').next().unwrap_or("").to_string();
    let mut args: Vec<String> = vec![
        format!("--prometheus.url={url}"),
        "--prometheus.get_config_interval=500ms".into(),
        format!("--reloader.config-file={}", template.display()),
        format!("--reloader.config-envsubst-file={}", out.display()),
        "--reloader.watch-interval=10m".into(),
        "--reloader.retry-interval=200ms".into(),
    ];
    args.retain(|default| !extra.iter().any(|e| name(e) == name(default)));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Saves as editors do: a temp file renamed over the target.
fn save_by_rename(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("swp");
    fs::write(&tmp, content).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn runs_job(p: &Prometheus, job: &str) -> bool {
    p.running_config().contains(&format!("job_name: {job}\n"))
}

fn metric(sidecar: &Sidecar, name: &str) -> f64 {
    sidecar
        .metric(&format!("thanos_sidecar_reloader_{name}"))
        .unwrap_or(f64::NAN)
}

/// Reloads Prometheus confirmed: attempts minus failures. A first attempt
/// that fails on a loaded CI host is retried, and that is not what the
/// tests below count.
fn successful_reloads(sidecar: &Sidecar) -> f64 {
    metric(sidecar, "reloads_total") - metric(sidecar, "reloads_failed_total")
}

fn reload_posts(proxy: &RecordingProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.url == "/-/reload")
        .count()
}

#[test]
fn template_edit_reloads_prometheus_with_variables_substituted() {
    let p = Prometheus::start(PrometheusOptions::default());
    let proxy = RecordingProxy::start(&p.url());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &["$(RELOADER_IT_JOB)"], None)).unwrap();
    let sidecar = Sidecar::start_with_env(
        &args(&proxy.url(), &tmpl, &p.config_path(), &[]),
        &[("RELOADER_IT_JOB", "from_env")],
    );

    // Start-up: the output is expanded and one reload is sent.
    assert!(
        wait_for(WAIT, || runs_job(&p, "from_env")),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(WAIT, || reload_posts(&proxy) == 1));
    let out = fs::read_to_string(p.config_path()).unwrap();
    assert!(
        out.contains("job_name: from_env\n") && !out.contains("$("),
        "{out}"
    );
    assert_eq!(metric(&sidecar, "reloads_total"), 1.0);
    // Set once Prometheus' answer is back, a moment after it applied the
    // config: the gauge first, then the timestamp.
    assert!(wait_for(WAIT, || metric(
        &sidecar,
        "last_reload_successful"
    ) == 1.0
        && metric(&sidecar, "last_reload_success_timestamp_seconds")
            > 1.7e9));
    assert_eq!(metric(&sidecar, "info{method=\"http\"}"), 1.0);
    // The template, and its directory (here also the output's).
    assert_eq!(metric(&sidecar, "watches"), 2.0);
    // Our own reads of the template are no events, and trigger no check.
    assert_eq!(metric(&sidecar, "config_apply_operations_total"), 0.0);
    assert_eq!(metric(&sidecar, "watch_events_total"), 0.0);

    // An edit in place adds a job: Prometheus runs it.
    fs::write(&tmpl, template(&p, &["$(RELOADER_IT_JOB)", "added"], None)).unwrap();
    assert!(
        wait_for(WAIT, || runs_job(&p, "added")),
        "{}",
        sidecar.log()
    );
    assert!(runs_job(&p, "from_env"));
    assert!(reload_posts(&proxy) >= 2);
    assert_eq!(
        metric(&sidecar, "reloads_total"),
        reload_posts(&proxy) as f64
    );
    assert!(metric(&sidecar, "config_apply_operations_total") >= 1.0);
    assert!(metric(&sidecar, "watch_events_total") >= 1.0);
    assert_eq!(metric(&sidecar, "reloads_failed_total"), 0.0);

    // Touching the file without changing it reloads nothing: content decides.
    let posts = reload_posts(&proxy);
    let applies = metric(&sidecar, "config_apply_operations_total");
    save_by_rename(&tmpl, &fs::read(&tmpl).unwrap());
    assert!(wait_for(WAIT, || metric(
        &sidecar,
        "config_apply_operations_total"
    ) > applies));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reload_posts(&proxy), posts, "{}", sidecar.log());
}

#[test]
fn gzip_template_is_written_decompressed() {
    let p = Prometheus::start(PrometheusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.gz");
    fs::write(
        &tmpl,
        gzip(template(&p, &["zipped_$(RELOADER_IT_ZONE)"], None).as_bytes()),
    )
    .unwrap();
    let sidecar = Sidecar::start_with_env(
        &args(&p.url(), &tmpl, &p.config_path(), &[]),
        &[("RELOADER_IT_ZONE", "eu")],
    );
    assert!(
        wait_for(WAIT, || runs_job(&p, "zipped_eu")),
        "{}",
        sidecar.log()
    );
    let out = fs::read(p.config_path()).unwrap();
    assert!(out.starts_with(b"global:"), "output is not plain text");

    save_by_rename(
        &tmpl,
        &gzip(template(&p, &["zipped_again"], None).as_bytes()),
    );
    assert!(
        wait_for(WAIT, || runs_job(&p, "zipped_again")),
        "{}",
        sidecar.log()
    );
}

#[test]
fn rule_file_added_to_a_rule_dir_is_loaded() {
    let p = Prometheus::start(PrometheusOptions::default());
    let rules = p.dir().join("rules");
    fs::create_dir(&rules).unwrap();
    // Rule dirs alone: Prometheus' own config names the glob.
    fs::write(p.config_path(), template(&p, &[], Some(&rules))).unwrap();
    p.reload();
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", p.url()),
        format!("--reloader.rule-dir={}", rules.display()),
        "--reloader.watch-interval=10m".into(),
        "--reloader.retry-interval=200ms".into(),
    ]);
    let groups = || -> Vec<String> {
        p.api("/api/v1/rules")["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|g| g["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(wait_for(WAIT, || successful_reloads(&sidecar) == 1.0));
    assert!(groups().is_empty());

    let rule = |group: &str| {
        format!("groups:\n  - name: {group}\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n")
    };
    // Written beside, then renamed in: the way most tools add a file.
    let staged = rules.join(".extra.tmp");
    fs::write(&staged, rule("added_group")).unwrap();
    fs::rename(&staged, rules.join("extra.yml")).unwrap();
    assert!(
        wait_for(WAIT, || groups() == vec!["added_group".to_string()]),
        "{:?}\n{}",
        groups(),
        sidecar.log()
    );

    fs::write(rules.join("extra.yml"), rule("renamed_group")).unwrap();
    assert!(
        wait_for(WAIT, || groups() == vec!["renamed_group".to_string()]),
        "{:?}\n{}",
        groups(),
        sidecar.log()
    );
    assert_eq!(metric(&sidecar, "reloads_failed_total"), 0.0);
}

#[test]
fn configmap_data_symlink_swap_is_seen() {
    let p = Prometheus::start(PrometheusOptions::default());
    // kubelet's layout: versioned dir, `..data` pointing at it, files linked through it.
    let cm = tempfile::tempdir().unwrap();
    let mount = cm.path();
    fs::create_dir(mount.join("..2026_01_01")).unwrap();
    fs::write(
        mount.join("..2026_01_01/prometheus.yml.tmpl"),
        template(&p, &["first_version"], None),
    )
    .unwrap();
    symlink("..2026_01_01", mount.join("..data")).unwrap();
    symlink(
        "..data/prometheus.yml.tmpl",
        mount.join("prometheus.yml.tmpl"),
    )
    .unwrap();
    let sidecar = Sidecar::start(&args(
        &p.url(),
        &mount.join("prometheus.yml.tmpl"),
        &p.config_path(),
        &[],
    ));
    assert!(
        wait_for(WAIT, || runs_job(&p, "first_version")),
        "{}",
        sidecar.log()
    );

    // The update: new version dir, `..data` swapped by rename, old dir removed.
    // The file the flag names never changes; only its symlink's target does.
    fs::create_dir(mount.join("..2026_01_02")).unwrap();
    fs::write(
        mount.join("..2026_01_02/prometheus.yml.tmpl"),
        template(&p, &["second_version"], None),
    )
    .unwrap();
    symlink("..2026_01_02", mount.join("..data_tmp")).unwrap();
    fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    fs::remove_dir_all(mount.join("..2026_01_01")).unwrap();
    assert!(
        wait_for(WAIT, || runs_job(&p, "second_version")),
        "{}",
        sidecar.log()
    );
    assert!(!runs_job(&p, "first_version"));
}

#[test]
fn unset_variable_keeps_old_output_and_reloads_nothing() {
    let p = Prometheus::start(PrometheusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &["good"], None)).unwrap();
    let sidecar = Sidecar::start(&args(&p.url(), &tmpl, &p.config_path(), &[]));
    assert!(wait_for(WAIT, || runs_job(&p, "good")), "{}", sidecar.log());
    assert!(
        wait_for(WAIT, || successful_reloads(&sidecar) == 1.0),
        "{}",
        sidecar.log()
    );
    let before = fs::read(p.config_path()).unwrap();
    let attempts = metric(&sidecar, "reloads_total");

    let var = format!("$({UNSET_VAR})");
    fs::write(&tmpl, template(&p, &["good", &var], None)).unwrap();
    assert!(
        wait_for(WAIT, || metric(
            &sidecar,
            "config_apply_operations_failed_total"
        ) >= 1.0),
        "{}",
        sidecar.log()
    );
    assert_eq!(fs::read(p.config_path()).unwrap(), before, "output changed");
    assert_eq!(
        metric(&sidecar, "reloads_total"),
        attempts,
        "reload attempted"
    );
    assert_eq!(
        metric(&sidecar, "config_environment_variable_expansion_errors"),
        1.0
    );
    assert!(sidecar.log().contains(UNSET_VAR), "{}", sidecar.log());
    assert!(!dir.path().join("prometheus.yml.tmp").exists());
    assert_eq!(sidecar.get("/-/healthy").0, 200);

    // Fixed: the next change lands, and the gauge clears.
    fs::write(&tmpl, template(&p, &["good", "fixed"], None)).unwrap();
    assert!(
        wait_for(WAIT, || runs_job(&p, "fixed")),
        "{}",
        sidecar.log()
    );
    assert_eq!(
        metric(&sidecar, "config_environment_variable_expansion_errors"),
        0.0
    );
    assert_eq!(successful_reloads(&sidecar), 2.0, "{}", sidecar.log());
}

#[test]
fn reload_is_retried_until_prometheus_returns() {
    let mut p = Prometheus::start(PrometheusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &[], None)).unwrap();
    let sidecar = Sidecar::start(&args(&p.url(), &tmpl, &p.config_path(), &[]));
    assert!(wait_for(WAIT, || metric(
        &sidecar,
        "last_reload_successful"
    ) == 1.0));

    p.stop();
    fs::write(&tmpl, template(&p, &["while_down"], None)).unwrap();
    // Several attempts, 200 ms apart, all failing.
    assert!(
        wait_for(WAIT, || metric(&sidecar, "reloads_failed_total") >= 3.0),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(WAIT, || metric(
        &sidecar,
        "last_reload_successful"
    ) == 0.0));
    let output = fs::read_to_string(p.config_path()).unwrap();
    assert!(output.contains("job_name: while_down"), "{output}");
    let attempts = metric(&sidecar, "reloads_total");

    p.resume();
    assert!(
        wait_for(WAIT, || metric(&sidecar, "last_reload_successful") == 1.0),
        "{}",
        sidecar.log()
    );
    assert!(metric(&sidecar, "reloads_total") > attempts);
    assert!(runs_job(&p, "while_down"));
    // Landed: no more attempts afterwards.
    let total = metric(&sidecar, "reloads_total");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(metric(&sidecar, "reloads_total"), total);
}

#[test]
fn reloads_without_lifecycle_fail_and_repeat() {
    let p = Prometheus::start(PrometheusOptions {
        lifecycle: false,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &[], None)).unwrap();
    let sidecar = Sidecar::start(&args(&p.url(), &tmpl, &p.config_path(), &[]));
    assert!(
        wait_for(WAIT, || metric(&sidecar, "reloads_failed_total") >= 3.0),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(WAIT, || metric(
        &sidecar,
        "last_reload_successful"
    ) == 0.0));
    let log = sidecar.log();
    assert!(
        log.contains("403") && log.contains("--web.enable-lifecycle"),
        "{log}"
    );
    assert_eq!(sidecar.get("/-/healthy").0, 200);
}

/// The signal goes to the lowest PID with the configured name, as in Thanos.
/// Other tests run their own Prometheus processes (named `prometheus`) in
/// parallel, so this one runs Prometheus under a name unique to this test
/// process: the SIGHUP cannot reach anyone else's. Its Prometheus has no
/// `--web.enable-lifecycle`, so only the signal can make it reload.
#[test]
fn sighup_method_reloads_the_named_prometheus() {
    let name = format!("promhup{}", std::process::id());
    let p = Prometheus::start(PrometheusOptions {
        lifecycle: false,
        process_name: Some(name.clone()),
        ..Default::default()
    });
    let pid = p.pid().unwrap();
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        name
    );
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &["before_hup"], None)).unwrap();
    let sidecar = Sidecar::start(&args(
        &p.url(),
        &tmpl,
        &p.config_path(),
        &[
            "--reloader.method=signal",
            &format!("--reloader.process-name={name}"),
        ],
    ));
    assert!(
        wait_for(WAIT, || runs_job(&p, "before_hup")),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(WAIT, || metric(
        &sidecar,
        "last_reload_successful"
    ) == 1.0));
    assert_eq!(metric(&sidecar, "info{method=\"signal\"}"), 1.0);

    fs::write(&tmpl, template(&p, &["after_hup"], None)).unwrap();
    assert!(
        wait_for(WAIT, || runs_job(&p, "after_hup")),
        "{}",
        sidecar.log()
    );
    assert!(wait_for(WAIT, || successful_reloads(&sidecar) == 2.0));
    assert_eq!(metric(&sidecar, "reloads_failed_total"), 0.0);
    assert_eq!(
        p.metric("prometheus_config_last_reload_successful"),
        Some(1.0)
    );
}

#[test]
fn signal_method_without_the_process_fails_naming_it() {
    let p = Prometheus::start(PrometheusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &[], None)).unwrap();
    let sidecar = Sidecar::start(&args(
        &p.url(),
        &tmpl,
        &p.config_path(),
        &[
            "--reloader.method=signal",
            "--reloader.process-name=no-such-proc-x",
        ],
    ));
    assert!(
        wait_for(WAIT, || metric(&sidecar, "reloads_failed_total") >= 2.0),
        "{}",
        sidecar.log()
    );
    let log = sidecar.log();
    assert!(
        log.contains(r#"failed to find process matching \"no-such-proc-x\""#),
        "{log}"
    );
}

/// Thanos exits right after start-up with a zero watch interval; here it only
/// turns the periodic re-check off, and file events still drive reloads.
#[test]
fn watch_interval_zero_still_follows_file_events() {
    let p = Prometheus::start(PrometheusOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(&tmpl, template(&p, &["zero_one"], None)).unwrap();
    let sidecar = Sidecar::start(&args(
        &p.url(),
        &tmpl,
        &p.config_path(),
        &["--reloader.watch-interval=0s"],
    ));
    assert!(
        wait_for(WAIT, || runs_job(&p, "zero_one")),
        "{}",
        sidecar.log()
    );
    fs::write(&tmpl, template(&p, &["zero_two"], None)).unwrap();
    assert!(
        wait_for(WAIT, || runs_job(&p, "zero_two")),
        "{}",
        sidecar.log()
    );
    assert_eq!(sidecar.get("/-/healthy").0, 200);
    assert!(
        sidecar.log().contains("watch-interval=0"),
        "{}",
        sidecar.log()
    );
}

#[test]
fn start_up_failures_exit_1_naming_the_cause() {
    let dead = format!("--prometheus.url=http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("prometheus.yml.tmpl");
    fs::write(
        &tmpl,
        format!("global:\n  external_labels:\n    x: $({UNSET_VAR})\n"),
    )
    .unwrap();
    let out = dir.path().join("out.yml");
    let missing: PathBuf = dir.path().join("missing");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![format!("--reloader.config-file={}", missing.display())],
            missing.display().to_string(),
        ),
        (
            vec![format!("--reloader.rule-dir={}", missing.display())],
            missing.display().to_string(),
        ),
        (
            vec![
                format!("--reloader.config-file={}", tmpl.display()),
                format!("--reloader.config-envsubst-file={}", out.display()),
            ],
            UNSET_VAR.to_string(),
        ),
    ];
    for (flags, named) in cases {
        let mut all = vec![dead.clone()];
        all.extend(flags.iter().cloned());
        let mut sidecar = Sidecar::start(&all);
        let status = sidecar.wait_exit(Duration::from_secs(10));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "{flags:?}\n{}",
            sidecar.log()
        );
        assert!(
            sidecar.log().contains(&named),
            "{flags:?}: {}",
            sidecar.log()
        );
    }
    assert!(!out.exists(), "a half-substituted output was written");
}
