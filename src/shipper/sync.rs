//! One shipper sync, step by step as Thanos' `Shipper.Sync`: discover the
//! blocks, decide per block, upload what is missing, record it.
//!
//! The guarantee that matters: a ULID is recorded in the shipper file only
//! after its `meta.json`, the last object, is in the bucket. Anything that
//! stops a sync half-way (an error, a shutdown, a kill) leaves the block
//! unrecorded and without `meta.json` in the bucket, so the next sync uploads
//! it again from scratch.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prom::{IntCounter, IntGauge, Registry};
use sha2::{Digest, Sha256};
use ulid::Ulid;

use super::meta::{go_time, File, Meta, ObjectHash};
use super::state;
use crate::objstore::{Bucket, Cancel, ErrorKind};
use crate::prometheus::Labels;

#[derive(Debug, Clone)]
pub struct Options {
    pub tsdb_path: PathBuf,
    pub meta_file_name: String,
    pub upload_compacted: bool,
    pub hash_sha256: bool,
    pub upload_concurrency: usize,
    pub allow_out_of_order_uploads: bool,
    pub skip_corrupted_blocks: bool,
}

pub struct Metrics {
    dir_syncs: IntCounter,
    dir_sync_failures: IntCounter,
    uploads: IntCounter,
    upload_failures: IntCounter,
    corrupted_blocks: IntCounter,
    upload_compacted_done: IntGauge,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, prom::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prom::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let upload_compacted_done = IntGauge::new(
            "thanos_shipper_upload_compacted_done",
            "If 1 it means shipper uploaded all compacted blocks from the filesystem.",
        )?;
        registry.register(Box::new(upload_compacted_done.clone()))?;
        Ok(Metrics {
            dir_syncs: counter(
                "thanos_shipper_dir_syncs_total",
                "Total number of dir syncs",
            )?,
            dir_sync_failures: counter(
                "thanos_shipper_dir_sync_failures_total",
                "Total number of failed dir syncs",
            )?,
            uploads: counter(
                "thanos_shipper_uploads_total",
                "Total number of uploaded blocks",
            )?,
            upload_failures: counter(
                "thanos_shipper_upload_failures_total",
                "Total number of block upload failures",
            )?,
            corrupted_blocks: counter(
                "thanos_shipper_corrupted_blocks_total",
                "Total number of corrupted blocks",
            )?,
            upload_compacted_done,
        })
    }
}

/// How a sync ended when it did not end well.
#[derive(Debug)]
pub struct SyncError {
    /// Blocks uploaded before the error.
    pub uploaded: usize,
    pub message: String,
    /// The daemon is stopping; not worth a warning.
    pub cancelled: bool,
}

pub struct Shipper {
    opts: Options,
    bucket: Arc<dyn Bucket>,
    labels: Box<dyn Fn() -> Labels + Send + Sync>,
    metrics: Metrics,
}

impl Shipper {
    pub fn new(
        opts: Options,
        bucket: Arc<dyn Bucket>,
        labels: Box<dyn Fn() -> Labels + Send + Sync>,
        metrics: Metrics,
    ) -> Shipper {
        Shipper {
            opts,
            bucket,
            labels,
            metrics,
        }
    }

    fn state_path(&self) -> PathBuf {
        self.opts.tsdb_path.join(&self.opts.meta_file_name)
    }

    /// Runs one sync; `Ok` holds the number of blocks uploaded.
    pub fn sync(&self, cancel: &Cancel) -> Result<usize, SyncError> {
        let mut uploaded = 0;
        let result = self.sync_inner(cancel, &mut uploaded);
        match &result {
            // The shipper file was written: the sync counts as done.
            Ok(_) | Err(Outcome::Partial(_)) => self.metrics.dir_syncs.inc(),
            Err(Outcome::Aborted(_)) => self.metrics.dir_sync_failures.inc(),
        }
        result.map_err(|outcome| {
            let message = match outcome {
                Outcome::Partial(m) | Outcome::Aborted(m) => m,
            };
            SyncError {
                uploaded,
                cancelled: cancel.is_cancelled(),
                message,
            }
        })
    }

