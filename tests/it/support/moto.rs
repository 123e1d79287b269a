//! A real S3 server: moto (`moto_server`), on a free loopback port, in
//! IAM-auth mode so it checks every request's SigV4 signature. Its request
//! log (one line per request, in arrival order) shows what the sidecar did.
//! (Without auth, the same setup runs and any key pair is accepted.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_get, wait_for};

pub struct Moto {
    pub port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// Creates a user with full rights, its key pair and the bucket; moto lets
/// these first unauthenticated calls through (INITIAL_NO_AUTH_ACTION_COUNT).
const SETUP: &str = r#"
import boto3, json, sys
url = sys.argv[1]
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="sidecar")
key = iam.create_access_key(UserName="sidecar")["AccessKey"]
iam.put_user_policy(UserName="sidecar", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket=sys.argv[2])
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

impl Moto {
    /// moto checking every request's signature.
    pub fn start() -> Moto {
        Moto::launch(true)
    }

    /// moto without authentication: its signature check wrongly refuses
    /// any LIST with a `/` in the prefix (boto3's and Thanos' too), so
    /// tests that list a prefixed bucket use this one.
    pub fn start_without_auth() -> Moto {
        Moto::launch(false)
    }

    fn launch(auth: bool) -> Moto {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("log file");
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start moto_server (pip install 'moto[server]')");
        let mut moto = Moto {
            port,
            bucket: "thanos".into(),
            access_key: String::new(),
            secret_key: String::new(),
            dir,
            child: Some(child),
        };
        let url = moto.url();
        let up = wait_for(Duration::from_secs(30), || http_get(&url).0 != 0);
        assert!(up, "moto did not start; log:\n{}", moto.log());
        let out = Command::new("python3")
            .args(["-c", SETUP, &url, &moto.bucket])
            .output()
            .expect("run python3 for the moto setup");
        assert!(
            out.status.success(),
            "moto setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = String::from_utf8_lossy(&out.stdout).to_string();
        let mut parts = keys.split_whitespace();
        moto.access_key = parts.next().expect("access key").to_string();
        moto.secret_key = parts.next().expect("secret key").to_string();
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The objstore YAML for this server; `endpoint` lets a proxy sit between.
    pub fn config(&self, endpoint: &str, extra: &str, prefix: &str) -> String {
        format!(
            "type: S3\nconfig:\n  bucket: {}\n  endpoint: \"{endpoint}\"\n  insecure: true\n  access_key: {}\n  secret_key: \"{}\"\n{extra}prefix: \"{prefix}\"\n",
            self.bucket, self.access_key, self.secret_key
        )
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// `METHOD /path?query` of each request moto answered, in order.
    pub fn requests(&self) -> Vec<String> {
        super::logged_requests(&self.log(), "] \"")
    }

    /// All keys in the bucket (moto in auth mode still lets the admin
    /// credentials list; the test reads with boto3 for independence).
    pub fn keys(&self) -> Vec<String> {
        let script = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        print(o["Key"])
"#;
        let out = self.python(script, &[]);
        out.lines().map(str::to_string).collect()
    }

    /// An object's bytes, read with boto3 (an independent S3 client).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let script = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
try:
    body = s3.get_object(Bucket=sys.argv[2], Key=sys.argv[5])["Body"].read()
except s3.exceptions.NoSuchKey:
    sys.exit(3)
sys.stdout.buffer.write(body)
"#;
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &self.url(),
                &self.bucket,
                &self.access_key,
                &self.secret_key,
                key,
            ])
            .output()
            .expect("run python3");
        match out.status.code() {
            Some(0) => Some(out.stdout),
            Some(3) => None,
            _ => panic!("get {key}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Uploads bytes as `key` with boto3.
    pub fn put(&self, key: &str, data: &[u8]) {
        let tmp = self.dir.path().join("put.tmp");
        std::fs::write(&tmp, data).expect("write temp");
        let script = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
s3.upload_file(sys.argv[6], sys.argv[2], sys.argv[5])
"#;
        self.python(script, &[key, tmp.to_str().expect("utf-8 path")]);
    }

    fn python(&self, script: &str, extra: &[&str]) -> String {
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &self.url(),
                &self.bucket,
                &self.access_key,
                &self.secret_key,
            ])
            .args(extra)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
