//! A real Azure Blob Storage emulator: Azurite (`azurite-blob`, installed by
//! scripts/setup into ~/.cache/thanos-sidecar), on a free loopback port, with
//! its data in a temp dir so it can be stopped and started again on the same
//! port and data ("an outage"). Azurite checks every request's Shared Key
//! signature. Its access log (one line per request) shows what the sidecar
//! did. Objects are read back with a few lines of Python that sign their own
//! requests: a client independent of the sidecar's.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_get, wait_for};

/// Azurite's version, pinned in scripts/setup too.
pub const VERSION: &str = "3.37.0";
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key.
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    pub port: u16,
    pub container: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Where scripts/setup installs `azurite-blob`, else one on PATH.
fn binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cache"));
    let local = cache
        .join("thanos-sidecar")
        .join(format!("azurite-{VERSION}"))
        .join("node_modules/.bin/azurite-blob");
    if local.exists() {
        return Some(local);
    }
    let on_path = Command::new("azurite-blob")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    on_path.then(|| PathBuf::from("azurite-blob"))
}

/// Lists the container (one name per line) or prints one blob, signing
/// with Shared Key: the client the tests trust.
const CLIENT: &str = r#"
import base64, hashlib, hmac, sys, urllib.parse, urllib.request, urllib.error
from email.utils import formatdate
port, account, key, container, op = sys.argv[1:6]
def call(path, query):
    date = formatdate(usegmt=True)
    canon_q = "".join("\n%s:%s" % (k, v) for k, v in sorted(query.items()))
    sts = "GET\n" + "\n" * 11 + "x-ms-date:%s\nx-ms-version:2021-08-06\n/%s/%s%s" % (date, account, account, path) + canon_q
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
    url = "http://127.0.0.1:%s/%s%s" % (port, account, path)
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, headers={"x-ms-date": date, "x-ms-version": "2021-08-06",
                                               "Authorization": "SharedKey %s:%s" % (account, sig)})
    return urllib.request.urlopen(req).read()
if op == "list":
    import xml.etree.ElementTree as ET
    marker = None
    while True:
        q = {"restype": "container", "comp": "list"}
        if marker:
            q["marker"] = marker
        root = ET.fromstring(call("/" + container, q))
        for b in root.iter("Blob"):
            print(b.find("Name").text)
        marker = root.findtext("NextMarker")
        if not marker:
            break
else:
    try:
        sys.stdout.buffer.write(call("/%s/%s" % (container, urllib.parse.quote(sys.argv[6])), {}))
    except urllib.error.HTTPError as e:
        if e.code == 404:
            sys.exit(3)
        raise
"#;

impl Azurite {
    /// Azurite on a free port, or `None` (with one line saying why) when it
    /// is not installed: run scripts/setup.
    pub fn start() -> Option<Azurite> {
        let Some(_) = binary() else {
            eprintln!(
                "skipping: azurite-blob {VERSION} is not installed (scripts/setup installs it with npm)"
            );
            return None;
        };
        let mut azurite = Azurite {
            port: free_port(),
            container: "thanos".into(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        azurite.restart();
        Some(azurite)
    }

    /// Starts Azurite (again) on the same port and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "Azurite is already running");
        let bin = binary().expect("azurite-blob");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let child = Command::new(bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .arg("--location")
            .arg(&data)
            .args(["--disableTelemetry", "--skipApiVersionCheck"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start azurite-blob");
        self.child = Some(child);
        let url = format!("{}/{ACCOUNT}?comp=list", self.url());
        let up = wait_for(Duration::from_secs(30), || http_get(&url).0 != 0);
        assert!(up, "Azurite did not start; log:\n{}", self.log());
    }

    /// Stops Azurite with SIGTERM, so it saves its metadata (it keeps the
    /// container list in memory and writes it out periodically and on exit);
    /// the data stays for [`Azurite::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let exited = wait_for(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The objstore YAML: Azurite's connection string with `endpoint`
    /// (`127.0.0.1:port`, so a proxy can sit between) as BlobEndpoint.
    pub fn config(&self, endpoint: &str, extra: &str, prefix: &str) -> String {
        format!(
            "type: AZURE\nconfig:\n  storage_account: {ACCOUNT}\n  container: {}\n  storage_connection_string: \"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint=http://{endpoint}/{ACCOUNT};\"\n{extra}prefix: \"{prefix}\"\n",
            self.container
        )
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("azurite.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// `METHOD /path?query` of each request Azurite logged, in order.
    pub fn requests(&self) -> Vec<String> {
        super::logged_requests(&self.log(), "\"")
    }

    fn client(&self, args: &[&str]) -> (Option<i32>, Vec<u8>) {
        let out = Command::new("python3")
            .args([
                "-c",
                CLIENT,
                &self.port.to_string(),
                ACCOUNT,
                KEY,
                &self.container,
            ])
            .args(args)
            .output()
            .expect("run python3");
        if !matches!(out.status.code(), Some(0 | 3)) {
            panic!("Azure client: {}", String::from_utf8_lossy(&out.stderr));
        }
        (out.status.code(), out.stdout)
    }

    /// All blob names in the container.
    pub fn keys(&self) -> Vec<String> {
        let (_, out) = self.client(&["list"]);
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A blob's bytes; `None` when absent.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.client(&["get", key]) {
            (Some(0), data) => Some(data),
            _ => None,
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}
