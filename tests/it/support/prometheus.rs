//! A real Prometheus with its own data dir and config: the Debian package
//! (2.42), or the binary `PROMETHEUS_BIN` names (`scripts/test` runs the
//! suite a second time with a Prometheus 3 that `scripts/setup` built).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_get, wait_for};

pub struct PrometheusOptions {
    /// `global.external_labels`; `None` writes a config without any.
    pub external_labels: Option<Vec<(&'static str, &'static str)>>,
    pub min_block_duration: &'static str,
    pub max_block_duration: &'static str,
    /// Extra command-line flags, e.g. `--web.config.file=...`.
    pub extra_args: Vec<String>,
    /// Whether Prometheus scrapes itself every second.
    pub scrape_self: bool,
    /// `--web.enable-lifecycle` (POST /-/reload); on by default.
    pub lifecycle: bool,
    /// Runs the binary through a symlink of this name, so its process name
    /// (`comm`) is unique: a SIGHUP by name then reaches only this one.
    pub process_name: Option<String>,
    /// Serves HTTPS (its web config has a `tls_server_config`): `url()` says
    /// `https`, and start-up waits for the port instead of `/-/ready`.
    pub https: bool,
    /// `--web.route-prefix` (e.g. `/prom`): every path, probes and API, sits
    /// under it, and `url()` ends with it.
    pub route_prefix: &'static str,
    /// Agent mode (`--agent` in 3.x, `--enable-feature=agent` in 2.x): it
    /// scrapes and keeps a WAL in the data dir, with no TSDB to query.
    pub agent: bool,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            external_labels: Some(vec![("cluster", "test"), ("replica", "0")]),
            min_block_duration: "2h",
            max_block_duration: "2h",
            extra_args: Vec::new(),
            scrape_self: true,
            lifecycle: true,
            process_name: None,
            https: false,
            route_prefix: "",
            agent: false,
        }
    }
}

pub struct Prometheus {
    pub port: u16,
    dir: tempfile::TempDir,
    options: PrometheusOptions,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus and waits until it answers `/-/ready`.
    pub fn start(options: PrometheusOptions) -> Prometheus {
        let mut p = Prometheus::prepare(options);
        p.resume();
        p
    }

