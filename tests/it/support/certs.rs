//! Test certificates made with the `openssl` command: two CAs, server and
//! client certificates for loopback, each with its own key.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `ca` and `other-ca`; `server` (for 127.0.0.1 and localhost) and
    /// `client` signed by `ca`; `rogue-client` signed by `other-ca`.
    pub fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf("server", "ca", "serverAuth");
        pki.leaf("client", "ca", "clientAuth");
        pki.leaf("rogue-client", "other-ca", "clientAuth");
        pki
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `NAME.pem`, the certificate.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pem"))
    }

    /// `NAME-key.pem`, its private key.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}-key.pem"))
    }

    pub fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn ca(&self, name: &str) {
        openssl(
            self.dir(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    /// A new key and certificate `name`, signed by `ca`.
    pub fn leaf(&self, name: &str, ca: &str, usage: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir().join(&ext),
            format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n"),
        )
        .expect("write extensions");
        openssl(
            self.dir(),
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        let serial = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(1)
        );
        openssl(
            self.dir(),
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}-key.pem"),
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
