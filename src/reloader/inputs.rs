//! What the reloader reads on every check: the config template, rendered
//! (gzip, `$(VAR)`) into the output Prometheus loads, and the rule trees,
//! each reduced to a SHA-256 digest so only a real change reloads.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::metrics::Metrics;
use super::ReloaderConfig;
use crate::envsubst;

/// gzip magic and deflate method, as prometheus-operator's compressed configs start.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// What is read on every apply, and where the expanded config goes.
pub(super) struct Inputs {
    pub(super) config_file: Option<PathBuf>,
    pub(super) output: Option<PathBuf>,
    pub(super) rule_dirs: Vec<PathBuf>,
}

/// Digests of what Prometheus should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    config: Option<[u8; 32]>,
    rules: Option<[u8; 32]>,
}

impl Inputs {
    /// Checks that every watched path exists, as Thanos' watch registration does.
    pub(super) fn new(config: &ReloaderConfig) -> Result<Inputs, String> {
        if let Some(file) = &config.config_file {
            match fs::metadata(file) {
                Ok(m) if m.is_dir() => {
                    return Err(format!(
                        "--reloader.config-file {} is a directory, not a file",
                        file.display()
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("--reloader.config-file {}: {e}", file.display())),
            }
        }
        for dir in &config.rule_dirs {
            match fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "--reloader.rule-dir {} is not a directory",
                        dir.display()
                    ))
                }
                Err(e) => return Err(format!("--reloader.rule-dir {}: {e}", dir.display())),
            }
        }
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(Inputs {
            config_file: config.config_file.as_deref().map(absolute),
            output: match &config.config_file {
                Some(_) => config.config_envsubst_file.as_deref().map(absolute),
                None => None,
            },
            rule_dirs: config.rule_dirs.iter().map(|d| absolute(d)).collect(),
        })
    }

    /// Hashes the inputs and refreshes the expanded output.
    pub(super) fn check(&self, metrics: &Metrics) -> Result<Fingerprint, String> {
        let config = match &self.config_file {
            Some(file) => {
                let bytes = fs::read(file)
                    .map_err(|e| format!("read config file {}: {e}", file.display()))?;
                if let Some(out) = &self.output {
                    let rendered = render(&bytes).map_err(|e| {
                        if let RenderError::MissingVar(_) = e {
                            metrics.env_expansion_errors.set(1);
                        }
                        format!("{}: {e}", file.display())
                    })?;
                    metrics.env_expansion_errors.set(0);
                    write_if_changed(out, &rendered)
                        .map_err(|e| format!("write {}: {e}", out.display()))?;
                }
                let mut h = Sha256::new();
                hash_entry(&mut h, file, &bytes);
                Some(h.finalize().into())
            }
            None => None,
        };
        let rules = if self.rule_dirs.is_empty() {
            None
        } else {
            let mut h = Sha256::new();
            for dir in &self.rule_dirs {
                // Resolved first, so a rule dir that is itself a symlink is walked.
                let root = fs::canonicalize(dir)
                    .map_err(|e| format!("rule dir {}: {e}", dir.display()))?;
                hash_tree(&mut h, &root)?;
            }
            Some(h.finalize().into())
        };
        Ok(Fingerprint { config, rules })
    }
}

#[derive(Debug)]
enum RenderError {
    Gzip(std::io::Error),
    NotUtf8,
    MissingVar(envsubst::MissingVar),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Gzip(e) => write!(f, "decompress gzip input: {e}"),
            RenderError::NotUtf8 => write!(f, "config is not valid UTF-8"),
            RenderError::MissingVar(e) => write!(f, "expand environment variables: {e}"),
        }
    }
}

/// Decompresses gzip input and expands `$(VAR)`. Input shorter than the gzip
/// magic is plain text (Thanos crashes on it).
fn render(input: &[u8]) -> Result<Vec<u8>, RenderError> {
    let decompressed;
    let text = if input.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(input)
            .read_to_end(&mut out)
            .map_err(RenderError::Gzip)?;
        decompressed = out;
        &decompressed[..]
    } else {
        input
    };
    let text = std::str::from_utf8(text).map_err(|_| RenderError::NotUtf8)?;
    envsubst::expand(text)
        .map(String::into_bytes)
        .map_err(RenderError::MissingVar)
}

