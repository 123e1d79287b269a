//! The reloader: keeps Prometheus running the config and rules on disk.
//!
//! Operators render `prometheus.yml` from a template (`--reloader.config-file`,
//! optionally gzip-compressed as prometheus-operator writes it) and mount
//! rule files from ConfigMaps (`--reloader.rule-dir`). This thread watches
//! them and, when their content really changed, writes the `$(VAR)`-expanded
//! config to `--reloader.config-envsubst-file` and makes Prometheus reload,
//! by `POST /-/reload` or by SIGHUP (`--reloader.method`).
//!
//! How it decides, and why:
//! - Triggers are file events (inotify through `notify`) and a periodic
//!   re-check every `--reloader.watch-interval`, because events get lost.
//!   The config file's *directory* is watched rather than the file: editors
//!   save by rename and Kubernetes swaps a `..data` symlink, and either
//!   leaves a watch on the old file's inode blind. Bursts of events are
//!   debounced (a quiet period of [`DEBOUNCE_QUIET`], at most
//!   [`DEBOUNCE_MAX`] after the first event).
//! - The decision is by content: SHA-256 over path and bytes of the config
//!   file and of every regular file under the rule dirs (symlinks followed,
//!   as Thanos does). Only a digest different from the last one Prometheus
//!   confirmed causes a reload.
//! - The expanded output is written to `<out>.tmp` and renamed over `<out>`,
//!   and only when its bytes differ, so Prometheus never reads half a file and
//!   our own write does not wake the watch again. A missing variable fails the
//!   apply: logged with its name, counted, and the old output kept.
//! - A failed reload is retried every `--reloader.retry-interval` until it
//!   succeeds (Thanos gives up after one watch interval and waits for the
//!   next check; retrying on is what lets a change land as soon as a
//!   restarted Prometheus answers). Newer content replaces the pending one.
//! - The signal method checks `/api/v1/status/runtimeinfo` before and after
//!   the SIGHUP, as Thanos does. Prometheus reports `lastConfigTime` in whole
//!   seconds, so the signal waits until that second is over: otherwise a
//!   reload in the same second could never be confirmed.
//!
//! Choices where Thanos has a sharp edge:
//! - `--reloader.watch-interval=0` ends the Go sidecar right after start-up
//!   (exit 0). Here 0 disables only the periodic re-check: file events still
//!   drive reloads, and a warning says that lost events are not caught up.
//! - A config file shorter than three bytes crashes Thanos' gzip sniffing;
//!   here it is plain text (an empty template stays empty).
//! - With nothing configured, Thanos logs "nothing to be watched" and idles;
//!   so does this (metrics are registered, `thanos_sidecar_reloader_info` set).
//! - Thanos reloads at start-up only when a config file is set; this reloads
//!   at start-up whenever something is watched, since the sidecar cannot know
//!   whether Prometheus already runs the current rules.
//!
//! Start-up failures (missing config file or rule dir, a first apply that
//! fails, e.g. an unset variable) are returned from [`spawn`] and end the
//! daemon with exit 1; later failures are logged and counted only.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use prom::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use sha2::{Digest, Sha256};

use crate::actor::{ActorThread, Progress};
use crate::envsubst;
use crate::prometheus::{self, Client};

