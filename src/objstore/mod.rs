//! Object storage, configured by Thanos' objstore YAML (`--objstore.config(-file)`).
//!
//! The sidecar supports the two back ends its users deploy on small hosts:
//! `S3` (any S3-compatible server) and `FILESYSTEM`. Both are validated at
//! start-up, strictly, so a typo in a key stops the daemon with the key's name
//! instead of silently uploading nowhere.

mod config;

pub use config::{Backend, Config, FilesystemConfig, S3Config};
