//! `thanos.shipper.json` (`--shipper.meta-file-name`): the blocks already shipped.
//!
//! Prometheus reads the same file (`--storage.tsdb.delay-compact-file.path`)
//! to hold back compaction of blocks not uploaded yet, so its format is
//! Thanos' exactly, and it is replaced atomically: a reader sees the old list
//! or the new one, never a torn file, even across a crash.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::meta::go_json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipperFile {
    pub version: i64,
    /// `null` when empty, as Go writes a nil slice.
    pub uploaded: Option<Vec<Ulid>>,
}

#[derive(Debug)]
pub enum ReadError {
    Missing,
    Invalid(String),
}

pub fn read(path: &Path) -> Result<Vec<Ulid>, ReadError> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => {
            return Err(ReadError::Invalid(format!(
                "failed to read {}: {e}",
                path.display()
            )))
        }
    };
    let file: ShipperFile = serde_json::from_slice(&data).map_err(|e| {
        ReadError::Invalid(format!("failed to parse {} as JSON: {e}", path.display()))
    })?;
    if file.version != 1 {
        return Err(ReadError::Invalid(format!(
            "unexpected meta file version {}",
            file.version
        )));
    }
    Ok(file.uploaded.unwrap_or_default())
}

/// Writes `<path>.tmp`, syncs it, renames it over `path` and syncs the directory.
pub fn write(path: &Path, uploaded: &[Ulid]) -> io::Result<()> {
    let file = ShipperFile {
        version: 1,
        uploaded: (!uploaded.is_empty()).then(|| uploaded.to_vec()),
    };
    let json = go_json(&file).map_err(io::Error::other)?;
    write_atomic(path, &json)
}

pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut f = File::create(tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_format_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thanos.shipper.json");
        assert!(matches!(read(&path), Err(ReadError::Missing)));
        write(&path, &[]).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n\t\"version\": 1,\n\t\"uploaded\": null\n}\n"
        );
        let a: Ulid = "01HZY5N3M1X1TR0J9V7Q9QW6XA".parse().unwrap();
        let b: Ulid = "01HZY5N3M1X1TR0J9V7Q9QW6XB".parse().unwrap();
        write(&path, &[a, b]).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"01HZY5N3M1X1TR0J9V7Q9QW6XA\",\n\t\t\"01HZY5N3M1X1TR0J9V7Q9QW6XB\"\n\t]\n}\n"
        );
        assert!(read(&path).ok() == Some(vec![a, b]));
        assert!(!dir.path().join("thanos.shipper.json.tmp").exists());
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, "{\"version\": 2, \"uploaded\": null}").unwrap();
        assert!(matches!(read(&path), Err(ReadError::Invalid(e)) if e.contains("version 2")));
        fs::write(&path, "garbage").unwrap();
        assert!(matches!(read(&path), Err(ReadError::Invalid(_))));
    }
}