/// `--reloader.*`, as the flags read them.
#[derive(Debug)]
pub struct ReloaderConfig {
    pub config_file: Option<PathBuf>,
    pub config_envsubst_file: Option<PathBuf>,
    pub rule_dirs: Vec<PathBuf>,
    pub watch_interval: Duration,
    pub retry_interval: Duration,
    pub method: ReloadMethod,
    pub process_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMethod {
    Http,
    Signal,
}

/// Events arriving closer together than this are one change.
pub const DEBOUNCE_QUIET: Duration = Duration::from_millis(100);
/// A stream of events that never pauses still gets applied this often.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// How often the signal method asks Prometheus whether the reload happened.
const CONFIRM_POLL: Duration = Duration::from_millis(250);
/// Bounds on one reload attempt (the POST, or SIGHUP and its confirmation).
/// Thanos' budget is the watch interval; the cap keeps shutdown prompt.
const MIN_ATTEMPT: Duration = Duration::from_secs(5);
const MAX_ATTEMPT: Duration = Duration::from_secs(30);
/// Floor for `--reloader.retry-interval`.
const MIN_RETRY: Duration = Duration::from_millis(100);
/// gzip magic and deflate method, as prometheus-operator's compressed configs start.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// Linux truncates a process' `comm` to 15 bytes.
const COMM_MAX: usize = 15;

/// Dropping the handle stops the thread (its inbox closes) and joins it.
pub struct Handle {
    sender: Option<Sender<Never>>,
    _thread: Option<ActorThread>,
    progress: Option<Arc<Progress>>,
}

impl Handle {
    /// Ticks every time the loop goes round (see `actor::Progress`); none
    /// when nothing is watched or `--reloader.watch-interval=0` (the loop
    /// then sleeps until a file changes, which says nothing of its health).
    pub fn progress(&self) -> Option<Arc<Progress>> {
        self.progress.clone()
    }

