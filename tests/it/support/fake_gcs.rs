//! A GCS emulator: fsouza/fake-gcs-server (built by scripts/setup where `go`
//! exists), in memory, over plain HTTP on a free loopback port, with the
//! bucket created. Its request log shows what the sidecar sent.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{free_port, http_get, url_escape, wait_for};

pub struct FakeGcs {
    pub port: u16,
    pub bucket: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
    token: OnceCell<TokenStub>,
}

/// Where scripts/setup installs the emulator.
pub fn binary() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("thanos-sidecar/fake-gcs-server/fake-gcs-server")
}

impl FakeGcs {
    /// The emulator, or `None` (with one line saying why) when it is not installed.
    pub fn start() -> Option<FakeGcs> {
        if !binary().exists() {
            println!(
                "skipping: fake-gcs-server is not at {} (scripts/setup builds it when `go` is on PATH)",
                binary().display()
            );
            return None;
        }
        let mut gcs = FakeGcs {
            port: free_port(),
            bucket: "thanos".into(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
            starts: 0,
            token: OnceCell::new(),
        };
        gcs.resume();
        Some(gcs)
    }

    /// Starts the server (again) on the same port, with an empty bucket.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("fake-gcs-{}.log", self.starts)),
        )
        .expect("log file");
        let port = self.port.to_string();
        let child = Command::new(binary())
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port,
                "-backend",
                "memory",
            ])
            .args(["-external-url", &self.url(), "-log-level", "info"])
            // Google's Go client (Thanos') reads objects through the XML
            // API, `GET /bucket/object`, which the emulator routes only for
            // requests to its public host (storage.googleapis.com unless set).
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start fake-gcs-server");
        self.child = Some(child);
        let url = format!("{}/storage/v1/b", self.url());
        assert!(
            wait_for(Duration::from_secs(20), || http_get(&url).0 == 200),
            "fake-gcs-server did not start: {}",
            self.log()
        );
        ureq::post(&format!("{url}?project=test"))
            .send_string(&format!("{{\"name\": \"{}\"}}", self.bucket))
            .expect("create the bucket");
    }

    /// Kills the server: connections are refused until [`FakeGcs::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The objstore YAML for this bucket (the sidecar finds the emulator
    /// through STORAGE_EMULATOR_HOST).
    pub fn config(&self, extra: &str) -> String {
        format!("type: GCS\nconfig:\n  bucket: {}\n{extra}", self.bucket)
    }

    /// The environment that points the sidecar at this emulator.
    pub fn env(&self) -> (&'static str, String) {
        ("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", self.port))
    }

    /// The environment that points Thanos' Go client (a `thanos tools
    /// bucket` run) at this emulator: STORAGE_EMULATOR_HOST, and
    /// credentials whose token comes from a local stub. Thanos builds its
    /// HTTP transport with Google's default-credentials lookup before the
    /// storage client sees STORAGE_EMULATOR_HOST, so without credentials it
    /// stops at "google: could not find default credentials"; the emulator
    /// ignores the token it then sends.
    pub fn thanos_env(&self) -> Vec<(String, String)> {
        let stub = self.token.get_or_init(TokenStub::start);
        let file = self.dir.path().join("thanos-credentials.json");
        std::fs::write(
            &file,
            format!(
                r#"{{"type": "authorized_user", "client_id": "emulator", "client_secret": "emulator", "refresh_token": "emulator", "token_uri": "http://127.0.0.1:{}/token"}}"#,
                stub.port
            ),
        )
        .expect("write the credentials file");
        let (k, v) = self.env();
        vec![
            (k.to_string(), v),
            (
                "GOOGLE_APPLICATION_CREDENTIALS".into(),
                file.display().to_string(),
            ),
        ]
    }

    /// Every log, all runs, in order.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("fake-gcs-{n}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// `METHOD /path?query` of each request the current run answered.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("fake-gcs-{}.log", self.starts)),
        )
        .unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let start = line.find("] \\\"")? + 4;
                let rest = &line[start..];
                let end = rest.find(" HTTP/")?;
                Some(rest[..end].to_string())
            })
            .collect()
    }

    /// All object names in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let (code, body) = http_get(&format!("{}/storage/v1/b/{}/o", self.url(), self.bucket));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("list JSON");
        let mut keys: Vec<String> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// An object's bytes, or `None` when absent.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?alt=media",
            self.url(),
            self.bucket,
            url_escape(key)
        );
        match ureq::get(&url).call() {
            Ok(resp) => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut resp.into_reader(), &mut out).expect("read object");
                Some(out)
            }
            Err(ureq::Error::Status(404, _)) => None,
            Err(e) => panic!("get {key}: {e}"),
        }
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An OAuth 2 token endpoint that grants any refresh: enough for a Google
/// client to put a bearer token on requests to the emulator.
struct TokenStub {
    port: u16,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl TokenStub {
    fn start() -> TokenStub {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("token stub listen"));
        let port = server.server_addr().to_ip().expect("IP listener").port();
        let srv = server.clone();
        let thread = std::thread::spawn(move || {
            for req in srv.incoming_requests() {
                let body =
                    r#"{"access_token": "emulator", "token_type": "Bearer", "expires_in": 3600}"#;
                let json = tiny_http::Header::from_bytes("Content-Type", "application/json")
                    .expect("header");
                let _ = req.respond(tiny_http::Response::from_string(body).with_header(json));
            }
        });
        TokenStub {
            port,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenStub {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
