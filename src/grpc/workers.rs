//! The threads that do gRPC calls' blocking work (HTTP to Prometheus,
//! decoding, sorting) while the completion queue only moves messages.
//!
//! A pool, not a thread per call: a thread that finished a call waits for
//! the next one, so a steady querier load runs on a steady set of threads,
//! and the memory of their stacks and allocator caches is a function of the
//! calls in flight rather than churned with every call. Each thread hands
//! its allocator cache back after a call and again once idle
//! ([`crate::allocator::release_thread_cache`]), so what it keeps does not
//! depend on which calls it ran last. Threads start when
//! every running one is busy, up to `--grpc-server-max-workers` (256);
//! beyond that calls wait in a queue of `--grpc-server-max-queued-calls`
//! (1024), and a call that finds the queue full is refused with
//! ResourceExhausted, so a burst of thousands of calls (a misconfigured
//! querier fleet) costs a bounded number of threads and their memory. A thread idle for [`IDLE`] ends, so a burst's
//! threads do not stay forever.
//!
//! Each thread is named after the call it runs (`store-series`,
//! `api-rules`, ...) and `grpc-worker` while it waits, so `top -H` and
//! `/proc/PID/task/*/comm` show what the sidecar is doing.
//!
//! A call whose client is gone (cancelled, or past its deadline) is given
//! up through its [`Ticket`]: queued, it never runs; running, its thread
//! leaves the pool at once and ends when the call's work returns. The work
//! notices a gone client at its next message, but a thread blocked before
//! Prometheus' first byte cannot be interrupted (ureq 2 gives no handle on
//! its socket), and without this one stalled Prometheus answer would hold a
//! worker for the whole read timeout while the calls behind it wait.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use grpcio::{RpcStatus, RpcStatusCode};

/// How long a thread waits for work before it ends.
const IDLE: Duration = Duration::from_secs(60);
/// How often a waiting thread looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(200);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A call's place in the pool, as its [`Ticket`] and its thread see it.
type JobState = Arc<AtomicU8>;
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
/// Given up before a thread took it: it will not run.
const DROPPED: u8 = 3;
/// Given up while running: its thread has left the pool.
const DETACHED: u8 = 4;

/// Cheap to clone; every clone is the same pool.
#[derive(Clone)]
pub struct Workers {
    shared: Arc<Shared>,
}

