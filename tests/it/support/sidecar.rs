//! The sidecar binary under test, run as an operator would run it.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, http_get, metric_value, wait_for};

pub struct Sidecar {
    pub http_port: u16,
    pub grpc_port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// The binary under test: `THANOS_SIDECAR_BIN` when set (the static release
/// build runs the whole suite that way), else the one cargo just built.
pub fn binary() -> PathBuf {
    match std::env::var_os("THANOS_SIDECAR_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_thanos-sidecar")),
    }
}

/// The emulator the binary under test runs in, from `THANOS_SIDECAR_RUNNER`
/// (e.g. `qemu-aarch64-static`: scripts/test-targets runs the suite against
/// each foreign build that way), or None for a native binary.
pub fn emulated() -> Option<String> {
    std::env::var("THANOS_SIDECAR_RUNNER")
        .ok()
        .filter(|runner| !runner.is_empty())
}

/// True, after saying why on stderr, when the binary runs under an emulator
/// and `what` the test measures is the emulator's rather than the sidecar's
/// (qemu-user's RSS holds its translated code, its threads and its timing
/// are its own), so the test has nothing meaningful to check.
pub fn skip_if_emulated(what: &str) -> bool {
    match emulated() {
        Some(runner) => {
            // Straight to the process' stderr, past libtest's capture of
            // `eprintln!`, so the reason shows in the run's output (and
            // scripts/test-targets counts these lines).
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped under {runner}: {what} would measure the emulator, not the sidecar"
            );
            true
        }
        None => false,
    }
}

/// A command that runs the binary under test, in its emulator if it has one
/// (`runner binary args...`): every test spawns the sidecar through this.
pub fn command() -> Command {
    match emulated() {
        Some(runner) => {
            let mut cmd = Command::new(runner);
            cmd.arg(binary());
            cmd
        }
        None => Command::new(binary()),
    }
}

impl Sidecar {
    /// Starts `thanos-sidecar sidecar` with loopback listeners and `args`.
    pub fn start(args: &[String]) -> Sidecar {
        Sidecar::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Sidecar {
        let mut sidecar = Sidecar::spawn(args, env);
        let url = sidecar.url("/-/healthy");
        let healthy = wait_for(Duration::from_secs(10), || {
            http_get(&url).0 == 200 || sidecar.has_exited()
        });
        assert!(
            healthy,
            "sidecar HTTP server did not come up; log:\n{}",
            sidecar.log()
        );
        sidecar
    }

    /// Starts the sidecar without waiting for anything (e.g. when its HTTP
    /// server speaks TLS, or it is expected to fail).
    pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Sidecar {
        Sidecar::spawn_with_grpc_port(args, env, free_port())
    }

    /// As `spawn`, with the gRPC listener on `grpc_port` (e.g. one taken).
    pub fn spawn_with_grpc_port(args: &[String], env: &[(&str, &str)], grpc_port: u16) -> Sidecar {
        let http_port = free_port();
        let mut argv = vec![
            "sidecar".to_string(),
            format!("--http-address=127.0.0.1:{http_port}"),
            format!("--grpc-address=127.0.0.1:{grpc_port}"),
        ];
        argv.extend_from_slice(args);
        Sidecar::spawn_argv(&argv, env, http_port, grpc_port)
    }

    /// Runs the binary with exactly `argv` (command included), which must make
    /// it listen on `http_port` and `grpc_port`, reached on 127.0.0.1.
    pub fn spawn_argv(
        argv: &[String],
        env: &[(&str, &str)],
        http_port: u16,
        grpc_port: u16,
    ) -> Sidecar {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("sidecar.log")).expect("log file");
        let child = command()
            .args(argv)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start thanos-sidecar");
        Sidecar {
            http_port,
            grpc_port,
            dir,
            child,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.url(path))
    }

    pub fn ready(&self) -> bool {
        self.get("/-/ready").0 == 200
    }

    pub fn wait_ready(&self, timeout: Duration) -> bool {
        wait_for(timeout, || self.ready())
    }

    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.get("/metrics").1, series)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sidecar.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_for(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as systemd and Kubernetes do.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