    fn sync_inner(&self, cancel: &Cancel, uploaded: &mut usize) -> Result<usize, Outcome> {
        let state_path = self.state_path();
        let already: HashSet<Ulid> = match state::read(&state_path) {
            Ok(list) => list.into_iter().collect(),
            Err(state::ReadError::Missing) => {
                log::info!("no meta file found, creating empty meta data to write later");
                HashSet::new()
            }
            Err(state::ReadError::Invalid(e)) => {
                log::error!(err = e.as_str(); "failed to read meta file, creating empty meta data to write later");
                HashSet::new()
            }
        };

        let (metas, corrupted) = self.blocks_from_oldest().map_err(Outcome::Aborted)?;
        let mut recorded = Vec::new();
        let mut checker = OverlapChecker::default();
        let mut upload_errors = 0;
        for meta in metas {
            if cancel.is_cancelled() {
                return Err(Outcome::Aborted("sync cancelled: shutting down".into()));
            }
            let id = meta.ulid;
            if already.contains(&id) {
                recorded.push(id);
                continue;
            }
            if meta.stats.num_samples == 0 {
                log::debug!(block:% = id; "ignoring empty block");
                continue;
            }
            let compacted = meta.compaction.level > 1;
            if compacted && !self.opts.upload_compacted {
                continue;
            }
            let exists = self
                .bucket
                .exists(&format!("{id}/meta.json"))
                .map_err(|e| Outcome::Aborted(format!("check exists: {e}")))?;
            if exists {
                recorded.push(id);
                continue;
            }
            if compacted && !self.opts.allow_out_of_order_uploads {
                checker
                    .check(self.bucket.as_ref(), &(self.labels)(), &meta)
                    .map_err(|e| {
                        Outcome::Aborted(format!(
                            "Found overlap or error during sync, cannot upload compacted block, details: {e}"
                        ))
                    })?;
            }
            match self.upload(&meta, cancel) {
                Ok(()) => {
                    recorded.push(id);
                    *uploaded += 1;
                    self.metrics.uploads.inc();
                    // Recorded at once, not at the end of the sync, so a
                    // crash later in this sync does not leave finished
                    // blocks unrecorded (Thanos #934). Blocks recorded
                    // before and not reached yet stay in the file.
                    let mut so_far = recorded.clone();
                    so_far.extend(already.iter().filter(|b| !recorded.contains(b)));
                    so_far.sort_unstable();
                    if let Err(e) = state::write(&state_path, &so_far) {
                        log::warn!(err:% = e; "updating meta file failed");
                    }
                }
                Err(e) if cancel.is_cancelled() => {
                    return Err(Outcome::Aborted(format!("upload {id}: {e}")));
                }
                Err(e) if !self.opts.allow_out_of_order_uploads => {
                    return Err(Outcome::Aborted(format!("upload {id}: {e}")));
                }
                Err(e) => {
                    log::error!(block:% = id, err = e.as_str(); "shipping failed");
                    upload_errors += 1;
                }
            }
        }
        if let Err(e) = state::write(&state_path, &recorded) {
            log::warn!(err:% = e; "updating meta file failed");
        }
        if upload_errors > 0 || corrupted > 0 {
            self.metrics.upload_failures.inc_by(upload_errors);
            self.metrics.corrupted_blocks.inc_by(corrupted);
            return Err(Outcome::Partial(format!(
                "failed to sync {upload_errors}/{corrupted} blocks"
            )));
        }
        self.metrics
            .upload_compacted_done
            .set(self.opts.upload_compacted as i64);
        Ok(*uploaded)
    }

