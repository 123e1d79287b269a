//! The heartbeat: learns what the sidecar needs from Prometheus, then keeps it fresh.
//!
//! At start it runs Thanos' start-up sequence (flags check when uploads are
//! on, version, lowest timestamp and external labels), retrying until
//! Prometheus answers, and refuses to go on when Prometheus has no external
//! labels. A Prometheus in agent mode (no TSDB) is recognised by its flags:
//! said once in the log and on `/metrics`, and the StoreAPI and the shipper
//! stand down (Thanos does not notice, and its flags check then fails for
//! ever). Then, every `--prometheus.get_config_interval`, it refreshes the
//! lowest timestamp and the external labels. A failed beat marks the sidecar
//! not ready; it never stops the daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use prom::{IntGauge, Registry};

use crate::actor::{ActorThread, Never, Progress};
use crate::metadata::Metadata;
use crate::prometheus::{self, Client};
use crate::values::format_model_duration;
use crate::Event;

const LABELS_REQUIRED: &str = "no external labels configured on Prometheus server, uniquely identifying external labels must be configured; see https://thanos.io/tip/thanos/storage.md#external-labels for details";

/// Start-up steps are retried at least this often, as Thanos retries its
/// first external-labels fetch: a sidecar started before its Prometheus is
/// ready at most this long after it (the heartbeat interval, 30 s by
/// default, is for refreshing what is already known).
const START_RETRY: Duration = Duration::from_secs(2);

/// Inside one flags-check attempt, Thanos retries a failing fetch this often.
const FLAGS_RETRY: Duration = Duration::from_secs(2);

pub struct Config {
    pub interval: Duration,
    pub timeout: Duration,
    /// Set when uploads are enabled: Prometheus' block settings are checked first.
    pub upload_check: Option<UploadCheck>,
}

pub struct UploadCheck {
    pub tsdb_path: PathBuf,
    pub shipper_meta_file_name: String,
    pub ignore_unequal_block_size: bool,
}

/// Dropping the handle stops the thread (its inbox closes) and joins it,
/// giving up after [`STOP_PATIENCE`] if a beat is stuck on the network.
pub struct Handle {
    sender: Option<Sender<Never>>,
    _thread: ActorThread,
    progress: Arc<Progress>,
}

impl Handle {
    /// Ticks after every beat or start-up attempt (see `actor::Progress`).
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Asks the thread to stop without waiting: it ends while others stop.
    pub fn stop(&mut self) {
        drop(self.sender.take());
    }
}

/// How long shutdown waits for a beat in flight.
const STOP_PATIENCE: Duration = Duration::from_millis(500);

pub fn spawn(
    config: Config,
    client: Client,
    metadata: Arc<Metadata>,
    registry: &Registry,
    events: Sender<Event>,
) -> std::io::Result<Handle> {
    let up = IntGauge::new(
        "thanos_sidecar_prometheus_up",
        "Boolean indicator whether the sidecar can reach its Prometheus peer.",
    )
    .map_err(std::io::Error::other)?;
    registry
        .register(Box::new(up.clone()))
        .map_err(std::io::Error::other)?;
    let agent = IntGauge::new(
        "thanos_sidecar_prometheus_agent_mode",
        "1 when Prometheus runs in agent mode: it keeps no TSDB, so the StoreAPI and uploads are off.",
    )
    .map_err(std::io::Error::other)?;
    registry
        .register(Box::new(agent.clone()))
        .map_err(std::io::Error::other)?;
    // Capacity 0: nothing is ever sent; dropping the sender is the stop signal.
    let (sender, inbox) = crossbeam_channel::bounded(0);
    // A beat (or a start-up attempt) every interval (at most START_RETRY at
    // start), each within the timeout, plus the flags check's inner retry.
    let progress = Progress::new(
        "heartbeat",
        config.interval.max(START_RETRY) + config.timeout + FLAGS_RETRY,
    );
    let actor = Actor {
        progress: progress.clone(),
        config,
        client,
        metadata,
        up,
        agent,
        events,
        inbox,
    };
    let thread = ActorThread::spawn("heartbeat", STOP_PATIENCE, move || actor.run())?;
    Ok(Handle {
        sender: Some(sender),
        _thread: thread,
        progress,
    })
}

struct Actor {
    progress: Arc<Progress>,
    config: Config,
    client: Client,
    metadata: Arc<Metadata>,
    up: IntGauge,
    agent: IntGauge,
    events: Sender<Event>,
    inbox: Receiver<Never>,
}

/// The daemon is shutting down.
struct Stopped;

/// Why one start-up attempt ended without a result.
enum Failure {
    /// Worth logging and retrying.
    Error(String),
    /// The inbox closed while the attempt waited: stop at once.
    Stopped,
}

