//! Reload latency: from a write of the config template to Prometheus having
//! loaded it, as its `prometheus_config_last_reload_success_timestamp_seconds`
//! moving shows. Run through `scripts/bench-reload`, or
//! `cargo bench --bench reload -- [changes] [http|signal]`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Pause between changes, so each is its own debounce burst and reload.
const BETWEEN: Duration = Duration::from_millis(400);
const POLL: Duration = Duration::from_millis(2);
const GIVE_UP: Duration = Duration::from_secs(30);

/// Kills the child when dropped, so no process outlives the benchmark.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<(), String> {
    // `cargo bench` adds `--bench` to every bench binary's arguments.
    let mut argv = std::env::args().skip(1).filter(|a| a != "--bench");
    let sidecar_bin = env!("CARGO_BIN_EXE_thanos-sidecar").to_string();
    let changes: usize = match argv.next() {
        Some(n) => n.parse().map_err(|e| format!("changes {n:?}: {e}"))?,
        None => 20,
    };
    let method = argv.next().unwrap_or_else(|| "http".into());

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let prom_port = free_port()?;
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    let config = dir.path().join("prometheus.yml");
    let template = dir.path().join("prometheus.yml.tmpl");
    write(&template, &yaml(prom_port, 0))?;
    write(&config, &yaml(prom_port, 0))?;

    // For the signal method Prometheus runs under a name of its own, so the
    // SIGHUP can reach no other Prometheus on this machine.
    let process_name = format!("prombench{}", std::process::id());
    let program = if method == "signal" {
        let link = dir.path().join(&process_name);
        std::os::unix::fs::symlink(which("prometheus")?, &link).map_err(|e| e.to_string())?;
        link
    } else {
        "prometheus".into()
    };
    let _prometheus = Guard(
        Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--web.enable-lifecycle")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start prometheus: {e}"))?,
    );
    wait(|| get(&format!("{prom_url}/-/ready")).is_some())?;

    // Baseline, same Prometheus, before the sidecar runs: the benchmark writes
    // the config itself and triggers the reload at once, so what is left is
    // Prometheus' own reload and the metric's polling.
    let prom_pid = _prometheus.0.id().to_string();
    let baseline = measure(changes, &prom_url, |i| {
        write(&config, &yaml(prom_port, 10_000 + i))?;
        if method == "signal" {
            let status = Command::new("kill").args(["-HUP", &prom_pid]).status();
            status.map_err(|e| format!("kill -HUP: {e}"))?;
        } else {
            ureq::post(&format!("{prom_url}/-/reload"))
                .call()
                .map_err(|e| format!("POST /-/reload: {e}"))?;
        }
        Ok(())
    })?;

    let http_port = free_port()?;
    let grpc_port = free_port()?;
    let _sidecar = Guard(
        Command::new(&sidecar_bin)
            .arg("sidecar")
            .arg(format!("--prometheus.url={prom_url}"))
            .arg(format!("--http-address=127.0.0.1:{http_port}"))
            .arg(format!("--grpc-address=127.0.0.1:{grpc_port}"))
            .arg(format!("--reloader.config-file={}", template.display()))
            .arg(format!(
                "--reloader.config-envsubst-file={}",
                config.display()
            ))
            .arg(format!("--reloader.method={method}"))
            .arg(format!("--reloader.process-name={process_name}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {sidecar_bin}: {e}"))?,
    );
    // The start-up reload.
    let sidecar_metrics = format!("http://127.0.0.1:{http_port}/metrics");
    wait(|| {
        get(&sidecar_metrics)
            .is_some_and(|m| m.contains("thanos_sidecar_reloader_last_reload_successful 1"))
    })?;

    let sidecar = measure(changes, &prom_url, |i| {
        write(&template, &yaml(prom_port, i))
    })?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (what, samples) in [
        ("direct (baseline)", &baseline),
        ("through the sidecar", &sidecar),
    ] {
        println!(
            "reload latency, method={method}, {what}, {} changes: p50 {:.0} ms, p99 {:.0} ms (min {:.0} ms, max {:.0} ms)",
            samples.len(),
            ms(percentile(samples, 0.50)),
            ms(percentile(samples, 0.99)),
            ms(samples[0]),
            ms(samples[samples.len() - 1])
        );
    }
    println!(
        "ratio sidecar / direct: p50 {:.1}x, p99 {:.1}x",
        ms(percentile(&sidecar, 0.50)) / ms(percentile(&baseline, 0.50)),
        ms(percentile(&sidecar, 0.99)) / ms(percentile(&baseline, 0.99))
    );
    Ok(())
}

/// Times `changes` changes made by `change(i)`, each until Prometheus'
/// last-reload timestamp moves; returns the sorted latencies.
fn measure(
    changes: usize,
    prom_url: &str,
    mut change: impl FnMut(usize) -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(changes);
    for i in 1..=changes {
        std::thread::sleep(BETWEEN);
        let before = last_reload(prom_url)?;
        let started = Instant::now();
        change(i)?;
        while last_reload(prom_url)? == before {
            if started.elapsed() > GIVE_UP {
                return Err(format!("change {i} not reloaded within {GIVE_UP:?}"));
            }
            std::thread::sleep(POLL);
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(samples)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// A config that differs per change: one extra job named after it.
fn yaml(prom_port: u16, change: usize) -> String {
    format!(
        "global:\n  scrape_interval: 15s\n  external_labels:\n    cluster: bench\nscrape_configs:\n  \
         - job_name: prom\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n  \
         - job_name: change_{change}\n    static_configs:\n      - targets: ['127.0.0.1:9']\n"
    )
}

fn write(path: &Path, content: &str) -> Result<(), String> {
    std::fs::write(path, content).map_err(|e| format!("write {}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn get(url: &str) -> Option<String> {
    ureq::get(url)
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_string()
        .ok()
}

fn last_reload(prom_url: &str) -> Result<String, String> {
    const NAME: &str = "prometheus_config_last_reload_success_timestamp_seconds ";
    let text = get(&format!("{prom_url}/metrics")).ok_or("Prometheus /metrics failed")?;
    text.lines()
        .find_map(|l| l.strip_prefix(NAME))
        .map(str::to_string)
        .ok_or_else(|| format!("no {NAME}in Prometheus /metrics"))
}

fn wait(mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + GIVE_UP;
    while !ready() {
        if Instant::now() > deadline {
            return Err("timed out waiting for start-up".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn which(program: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| format!("{program} not in PATH"))
}