    /// The blocks in `--tsdb.path`, oldest first, and how many were corrupted
    /// (skipped with `--shipper.skip-corrupted-blocks`, fatal to the sync otherwise).
    fn blocks_from_oldest(&self) -> Result<(Vec<Meta>, u64), String> {
        let root = &self.opts.tsdb_path;
        let entries =
            fs::read_dir(root).map_err(|e| format!("read dir {}: {e}", root.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("read dir {}: {e}", root.display()))?;
            if let Ok(name) = entry.file_name().into_string() {
                if is_block_name(&name) {
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut metas = Vec::new();
        let mut corrupted = 0;
        for name in names {
            let dir = root.join(&name);
            match read_block(root, &dir) {
                Ok(Some(meta)) => metas.push(meta),
                Ok(None) => {}
                Err(e) if self.opts.skip_corrupted_blocks => {
                    log::error!(block = dir.display().to_string().as_str(), err = e.as_str(); "skipping corrupted block");
                    corrupted += 1;
                }
                Err(e) => {
                    log::error!(block = dir.display().to_string().as_str(), err = e.as_str(); "corrupted block; no block is uploaded until it is fixed or removed (or --shipper.skip-corrupted-blocks is set)");
                    return Err(format!("read metadata for block {}: {e}", dir.display()));
                }
            }
        }
        metas.sort_by_key(|m| m.min_time);
        Ok((metas, corrupted))
    }

    /// Checks, before `meta.json` makes the block count, that the bucket
    /// holds every file at its local size: a proxy or server that cut an
    /// object short would otherwise leave a block that looks whole and is
    /// not (Thanos #1331, #5859). On a mismatch the block's objects are
    /// deleted, so the next sync uploads it from scratch.
    fn verify(&self, id: Ulid, files: &[File]) -> Result<(), String> {
        let mut problem = None;
        for file in files.iter().filter(|f| f.rel_path != "meta.json") {
            let key = format!("{id}/{}", file.rel_path);
            match self.bucket.size(&key) {
                Ok(Some(size)) if size as i64 == file.size_bytes => {}
                Ok(Some(size)) => {
                    problem = Some(format!(
                        "{key} is {size} bytes in the bucket, {} locally",
                        file.size_bytes
                    ));
                    break;
                }
                Ok(None) => {
                    problem = Some(format!("{key} is missing from the bucket"));
                    break;
                }
                Err(e) => return Err(format!("verify upload: {e}")),
            }
        }
        let Some(problem) = problem else {
            return Ok(());
        };
        for file in files.iter().filter(|f| f.rel_path != "meta.json") {
            let key = format!("{id}/{}", file.rel_path);
            if let Err(e) = self.bucket.delete(&key) {
                log::warn!(key = key.as_str(), err:% = e; "cannot delete an object of a bad upload");
            }
        }
        Err(format!(
            "verify upload: {problem}; the block's objects were deleted and it will be uploaded again"
        ))
    }

    fn upload(&self, meta: &Meta, cancel: &Cancel) -> Result<(), String> {
        let id = meta.ulid;
        log::info!(id:% = id; "upload new block");
        let root = &self.opts.tsdb_path;
        let updir = root.join("thanos").join("upload").join(id.to_string());
        remove_dir_all(&updir).map_err(|e| format!("clean upload directory: {e}"))?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&updir)
            .map_err(|e| format!("create upload dir: {e}"))?;
        let _cleanup = Cleanup(&updir);
        hardlink_block(&root.join(id.to_string()), &updir)
            .map_err(|e| format!("hard link block: {e}"))?;

        let mut meta = meta.clone();
        meta.thanos.labels.extend((self.labels)());
        meta.thanos.source = "sidecar".into();
        meta.thanos.segment_files = segment_files(&updir);
        let staged = meta.to_json().map_err(|e| e.to_string())?;
        state::write_atomic(&updir.join("meta.json"), &staged)
            .map_err(|e| format!("write meta file: {e}"))?;

        if meta.thanos.labels.is_empty() {
            return Err("empty external labels are not allowed for Thanos block.".into());
        }
        meta.thanos.files = gather_file_stats(&updir, self.opts.hash_sha256, cancel)
            .map_err(|e| format!("gather meta file stats: {e}"))?;

        let chunks = walk_files(&updir.join("chunks"))
            .map_err(|e| format!("upload chunks: walk chunks dir: {e}"))?;
        let jobs: Vec<(String, PathBuf)> = chunks
            .into_iter()
            .map(|(rel, path)| (format!("{id}/chunks/{rel}"), path))
            .collect();
        self.upload_files(&jobs, cancel)
            .map_err(|e| format!("upload chunks: {e}"))?;
        let index = updir.join("index");
        self.bucket
            .upload_file(&format!("{id}/index"), &index, cancel)
            .map_err(|e| {
                format!(
                    "upload index: upload file {} as {id}/index: {e}",
                    index.display()
                )
            })?;

        self.verify(id, &meta.thanos.files)?;

        meta.thanos.upload_time = go_time(chrono::Utc::now());
        let json = meta
            .to_json()
            .map_err(|e| format!("encode meta file: {e}"))?;
        self.bucket
            .upload_bytes(&format!("{id}/meta.json"), &json, cancel)
            .map_err(|e| format!("upload meta file: {e}"))?;
        Ok(())
    }

    /// Uploads `jobs` (key, file) with up to `--shipper.upload-concurrency` at
    /// a time; the first failure stops the others and is returned.
    fn upload_files(&self, jobs: &[(String, PathBuf)], cancel: &Cancel) -> Result<(), String> {
        let upload = |(key, path): &(String, PathBuf), cancel: &Cancel| {
            self.bucket
                .upload_file(key, path, cancel)
                .map(|_| ())
                .map_err(|e| {
                    (
                        e.kind,
                        format!("upload file {} as {key}: {e}", path.display()),
                    )
                })
        };
        let workers = self.opts.upload_concurrency.clamp(1, jobs.len().max(1));
        if workers == 1 {
            for job in jobs {
                upload(job, cancel).map_err(|(_, e)| e)?;
            }
            return Ok(());
        }
        let stop = cancel.child();
        let next = AtomicUsize::new(0);
        // The first real error wins over the "cancelled" of stopped siblings.
        let first_error: Mutex<Option<(ErrorKind, String)>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for n in 0..workers {
                let worker = || loop {
                    if stop.is_cancelled() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { return };
                    if let Err((kind, e)) = upload(job, &stop) {
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        let replace = match &*slot {
                            None => true,
                            Some((k, _)) => {
                                *k == ErrorKind::Cancelled && kind != ErrorKind::Cancelled
                            }
                        };
                        if replace {
                            *slot = Some((kind, e));
                        }
                        stop.cancel();
                        return;
                    }
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("shipper-upload-{n}"))
                    .spawn_scoped(scope, worker);
                if let Err(e) = spawned {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert((ErrorKind::Other, format!("spawn upload thread: {e}")));
                    stop.cancel();
                    break;
                }
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

enum Outcome {
    /// Stopped before writing the shipper file.
    Aborted(String),
    /// Wrote the shipper file, but some blocks failed or were corrupted.
    Partial(String),
}

/// Removes the staging directory however the upload ends.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(e) = remove_dir_all(self.0) {
            log::error!(err:% = e; "failed to clean upload directory");
        }
    }
}

fn remove_dir_all(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A directory name that is a block's: a ULID. Prometheus' in-progress
/// (`.tmp-for-creation`) and deleted (`.tmp-for-deletion`) blocks are not.
pub(crate) fn is_block_name(name: &str) -> bool {
    // A ULID's first character encodes its top 3 bits: above '7' overflows.
    name.len() == 26 && name.as_bytes()[0] <= b'7' && Ulid::from_string(name).is_ok()
}

/// A block's meta; `None` for a non-directory entry.
fn read_block(root: &Path, dir: &Path) -> Result<Option<Meta>, String> {
    let link = fs::symlink_metadata(dir).map_err(|e| format!("stat block: {e}"))?;
    if link.file_type().is_symlink() {
        // Thanos opens blocks through a root confined to --tsdb.path.
        let target = fs::canonicalize(dir).map_err(|e| format!("stat block: {e}"))?;
        let root = fs::canonicalize(root).map_err(|e| format!("stat tsdb path: {e}"))?;
        if !target.starts_with(&root) {
            return Err(format!(
                "block directory is a symlink to {}, outside --tsdb.path",
                target.display()
            ));
        }
    }
    let info = fs::metadata(dir).map_err(|e| format!("stat block: {e}"))?;
    if !info.is_dir() {
        return Ok(None);
    }
    let path = dir.join("meta.json");
    let data = fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "meta.json is missing".to_string(),
        _ => format!("read meta.json: {e}"),
    })?;
    Meta::parse(&data)
        .map(Some)
        .map_err(|e| format!("meta.json: {e}"))
}

/// Links `chunks/*`, `meta.json` and `index` (nothing else) into the staging dir.
fn hardlink_block(src: &Path, dst: &Path) -> Result<(), String> {
    let chunks = dst.join("chunks");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&chunks)
        .map_err(|e| format!("create chunks dir: {e}"))?;
    let entries = fs::read_dir(src.join("chunks"))
        .map_err(|e| format!("read chunk dir {}: {e}", src.join("chunks").display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("read chunk dir: {e}"))?;
        files.push(Path::new("chunks").join(entry.file_name()));
    }
    files.sort();
    files.push(PathBuf::from("meta.json"));
    files.push(PathBuf::from("index"));
    for f in files {
        fs::hard_link(src.join(&f), dst.join(&f))
            .map_err(|e| format!("hard link file {}: {e}", f.display()))?;
    }
    Ok(())
}