    /// Asks the thread to stop without waiting: it ends while others stop.
    pub fn stop(&mut self) {
        drop(self.sender.take());
    }
}

/// How long shutdown waits for a reload in flight.
const STOP_PATIENCE: Duration = Duration::from_millis(500);

/// The inbox carries no messages: closing it is the only thing it says.
pub enum Never {}

/// Registers the metrics, checks the watched paths, runs the first apply and
/// starts the thread. An `Err` names the path or variable at fault.
pub fn spawn(
    config: &ReloaderConfig,
    client: Client,
    registry: &Registry,
) -> Result<Handle, String> {
    let metrics = Metrics::register(registry, config.method).map_err(|e| e.to_string())?;
    // Capacity 0: nothing is ever sent; dropping the sender is the stop signal.
    let (sender, inbox) = crossbeam_channel::bounded(0);
    if config.config_file.is_none() && config.rule_dirs.is_empty() {
        log::info!("nothing to be watched");
        return Ok(Handle {
            sender: Some(sender),
            _thread: None,
            progress: None,
        });
    }
    let inputs = Inputs::new(config)?;
    if config.config_envsubst_file.is_some() && config.config_file.is_none() {
        log::warn!("--reloader.config-envsubst-file is ignored without --reloader.config-file");
    }
    match config.method {
        ReloadMethod::Http => log::info!("reloading via HTTP"),
        ReloadMethod::Signal => log::info!("reloading via process signal"),
    }
    if config.watch_interval.is_zero() {
        log::warn!("--reloader.watch-interval=0: no periodic re-check; changes are seen through file events only");
    }

    // Capacity 1: one pending wake-up already says "look again"; more say nothing new.
    let (changed, changes) = crossbeam_channel::bounded(1);
    let watcher = watch(&inputs, &metrics, changed)?;
    // The loop wakes at least every watch interval; a wake may run a reload
    // attempt (at most the attempt timeout, plus a signal's one-second settle).
    let progress = (!config.watch_interval.is_zero()).then(|| {
        Progress::new(
            "reloader",
            config.watch_interval + attempt_timeout(config.watch_interval) + Duration::from_secs(5),
        )
    });
    let mut actor = Actor {
        progress: progress.clone(),
        method: match config.method {
            ReloadMethod::Http => Method::Http,
            ReloadMethod::Signal => Method::Signal {
                process_name: config.process_name.clone(),
            },
        },
        watch_interval: config.watch_interval,
        // 0 would retry in a busy loop (Go's ticker panics on it instead).
        retry_interval: config.retry_interval.max(MIN_RETRY),
        attempt_timeout: attempt_timeout(config.watch_interval),
        client,
        inputs,
        metrics,
        inbox,
        changes,
        _watcher: watcher,
        reloaded: None,
        pending: None,
        retry_at: None,
        burst: None,
        next_check: None,
    };
    // The first apply is not counted in the apply metrics, as in Thanos.
    actor.apply()?;
    log::info!(
        cfg = display_opt(&config.config_file).as_str(),
        out = display_opt(&config.config_envsubst_file).as_str(),
        dirs = config.rule_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(",").as_str();
        "started watching config file and directories for changes"
    );
    let thread = ActorThread::spawn("reloader", STOP_PATIENCE, move || actor.run())
        .map_err(|e| format!("reloader thread: {e}"))?;
    Ok(Handle {
        sender: Some(sender),
        _thread: Some(thread),
        progress,
    })
}

fn display_opt(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn attempt_timeout(watch_interval: Duration) -> Duration {
    if watch_interval.is_zero() {
        MAX_ATTEMPT
    } else {
        watch_interval.clamp(MIN_ATTEMPT, MAX_ATTEMPT)
    }
}

struct Metrics {
    reloads: IntCounter,
    reloads_failed: IntCounter,
    last_reload_successful: IntGauge,
    last_reload_success_timestamp: Gauge,
    applies: IntCounter,
    applies_failed: IntCounter,
    env_expansion_errors: IntGauge,
    watches: IntGauge,
    watch_events: IntCounter,
    watch_errors: IntCounter,
}

impl Metrics {
    fn register(registry: &Registry, method: ReloadMethod) -> prom::Result<Metrics> {
        fn reg<T: prom::core::Collector + Clone + 'static>(
            registry: &Registry,
            metric: T,
        ) -> prom::Result<T> {
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        }
        const P: &str = "thanos_sidecar_reloader_";
        let counter =
            |name: &str, help: &str| reg(registry, IntCounter::new(format!("{P}{name}"), help)?);
        let gauge =
            |name: &str, help: &str| reg(registry, IntGauge::new(format!("{P}{name}"), help)?);
        let info = reg(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    format!("{P}info"),
                    "A metric with a constant '1' value labeled by reload method (either 'http' or 'signal').",
                ),
                &["method"],
            )?,
        )?;
        info.with_label_values(&[match method {
            ReloadMethod::Http => "http",
            ReloadMethod::Signal => "signal",
        }])
        .set(1);
        Ok(Metrics {
            reloads: counter("reloads_total", "Total number of reload requests.")?,
            reloads_failed: counter(
                "reloads_failed_total",
                "Total number of reload requests that failed.",
            )?,
            last_reload_successful: gauge(
                "last_reload_successful",
                "Whether the last reload attempt was successful",
            )?,
            last_reload_success_timestamp: reg(
                registry,
                Gauge::new(
                    format!("{P}last_reload_success_timestamp_seconds"),
                    "Timestamp of the last successful reload",
                )?,
            )?,
            applies: counter(
                "config_apply_operations_total",
                "Total number of config apply operations.",
            )?,
            applies_failed: counter(
                "config_apply_operations_failed_total",
                "Total number of config apply operations that failed.",
            )?,
            env_expansion_errors: gauge(
                "config_environment_variable_expansion_errors",
                "Number of environment variable expansions that failed during the last operation.",
            )?,
            watches: gauge("watches", "Number of resources watched by the reloader.")?,
            watch_events: counter(
                "watch_events_total",
                "Total number of events received by the reloader from the watcher.",
            )?,
            watch_errors: counter(
                "watch_errors_total",
                "Total number of errors received by the reloader from the watcher.",
            )?,
        })
    }
}

/// What is read on every apply, and where the expanded config goes.
struct Inputs {
    config_file: Option<PathBuf>,
    output: Option<PathBuf>,
    rule_dirs: Vec<PathBuf>,
}

/// Digests of what Prometheus should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    config: Option<[u8; 32]>,
    rules: Option<[u8; 32]>,
}

