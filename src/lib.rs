//! thanos-sidecar: a small, thread-based drop-in replacement for `thanos sidecar`.
//!
//! Each concern is a module; `main.rs` wires them. Threads are actors behind
//! handles: dropping a handle closes its inbox and joins the thread.
//!
//! # Concurrency, all in one place
//!
//! No async runtime: OS threads, crossbeam channels and one mutex. Every
//! thread is named (`top -H` shows them) and has one owner that ends it.
//!
//! | thread | started by | ended and joined by |
//! |---|---|---|
//! | `main` | — | — : its loop waits on the event channel, the watchdog tick and the ready deadline |
//! | `signals` | `main` ([`signals::spawn`]) | dropping its handle closes the signal iterator |
//! | `http` (tiny_http's request loop) | [`http::spawn`] | dropping the handle unblocks the server, then joins |
//! | `http-accept`, `http-conn` ×≤256 | `http::front` | accept: a stop flag, joined with the handle; a connection thread ends with its client or a deadline (30 s head, 5 min idle, 60 s write) and is not joined |
//! | `heartbeat` | [`heartbeat::spawn`] | its inbox closes (`stop`), joined on drop within 500 ms, else left to the exit ([`actor::ActorThread`]) |
//! | `reloader` (+ notify's inotify thread) | [`reloader::spawn`] | as the heartbeat; dropping the watcher ends notify's thread |
//! | `grpc-cq` (1) and the C core's own executor/timer threads | [`grpc::start`] | dropping the server |
//! | `grpc-worker` ×≤`--grpc-server-max-workers`, renamed after the call they run | the pool in [`grpc::workers`] as calls arrive | idle 60 s, or shutdown: [`grpc::workers::Workers::join_all`] within 500 ms after the grace period; a given-up call's thread leaves the pool and ends with its work |
//! | `grpc-shutdown` | the gRPC handle's drop | waits for the server's graceful shutdown, at most the grace period |
//! | `shipper` (+ notify's thread), `shipper-upload-N` ×`--shipper.upload-concurrency`, `s3-part-N` | [`shipper::spawn`], scoped per block and per object | the shipper's inbox closes and its [`objstore::Cancel`] fires: an upload in flight stops and is not recorded; scoped threads are joined by their scope |
//! | `regex-compile` | a matcher too deeply nested for a worker's stack | joined at once (scoped) |
//!
//! Channels, each bounded:
//! - `main`'s events ([`Event`]), capacity 16: a handful of signals and one
//!   event per component; `main` drains it at once, and drops the receiver
//!   before joining anyone, so no sender can block shutdown on a full one.
//! - Each actor's inbox, capacity 0: nothing is sent; dropping the sender
//!   is the stop signal, seen by the actor's one `select!`.
//! - Wake-ups (reloader "a file changed", shipper "a block appeared"),
//!   capacity 1: one pending wake-up says all that many would.
//! - The gRPC pool's queue, capacity `--grpc-server-max-queued-calls`:
//!   beyond it a call is refused with ResourceExhausted.
//! - A streaming call's frames, worker → completion queue, capacity 4
//!   (Series) or the API's own: the worker blocks while a slow client
//!   reads, so one call holds a bounded amount of memory.
//!
//! [`metadata::Metadata`] is the one shared struct, behind one mutex held
//! only to copy in or out. Its writers: the heartbeat (what Prometheus
//! says, "Prometheus is up") and `main` ("serving", health). Everyone else
//! reads; readiness is derived from the two writers' halves, never stored.
//!
//! Shutdown, in `main`, in Thanos' order, each step for a reason:
//! 1. drop the event receiver: a sender now fails instead of blocking;
//! 2. "not serving", then stop HTTP: probes see not-ready before the port
//!    goes;
//! 3. tell the heartbeat and reloader to stop, without joining yet: a call
//!    of theirs stuck on a hung Prometheus ends during step 4;
//! 4. stop gRPC: no new calls, in-flight calls get `--grpc-grace-period`,
//!    the rest are cancelled; workers get 500 ms more;
//! 5. join the heartbeat and reloader (500 ms each at most), then stop the
//!    shipper (an upload in flight is abandoned, never recorded as
//!    uploaded), then the signal thread.
//!
//! No step waits for a blocked peer for longer than its bound, so shutdown
//! takes the grace period and about a second, whatever is stuck.

pub mod actor;
pub mod allocator;
pub mod apis;
pub mod build_info;
pub mod envsubst;
pub mod fault;
pub mod flags;
pub mod grpc;
pub mod heartbeat;
pub mod http;
pub mod listen;
pub mod logging;
pub mod metadata;
pub mod objstore;
pub mod prometheus;
pub mod proto;
pub mod reloader;
pub mod sd_notify;
pub mod shipper;
pub mod signals;
pub mod store;
pub mod tls;
pub mod values;
pub mod yaml;

/// What the threads tell the main loop.
#[derive(Debug)]
pub enum Event {
    /// Start-up found Prometheus with external labels: serving may begin.
    PrometheusReady,
    /// A component cannot go on; the daemon stops and exits 1.
    Fatal(String),
    /// SIGINT or SIGTERM (stop) or SIGHUP (logged only), by name.
    Signal(&'static str),
}