/// Sorted names in `<dir>/chunks`.
fn segment_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir.join("chunks")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Files below `dir`, recursively, in lexical walk order: (relative path, path).
fn walk_files(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type()?.is_dir() {
                walk(&entry.path(), &rel, out)?;
            } else {
                out.push((rel, entry.path()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    Ok(out)
}

/// `thanos.files`: chunk files and index with sizes (and SHA-256 when asked),
/// `meta.json` by name only; sorted by path.
fn gather_file_stats(dir: &Path, sha256: bool, cancel: &Cancel) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    let chunks = dir.join("chunks");
    let mut entries: Vec<_> = fs::read_dir(&chunks)
        .map_err(|e| format!("read dir {}: {e}", chunks.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("read dir {}: {e}", chunks.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let info = entry
            .metadata()
            .map_err(|e| format!("getting file info chunks/{name}: {e}"))?;
        let hash = if sha256 && !info.is_dir() {
            Some(
                hash_file(&entry.path(), cancel)
                    .map_err(|e| format!("calculate hash chunks/{name}: {e}"))?,
            )
        } else {
            None
        };
        files.push(File {
            rel_path: format!("chunks/{name}"),
            size_bytes: info.len() as i64,
            hash,
        });
    }
    let index = dir.join("index");
    let info = fs::metadata(&index).map_err(|e| format!("stat index: {e}"))?;
    let hash = if sha256 {
        Some(hash_file(&index, cancel).map_err(|e| format!("calculate hash index: {e}"))?)
    } else {
        None
    };
    files.push(File {
        rel_path: "index".into(),
        size_bytes: info.len() as i64,
        hash,
    });
    fs::metadata(dir.join("meta.json")).map_err(|e| format!("stat meta.json: {e}"))?;
    files.push(File {
        rel_path: "meta.json".into(),
        size_bytes: 0,
        hash: None,
    });
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(files)
}

fn hash_file(path: &Path, cancel: &Cancel) -> Result<ObjectHash, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("opening file: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        cancel.check().map_err(|e| e.to_string())?;
        let n = f.read(&mut buf).map_err(|e| format!("copying: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Ok(ObjectHash {
        func: "SHA256".into(),
        value: digest.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Thanos' lazy overlap check for compacted blocks: the bucket's blocks with
/// the same external labels are listed once per sync, on first need.
#[derive(Default)]
struct OverlapChecker {
    known: Option<Vec<(Ulid, i64, i64)>>,
}

impl OverlapChecker {
    fn check(&mut self, bucket: &dyn Bucket, labels: &Labels, meta: &Meta) -> Result<(), String> {
        if self.known.is_none() {
            log::info!(id:% = meta.ulid; "gathering all existing blocks from the remote bucket for check");
            let mut known = Vec::new();
            let entries = bucket
                .iter("")
                .map_err(|e| format!("get all block meta.: {e}"))?;
            for entry in entries {
                let name = entry.trim_end_matches('/');
                if !is_block_name(name) {
                    continue;
                }
                let Ok(id) = Ulid::from_string(name) else {
                    continue;
                };
                let data = bucket
                    .get(&format!("{id}/meta.json"))
                    .map_err(|e| format!("get all block meta.: meta.json bkt get for {id}: {e}"))?;
                let remote: Meta = serde_json::from_slice(&data).map_err(|e| {
                    format!("get all block meta.: unmarshal meta.json for block {id}: {e}")
                })?;
                if &remote.thanos.labels == labels {
                    known.push((remote.ulid, remote.min_time, remote.max_time));
                }
            }
            self.known = Some(known);
        }
        let mut all = self.known.clone().unwrap_or_default();
        all.push((meta.ulid, meta.min_time, meta.max_time));
        all.sort_by_key(|b| b.1);
        // Half-open ranges [min, max): a block overlaps an earlier one when
        // it starts before the furthest end seen so far.
        let mut furthest: Option<(Ulid, i64)> = None;
        let mut overlaps = Vec::new();
        for (id, min, max) in &all {
            if let Some((prev, end)) = furthest {
                if *min < end {
                    overlaps.push(format!("{prev} and {id} (from {min} until {end})"));
                }
            }
            if furthest.is_none_or(|(_, end)| *max > end) {
                furthest = Some((*id, *max));
            }
        }
        if overlaps.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "shipping compacted block {} is blocked; overlap spotted: {}",
                meta.ulid,
                overlaps.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::filesystem::Filesystem;
    use crate::objstore::Error;

    /// A filesystem bucket that stores one key cut short (once), as a
    /// misbehaving proxy or server would, and says the upload went well.
    struct Truncating {
        inner: Filesystem,
        victim: String,
        armed: std::sync::atomic::AtomicBool,
    }

    impl Bucket for Truncating {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
            let size = self.inner.upload_file(key, path, cancel)?;
            if key.ends_with(&self.victim) && self.armed.swap(false, Ordering::SeqCst) {
                let data = self.inner.get(key)?;
                self.inner
                    .upload_bytes(key, &data[..data.len() / 2], cancel)?;
            }
            Ok(size)
        }
        fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
            self.inner.upload_bytes(key, data, cancel)
        }
        fn exists(&self, key: &str) -> Result<bool, Error> {
            self.inner.exists(key)
        }
        fn size(&self, key: &str) -> Result<Option<u64>, Error> {
            self.inner.size(key)
        }
        fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
            self.inner.get(key)
        }
        fn iter(&self, dir: &str) -> Result<Vec<String>, Error> {
            self.inner.iter(dir)
        }
        fn delete(&self, key: &str) -> Result<(), Error> {
            self.inner.delete(key)
        }
    }

    /// A block as Prometheus leaves it: meta.json, index, one chunks file.
    fn write_block(tsdb: &Path, id: Ulid) {
        let dir = tsdb.join(id.to_string());
        fs::create_dir_all(dir.join("chunks")).unwrap();
        fs::write(dir.join("chunks/000001"), vec![1u8; 4096]).unwrap();
        fs::write(dir.join("index"), vec![2u8; 1024]).unwrap();
        let meta = format!(
            r#"{{"ulid":"{id}","minTime":1700000000000,"maxTime":1700007200000,"stats":{{"numSamples":10,"numSeries":1,"numChunks":1}},"compaction":{{"level":1,"sources":["{id}"]}},"version":1}}"#
        );
        fs::write(dir.join("meta.json"), meta).unwrap();
    }

    #[test]
    fn an_object_cut_short_in_the_bucket_fails_the_block_and_is_redone() {
        let tsdb = tempfile::tempdir().unwrap();
        let bucket_dir = tempfile::tempdir().unwrap();
        let id = Ulid::from_string("01HZY5N3M1X1TR0J9V7Q9QW6XA").unwrap();
        write_block(tsdb.path(), id);
        let bucket = Arc::new(Truncating {
            inner: Filesystem::new(bucket_dir.path(), "fs".into()).unwrap(),
            victim: "chunks/000001".into(),
            armed: true.into(),
        });
        let opts = Options {
            tsdb_path: tsdb.path().to_path_buf(),
            meta_file_name: "thanos.shipper.json".into(),
            upload_compacted: false,
            hash_sha256: false,
            upload_concurrency: 1,
            allow_out_of_order_uploads: false,
            skip_corrupted_blocks: false,
        };
        let registry = Registry::new();
        let shipper = Shipper::new(
            opts,
            bucket.clone(),
            Box::new(|| [("cluster".to_string(), "a".to_string())].into()),
            Metrics::new(&registry).unwrap(),
        );
        let cancel = Cancel::new();

        let err = shipper.sync(&cancel).unwrap_err();
        assert!(
            err.message
                .contains("chunks/000001 is 2048 bytes in the bucket, 4096 locally"),
            "{}",
            err.message
        );
        // Nothing counts: no meta.json, no record, the half object gone.
        assert!(!bucket.exists(&format!("{id}/meta.json")).unwrap());
        assert!(!bucket.exists(&format!("{id}/chunks/000001")).unwrap());
        assert!(!bucket.exists(&format!("{id}/index")).unwrap());
        assert!(!state::read(&tsdb.path().join("thanos.shipper.json"))
            .map(|r| r.contains(&id))
            .unwrap_or(false));

        // The next sync uploads it whole.
        assert_eq!(shipper.sync(&cancel).unwrap(), 1);
        assert_eq!(
            bucket.size(&format!("{id}/chunks/000001")).unwrap(),
            Some(4096)
        );
        assert!(bucket.exists(&format!("{id}/meta.json")).unwrap());
        assert_eq!(
            state::read(&tsdb.path().join("thanos.shipper.json")).unwrap(),
            vec![id]
        );
    }

    #[test]
    fn block_names() {
        assert!(is_block_name("01HZY5N3M1X1TR0J9V7Q9QW6XA"));
        assert!(!is_block_name(
            "01HZY5N3M1X1TR0J9V7Q9QW6XA.tmp-for-creation"
        ));
        assert!(!is_block_name("wal"));
        assert!(!is_block_name("chunks_head"));
        assert!(!is_block_name("ZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    }
}
