//! The one retry loop the object-storage clients share.
//!
//! S3, GCS and Azure each decide for themselves which failures are worth
//! another try (their [`Attempt`]s); how many tries, how long to wait between
//! them, when a server's `Retry-After` wins over the backoff, and that a
//! shutdown cuts the wait short are the same everywhere, so they live here.
//! The wait is [`Cancel::sleep`]: the shipper cancels its token on shutdown,
//! and a retry must not hold the daemon for a backoff that can reach a minute.

use std::fmt;
use std::time::Duration;

use super::{Cancel, Error};

/// One try's failure as the back end judges it.
#[derive(Debug)]
pub(crate) enum Attempt<E = Error> {
    /// Worth another try after the policy's backoff (network, throttling, 5xx).
    Retry(E),
    /// Worth another try after this long, as the server asked (`Retry-After`).
    RetryAfter(E, Duration),
    /// Another try would fail the same way.
    Fail(E),
}

impl<E> Attempt<E> {
    pub fn into_error(self) -> E {
        match self {
            Attempt::Retry(e) | Attempt::RetryAfter(e, _) | Attempt::Fail(e) => e,
        }
    }

    /// The same verdict on a transformed error (e.g. with context added).
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Attempt<F> {
        match self {
            Attempt::Retry(e) => Attempt::Retry(f(e)),
            Attempt::RetryAfter(e, d) => Attempt::RetryAfter(f(e), d),
            Attempt::Fail(e) => Attempt::Fail(f(e)),
        }
    }
}

/// Why [`Policy::run`] gave up; callers that word the last failure
/// differently (Azure counts the attempts) branch on it.
#[derive(Debug)]
pub(crate) enum Stop<E = Error> {
    /// Shutdown, before a try or during a wait.
    Cancelled(Error),
    /// A failure judged final.
    Failed(E),
    /// Every try failed in a retryable way; the last failure.
    Exhausted { last: E, attempts: u32 },
}

impl From<Stop> for Error {
    fn from(stop: Stop) -> Error {
        match stop {
            Stop::Cancelled(e) | Stop::Failed(e) | Stop::Exhausted { last: e, .. } => e,
        }
    }
}

/// How the wait grows with the number of failed tries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Backoff {
    /// `step × attempt` (what the S3 client has always done).
    Linear(Duration),
    /// `first × 2^(attempt-1)`, doubling at most `doublings` times (the Go
    /// and Azure SDKs' shape).
    Exponential { first: Duration, doublings: u32 },
}

impl Backoff {
    fn after(self, attempt: u32) -> Duration {
        match self {
            Backoff::Linear(step) => step.saturating_mul(attempt),
            Backoff::Exponential { first, doublings } => {
                let doublings = attempt.saturating_sub(1).min(doublings).min(31);
                first.saturating_mul(1 << doublings)
            }
        }
    }
}

/// Attempts and waits for one back end's requests.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Policy {
    /// Names the back end in logs ("S3", "GCS", "Azure").
    pub backend: &'static str,
    /// Tries in all, the first included; at least one is always made.
    pub attempts: u32,
    pub backoff: Backoff,
    /// No wait is longer, whether from the backoff or from the server.
    pub max_delay: Duration,
}

impl Policy {
    /// The wait after failed try number `attempt` (1-based): the server's
    /// word when it gave one, else the backoff; capped by `max_delay`.
    pub fn delay(&self, attempt: u32, server: Option<Duration>) -> Duration {
        server
            .unwrap_or_else(|| self.backoff.after(attempt))
            .min(self.max_delay)
    }