impl Inputs {
    /// Checks that every watched path exists, as Thanos' watch registration does.
    fn new(config: &ReloaderConfig) -> Result<Inputs, String> {
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
    fn check(&self, metrics: &Metrics) -> Result<Fingerprint, String> {
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

/// Starts the file watch. Events are counted and filtered on notify's thread;
/// a relevant one leaves a wake-up in `changed`.
fn watch(
    inputs: &Inputs,
    metrics: &Metrics,
    changed: Sender<()>,
) -> Result<notify::RecommendedWatcher, String> {
    let ignored: Vec<PathBuf> = match &inputs.output {
        Some(out) => {
            let mut tmp = out.as_os_str().to_owned();
            tmp.push(".tmp");
            vec![out.clone(), PathBuf::from(tmp)]
        }
        None => Vec::new(),
    };
    let (events, errors) = (metrics.watch_events.clone(), metrics.watch_errors.clone());
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // Opens and reads are not counted: Thanos' fsnotify never sees them.
            Ok(event) if is_read(&event) => {}
            Ok(event) => {
                events.inc();
                if is_relevant(&event, &ignored) {
                    // Full means a wake-up is already pending.
                    let _ = changed.try_send(());
                }
            }
            Err(e) => {
                errors.inc();
                log::error!(err:% = e; "watch error");
            }
        })
        .map_err(|e| format!("create file watcher: {e}"))?;

    // The config file's directory, not the file: see the module doc.
    let mut dirs: Vec<(PathBuf, RecursiveMode, &str)> = Vec::new();
    if let Some(file) = &inputs.config_file {
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| "/".into());
        dirs.push((dir, RecursiveMode::NonRecursive, "--reloader.config-file"));
    }
    for dir in &inputs.rule_dirs {
        match dirs.iter_mut().find(|(d, _, _)| d == dir) {
            Some(existing) => existing.1 = RecursiveMode::Recursive,
            None => dirs.push((dir.clone(), RecursiveMode::Recursive, "--reloader.rule-dir")),
        }
    }
    for (dir, mode, flag) in &dirs {
        watcher
            .watch(dir, *mode)
            .map_err(|e| format!("{flag}: watch {}: {e}", dir.display()))?;
    }
    // Thanos counts the file, its directory and each rule dir, de-duplicated.
    let mut counted: Vec<&Path> = dirs.iter().map(|(d, _, _)| d.as_path()).collect();
    counted.extend(inputs.config_file.as_deref());
    counted.sort();
    counted.dedup();
    metrics.watches.set(counted.len() as i64);
    Ok(watcher)
}

/// Opening or reading a file changes nothing (and our own hashing opens
/// them all, so heeding them would loop).
fn is_read(event: &notify::Event) -> bool {
    matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
}

/// Reads are not news, and neither are writes of our own output.
fn is_relevant(event: &notify::Event, ignored: &[PathBuf]) -> bool {
    !is_read(event) && (event.paths.is_empty() || event.paths.iter().any(|p| !ignored.contains(p)))
}

enum Method {
    Http,
    Signal { process_name: String },
}

/// Why a reload attempt did not succeed.
enum Failure {
    Error(String),
    /// The daemon is shutting down.
    Stopped,
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Error(e)
    }
}

struct Actor {
    progress: Option<Arc<Progress>>,
    method: Method,
    watch_interval: Duration,
    retry_interval: Duration,
    attempt_timeout: Duration,
    client: Client,
    inputs: Inputs,
    metrics: Metrics,
    inbox: Receiver<Never>,
    changes: Receiver<()>,
    /// Kept alive for its watches; dropping it ends notify's thread.
    _watcher: notify::RecommendedWatcher,
    /// What Prometheus confirmed last.
    reloaded: Option<Fingerprint>,
    /// What Prometheus should reload to; kept until a reload succeeds.
    pending: Option<Fingerprint>,
    retry_at: Option<Instant>,
    /// First and latest event of the burst being debounced.
    burst: Option<(Instant, Instant)>,
    next_check: Option<Instant>,
}

