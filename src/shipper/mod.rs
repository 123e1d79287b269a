//! The shipper: uploads every new TSDB block to object storage, as Thanos lays
//! it out, and records what it shipped in `thanos.shipper.json`.
//!
//! One thread runs one [`sync::Shipper::sync`] at a time: right away, every
//! 30 s (Thanos' fixed period), and shortly after a new block directory
//! appears in `--tsdb.path` (Thanos only polls; a watch gets blocks out
//! sooner). A failed sync is tried again after 1 s, then 2, 4, ... up to the
//! period, so a bucket back from a short outage gets its blocks within
//! seconds rather than at the next tick. Dropping the [`Handle`] cancels an in-flight upload without
//! recording it, then joins the thread.
//!
//! The local TSDB is never modified: blocks are read through hard links in
//! `<tsdb.path>/thanos/upload/<ULID>`, and only that staging directory and
//! the shipper file are written.

pub mod meta;
pub mod state;
pub mod sync;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};
use notify::Watcher as _;

use crate::actor::{Never, Progress};
use crate::metadata::Metadata;
use crate::objstore::{Bucket, Cancel};
use crate::Event;

pub use sync::Options;

/// Thanos syncs this often, fixed.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// After a block directory appears, wait this long for more (Prometheus
/// writes a few in a row after downtime) before syncing.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// The first retry after a failed sync; doubled per failure, up to the period.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How long a shutdown waits for the sync in flight to notice it was
/// cancelled. An upload blocked on a stalled connection cannot notice before
/// its socket times out (minutes); past this grace the thread is left behind
/// and dies with the process, its block unrecorded, as in Thanos.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Dropping the handle cancels the current upload, closes the inbox and
/// joins the thread (for at most [`SHUTDOWN_GRACE`]).
pub struct Handle {
    cancel: Cancel,
    sender: Option<Sender<Never>>,
    done: Receiver<()>,
    thread: Option<jod_thread::JoinHandle<()>>,
    progress: Arc<Progress>,
}

