//! systemd's `Type=notify` protocol, read from a socket the test owns, as systemd would.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::shipper::Rig;
use crate::support::sidecar::{binary, command};
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

/// Whether the binary under test carries the test-only fault hooks
/// (src/fault.rs; `--version` lists the `fault-injection` tag). Release and
/// static builds do not: the test then says so and has nothing to check.
fn has_fault_hooks(test: &str) -> bool {
    let version = command().arg("--version").output().expect("run --version");
    let text = String::from_utf8_lossy(&version.stdout);
    if text.contains("tags:             fault-injection") {
        return true;
    }
    // Past libtest's capture, so the skip shows in the run's output.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: {} was built without the fault-injection feature (a release or static build); \
         `cargo test --features fault-injection` runs it",
        binary().display()
    );
    false
}

/// Arrival times of `WATCHDOG=1`, in seconds after `since`.
fn pings(messages: &[(Instant, String)], since: Instant) -> Vec<f64> {
    messages
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(at, _)| at.saturating_duration_since(since).as_secs_f64())
        .collect()
}

/// The watchdog half of a hang test: pings flow while the actor is healthy
/// (for longer than its deadline), keep flowing for a while after `hang` is
/// created, stop once the actor's deadline has passed, and come back when
/// the actor is let go. `fed` and `starved` are windows in seconds after the
/// hang began in which pings must still arrive / must not.
fn watchdog_starves_on_hang(
    socket: &UnixDatagram,
    sidecar: &Sidecar,
    hang: &std::path::Path,
    actor: &str,
    fed: (f64, f64),
    starved: (f64, f64),
) {
    let up = receive(socket, Duration::from_secs(20), |m| m.contains("READY=1"));
    assert!(
        up.iter().any(|(_, m)| m.starts_with("READY=1")),
        "{up:?}\n{}",
        sidecar.log()
    );
    // Healthy for 6 s, longer than the deadline: pings every 500 ms.
    let start = Instant::now();
    let healthy = pings(&receive(socket, Duration::from_secs(6), |_| false), start);
    assert!(healthy.len() >= 8, "{healthy:?}\n{}", sidecar.log());

    std::fs::write(hang, "").unwrap();
    let hung_at = Instant::now();
    let after = pings(
        &receive(socket, Duration::from_secs_f64(starved.1), |_| false),
        hung_at,
    );
    let still_fed = after.iter().filter(|t| (fed.0..fed.1).contains(*t)).count();
    assert!(
        still_fed >= 2,
        "pings must go on until the {actor}'s deadline passes: {after:?}\n{}",
        sidecar.log()
    );
    let late: Vec<&f64> = after.iter().filter(|t| **t >= starved.0).collect();
    assert!(
        late.is_empty(),
        "pings must stop once the {actor} is past its deadline: {after:?}\n{}",
        sidecar.log()
    );
    let log = sidecar.log();
    assert!(
        log.lines()
            .any(|l| l.contains("no longer feeding the systemd watchdog")
                && l.contains(&format!("actor={actor}"))),
        "{log}"
    );

    // Let go: the actor ticks again and so does the watchdog.
    std::fs::remove_file(hang).unwrap();
    let back = receive(socket, Duration::from_secs(10), |m| m == "WATCHDOG=1");
    assert!(
        back.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "{back:?}\n{}",
        sidecar.log()
    );
}

#[test]
fn a_hung_heartbeat_starves_the_watchdog_after_its_deadline() {
    if !has_fault_hooks("a_hung_heartbeat_starves_the_watchdog_after_its_deadline") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let hang = dir.path().join("hang-heartbeat");
    let prometheus = Prometheus::start(PrometheusOptions::default());
    let sidecar = Sidecar::start_with_env(
        &[
            format!("--prometheus.url={}", prometheus.url()),
            "--prometheus.get_config_interval=300ms".into(),
            "--prometheus.get_config_timeout=1s".into(),
        ],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            (
                "THANOS_SIDECAR_FAULT_HANG",
                &format!("heartbeat={}", hang.display()),
            ),
        ],
    );
    // The heartbeat's deadline: max(300 ms, 2 s start retry) + 1 s timeout
    // + 2 s flags retry = 5 s after its last beat, which ended at most one
    // beat (≤ 1 s) after the hang began; pings are 500 ms apart.
    watchdog_starves_on_hang(
        &socket,
        &sidecar,
        &hang,
        "heartbeat",
        (1.0, 4.0),
        (7.5, 11.0),
    );
}

#[test]
fn a_hung_shipper_starves_the_watchdog_after_its_deadline() {
    if !has_fault_hooks("a_hung_shipper_starves_the_watchdog_after_its_deadline") {
        return;
    }
    let rig = Rig::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let hang = dir.path().join("hang-shipper");
    let sidecar = Sidecar::start_with_env(
        &rig.args(&rig.fs_config(), &[]),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            (
                "THANOS_SIDECAR_FAULT_HANG",
                &format!("shipper={}", hang.display()),
            ),
            // Syncs every 2 s, 2 s allowed per upload: a 4 s deadline
            // instead of 30 s + 15 min.
            ("THANOS_SIDECAR_FAULT_SHIPPER_PERIOD_MS", "2000"),
        ],
    );
    // The shipper ticked last when its latest sync ended, at most 2 s before
    // the hang began (then it hangs at its next sync): starved 4 s later.
    watchdog_starves_on_hang(&socket, &sidecar, &hang, "shipper", (0.2, 1.9), (5.5, 9.5));
}