    /// Runs `f` until it succeeds, fails for good, has been tried `attempts`
    /// times, or `cancel` is set (checked before each try and during waits).
    /// `what` names the operation in the debug log of each retry.
    pub fn run<T, E: fmt::Display>(
        &self,
        what: &str,
        cancel: &Cancel,
        mut f: impl FnMut() -> Result<T, Attempt<E>>,
    ) -> Result<T, Stop<E>> {
        let mut attempt = 1;
        loop {
            cancel.check().map_err(Stop::Cancelled)?;
            let (err, server) = match f() {
                Ok(v) => return Ok(v),
                Err(Attempt::Fail(e)) => return Err(Stop::Failed(e)),
                Err(Attempt::Retry(e)) => (e, None),
                Err(Attempt::RetryAfter(e, d)) => (e, Some(d)),
            };
            if attempt >= self.attempts {
                return Err(Stop::Exhausted {
                    last: err,
                    attempts: attempt,
                });
            }
            let delay = self.delay(attempt, server);
            log::debug!(
                object = what, attempt = attempt, delay_ms = delay.as_millis() as u64, err:% = err;
                "{} request failed; retrying", self.backend
            );
            cancel.sleep(delay).map_err(Stop::Cancelled)?;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::ErrorKind;
    use std::cell::Cell;
    use std::time::Instant;

    fn policy(attempts: u32, first: Duration) -> Policy {
        Policy {
            backend: "test",
            attempts,
            backoff: Backoff::Exponential {
                first,
                doublings: 16,
            },
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn attempts_are_bounded_and_the_last_failure_is_kept() {
        let tries = Cell::new(0);
        let stop = policy(3, Duration::ZERO)
            .run("x", &Cancel::new(), || -> Result<(), _> {
                tries.set(tries.get() + 1);
                Err(Attempt::Retry(format!("failure {}", tries.get())))
            })
            .unwrap_err();
        assert_eq!(tries.get(), 3);
        match stop {
            Stop::Exhausted { last, attempts } => {
                assert_eq!((last.as_str(), attempts), ("failure 3", 3));
            }
            other => panic!("{other:?}"),
        }
        // Zero attempts still makes one.
        let tries = Cell::new(0);
        let _ = policy(0, Duration::ZERO).run("x", &Cancel::new(), || -> Result<(), _> {
            tries.set(tries.get() + 1);
            Err(Attempt::Retry("no"))
        });
        assert_eq!(tries.get(), 1);
    }

    #[test]
    fn a_final_failure_is_not_retried_and_success_ends_the_loop() {
        let tries = Cell::new(0);
        let stop = policy(5, Duration::ZERO)
            .run("x", &Cancel::new(), || -> Result<(), _> {
                tries.set(tries.get() + 1);
                Err(Attempt::Fail("bad request"))
            })
            .unwrap_err();
        assert!(matches!(stop, Stop::Failed("bad request")), "{stop:?}");
        assert_eq!(tries.get(), 1);
        let tries = Cell::new(0);
        let v = policy(5, Duration::ZERO).run("x", &Cancel::new(), || {
            tries.set(tries.get() + 1);
            if tries.get() < 3 {
                Err(Attempt::Retry("blip"))
            } else {
                Ok(42)
            }
        });
        assert_eq!((v.unwrap(), tries.get()), (42, 3));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = policy(3, Duration::from_secs(30));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(p.delay(1, None), Duration::from_secs(30));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(600))),
            Duration::from_secs(60)
        );
        // A long backoff, but the server said "now": no wait.
        let tries = Cell::new(0);
        let start = Instant::now();
        let v = p.run("x", &Cancel::new(), || {
            tries.set(tries.get() + 1);
            if tries.get() == 1 {
                Err(Attempt::RetryAfter("throttled", Duration::ZERO))
            } else {
                Ok(())
            }
        });
        assert!(v.is_ok());
        assert!(start.elapsed() < Duration::from_secs(5));
        // And a server's short wait is waited.
        let tries = Cell::new(0);
        let start = Instant::now();
        let _ = p.run("x", &Cancel::new(), || {
            tries.set(tries.get() + 1);
            if tries.get() == 1 {
                Err(Attempt::RetryAfter("throttled", Duration::from_millis(120)))
            } else {
                Ok(())
            }
        });
        assert!(start.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn cancel_interrupts_the_wait() {
        let cancel = Cancel::new();
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                cancel.cancel();
            })
        };
        let start = Instant::now();
        let stop = policy(3, Duration::from_secs(30))
            .run("x", &cancel, || -> Result<(), _> {
                Err(Attempt::Retry("down"))
            })
            .unwrap_err();
        let waited = start.elapsed();
        canceller.join().unwrap();
        match stop {
            Stop::Cancelled(e) => assert_eq!(e.kind, ErrorKind::Cancelled),
            other => panic!("{other:?}"),
        }
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Cancelled before the first try: no try at all.
        let tries = Cell::new(0);
        let stop = policy(3, Duration::ZERO)
            .run("x", &cancel, || -> Result<(), Attempt<&str>> {
                tries.set(tries.get() + 1);
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(stop, Stop::Cancelled(_)));
        assert_eq!(tries.get(), 0);
    }

    #[test]
    fn backoffs() {
        let lin = Backoff::Linear(Duration::from_millis(200));
        assert_eq!(lin.after(1), Duration::from_millis(200));
        assert_eq!(lin.after(3), Duration::from_millis(600));
        let exp = Backoff::Exponential {
            first: Duration::from_millis(250),
            doublings: 4,
        };
        assert_eq!(exp.after(1), Duration::from_millis(250));
        assert_eq!(exp.after(2), Duration::from_millis(500));
        assert_eq!(exp.after(5), Duration::from_millis(4000));
        assert_eq!(exp.after(9), Duration::from_millis(4000));
    }
}
