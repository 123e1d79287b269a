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

mod inputs;
mod metrics;
mod process;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use prom::Registry;

use crate::actor::{ActorThread, Never, Progress};
use crate::prometheus::{self, Client};
use inputs::{Fingerprint, Inputs};
use metrics::Metrics;
use process::find_process;
use watch::watch;

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
        let hint = "is Prometheus running with --web.enable-lifecycle?";
        match self.client.reload(self.attempt_timeout) {
            Ok(()) => Ok(()),
            Err(prometheus::Error::Status { code, body }) if body.trim().is_empty() => {
                Err(format!("POST /-/reload answered {code}; {hint}").into())
            }
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
            .saturating_sub(crate::values::now_ms());
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

    fn runtime_info(&self) -> Result<prometheus::RuntimeInfo, String> {
        self.client
            .runtime_info(self.attempt_timeout)
            .map_err(|e| format!("/api/v1/status/runtimeinfo: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
