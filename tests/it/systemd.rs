//! systemd's `Type=notify` protocol, read from a socket the test owns, as systemd would.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::{Prometheus, PrometheusOptions, Sidecar};

/// Datagrams received until `until` holds for one of them or `timeout` passes.
fn receive(
    socket: &UnixDatagram,
    timeout: Duration,
    until: impl Fn(&str) -> bool,
) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = until(&message);
                out.push((Instant::now(), message));
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

#[test]
fn ready_only_with_prometheus_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut prometheus = Prometheus::prepare(PrometheusOptions::default());
    let sidecar = Sidecar::start_with_env(
        &[
            format!("--prometheus.url={}", prometheus.url()),
            "--prometheus.get_config_interval=300ms".into(),
        ],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            // 1 s watchdog: the sidecar must ping every 500 ms.
            ("WATCHDOG_USEC", "1000000"),
        ],
    );

    // Prometheus is down: status and watchdog pings, but never READY=1.
    let early = receive(&socket, Duration::from_millis(1600), |_| false);
    assert!(
        early
            .iter()
            .any(|(_, m)| m == "STATUS=waiting for Prometheus"),
        "{early:?}"
    );
    assert!(
        !early.iter().any(|(_, m)| m.contains("READY=1")),
        "{early:?}"
    );
    let pings = early.iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(
        (2..=4).contains(&pings),
        "{pings} pings in 1.6 s: {early:?}"
    );

    prometheus.resume();
    let later = receive(&socket, Duration::from_secs(5), |m| m.contains("READY=1"));
    assert!(
        later
            .iter()
            .any(|(_, m)| m == "READY=1\nSTATUS=serving; Prometheus is up"),
        "{later:?}\n{}",
        sidecar.log()
    );
    assert!(sidecar.ready());

    sidecar.terminate();
    let last = receive(&socket, Duration::from_secs(5), |m| {
        m.starts_with("STOPPING=1")
    });
    assert!(
        last.iter().any(|(_, m)| m == "STOPPING=1\nSTATUS=stopping"),
        "{last:?}"
    );
}
