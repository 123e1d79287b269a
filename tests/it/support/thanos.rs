//! A real `thanos query` (the binary `THANOS_BIN` names) in front of the
//! sidecar under test, and Thanos' own sidecar beside it, on loopback
//! ports, killed when dropped; and `thanos tools bucket verify` over what
//! the sidecar uploaded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::free_port;

pub struct ThanosQuery {
    pub http_port: u16,
    log: PathBuf,
    child: Child,
}

impl ThanosQuery {
    /// The binary to run; `None` (and a note) when `THANOS_BIN` is unset,
    /// and the caller skips its check.
    pub fn binary() -> Option<String> {
        let binary = std::env::var("THANOS_BIN").ok();
        if binary.is_none() {
            eprintln!("THANOS_BIN is not set; skipping the Thanos Querier check");
        }
        binary
    }

    pub fn start(binary: &str, endpoint_port: u16, extra_args: &[&str], dir: &Path) -> ThanosQuery {
        let http_port = free_port();
        let log = dir.join("query.log");
        let child = Command::new(binary)
            .arg("query")
            .args(extra_args)
            .arg(format!("--http-address=127.0.0.1:{http_port}"))
            .arg(format!("--grpc-address=127.0.0.1:{}", free_port()))
            .arg(format!("--endpoint=127.0.0.1:{endpoint_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("querier log"))
            .spawn()
            .expect("start thanos query");
        ThanosQuery {
            http_port,
            log,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ThanosQuery {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Thanos' own `thanos sidecar` next to a Prometheus, for answers and
/// uploads to compare with ours.
pub struct GoSidecar {
    pub grpc_port: u16,
    child: Child,
}

impl GoSidecar {
    /// Started with its TSDB directory `tsdb` and `extra` flags.
    pub fn start(binary: &str, prometheus_url: &str, tsdb: &Path, extra: &[String]) -> GoSidecar {
        let grpc_port = free_port();
        std::fs::create_dir_all(tsdb).expect("Go sidecar's TSDB directory");
        let child = Command::new(binary)
            .arg("sidecar")
            .arg(format!("--prometheus.url={prometheus_url}"))
            .arg(format!("--tsdb.path={}", tsdb.display()))
            .arg(format!("--http-address=127.0.0.1:{}", free_port()))
            .arg(format!("--grpc-address=127.0.0.1:{grpc_port}"))
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("start thanos sidecar");
        GoSidecar { grpc_port, child }
    }
}

impl Drop for GoSidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `thanos tools bucket verify` must pass on the bucket `objstore` names,
/// warning about nothing, and `thanos tools bucket inspect` must list
/// `ulids`: Thanos' own client reads what the sidecar wrote. `env` points
/// that client at an emulator. Without THANOS_BIN this says so in one line
/// and checks nothing.
pub fn bucket_verify(objstore: &str, env: &[(String, String)], ulids: &[&str]) {
    let Ok(bin) = std::env::var("THANOS_BIN") else {
        eprintln!("THANOS_BIN is not set; skipping `thanos tools bucket verify`");
        return;
    };
    let run = |tool: &str| {
        let out = Command::new(&bin)
            .args(["tools", "bucket", tool])
            .arg(format!("--objstore.config={objstore}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run thanos");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "thanos tools bucket {tool}: {}\n{stdout}{stderr}",
            out.status
        );
        (stdout, stderr)
    };
    let (_, log) = run("verify");
    assert!(log.contains("verify task completed"), "{log}");
    assert!(
        !log.contains("level=warn") && !log.contains("level=error"),
        "{log}"
    );
    let (table, log) = run("inspect");
    for u in ulids {
        assert!(
            table.contains(u),
            "thanos tools bucket inspect does not list {u}:\n{table}{log}"
        );
    }
}