/// A failed heartbeat step: Thanos' message for it, and the cause.
struct Beat(&'static str, prometheus::Error);

impl std::fmt::Display for Beat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

impl Actor {
    fn run(self) {
        match self.start() {
            Ok(()) => {}
            Err(Stopped) => return,
        }
        let ticker = crossbeam_channel::tick(self.config.interval);
        loop {
            select! {
                recv(self.inbox) -> _ => return,
                recv(ticker) -> _ => {
                    crate::fault::hang("heartbeat");
                    self.beat();
                    self.progress.tick();
                }
            }
        }
    }

    fn start(&self) -> Result<(), Stopped> {
        let agent = match &self.config.upload_check {
            Some(check) => self.retry("failed to validate prometheus flags", || {
                self.check_flags(check)
            })?,
            None => self.retry("failed to fetch prometheus flags", || {
                self.client
                    .flags(self.config.timeout)
                    .map(|flags| flags.is_some_and(|f| f.agent))
                    .map_err(|e| Failure::Error(e.to_string()))
            })?,
        };
        if agent {
            log::warn!("Prometheus runs in agent mode: it keeps no TSDB, so StoreAPI calls are answered FailedPrecondition and no blocks are uploaded; the reloader, probes, Targets and Metadata APIs keep working");
            self.agent.set(1);
            self.metadata.set_agent_mode(true);
        }
        let version = self.retry("failed to fetch prometheus version", || {
            self.client
                .version(self.config.timeout)
                .map_err(|e| Failure::Error(e.to_string()))
        })?;
        log::info!(version = version.as_str(); "successfully loaded prometheus version");
        self.metadata.set_prometheus_version(version);
        let (lowest, labels) = self.retry("failed to fetch initial external labels", || {
            self.fetch().map_err(|e| Failure::Error(e.to_string()))
        })?;
        if labels.is_empty() {
            let _ = self.events.send(Event::Fatal(LABELS_REQUIRED.to_string()));
            return Err(Stopped);
        }
        log::info!(external_labels = format_labels(&labels).as_str(); "successfully loaded prometheus external labels");
        self.metadata.update(lowest, labels);
        self.up.set(1);
        // Ready once the main loop also says it serves: the gRPC port it
        // opens on this event listens, so a probe's "ready" means a querier
        // can connect (Thanos says ready a moment before it listens).
        self.metadata.set_prometheus_up(true);
        let _ = self.events.send(Event::PrometheusReady);
        Ok(())
    }

    /// Lowest timestamp and external labels, within one timeout budget; the
    /// error says which of the two failed, in Thanos' words.
    fn fetch(&self) -> Result<(i64, prometheus::Labels), Beat> {
        let deadline = Instant::now() + self.config.timeout;
        let lowest = self
            .client
            .lowest_timestamp(self.config.timeout)
            .map_err(|e| Beat("updating timestamps failed", e))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let labels = self
            .client
            .external_labels(left.max(Duration::from_millis(1)))
            .map_err(|e| Beat("updating labels failed", e))?;
        Ok((lowest, labels))
    }

    fn beat(&self) {
        match self.fetch() {
            Ok((lowest, labels)) if !labels.is_empty() => {
                if labels != self.metadata.external_labels() {
                    log::info!(external_labels = format_labels(&labels).as_str(); "prometheus external labels changed");
                }
                self.metadata.update(lowest, labels);
                self.up.set(1);
                self.metadata.set_prometheus_up(true);
            }
            Ok(_) => {
                log::warn!(err = LABELS_REQUIRED; "updating labels failed");
                self.up.set(0);
                self.metadata.set_prometheus_up(false);
            }
            Err(Beat(what, e)) => {
                log::warn!(err:% = e; "{what}");
                self.up.set(0);
                self.metadata.set_prometheus_up(false);
            }
        }
    }

    /// Runs `attempt` until it succeeds, every interval (at most
    /// [`START_RETRY`]), until shutdown.
    fn retry<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, Stopped> {
        loop {
            let result = attempt();
            self.progress.tick();
            match result {
                Ok(v) => return Ok(v),
                Err(Failure::Stopped) => return Err(Stopped),
                Err(Failure::Error(e)) => {
                    log::warn!(err = e.as_str(); "{what}. Is Prometheus running? Retrying")
                }
            }
            match self
                .inbox
                .recv_timeout(self.config.interval.min(START_RETRY))
            {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(never) => match never {},
                Err(RecvTimeoutError::Disconnected) => return Err(Stopped),
            }
        }
    }

    /// Thanos refuses to upload from a Prometheus that compacts its own blocks:
    /// a compacted block would be uploaded again and overlap the originals.
    /// `Ok(true)`: Prometheus runs in agent mode, with no blocks to check.
    fn check_flags(&self, check: &UploadCheck) -> Result<bool, Failure> {
        let deadline = Instant::now() + self.config.timeout;
        let flags = loop {
            match self.client.flags(self.config.timeout) {
                Ok(flags) => break flags,
                Err(e) if Instant::now() + FLAGS_RETRY < deadline => {
                    log::debug!(err:% = e; "failed to get Prometheus flags; retrying");
                    match self.inbox.recv_timeout(FLAGS_RETRY) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(never) => match never {},
                        Err(RecvTimeoutError::Disconnected) => return Err(Failure::Stopped),
                    }
                }
                Err(e) => {
                    return Err(Failure::Error(format!(
                        "failed to get Prometheus flags: {e}"
                    )))
                }
            }
        };
        let Some(flags) = flags else {
            log::warn!("Prometheus has no /api/v1/status/flags (too old); cannot validate its block durations");
            return Ok(false);
        };
        if flags.agent {
            return Ok(true);
        }
        validate_flags(&flags, check).map_err(Failure::Error)?;
        Ok(false)
    }
}

