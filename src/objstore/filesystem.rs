//! `type: FILESYSTEM`: objects are files below a directory, as in Thanos.
//!
//! Unlike Thanos, an object is written to a hidden temporary file, synced, and
//! renamed into place: a crash mid-upload must never leave a truncated
//! `meta.json` that the next sync would take for a finished block.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Bucket, Cancel, CancelReader, ConfigError, Error};

pub struct Filesystem {
    root: PathBuf,
    name: String,
}

impl Filesystem {
    pub fn new(directory: &Path, name: String) -> Result<Filesystem, ConfigError> {
        let root = std::path::absolute(directory).map_err(|source| ConfigError::Directory {
            path: directory.to_path_buf(),
            source,
        })?;
        Ok(Filesystem { root, name })
    }

    fn path(&self, key: &str) -> Result<PathBuf, Error> {
        // Keys come from block ULIDs and file names, but a key must never
        // escape the bucket directory whatever it holds.
        if key.split('/').any(|part| part == "..") || key.starts_with('/') {
            return Err(Error::other(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn write(&self, key: &str, mut body: impl io::Read, cancel: &Cancel) -> Result<u64, Error> {
        let dest = self.path(key)?;
        let dir = dest
            .parent()
            .ok_or_else(|| Error::other(format!("invalid object key {key:?}")))?;
        fs::create_dir_all(dir)
            .map_err(|e| Error::from_io(e, format!("mkdir {}", dir.display())))?;
        let file_name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::other(format!("invalid object key {key:?}")))?;
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp)
                .map_err(|e| Error::from_io(e, format!("create {}", tmp.display())))?;
            let mut reader = CancelReader {
                inner: &mut body,
                cancel,
            };
            let n = io::copy(&mut reader, &mut f)
                .map_err(|e| Error::from_io(e, format!("copy to {}", dest.display())))?;
            f.flush()
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::from_io(e, format!("sync {}", tmp.display())))?;
            fs::rename(&tmp, &dest)
                .map_err(|e| Error::from_io(e, format!("rename to {}", dest.display())))?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

impl Bucket for Filesystem {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
        cancel.check()?;
        let f =
            File::open(path).map_err(|e| Error::from_io(e, format!("open {}", path.display())))?;
        self.write(key, f, cancel)
    }

    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        cancel.check()?;
        self.write(key, data, cancel).map(|_| ())
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        match fs::metadata(self.path(key)?) {
            Ok(m) => Ok(!m.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::from_io(e, format!("stat {key}"))),
        }
    }

    fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        match fs::metadata(self.path(key)?) {
            Ok(m) if !m.is_dir() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_io(e, format!("stat {key}"))),
        }
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(key),
            _ => Error::from_io(e, format!("read {}", path.display())),
        })
    }

    fn iter(&self, dir: &str) -> Result<Vec<String>, Error> {
        let dir = dir.trim_end_matches('/');
        let path = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path(dir)?
        };
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            // Like an object store: listing an absent prefix is empty.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::from_io(e, format!("list {}", path.display()))),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::from_io(e, format!("list {}", path.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if is_temp(&name) {
                continue;
            }
            let is_dir = entry
                .file_type()
                .map_err(|e| Error::from_io(e, format!("stat {name}")))?
                .is_dir();
            let key = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            out.push(if is_dir { format!("{key}/") } else { key });
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::from_io(e, format!("delete {key}"))),
        }
        // Empty parent directories disappear, as objects' prefixes do.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::ErrorKind;

    #[test]
    fn round_trip_layout_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let b = Filesystem::new(dir.path(), "fs".into()).unwrap();
        let cancel = Cancel::new();
        let src = dir.path().join("src");
        fs::write(&src, b"hello").unwrap();
        assert_eq!(b.upload_file("A/chunks/000001", &src, &cancel).unwrap(), 5);
        b.upload_bytes("A/meta.json", b"{}", &cancel).unwrap();
        assert!(b.exists("A/meta.json").unwrap());
        assert!(!b.exists("A").unwrap(), "a directory is not an object");
        assert!(!b.exists("B/meta.json").unwrap());
        assert_eq!(b.get("A/chunks/000001").unwrap(), b"hello");
        assert_eq!(b.get("nope").unwrap_err().kind, ErrorKind::NotFound);
        let root: Vec<String> = b
            .iter("")
            .unwrap()
            .into_iter()
            .filter(|k| k != "src")
            .collect();
        assert_eq!(root, vec!["A/"]);
        assert_eq!(b.iter("A").unwrap(), vec!["A/chunks/", "A/meta.json"]);
        assert_eq!(b.iter("Z/").unwrap(), Vec::<String>::new());
        b.delete("A/chunks/000001").unwrap();
        assert!(!dir.path().join("A/chunks").exists());
        b.delete("A/chunks/000001").unwrap();
        assert!(b.path("../x").is_err());
    }

    #[test]
    fn cancelled_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let b = Filesystem::new(dir.path(), "fs".into()).unwrap();
        let cancel = Cancel::new();
        cancel.cancel();
        let err = b.upload_bytes("A/meta.json", b"{}", &cancel).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Cancelled);
        assert!(!b.exists("A/meta.json").unwrap());
    }
}