struct Shared {
    // Capacity `--grpc-server-max-queued-calls`: calls waiting for a busy
    // pool (see the module doc).
    sender: Sender<(&'static str, JobState, Job)>,
    receiver: Receiver<(&'static str, JobState, Job)>,
    /// At most this many threads; each costs its touched stack and
    /// allocator pages (~0.5 MB under load).
    max_workers: usize,
    /// Threads running, busy or not.
    live: AtomicUsize,
    /// Threads waiting for a job.
    idle: AtomicUsize,
    /// Threads that left the pool with a given-up call still running; at
    /// most `max_workers`, so a Prometheus that never answers costs at most
    /// twice the pool's threads before calls queue again.
    detached: AtomicUsize,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// A pool of at most `max_workers` threads and `queue` waiting calls
    /// (both at least 1, as the flags ensure).
    pub fn new(max_workers: usize, queue: usize) -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(queue.max(1));
        Workers {
            shared: Arc::new(Shared {
                sender,
                receiver,
                max_workers: max_workers.max(1),
                live: AtomicUsize::new(0),
                idle: AtomicUsize::new(0),
                detached: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                threads: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Runs `job` on a pool thread named `name` while it runs; the ticket
    /// gives it up.
    pub fn spawn(
        &self,
        name: &'static str,
        job: impl FnOnce() + Send + 'static,
    ) -> Result<Ticket, RpcStatus> {
        let shared = &self.shared;
        let state = Arc::new(AtomicU8::new(QUEUED));
        match shared.sender.try_send((name, state.clone(), Box::new(job))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(RpcStatus::with_message(
                    RpcStatusCode::RESOURCE_EXHAUSTED,
                    format!(
                        "too many calls in flight: {} running and {} waiting (--grpc-server-max-workers, --grpc-server-max-queued-calls); try again later",
                        shared.max_workers,
                        shared.sender.capacity().unwrap_or(0)
                    ),
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(RpcStatus::with_message(
                    RpcStatusCode::UNAVAILABLE,
                    "shutting down".into(),
                ))
            }
        }
        // A thread more while queued calls outnumber waiting threads (so a
        // burst does not line up behind one idle thread).
        if shared.receiver.len() > shared.idle.load(Ordering::Acquire) {
            self.grow();
        }
        Ok(Ticket {
            state,
            workers: self.clone(),
        })
    }

    fn grow(&self) {
        let shared = &self.shared;
        let reserved = shared
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shared.max_workers).then_some(n + 1)
            });
        if reserved.is_err() {
            return; // At the cap: the job waits for a busy thread.
        }
        let pool = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("grpc-worker".into())
            .spawn(move || work(&pool));
        let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
        // Join the threads that ended, so their handles do not pile up.
        let (ended, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
        for t in ended {
            let _ = t.join();
        }
        *threads = running;
        match started {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                shared.live.fetch_sub(1, Ordering::AcqRel);
                log::error!(err = e.to_string().as_str(); "cannot start a gRPC worker thread");
            }
        }
    }

    /// Threads in the pool now (busy or waiting).
    pub fn threads(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Threads that left the pool with a given-up call still running.
    pub fn detached(&self) -> usize {
        self.shared.detached.load(Ordering::Acquire)
    }

    /// Lets the queued calls finish, then joins every thread that ends
    /// within `patience`. A thread still busy then (a call blocked on a
    /// Prometheus that stopped answering) is left to the process' exit:
    /// shutdown must not wait for a read that may take an hour.
    pub fn join_all(&self, patience: Duration) {
        self.shared.stopping.store(true, Ordering::Release);
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let deadline = std::time::Instant::now() + patience;
        let mut left = threads;
        loop {
            let (ended, running): (Vec<_>, Vec<_>) =
                left.into_iter().partition(|t| t.is_finished());
            for t in ended {
                let _ = t.join();
            }
            left = running;
            if left.is_empty() {
                return;
            }
            if std::time::Instant::now() >= deadline {
                log::warn!(threads = left.len(); "gRPC calls still busy at shutdown; not waiting for them");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn work(pool: &Shared) {
    let mut waited = Duration::ZERO;
    loop {
        pool.idle.fetch_add(1, Ordering::AcqRel);
        let next = pool.receiver.recv_timeout(POLL);
        pool.idle.fetch_sub(1, Ordering::AcqRel);
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if waited.is_zero() {
                    // Idle since the last call: what gRPC's thread freed of
                    // that call's answers since then goes back too.
                    crate::allocator::release_thread_cache();
                }
                waited += POLL;
                if !(pool.stopping.load(Ordering::Acquire) || waited >= IDLE) {
                    continue;
                }
                // Ending: take nothing queued with us.
                match pool.receiver.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        waited = Duration::ZERO;
        if run(pool, job) == Left::Pool {
            return;
        }
    }
    pool.live.fetch_sub(1, Ordering::AcqRel);
}

#[derive(PartialEq)]
enum Left {
    /// The thread is still one of the pool's.
    Nothing,
    /// The job was given up while it ran: the thread is no longer the
    /// pool's (its `live` count was taken back then) and must end.
    Pool,
}

fn run(pool: &Shared, (name, state, job): (&'static str, JobState, Job)) -> Left {
    if state
        .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Left::Nothing; // Given up while queued.
    }
    set_name(name);
    // The calls' work catches its own panics (to answer the call); this
    // keeps the thread should anything else panic.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    crate::allocator::release_thread_cache();
    if state
        .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        pool.detached.fetch_sub(1, Ordering::AcqRel);
        return Left::Pool;
    }
    set_name("grpc-worker");
    Left::Nothing
}

/// A call handed to the pool, held by whoever answers its client.
pub struct Ticket {
    state: JobState,
    workers: Workers,
}

impl Ticket {
    /// The client is gone: a queued call will not run; a running one's
    /// thread leaves the pool (the pool starts another when calls wait) and
    /// ends once the work returns. Beyond `max_workers` such threads the
    /// running call keeps its place instead: a Prometheus that never answers
    /// then fills the pool, and calls queue and are refused as in any burst.
    pub fn give_up(&self) {
        let shared = &self.workers.shared;
        if self
            .state
            .compare_exchange(QUEUED, DROPPED, Ordering::AcqRel, Ordering::Acquire)
            != Err(RUNNING)
        {
            return; // Dropped now, or already done.
        }
        let reserved = shared
            .detached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shared.max_workers).then_some(n + 1)
            });
        if reserved.is_err() {
            return;
        }
        if self
            .state
            .compare_exchange(RUNNING, DETACHED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // It finished meanwhile and stays in the pool.
            shared.detached.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        shared.live.fetch_sub(1, Ordering::AcqRel);
        log::debug!(detached = shared.detached.load(Ordering::Acquire); "a gRPC call given up while running; its thread left the pool");
        if !shared.receiver.is_empty() {
            self.workers.grow();
        }
    }
}

/// The OS thread name (`comm`, at most 15 bytes) shown by `top -H`.
fn set_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().take(15).filter(|b| *b != 0).collect();
    bytes.push(0);
    if let Ok(name) = std::ffi::CStr::from_bytes_with_nul(&bytes) {
        let _ = rustix::thread::set_name(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn sequential_calls_reuse_one_thread() {
        let workers = Workers::new(256, 1024);
        let done = Arc::new(AtomicU32::new(0));
        for _ in 0..200 {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let done = done.clone();
            workers
                .spawn("test-call", move || {
                    done.fetch_add(1, Ordering::AcqRel);
                    let _ = tx.send(());
                })
                .unwrap();
            rx.recv().unwrap();
            // Sequential as the pool sees it: the next call comes once the
            // thread is back waiting (a loaded machine may take a while).
            eventually("a thread waits again", || {
                workers.shared.idle.load(Ordering::Acquire) >= 1
            });
        }
        assert_eq!(done.load(Ordering::Acquire), 200);
        // One, or two when a call arrived just as the waiting thread looked
        // up from its 200 ms poll (not counted idle for that instant).
        assert!(workers.threads() <= 2, "{} threads", workers.threads());
        workers.join_all(Duration::from_secs(5));
        assert_eq!(workers.threads(), 0);
    }

    #[test]
    fn concurrent_calls_get_threads_up_to_the_cap_then_queue_then_are_refused() {
        const MAX_WORKERS: usize = 8;
        const QUEUE: usize = 16;
        let workers = Workers::new(MAX_WORKERS, QUEUE);
        let (release, hold) = crossbeam_channel::unbounded::<()>();
        let mut accepted = 0;
        let mut refused = None;
        for _ in 0..(MAX_WORKERS + QUEUE + 1) {
            let hold = hold.clone();
            match workers.spawn("test-hold", move || {
                let _ = hold.recv();
            }) {
                Ok(_) => accepted += 1,
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        let status = refused.expect("refused beyond the queue");
        assert_eq!(status.code(), RpcStatusCode::RESOURCE_EXHAUSTED);
        assert!(
            (QUEUE..=MAX_WORKERS + QUEUE).contains(&accepted),
            "{accepted}"
        );
        assert!(workers.threads() <= MAX_WORKERS);
        drop(hold);
        for _ in 0..accepted {
            release.send(()).unwrap();
        }
        workers.join_all(Duration::from_secs(5));
        assert_eq!(workers.threads(), 0);
    }

    /// A job that waits until its `release` sender is dropped or sent to.
    fn held(release: &crossbeam_channel::Receiver<()>, ran: &Arc<AtomicU32>) -> impl FnOnce() {
        let (release, ran) = (release.clone(), ran.clone());
        move || {
            ran.fetch_add(1, Ordering::AcqRel);
            let _ = release.recv();
        }
    }

    fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(std::time::Instant::now() < until, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_call_given_up_while_queued_never_runs() {
        let workers = Workers::new(1, 4);
        let ran = Arc::new(AtomicU32::new(0));
        let (release, hold) = crossbeam_channel::unbounded::<()>();
        let _first = workers.spawn("test-first", held(&hold, &ran)).unwrap();
        eventually("the first call runs", || ran.load(Ordering::Acquire) == 1);
        let second = workers.spawn("test-second", held(&hold, &ran)).unwrap();
        second.give_up();
        release.send(()).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        workers
            .spawn("test-third", move || {
                let _ = tx.send(());
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ran.load(Ordering::Acquire), 1, "the given-up call ran");
        drop(release);
        workers.join_all(Duration::from_secs(5));
    }

    #[test]
    fn a_call_given_up_while_running_frees_its_place_at_once() {
        let workers = Workers::new(1, 4);
        let ran = Arc::new(AtomicU32::new(0));
        let (release, hold) = crossbeam_channel::unbounded::<()>();
        let stuck = workers.spawn("test-stuck", held(&hold, &ran)).unwrap();
        eventually("the stuck call runs", || ran.load(Ordering::Acquire) == 1);
        // Queued behind the stuck one: the only worker is busy.
        let (tx, rx) = crossbeam_channel::bounded(2);
        let tx2 = tx.clone();
        workers
            .spawn("test-next", move || {
                let _ = tx2.send(());
            })
            .unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        stuck.give_up();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the queued call ran once the stuck one was given up");
        assert_eq!(workers.detached(), 1);
        // The cap: a second stuck call, given up, keeps its place while the
        // first still runs (one detached thread per worker at most).
        let second = workers.spawn("test-stuck-2", held(&hold, &ran)).unwrap();
        eventually("the second stuck call runs", || {
            ran.load(Ordering::Acquire) == 2
        });
        second.give_up();
        assert_eq!(workers.detached(), 1);
        assert_eq!(workers.threads(), 1);
        workers
            .spawn("test-after", move || {
                let _ = tx.send(());
            })
            .unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        // Both stuck calls end: the detached thread ends, the other serves.
        release.send(()).unwrap();
        release.send(()).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        eventually("the detached thread ends", || workers.detached() == 0);
        workers.join_all(Duration::from_secs(5));
        assert_eq!(workers.threads(), 0);
    }
}
