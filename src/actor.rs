//! The thread behind an actor's handle, joined on drop, but not for ever.
//!
//! An actor told to stop may be in the middle of an HTTP call to a
//! Prometheus or bucket that stopped answering, with a timeout of minutes
//! (`--prometheus.get_config_timeout` is 2m by default). Shutdown must not
//! wait for it: the thread gets a short patience to end, and is otherwise
//! left to the process' exit, with a warning that names it.

use std::time::Duration;

use crossbeam_channel::Receiver;

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
