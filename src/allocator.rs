//! How the static binary's allocator (mimalloc, musl targets only; Cargo.toml
//! says why) is told to give memory back, so that the daemon's memory follows
//! its calls in flight, not the calls it has served.
//!
//! Two settings, each measured (BENCHMARKS.md, Memory over calls served):
//! freed pages go back to the OS at once rather than after a delay, and each
//! worker thread hands its allocator cache back after every call and once
//! idle. On other targets (the glibc host build the tests also run) both do
//! nothing.

/// Freed pages go back to the OS at once (`purge_delay` 0; mimalloc waits
/// 1 s by default): with a delay each of the worker pool's threads held on
/// to its recent peak, and a querier fleet's sidecar grew for minutes (52 MB
/// and climbing against 35 MB flat under 50 clients).
/// A `MIMALLOC_PURGE_DELAY` in the environment still wins. Call it first
/// thing in `main`.
pub fn give_freed_pages_back_at_once() {
    #[cfg(target_env = "musl")]
    {
        /// `mi_option_purge_delay` in mimalloc v3's `mi_option_t`
        /// (mimalloc.h); the crate does not export the constant.
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        // SAFETY: mi_option_set_default only stores an integer into
        // mimalloc's option table when the option is not set yet; it has no
        // preconditions and may be called at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set_default(PURGE_DELAY, 0) }
    }
}

/// Hands the calling thread's allocator cache back: pages it emptied but
/// keeps for its next allocations of the same size, and blocks other
/// threads freed on its pages (gRPC's thread frees a worker's answers). A
/// worker thread calls it after each call and once idle. Without it each of
/// 50 busy workers kept ~50 KB more, by how much depending on the calls it
/// ran last, so the total swung with the mix of calls in flight: a 10-minute
/// soak of 50 clients averaged 17.2 MB (sd 0.57 MB) before, 14.0 MB
/// (sd 0.36 MB) with it; no cost measurable on a call's latency.
pub fn release_thread_cache() {
    // SAFETY: mi_collect(false) collects the calling thread's own heap; it
    // has no preconditions, touches no memory still in use, and is what
    // mimalloc itself runs every few thousand allocations.
    #[cfg(target_env = "musl")]
    unsafe {
        libmimalloc_sys::mi_collect(false)
    }
}