    /// Prepares port, data dir and config without starting; `resume()` starts it.
    pub fn prepare(options: PrometheusOptions) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = Prometheus {
            port: free_port(),
            dir,
            options,
            child: None,
        };
        std::fs::create_dir_all(p.data_dir()).expect("data dir");
        p.write_config(p.options.external_labels.clone());
        p
    }

    pub fn url(&self) -> String {
        let scheme = if self.options.https { "https" } else { "http" };
        format!(
            "{scheme}://127.0.0.1:{}{}",
            self.port, self.options.route_prefix
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts Prometheus with a block (promtool) of `series` series of the
    /// gauge `name{s="0"…}`, a sample every 15 s for an hour, in the 2 h
    /// window two windows back; returns it and that window's start (s).
    pub fn start_with_gauge(
        options: PrometheusOptions,
        name: &str,
        series: usize,
    ) -> (Prometheus, i64) {
        let mut prometheus = Prometheus::prepare(options);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let start = (now / 7200 - 2) * 7200;
        let mut om = format!("# TYPE {name} gauge\n");
        for s in 0..series {
            for n in 0..240 {
                om.push_str(&format!("{name}{{s=\"{s}\"}} {n} {}\n", start + n * 15));
            }
        }
        om.push_str("# EOF\n");
        prometheus.create_blocks(&om);
        prometheus.resume();
        (prometheus, start)
    }

    /// A scratch directory that lives as long as this Prometheus.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file Prometheus loads (`--config.file`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.yml")
    }

    /// Rewrites the config with other external labels; `reload()` applies it.
    pub fn write_config(&self, external_labels: Option<Vec<(&str, &str)>>) {
        std::fs::write(self.config_path(), self.config_yaml(external_labels))
            .expect("write prometheus.yml");
    }

    /// The config `write_config` writes; it ends inside `scrape_configs` (when
    /// scraping itself), so more jobs can be appended.
    pub fn config_yaml(&self, external_labels: Option<Vec<(&str, &str)>>) -> String {
        let mut yaml = String::from("global:\n  scrape_interval: 1s\n");
        if let Some(labels) = external_labels {
            yaml.push_str("  external_labels:\n");
            for (k, v) in labels {
                yaml.push_str(&format!("    {k}: {v:?}\n"));
            }
        }
        if self.options.scrape_self {
            yaml.push_str(&format!(
                "scrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                self.port
            ));
        }
        yaml
    }

    /// The `data` of a JSON API answer, e.g. `/api/v1/rules`.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (code, body) = http_get(&format!("{}{path}", self.url()));
        assert_eq!(code, 200, "GET {path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON answer");
        json["data"].clone()
    }

    /// Writes `openmetrics` into the TSDB as blocks (`promtool tsdb
    /// create-blocks-from openmetrics`); call before `resume()`.
    pub fn create_blocks(&self, openmetrics: &str) {
        let input = self.dir().join("data.om");
        std::fs::write(&input, openmetrics).expect("write openmetrics");
        let status = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .status()
            .expect("run promtool");
        assert!(status.success(), "promtool failed");
    }

    /// The YAML of the config Prometheus runs (`/api/v1/status/config`).
    pub fn running_config(&self) -> String {
        self.api("/api/v1/status/config")["yaml"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A sample from Prometheus' own `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        super::metric_value(&http_get(&format!("{}/metrics", self.url())).1, series)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Asks Prometheus to reload its config (it runs with `--web.enable-lifecycle`).
    pub fn reload(&self) {
        let resp = ureq::post(&format!("{}/-/reload", self.url())).call();
        assert!(resp.is_ok(), "reload failed: {resp:?}");
    }

    /// Kills Prometheus; `resume()` starts it again on the same port and data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("prometheus.log")).expect("log file");
        let mut cmd = match &self.options.process_name {
            Some(name) => {
                let link = self.dir.path().join(name);
                if !link.exists() {
                    std::os::unix::fs::symlink(binary(), &link).expect("symlink prometheus");
                }
                Command::new(link)
            }
            None => Command::new(binary()),
        };
        cmd.arg(format!("--config.file={}", self.config_path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port));
        if self.options.agent {
            cmd.arg(if major_version() >= 3 {
                "--agent"
            } else {
                "--enable-feature=agent"
            })
            .arg(format!(
                "--storage.agent.path={}",
                self.data_dir().display()
            ));
        } else {
            cmd.arg(format!("--storage.tsdb.path={}", self.data_dir().display()))
                .arg(format!(
                    "--storage.tsdb.min-block-duration={}",
                    self.options.min_block_duration
                ))
                .arg(format!(
                    "--storage.tsdb.max-block-duration={}",
                    self.options.max_block_duration
                ));
        }
        cmd.args(self.options.lifecycle.then_some("--web.enable-lifecycle"))
            .args(
                (!self.options.route_prefix.is_empty())
                    .then(|| format!("--web.route-prefix={}", self.options.route_prefix)),
            )
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .expect("start prometheus (is it installed? run scripts/setup)"),
        );
        let url = format!("{}/-/ready", self.url());
        let port = self.port;
        let https = self.options.https;
        // Prometheus with a web config answers 401 once it is up.
        let up = wait_for(Duration::from_secs(30), || {
            if https {
                return std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            }
            let (code, _) = http_get(&url);
            code == 200 || code == 401
        });
        assert!(up, "Prometheus did not become ready; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Prometheus the tests run: `PROMETHEUS_BIN`, else the one on PATH.
pub fn binary() -> PathBuf {
    match std::env::var_os("PROMETHEUS_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => find_in_path("prometheus"),
    }
}

/// The major version of [`binary`]: 2 or 3.
pub fn major_version() -> u32 {
    static MAJOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MAJOR.get_or_init(|| {
        let out = Command::new(binary())
            .arg("--version")
            .output()
            .expect("run prometheus --version");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        text.split("version ")
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no version in {text:?}"))
    })
}

fn find_in_path(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} not in PATH (run scripts/setup)"))
}