impl Actor {
    fn run(mut self) {
        self.schedule_check();
        self.attempt();
        loop {
            if let Some(progress) = &self.progress {
                progress.tick();
            }
            let wake = [
                self.burst
                    .map(|(first, last)| (last + DEBOUNCE_QUIET).min(first + DEBOUNCE_MAX)),
                self.next_check,
                self.retry_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let timer = match wake {
                Some(at) => crossbeam_channel::at(at),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(self.inbox) -> msg => match msg {
                    Ok(never) => match never {},
                    Err(_) => return,
                },
                recv(self.changes) -> msg => {
                    if msg.is_err() {
                        // The watcher's sender is gone only if notify's thread died;
                        // the periodic re-check carries on alone.
                        log::error!("file watcher stopped; relying on --reloader.watch-interval");
                        self.changes = crossbeam_channel::never();
                        continue;
                    }
                    let now = Instant::now();
                    let first = self.burst.map_or(now, |(first, _)| first);
                    self.burst = Some((first, now));
                    continue;
                },
                recv(timer) -> _ => {},
            }
            let now = Instant::now();
            let burst_done = self.burst.is_some_and(|(first, last)| {
                now >= last + DEBOUNCE_QUIET || now >= first + DEBOUNCE_MAX
            });
            let check_due = self.next_check.is_some_and(|at| now >= at);
            if burst_done || check_due {
                self.burst = None;
                self.schedule_check();
                self.metrics.applies.inc();
                if let Err(e) = self.apply() {
                    self.metrics.applies_failed.inc();
                    log::error!(err = e.as_str(); "apply error");
                    continue;
                }
                self.attempt();
            } else if self.retry_at.is_some_and(|at| now >= at) {
                self.attempt();
            }
        }
    }

    /// The periodic re-check restarts after every check, as in Thanos.
    fn schedule_check(&mut self) {
        self.next_check =
            (!self.watch_interval.is_zero()).then(|| Instant::now() + self.watch_interval);
    }

    /// Refreshes the output and decides whether Prometheus needs a reload.
    fn apply(&mut self) -> Result<(), String> {
        let fingerprint = self.inputs.check(&self.metrics)?;
        // A pending (failed) reload stays wanted even if the content went back
        // to what Prometheus last confirmed: the failed attempt may have half-landed.
        if self.pending.is_some() || self.reloaded.as_ref() != Some(&fingerprint) {
            self.pending = Some(fingerprint);
        }
        Ok(())
    }

    /// One reload attempt for the pending fingerprint, if any.
    fn attempt(&mut self) {
        let Some(fingerprint) = self.pending.clone() else {
            return;
        };
        self.metrics.reloads.inc();
        match self.trigger() {
            Ok(()) => {
                self.reloaded = Some(fingerprint);
                self.pending = None;
                self.retry_at = None;
                self.metrics.last_reload_successful.set(1);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                self.metrics
                    .last_reload_success_timestamp
                    .set(now.as_secs_f64());
                log::info!(
                    cfg_in = self.inputs.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default().as_str(),
                    cfg_out = self.inputs.output.as_ref().map(|p| p.display().to_string()).unwrap_or_default().as_str();
                    "Prometheus reloaded"
                );
            }
            Err(Failure::Stopped) => {}
            Err(Failure::Error(e)) => {
                self.metrics.reloads_failed.inc();
                self.metrics.last_reload_successful.set(0);
                self.retry_at = Some(Instant::now() + self.retry_interval);
                log::error!(err = e.as_str(), retry_in:? = self.retry_interval; "failed to reload Prometheus; retrying");
            }
        }
    }

    fn trigger(&self) -> Result<(), Failure> {
        match &self.method {
            Method::Http => self.reload_http(),
            Method::Signal { process_name } => self.reload_signal(process_name),
        }
    }

    fn reload_http(&self) -> Result<(), Failure> {
        let req = self
            .client
            .request("POST", "/-/reload", self.attempt_timeout)
            .map_err(|e| e.to_string())?;
        let hint = "is Prometheus running with --web.enable-lifecycle?";
        match Client::send(req) {
            Ok(resp) if resp.status() == 200 => Ok(()),
            Ok(resp) => Err(format!("POST /-/reload answered {}; {hint}", resp.status()).into()),
            Err(prometheus::Error::Status { code, body }) => {
                Err(format!("POST /-/reload answered {code}: {}; {hint}", body.trim()).into())
            }
            Err(e) => Err(format!("POST /-/reload: {e}").into()),
        }
    }

    /// SIGHUP to the process, confirmed through runtimeinfo as Thanos does.
    fn reload_signal(&self, process_name: &str) -> Result<(), Failure> {
        let deadline = Instant::now() + self.attempt_timeout;
        let before = self.runtime_info()?;
        // `lastConfigTime` has whole seconds: wait until a reload would show
        // as a later second than the one remembered.
        let settle = before
            .last_config_time
            .saturating_add(1)
            .saturating_mul(1000)
            .saturating_sub(now_millis());
        if settle > 0 {
            // At most a second, should Prometheus' clock run ahead of ours.
            self.pause(Duration::from_millis(settle.min(1000) as u64))?;
        }
        let pid = find_process(Path::new("/proc"), process_name)?;
        let target = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| format!("invalid pid {pid} for {process_name:?}"))?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .map_err(|e| format!("send SIGHUP to pid {pid}: {e}"))?;
        log::debug!(pid = pid; "sent SIGHUP");
        loop {
            let now = self.runtime_info()?;
            if now.reload_success && now.last_config_time > before.last_config_time {
                return Ok(());
            }
            if before.reload_success && !now.reload_success {
                return Err(
                    format!("Prometheus (pid {pid}) failed to load its configuration").into(),
                );
            }
            if Instant::now() + CONFIRM_POLL > deadline {
                return Err(format!(
                    "Prometheus (pid {pid}) did not confirm a reload within {:?} (last {} reload at {})",
                    self.attempt_timeout,
                    if now.reload_success { "successful" } else { "failed" },
                    now.last_config_time
                )
                .into());
            }
            self.pause(CONFIRM_POLL)?;
        }
    }