fn validate_flags(flags: &prometheus::Flags, check: &UploadCheck) -> Result<(), String> {
    if !flags.delay_compact_file.is_empty() {
        let ours = clean(&check.tsdb_path.join(&check.shipper_meta_file_name));
        let theirs = clean(Path::new(&flags.delay_compact_file));
        if ours != theirs {
            return Err(format!(
                "Prometheus and Thanos track uploaded blocks in different files: \
                 Prometheus' storage.tsdb.delay-compact-file.path is {}, the sidecar's is {}",
                theirs.display(),
                ours.display()
            ));
        }
    } else if flags.min_block_duration != flags.max_block_duration {
        if !check.ignore_unequal_block_size {
            return Err(format!(
                "found that TSDB Max time is {} and Min time is {}. Compaction needs to be disabled \
                 (storage.tsdb.min-block-duration = storage.tsdb.max-block-duration)",
                format_model_duration(flags.max_block_duration),
                format_model_duration(flags.min_block_duration)
            ));
        }
        log::warn!("flag to ignore Prometheus min/max block duration flags differing is being used; \
                    if the upload of a 2h block fails and Prometheus compaction happens that block may be missing from your Thanos bucket storage");
    }
    if flags.min_block_duration != Duration::from_secs(2 * 3600) {
        log::warn!(min_block_duration = format_model_duration(flags.min_block_duration).as_str();
            "found that TSDB block time is not 2h; only 2h block time is recommended");
    }
    Ok(())
}

/// Lexical path cleaning (Go's `filepath.Clean`), without touching the disk.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

pub fn format_labels(labels: &prometheus::Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> UploadCheck {
        UploadCheck {
            tsdb_path: PathBuf::from("/prom/data"),
            shipper_meta_file_name: "thanos.shipper.json".into(),
            ignore_unequal_block_size: false,
        }
    }

    fn flags(min_h: u64, max_h: u64, delay: &str) -> prometheus::Flags {
        prometheus::Flags {
            min_block_duration: Duration::from_secs(min_h * 3600),
            max_block_duration: Duration::from_secs(max_h * 3600),
            delay_compact_file: delay.into(),
            ..Default::default()
        }
    }

    #[test]
    fn equal_block_durations_pass() {
        assert_eq!(validate_flags(&flags(2, 2, ""), &check()), Ok(()));
        // Not 2h is only a warning.
        assert_eq!(validate_flags(&flags(4, 4, ""), &check()), Ok(()));
    }

    #[test]
    fn unequal_block_durations_fail_naming_both() {
        let err = validate_flags(&flags(2, 24, ""), &check()).unwrap_err();
        assert!(err.contains("Max time is 1d and Min time is 2h"), "{err}");
        let mut ignore = check();
        ignore.ignore_unequal_block_size = true;
        assert_eq!(validate_flags(&flags(2, 24, ""), &ignore), Ok(()));
    }

    #[test]
    fn delay_compact_file_must_be_ours() {
        assert_eq!(
            validate_flags(&flags(2, 24, "/prom/data/./thanos.shipper.json"), &check()),
            Ok(())
        );
        let err =
            validate_flags(&flags(2, 24, "/elsewhere/thanos.shipper.json"), &check()).unwrap_err();
        assert!(err.contains("/elsewhere/thanos.shipper.json"), "{err}");
        assert!(err.contains("/prom/data/thanos.shipper.json"), "{err}");
    }
}