/// Replaces `path` atomically (temp file and rename, mode 0644), unless it
/// already holds `bytes`: an unchanged config needs no write, and skipping it
/// keeps our own write from waking the directory watch.
fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if fs::read(path).is_ok_and(|current| current == bytes) {
        return Ok(());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover from a crash may have other permissions; start afresh.
    let _ = fs::remove_file(&tmp);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Thanos' per-file hash input: 0xFF, path, 0xFF, content.
fn hash_entry(h: &mut Sha256, path: &Path, content: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    h.update([0xff]);
    h.update(path.as_os_str().as_bytes());
    h.update([0xff]);
    h.update(content);
}

/// Hashes every regular file under `path` in name order. Symlinks are
/// followed to decide what an entry is (a ConfigMap's files are symlinks
/// into `..data`), but only real directories are descended, as Go's
/// `filepath.Walk` does. FIFOs and sockets are skipped: reading them blocks.
fn hash_tree(h: &mut Sha256, path: &Path) -> Result<(), String> {
    let target = fs::metadata(path).map_err(|e| format!("stat {}: {e}", path.display()))?;
    if target.is_file() {
        let content = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        hash_entry(h, path, &content);
        return Ok(());
    }
    let is_real_dir = fs::symlink_metadata(path)
        .map_err(|e| format!("stat {}: {e}", path.display()))?
        .is_dir();
    if !is_real_dir {
        return Ok(());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| format!("read dir {}: {e}", path.display()))? {
        let entry = entry.map_err(|e| format!("read dir {}: {e}", path.display()))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        hash_tree(h, &path.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn digest(dir: &Path) -> [u8; 32] {
        let mut h = Sha256::new();
        hash_tree(&mut h, dir).unwrap();
        h.finalize().into()
    }

    #[test]
    fn render_decompresses_gzip_and_keeps_short_input_plain() {
        assert_eq!(render(&gzip(b"a: b\n")).unwrap(), b"a: b\n");
        // Shorter than the gzip magic: plain text, not a crash.
        assert_eq!(render(b"").unwrap(), b"");
        assert_eq!(
            render(&[0x1f, 0x8b])
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "config is not valid UTF-8"
        );
        assert_eq!(render(b"x\n").unwrap(), b"x\n");
        let broken = [0x1f, 0x8b, 0x08, 0, 1, 2];
        assert!(matches!(render(&broken), Err(RenderError::Gzip(_))));
    }

    #[test]
    fn render_names_a_missing_variable() {
        let err = render(b"x: $(RELOADER_UNIT_SURELY_UNSET)").unwrap_err();
        assert!(matches!(err, RenderError::MissingVar(_)));
        assert!(
            err.to_string().contains("\"RELOADER_UNIT_SURELY_UNSET\""),
            "{err}"
        );
        // PATH is set in every test environment.
        let out = render(b"p: $(PATH)").unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("$(PATH)"));
    }

    #[test]
    fn output_is_replaced_atomically_with_mode_0644_and_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("prometheus.yml");
        write_if_changed(&out, b"one").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!dir.path().join("prometheus.yml.tmp").exists());
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&out);
        write_if_changed(&out, b"one").unwrap();
        assert_eq!(
            inode(&out),
            before,
            "unchanged content must not be rewritten"
        );
        write_if_changed(&out, b"two").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"two");
        assert_ne!(
            inode(&out),
            before,
            "a change is a new file renamed into place"
        );
    }

    #[test]
    fn rule_hash_follows_symlinks_and_sees_a_configmap_swap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("..v1")).unwrap();
        fs::write(root.join("..v1/a.yml"), "groups: []").unwrap();
        symlink("..v1", root.join("..data")).unwrap();
        symlink("..data/a.yml", root.join("a.yml")).unwrap();
        let first = digest(root);
        assert_eq!(digest(root), first, "stable without changes");

        // kubelet's swap: a new version dir, `..data` renamed over, the old removed.
        // Even equal bytes count, since the version dir's path is hashed (as in Thanos).
        fs::create_dir(root.join("..v2")).unwrap();
        fs::write(root.join("..v2/a.yml"), "groups: []").unwrap();
        symlink("..v2", root.join("..data_tmp")).unwrap();
        fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        fs::remove_dir_all(root.join("..v1")).unwrap();
        assert_ne!(digest(root), first);
    }

    #[test]
    fn rule_hash_covers_nested_files_and_names() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/r.yml"), "a").unwrap();
        let first = digest(dir.path());
        fs::write(dir.path().join("sub/r.yml"), "b").unwrap();
        let second = digest(dir.path());
        assert_ne!(first, second);
        fs::rename(dir.path().join("sub/r.yml"), dir.path().join("sub/s.yml")).unwrap();
        assert_ne!(
            digest(dir.path()),
            second,
            "a rename with equal content is a change"
        );
        // A dangling symlink is an error naming it, as in Thanos.
        symlink("gone", dir.path().join("dangling")).unwrap();
        let mut h = Sha256::new();
        let err = hash_tree(&mut h, dir.path()).unwrap_err();
        assert!(err.contains("dangling"), "{err}");
    }
}