    /// Sleeps, unless the daemon stops meanwhile.
    fn pause(&self, d: Duration) -> Result<(), Failure> {
        match self.inbox.recv_timeout(d) {
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Ok(never) => match never {},
            Err(RecvTimeoutError::Disconnected) => Err(Failure::Stopped),
        }
    }

    fn runtime_info(&self) -> Result<RuntimeInfo, String> {
        const PATH: &str = "/api/v1/status/runtimeinfo";
        let req = self
            .client
            .request("GET", PATH, self.attempt_timeout)
            .map_err(|e| e.to_string())?;
        let resp = Client::send(req).map_err(|e| format!("{PATH}: {e}"))?;
        let body: serde_json::Value = serde_json::from_reader(resp.into_reader())
            .map_err(|e| format!("{PATH}: invalid response: {e}"))?;
        parse_runtime_info(&body).map_err(|e| format!("{PATH}: {e}"))
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, PartialEq)]
struct RuntimeInfo {
    reload_success: bool,
    /// Unix seconds (Prometheus reports whole seconds).
    last_config_time: i64,
}

fn parse_runtime_info(body: &serde_json::Value) -> Result<RuntimeInfo, String> {
    let status = body.get("status").and_then(|s| s.as_str()).unwrap_or("");
    if status != "success" {
        return Err(format!("unexpected status {status:?}"));
    }
    let data = body.get("data").ok_or("no data")?;
    let reload_success = data
        .get("reloadConfigSuccess")
        .and_then(|v| v.as_bool())
        .ok_or("no data.reloadConfigSuccess")?;
    let time = data
        .get("lastConfigTime")
        .and_then(|v| v.as_str())
        .ok_or("no data.lastConfigTime")?;
    let time = chrono::DateTime::parse_from_rfc3339(time)
        .map_err(|e| format!("data.lastConfigTime {time:?}: {e}"))?;
    Ok(RuntimeInfo {
        reload_success,
        last_config_time: time.timestamp(),
    })
}

