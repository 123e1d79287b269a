//! The static release binary as users copy it onto a host (issue 7): no
//! dynamic loader, `--version`, and a StoreAPI round trip through its own
//! `store` client. It runs when `THANOS_SIDECAR_BIN` names the binary under
//! test, as `scripts/test` sets it after `scripts/build-static`; the rest of
//! the suite then runs against that binary too.

use std::process::Command;
use std::time::Duration;

use crate::support::sidecar::{binary, command};
use crate::support::{Prometheus, PrometheusOptions, Sidecar};

/// What `readelf -W <what>` prints about `bin` (`-l` program headers, `-S`
/// sections).
fn readelf(what: &str, bin: &std::path::Path) -> String {
    let out = Command::new("readelf")
        .arg(format!("{what}W"))
        .arg(bin)
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success(), "readelf failed on {}", bin.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The static binary under test, or None (the check is skipped) when
/// `THANOS_SIDECAR_BIN` does not name one.
fn static_binary() -> Option<std::path::PathBuf> {
    if std::env::var_os("THANOS_SIDECAR_BIN").is_none() {
        eprintln!("THANOS_SIDECAR_BIN is not set; skipping the static binary check");
        return None;
    }
    Some(binary())
}

#[test]
fn static_binary_needs_no_loader_and_serves_the_store_api() {
    let Some(bin) = static_binary() else { return };
    let headers = readelf("-l", &bin);
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

    let version = command().arg("--version").output().expect("run --version");
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
    let info = command()
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
        let out = command()
            .args(["store", "series", "--match=up", &store])
            .output()
            .expect("run store series");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(r#"job="prom""#)
    });
    assert!(found_up, "no `up` series through the StoreAPI");
}

/// The release build packs the functions an idle sidecar runs at the front
/// of its code (scripts/hot-text.ld, passed by build.rs). If the list or its
/// wiring went missing, the binary still works but keeps 4 MB more of itself
/// resident (BENCHMARKS.md, footprint): that is what this catches.
#[test]
fn static_binary_packs_its_hot_code_first() {
    let Some(bin) = static_binary() else { return };
    // scripts/build-static packs hot code for x86_64 only: the list names
    // the symbols of one profiled binary, so other targets link as usual.
    if !readelf("-h", &bin).contains("X86-64") {
        eprintln!(
            "{} is not an x86_64 binary; it has no hot-code layout to check",
            bin.display()
        );
        return;
    }
    let sections = readelf("-S", &bin);
    // `[Nr] Name Type Address Off Size ...`; the index may be `[ 4]`.
    let section = |name: &str| {
        sections.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(']').nth(1)?.split_whitespace().collect();
            match fields.as_slice() {
                [n, _, addr, _, size, ..] if *n == name => Some((
                    u64::from_str_radix(addr, 16).ok()?,
                    u64::from_str_radix(size, 16).ok()?,
                )),
                _ => None,
            }
        })
    };
    let (hot_addr, hot_size) =
        section(".text.hot").unwrap_or_else(|| panic!("no .text.hot section:\n{sections}"));
    let (text_addr, _) =
        section(".text").unwrap_or_else(|| panic!("no .text section:\n{sections}"));
    assert!(
        hot_addr < text_addr,
        ".text.hot is not in front of .text:\n{sections}"
    );
    // The list packs 1.7 MB. Its C and C++ half (0.5 MB) keeps its names
    // across Rust toolchains, so less than that means the list or its
    // wiring is broken, not merely stale (build-static warns of that).
    assert!(
        hot_size > 256 * 1024,
        "only {hot_size} bytes of hot code were packed: check scripts/hot-text.ld \
         (scripts/profile-layout makes it) and how build.rs passes it"
    );
}
