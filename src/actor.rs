//! The thread behind an actor's handle, joined on drop, but not for ever;
//! and the actors' sign of life that the systemd watchdog is fed from.
//!
//! An actor told to stop may be in the middle of an HTTP call to a
//! Prometheus or bucket that stopped answering, with a timeout of minutes
//! (`--prometheus.get_config_timeout` is 2m by default). Shutdown must not
//! wait for it: the thread gets a short patience to end, and is otherwise
//! left to the process' exit, with a warning that names it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

/// What an inbox carries when closing it is the only thing it ever says
/// (the heartbeat, the shipper and the reloader are told only to stop).
pub enum Never {}

/// An actor's latest sign of life. Its loop calls [`Progress::tick`] every
/// time it goes round; an actor that has not for longer than its deadline
/// is wedged (a deadlock, a call that ignores its timeout), and the main
/// loop stops feeding systemd's watchdog, so systemd restarts the daemon.
pub struct Progress {
    name: &'static str,
    deadline: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` at the latest tick.
    last: AtomicU64,
    /// Whether the stall was logged already (once per stall).
    reported: AtomicBool,
}

impl Progress {
    pub fn new(name: &'static str, deadline: Duration) -> Arc<Progress> {
        Arc::new(Progress {
            name,
            deadline,
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            reported: AtomicBool::new(false),
        })
    }

    pub fn tick(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.reported.store(false, Ordering::Relaxed);
    }

    /// How long since the latest tick, if longer than the deadline.
    fn stalled(&self) -> Option<Duration> {
        let since = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)));
        (since > self.deadline).then_some(since)
    }
}

/// True when every actor showed progress within its deadline; a stalled one
/// is logged (once per stall) by name.
pub fn all_alive(actors: &[Arc<Progress>]) -> bool {
    let mut alive = true;
    for actor in actors {
        if let Some(since) = actor.stalled() {
            alive = false;
            if !actor.reported.swap(true, Ordering::Relaxed) {
                log::error!(actor = actor.name, since:? = since, deadline:? = actor.deadline; "an actor has shown no progress within its deadline; no longer feeding the systemd watchdog");
            }
        }
    }
    alive
}

pub struct ActorThread {
    name: &'static str,
    patience: Duration,
    /// Closed (the sender dropped) when the thread's function returns.
    ended: Receiver<()>,
    thread: Option<jod_thread::JoinHandle<()>>,
}

impl ActorThread {
    /// Runs `f` on a thread called `name`; dropping the result waits at most
    /// `patience` for `f` to return.
    pub fn spawn(
        name: &'static str,
        patience: Duration,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<ActorThread> {
        // Capacity 0: nothing is sent; the sender's drop at the end of the
        // thread is the signal.
        let (ending, ended) = crossbeam_channel::bounded::<()>(0);
        let thread = jod_thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ending = ending;
                f();
            })?;
        Ok(ActorThread {
            name,
            patience,
            ended,
            thread: Some(thread),
        })
    }
}

impl Drop for ActorThread {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        match self.ended.recv_timeout(self.patience) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                log::warn!(thread = self.name, patience:? = self.patience; "thread did not stop in time (blocked on the network?); not waiting for it");
                thread.detach();
            }
            _ => drop(thread),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_watchdog_is_fed_only_while_every_actor_ticks_in_time() {
        let quick = Progress::new("quick", Duration::from_millis(300));
        let wedged = Progress::new("wedged", Duration::from_millis(300));
        let actors = [quick.clone(), wedged.clone()];
        assert!(all_alive(&actors), "both fresh");
        std::thread::sleep(Duration::from_millis(200));
        quick.tick();
        wedged.tick();
        std::thread::sleep(Duration::from_millis(200));
        quick.tick();
        assert!(all_alive(&actors));
        // `wedged` stops ticking: 400 ms > 300 ms.
        std::thread::sleep(Duration::from_millis(200));
        quick.tick();
        assert!(!all_alive(&actors));
        assert!(wedged.stalled().is_some() && quick.stalled().is_none());
        // It recovers: fed again.
        wedged.tick();
        assert!(all_alive(&actors));
    }

    #[test]
    fn a_thread_that_ends_is_joined_and_one_that_hangs_is_left() {
        let quick = ActorThread::spawn("test-quick", Duration::from_secs(5), || {}).unwrap();
        let t = Instant::now();
        drop(quick);
        assert!(t.elapsed() < Duration::from_secs(1));

        let (_hold, wait) = crossbeam_channel::bounded::<()>(0);
        let stuck = ActorThread::spawn("test-stuck", Duration::from_millis(100), move || {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        })
        .unwrap();
        let t = Instant::now();
        drop(stuck);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