/// The lowest PID whose executable name is `name` (Thanos takes the first
/// process listed). Linux keeps only 15 bytes of the name in `comm`; a
/// longer name matches when `comm` is its prefix and argv[0]'s file name is
/// the whole name (Thanos never matches such names).
fn find_process(proc_root: &Path, name: &str) -> Result<i32, String> {
    let own = std::process::id() as i32;
    let entries = fs::read_dir(proc_root).map_err(|e| format!("list processes: {e}"))?;
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid != own)
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        // Processes come and go while we look: unreadable ones are skipped.
        let Ok(comm) = fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let comm = comm.strip_suffix('\n').unwrap_or(&comm);
        if comm == name {
            return Ok(pid);
        }
        if name.len() > COMM_MAX
            && name.as_bytes().starts_with(comm.as_bytes())
            && comm.len() == COMM_MAX
        {
            let argv0 = fs::read(dir.join("cmdline")).unwrap_or_default();
            let argv0 = argv0.split(|b| *b == 0).next().unwrap_or_default();
            let base = argv0.rsplit(|b| *b == b'/').next().unwrap_or_default();
            if base == name.as_bytes() {
                return Ok(pid);
            }
        }
    }
    Err(format!("failed to find process matching {name:?}"))
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

    #[test]
    fn access_events_and_our_own_output_are_not_news() {
        use notify::event::{CreateKind, ModifyKind};
        let out = PathBuf::from("/etc/prom/prometheus.yml");
        let ignored = vec![out.clone(), PathBuf::from("/etc/prom/prometheus.yml.tmp")];
        let ev = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!is_relevant(&ev(open, "/etc/prom/tmpl"), &ignored));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(is_relevant(&ev(closed, "/etc/prom/tmpl"), &ignored));
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(is_relevant(&ev(modify, "/etc/prom/tmpl"), &ignored));
        assert!(!is_relevant(
            &ev(modify, "/etc/prom/prometheus.yml.tmp"),
            &ignored
        ));
        let create = EventKind::Create(CreateKind::File);
        assert!(!is_relevant(
            &ev(create, "/etc/prom/prometheus.yml"),
            &ignored
        ));
    }

    #[test]
    fn runtime_info_is_parsed() {
        let body = serde_json::json!({"status": "success", "data": {
            "reloadConfigSuccess": true, "lastConfigTime": "2026-11-25T10:32:40Z"}});
        assert_eq!(
            parse_runtime_info(&body).unwrap(),
            RuntimeInfo {
                reload_success: true,
                last_config_time: 1_795_602_760
            }
        );
        let err = parse_runtime_info(&serde_json::json!({"status": "error"})).unwrap_err();
        assert!(err.contains("error"), "{err}");
    }

    #[test]
    fn process_is_found_by_comm_lowest_pid_first() {
        let proc = tempfile::tempdir().unwrap();
        let add = |pid: &str, comm: &str, argv0: &str| {
            let d = proc.path().join(pid);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(d.join("cmdline"), format!("{argv0}\0--flag\0")).unwrap();
        };
        add("120", "prometheus", "/usr/bin/prometheus");
        add("35", "prometheus", "/usr/bin/prometheus");
        add("7", "prometheus-nod", "/bin/prometheus-node");
        add("40", "averyveryverylo", "/opt/averyveryverylongname");
        fs::create_dir(proc.path().join("self")).unwrap();
        assert_eq!(find_process(proc.path(), "prometheus"), Ok(35));
        assert_eq!(find_process(proc.path(), "averyveryverylongname"), Ok(40));
        assert_eq!(
            find_process(proc.path(), "averyveryverylongother"),
            Err("failed to find process matching \"averyveryverylongother\"".into())
        );
        assert_eq!(
            find_process(proc.path(), "promet"),
            Err("failed to find process matching \"promet\"".into())
        );
    }

    #[test]
    fn attempt_budget_follows_watch_interval_within_bounds() {
        assert_eq!(attempt_timeout(Duration::ZERO), MAX_ATTEMPT);
        assert_eq!(attempt_timeout(Duration::from_secs(1)), MIN_ATTEMPT);
        assert_eq!(
            attempt_timeout(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(attempt_timeout(Duration::from_secs(180)), MAX_ATTEMPT);
    }
}
