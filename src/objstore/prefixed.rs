//! The objstore `prefix`: every key becomes `<prefix>/<key>`, and listings
//! are given back without it, so the shipper never sees the prefix.

use std::path::Path;

use super::{Bucket, Cancel, Error};

pub struct Prefixed {
    inner: Box<dyn Bucket>,
    /// `<prefix>/`, the prefix already trimmed of slashes by the config parser.
    prefix: String,
}

impl Prefixed {
    pub fn new(inner: Box<dyn Bucket>, prefix: &str) -> Prefixed {
        Prefixed {
            inner,
            prefix: format!("{}/", prefix.trim_matches('/')),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl Bucket for Prefixed {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
        self.inner.upload_file(&self.key(key), path, cancel)
    }

    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        self.inner.upload_bytes(&self.key(key), data, cancel)
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        self.inner.exists(&self.key(key))
    }

    fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        self.inner.size(&self.key(key))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.inner.get(&self.key(key))
    }

    fn iter(&self, dir: &str) -> Result<Vec<String>, Error> {
        let listed = self.inner.iter(&self.key(dir))?;
        Ok(listed
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.delete(&self.key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::filesystem::Filesystem;

    #[test]
    fn keys_carry_the_prefix_and_listings_drop_it() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Filesystem::new(dir.path(), "fs".into()).unwrap();
        let b = Prefixed::new(Box::new(fs), "foo/bar");
        let cancel = Cancel::new();
        b.upload_bytes("A/meta.json", b"{}", &cancel).unwrap();
        assert!(dir.path().join("foo/bar/A/meta.json").is_file());
        assert!(b.exists("A/meta.json").unwrap());
        assert_eq!(b.iter("").unwrap(), vec!["A/"]);
        assert_eq!(b.iter("A/").unwrap(), vec!["A/meta.json"]);
        assert_eq!(b.get("A/meta.json").unwrap(), b"{}");
    }
}