impl Handle {
    /// Ticks after every sync (see `actor::Progress`).
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

/// A sync runs at least every [`SYNC_INTERVAL`]; one that uploads a large
/// block over a slow link may take this much longer before the shipper is
/// taken for wedged.
const UPLOAD_ALLOWANCE: Duration = Duration::from_secs(15 * 60);

impl Drop for Handle {
    fn drop(&mut self) {
        self.cancel.cancel();
        drop(self.sender.take());
        let finished = !matches!(
            self.done.recv_timeout(SHUTDOWN_GRACE),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        );
        if let Some(thread) = self.thread.take() {
            if finished {
                drop(thread);
            } else {
                log::warn!("shipper did not stop within {SHUTDOWN_GRACE:?} (an upload is stuck on the network); abandoning it unrecorded");
                thread.detach();
            }
        }
    }
}

/// Starts the shipper; call once Prometheus' external labels are known.
pub fn spawn(
    opts: Options,
    bucket: Arc<dyn Bucket>,
    metadata: Arc<Metadata>,
    registry: &prom::Registry,
    events: Sender<Event>,
) -> std::io::Result<Handle> {
    if !opts.tsdb_path.is_dir() {
        // Thanos cannot open --tsdb.path either and stops.
        let _ = events.send(Event::Fatal(format!(
            "open tsdb path {}: not a directory",
            opts.tsdb_path.display()
        )));
    }
    let metrics = sync::Metrics::new(registry).map_err(std::io::Error::other)?;
    let labels_source = metadata.clone();
    let shipper = sync::Shipper::new(
        opts.clone(),
        bucket,
        Box::new(move || labels_source.external_labels()),
        metrics,
    );
    // Capacity 0: nothing is ever sent; dropping the sender is the stop signal.
    let (sender, inbox) = crossbeam_channel::bounded(0);
    let cancel = Cancel::new();
    let actor_cancel = cancel.clone();
    // Capacity 1: the thread says "done" once, without waiting for a reader.
    let (done_tx, done) = crossbeam_channel::bounded(1);
    // Both shortened only by a test build's fault hooks (src/fault.rs).
    let period = crate::fault::shipper_period();
    let interval = period.unwrap_or(SYNC_INTERVAL);
    let progress = Progress::new("shipper", interval + period.unwrap_or(UPLOAD_ALLOWANCE));
    let actor_progress = progress.clone();
    let thread = jod_thread::Builder::new()
        .name("shipper".into())
        .spawn(move || {
            run(
                shipper,
                &opts.tsdb_path,
                interval,
                inbox,
                actor_cancel,
                &actor_progress,
            );
            let _ = done_tx.send(());
        })?;
    Ok(Handle {
        cancel,
        sender: Some(sender),
        done,
        thread: Some(thread),
        progress,
    })
}

/// Logs at setup what Thanos logs: a missing WAL is suspicious but not fatal.
pub fn check_wal(tsdb_path: &Path) {
    let wal = tsdb_path.join("wal");
    if !wal.is_dir() {
        log::error!(dir = wal.display().to_string().as_str(); "WAL dir is not accessible. Is this dir a TSDB directory? If yes it is shared with TSDB?");
    }
}

fn run(
    shipper: sync::Shipper,
    tsdb_path: &Path,
    interval: Duration,
    inbox: Receiver<Never>,
    cancel: Cancel,
    progress: &Progress,
) {
    // Capacity 1: one pending "a block appeared" is as good as many.
    let (new_block_tx, new_block) = crossbeam_channel::bounded(1);
    let _watcher = watch(tsdb_path, new_block_tx);
    let ticker = crossbeam_channel::tick(interval);
    let mut retry = Retry::default();
    retry.after(sync_once(&shipper, &cancel));
    loop {
        progress.tick();
        let retry_timer = match retry.at {
            Some(at) => crossbeam_channel::at(at),
            None => crossbeam_channel::never(),
        };
        select! {
            recv(inbox) -> _ => return,
            recv(ticker) -> _ => retry.after(sync_once(&shipper, &cancel)),
            recv(retry_timer) -> _ => retry.after(sync_once(&shipper, &cancel)),
            recv(new_block) -> _ => {
                // Let a burst of new blocks settle into one sync.
                loop {
                    select! {
                        recv(inbox) -> _ => return,
                        recv(new_block) -> _ => continue,
                        default(DEBOUNCE) => break,
                    }
                }
                retry.after(sync_once(&shipper, &cancel));
            }
        }
    }
}

/// When to try again after failed syncs.
#[derive(Default)]
struct Retry {
    at: Option<std::time::Instant>,
    /// The wait after the latest failure; zero after a success.
    backoff: Duration,
}

impl Retry {
    fn after(&mut self, succeeded: bool) {
        if succeeded {
            *self = Retry::default();
            return;
        }
        self.backoff = (self.backoff * 2).clamp(FIRST_RETRY, SYNC_INTERVAL);
        self.at = Some(std::time::Instant::now() + self.backoff);
    }
}

/// One sync; false if it failed (and should be tried again soon).
fn sync_once(shipper: &sync::Shipper, cancel: &Cancel) -> bool {
    crate::fault::hang("shipper");
    match shipper.sync(cancel) {
        Ok(uploaded) => {
            if uploaded > 0 {
                log::info!(uploaded = uploaded; "shipper sync done");
            }
            true
        }
        Err(e) if e.cancelled => {
            log::info!(err = e.message.as_str(); "shipper stopped; the interrupted block is not recorded and will be uploaded again at next start");
            true
        }
        Err(e) => {
            log::warn!(err = e.message.as_str(), uploaded = e.uploaded; "shipper sync failed");
            false
        }
    }
}

/// Watches `--tsdb.path` (not recursively) for new block directories. A
/// failing watch only costs latency: the 30 s ticker still finds the blocks.
fn watch(tsdb_path: &Path, new_block: Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let relevant = matches!(
            event.kind,
            notify::EventKind::Create(_)
                | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
        );
        if relevant && event.paths.iter().any(|p| names_block(p)) {
            // Full means a sync is already pending.
            let _ = new_block.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            log::warn!(err:% = e; "cannot watch the TSDB directory for new blocks; relying on the 30s sync");
            return None;
        }
    };
    if let Err(e) = watcher.watch(tsdb_path, notify::RecursiveMode::NonRecursive) {
        log::warn!(err:% = e, dir = tsdb_path.display().to_string().as_str(); "cannot watch the TSDB directory for new blocks; relying on the 30s sync");
        return None;
    }
    Some(watcher)
}

fn names_block(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(sync::is_block_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_a_second_to_the_period_and_reset_on_success() {
        let mut retry = Retry::default();
        let waits: Vec<u64> = (0..7)
            .map(|_| {
                retry.after(false);
                retry.backoff.as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert!(retry.at.is_some());
        retry.after(true);
        assert!(retry.at.is_none());
        retry.after(false);
        assert_eq!(retry.backoff, FIRST_RETRY);
    }
}
