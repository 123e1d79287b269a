//! Object storage, configured by Thanos' objstore YAML (`--objstore.config(-file)`).
//!
//! The sidecar supports the back ends its users deploy on small hosts:
//! `S3` (any S3-compatible server), `GCS`, `AZURE` (Blob Storage, Azurite) and
//! `FILESYSTEM`. All are validated at
//! start-up, strictly, so a typo in a key stops the daemon with the key's name
//! instead of silently uploading nowhere.
//!
//! [`open`] builds the configured back end, wrapped in the key prefix and in
//! the `thanos_objstore_bucket_*` metrics, behind the small [`Bucket`] trait
//! the shipper needs. Uploads stream from a file on disk, so memory does not
//! grow with the size of a block.

mod azure;
mod azure_token;
mod config;
pub(crate) mod filesystem;
mod gcs;
mod metrics;
mod prefixed;
mod retry;
mod s3;

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::{AzureConfig, Backend, Config, FilesystemConfig, GcsConfig, S3Config};

/// What went wrong in a bucket operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The daemon is shutting down; the operation was abandoned.
    Cancelled,
    Other,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn other(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Other,
            message: message.into(),
        }
    }

    pub fn not_found(key: &str) -> Error {
        Error {
            kind: ErrorKind::NotFound,
            message: format!("object {key} not found"),
        }
    }

    pub fn cancelled() -> Error {
        Error {
            kind: ErrorKind::Cancelled,
            message: "operation cancelled: shutting down".into(),
        }
    }

    /// Prefixes the message with what was being done, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }

    fn from_io(e: io::Error, what: impl fmt::Display) -> Error {
        let kind = match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ if is_cancelled_io(&e) => ErrorKind::Cancelled,
            _ => ErrorKind::Other,
        };
        Error {
            kind,
            message: format!("{what}: {e}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Why an objstore configuration was refused: while parsing it (flags) or
/// while opening the bucket it describes (start-up). The text is what the
/// operator sees after the flag's name; each variant builds it once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or a wrong top level (unknown key, nesting too deep).
    #[error("invalid objstore config: {0}")]
    Syntax(String),
    /// The `config` block does not decode as the type's keys.
    #[error("invalid objstore config for type {kind}: {message}")]
    Keys { kind: &'static str, message: String },
    /// The type's keys decode but are refused: missing, conflicting, or
    /// not supported by this sidecar's client.
    #[error("objstore config for type {kind}: {message}")]
    Invalid { kind: &'static str, message: String },
    #[error("objstore config: missing directory for filesystem bucket (config.directory)")]
    MissingDirectory,
    #[error("objstore config: directory {}: {source}", path.display())]
    Directory {
        path: std::path::PathBuf,
        source: io::Error,
    },
    /// A type Thanos knows that this sidecar does not implement.
    #[error("objstore config: bucket type {0} is not supported by this sidecar (supported: S3, GCS, AZURE, FILESYSTEM)")]
    NotImplemented(String),
    #[error("objstore config: bucket with type {0} is not supported")]
    UnknownType(String),
    /// Building the client failed outside the YAML's keys (credentials from
    /// the environment or a file); the text names its source.
    #[error("{0}")]
    Client(String),
    /// The bucket refused a start-up call (Azure's container creation).
    #[error(transparent)]
    Bucket(#[from] Error),
    #[error("registering bucket metrics: {0}")]
    Metrics(#[source] prom::Error),
}

impl ConfigError {
    pub(crate) fn invalid(kind: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            kind,
            message: message.into(),
        }
    }
}

/// A flag that stops in-flight work at its next check: set by the shipper's
/// handle on shutdown, and by a failing worker to stop its siblings.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A token cancelled with this one, or on its own without affecting this one.
    pub fn child(&self) -> Cancel {
        Cancel {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(self.own.clone()),
        }
    }

    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::SeqCst))
    }

    pub fn check(&self) -> Result<(), Error> {
        if self.is_cancelled() {
            Err(Error::cancelled())
        } else {
            Ok(())
        }
    }

    /// Sleeps `d` (a retry's backoff), waking early with an error on cancel.
    pub fn sleep(&self, d: Duration) -> Result<(), Error> {
        let end = Instant::now() + d;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

/// The file to upload and its size, with errors naming its path.
fn open_sized(path: &Path) -> Result<(std::fs::File, u64), Error> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::from_io(e, format!("open {}", path.display())))?;
    let size = file
        .metadata()
        .map_err(|e| Error::from_io(e, format!("stat {}", path.display())))?
        .len();
    Ok((file, size))
}

