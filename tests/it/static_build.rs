//! The static release binary as users copy it onto a host (issue 7): no
//! dynamic loader, `--version`, and a StoreAPI round trip through its own
//! `store` client. It runs when `THANOS_SIDECAR_BIN` names the binary under
//! test, as `scripts/test` sets it after `scripts/build-static`; the rest of
//! the suite then runs against that binary too.

use std::process::Command;
use std::time::Duration;

use crate::support::{sidecar::binary, Prometheus, PrometheusOptions, Sidecar};

/// The ELF program headers of `bin` as `readelf` prints them.
fn program_headers(bin: &std::path::Path) -> String {
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(bin)
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success(), "readelf failed on {}", bin.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn static_binary_needs_no_loader_and_serves_the_store_api() {
    if std::env::var_os("THANOS_SIDECAR_BIN").is_none() {
        eprintln!("THANOS_SIDECAR_BIN is not set; skipping the static binary check");
        return;
    }
    let bin = binary();
    let headers = program_headers(&bin);
    assert!(
        !headers.contains("INTERP"),
        "{} asks for a program interpreter:\n{headers}",
        bin.display()
    );
    // glibc's ldd knows a static executable when it sees one.
    let ldd = Command::new("ldd").arg(&bin).output().expect("run ldd");
    let ldd_text =
        String::from_utf8_lossy(&ldd.stdout).to_string() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        ldd_text.contains("not a dynamic executable") || ldd_text.contains("statically linked"),
        "ldd {}: {ldd_text}",
        bin.display()
    );

    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run --version");
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.status.success() && text.starts_with("thanos-sidecar, version "),
        "{text}"
    );

    let prometheus = Prometheus::start(PrometheusOptions::default());
    let sidecar = Sidecar::start(&[format!("--prometheus.url={}", prometheus.url())]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "{}",
        sidecar.log()
    );
    let store = format!("--store=127.0.0.1:{}", sidecar.grpc_port);
    let info = Command::new(&bin)
        .args(["store", "info", &store])
        .output()
        .expect("run store info");
    let info_text = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success() && info_text.contains(r#"cluster="test""#),
        "{info_text}{}",
        String::from_utf8_lossy(&info.stderr)
    );
    // Prometheus scrapes itself every second: `up` appears within a few.
    let found_up = crate::support::wait_for(Duration::from_secs(20), || {
        let out = Command::new(&bin)
            .args(["store", "series", "--match=up", &store])
            .output()
            .expect("run store series");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(r#"job="prom""#)
    });
    assert!(found_up, "no `up` series through the StoreAPI");
}
