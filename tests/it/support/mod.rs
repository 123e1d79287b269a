//! Real parts for integration tests: a Prometheus server, the sidecar binary,
//! an S3 server (moto), an Azure Blob server (Azurite), a recording HTTP proxy, a faulty TCP proxy and a
//! Thanos Querier, each started on free loopback ports and stopped when
//! dropped; gRPC client helpers and a remote-write client.

#![allow(dead_code)] // Each test file uses a different subset.

pub mod azurite;
pub mod certs;
pub mod fake_gcs;
pub mod faulty;
pub mod grpc;
pub mod moto;
pub mod prometheus;
pub mod proxy;
pub mod remote_write;
pub mod sidecar;
pub mod thanos;

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use self::azurite::Azurite;
pub use self::certs::Pki;
pub use self::fake_gcs::FakeGcs;
pub use self::faulty::FaultyProxy;
pub use self::moto::Moto;
pub use self::prometheus::{Prometheus, PrometheusOptions};
pub use self::proxy::{ConnectProxy, RecordingProxy};
pub use self::sidecar::Sidecar;
pub use self::thanos::{GoSidecar, ThanosQuery};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    // A port that is free when asked is not held until its server binds it,
    // which under emulation can be a second later. Meanwhile the kernel may
    // hand it out again: to a bind(0) elsewhere, or as the local port of an
    // outgoing connection (both draw from net.ipv4.ip_local_port_range,
    // 32768-60999 by default). Ports are therefore drawn below that range,
    // where neither happens, checked free, and never handed out twice in one
    // run (CI once gave a sidecar's HTTP and gRPC addresses the same port;
    // an armv7 run under qemu lost one to an outgoing connection).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Below the ephemeral range: up to 12,000 ports under its start.
    static RANGE: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    let &(low, span) = RANGE.get_or_init(|| {
        let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(32768);
        let low = ephemeral_low.saturating_sub(12_000).max(1024);
        (low, ephemeral_low.saturating_sub(low))
    });
    // Start at a place that differs per process, so parallel runs spread out.
    let start = std::process::id() % span.max(1);
    for _ in 0..span {
        let n = NEXT.fetch_add(7919, std::sync::atomic::Ordering::Relaxed);
        let port = (low + (start + n) % span) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    // No room below the ephemeral range (a host that made it start low).
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local address").port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// GET `url`; returns status and body, or status 0 when nothing answered.
pub fn http_get(url: &str) -> (u16, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    match agent.get(url).call() {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Transport(_)) => (0, String::new()),
    }
}

/// Percent-encodes everything but unreserved characters (a PromQL query in a URL).
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of an unlabelled (or exactly labelled) sample in a text exposition.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// `METHOD /path?query` of each request in a server's access log, whose
/// request line follows `opening` (e.g. `"`) and ends before ` HTTP/`.
pub fn logged_requests(log: &str, opening: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(opening)? + opening.len()..];
            let end = rest.find(" HTTP/")?;
            Some(rest[..end].to_string())
        })
        .collect()
}