const CANCELLED_IO: &str = "upload cancelled";

fn is_cancelled_io(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string() == CANCELLED_IO
}

/// A reader that fails once `cancel` is set, so a shutdown interrupts an
/// upload between two reads instead of waiting for the whole object.
pub(crate) struct CancelReader<'a, R> {
    pub inner: R,
    pub cancel: &'a Cancel,
}

impl<R: Read> Read for CancelReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other(CANCELLED_IO));
        }
        self.inner.read(buf)
    }
}

/// What the sidecar needs from a bucket. Keys are `/`-separated; a "directory"
/// is a key prefix ending in `/`.
pub trait Bucket: Send + Sync {
    /// The bucket's name as Thanos shows it in the `bucket` metric label.
    fn name(&self) -> String;

    /// Uploads the file at `path` as `key`, streaming it from disk; returns its size.
    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error>;

    /// Uploads a small object held in memory (e.g. `meta.json`).
    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error>;

    /// Whether an object (not a directory) named `key` exists.
    fn exists(&self, key: &str) -> Result<bool, Error>;

    /// The size of the object named `key` as the bucket stores it; `None`
    /// when absent (Thanos' `Attributes`).
    fn size(&self, key: &str) -> Result<Option<u64>, Error>;

    /// The whole content of a small object; [`ErrorKind::NotFound`] when absent.
    fn get(&self, key: &str) -> Result<Vec<u8>, Error>;

    /// The objects and directories directly under `dir` (`""` for the root),
    /// as full keys; directories end with `/`.
    fn iter(&self, dir: &str) -> Result<Vec<String>, Error>;

    /// Deletes an object; deleting an absent one is not an error.
    fn delete(&self, key: &str) -> Result<(), Error>;
}

/// Opens the configured bucket with its prefix and metrics registered in `registry`.
pub fn open(config: &Config, registry: &prom::Registry) -> Result<Arc<dyn Bucket>, ConfigError> {
    let name = config.bucket_name();
    let backend: Box<dyn Bucket> = match &config.backend {
        Backend::Filesystem(fs) => Box::new(filesystem::Filesystem::new(&fs.directory, name)?),
        Backend::S3(s3) => Box::new(s3::S3::new(s3)?),
        Backend::Gcs(gcs) => Box::new(gcs::Gcs::new(gcs)?),
        Backend::Azure(az) => Box::new(azure::Azure::new(az)?),
    };
    let prefixed: Box<dyn Bucket> = if config.prefix.is_empty() {
        backend
    } else {
        Box::new(prefixed::Prefixed::new(backend, &config.prefix))
    };
    let instrumented =
        metrics::Instrumented::new(prefixed, registry).map_err(ConfigError::Metrics)?;
    Ok(Arc::new(instrumented))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_cancel_follows_parent_but_not_the_other_way() {
        let parent = Cancel::new();
        let child = parent.child();
        child.cancel();
        assert!(child.is_cancelled());
        assert!(!parent.is_cancelled());
        let other = parent.child();
        parent.cancel();
        assert!(other.is_cancelled());
        assert_eq!(other.check().unwrap_err().kind, ErrorKind::Cancelled);
    }

    #[test]
    fn cancel_reader_stops_reading() {
        let cancel = Cancel::new();
        let mut r = CancelReader {
            inner: &b"abcdef"[..],
            cancel: &cancel,
        };
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        cancel.cancel();
        let err = r.read(&mut buf).unwrap_err();
        assert!(is_cancelled_io(&err));
        assert_eq!(Error::from_io(err, "x").kind, ErrorKind::Cancelled);
    }
}
