//! A real Prometheus (the Debian package) with its own data dir and config.

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
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            external_labels: Some(vec![("cluster", "test"), ("replica", "0")]),
            min_block_duration: "2h",
            max_block_duration: "2h",
            extra_args: Vec::new(),
            scrape_self: true,
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
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory that lives as long as this Prometheus.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.yml")
    }

    /// Rewrites the config with other external labels; `reload()` applies it.
    pub fn write_config(&self, external_labels: Option<Vec<(&str, &str)>>) {
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
        std::fs::write(self.config_path(), yaml).expect("write prometheus.yml");
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
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", self.config_path().display()))
            .arg(format!("--storage.tsdb.path={}", self.data_dir().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg(format!(
                "--storage.tsdb.min-block-duration={}",
                self.options.min_block_duration
            ))
            .arg(format!(
                "--storage.tsdb.max-block-duration={}",
                self.options.max_block_duration
            ))
            .arg("--web.enable-lifecycle")
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .expect("start prometheus (is it installed? run scripts/setup)"),
        );
        let url = format!("{}/-/ready", self.url());
        // Prometheus with a web config answers 401 once it is up.
        let up = wait_for(Duration::from_secs(30), || {
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
