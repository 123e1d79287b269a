//! Test-only fault hooks: an actor made to hang on demand, so the integration
//! suite can show that one wedged actor starves systemd's watchdog.
//!
//! Compiled in only with the `fault-injection` feature, which is off by
//! default and never part of a release or static build; without it every
//! hook is an empty inline function and [`ENABLED`] is false (`--version`
//! then says nothing about it, and the tests that need the hooks skip).
//!
//! `THANOS_SIDECAR_FAULT_HANG=<point>=<file>[,<point>=<file>…]`: whichever
//! actor reaches `<point>` (see [`hang`]) blocks there for as long as
//! `<file>` exists. A file rather than a flag, so a test can let the actor
//! run healthily first, then make it hang at a moment of its choosing, and
//! let it go again.
//!
//! `THANOS_SIDECAR_FAULT_SHIPPER_PERIOD_MS=<ms>`: the shipper syncs every
//! `<ms>` and is allowed `<ms>` per upload instead of 30 s and 15 min, so a
//! test sees its watchdog deadline pass in seconds.

use std::time::Duration;

/// Whether this build carries the hooks.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

#[cfg(feature = "fault-injection")]
const HANG: &str = "THANOS_SIDECAR_FAULT_HANG";
#[cfg(feature = "fault-injection")]
const SHIPPER_PERIOD: &str = "THANOS_SIDECAR_FAULT_SHIPPER_PERIOD_MS";

/// Blocks while the file named for `point` in `THANOS_SIDECAR_FAULT_HANG`
/// exists. Points: `heartbeat` (before each beat), `shipper` (before each
/// sync).
#[cfg(feature = "fault-injection")]
pub fn hang(point: &str) {
    let Some(file) = hang_file(point) else {
        return;
    };
    let mut said = false;
    while file.exists() {
        if !said {
            log::warn!(point = point, file = file.display().to_string().as_str(); "fault injection: hanging while the file exists");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if said {
        log::warn!(point = point; "fault injection: released");
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hang(_point: &str) {}

#[cfg(feature = "fault-injection")]
fn hang_file(point: &str) -> Option<std::path::PathBuf> {
    let spec = std::env::var(HANG).ok()?;
    spec.split(',').find_map(|entry| {
        let (name, file) = entry.split_once('=')?;
        (name.trim() == point).then(|| std::path::PathBuf::from(file))
    })
}

/// The shipper's sync period and upload allowance, when a test shortened them.
#[cfg(feature = "fault-injection")]
pub fn shipper_period() -> Option<Duration> {
    std::env::var(SHIPPER_PERIOD)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn shipper_period() -> Option<Duration> {
    None
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    #[test]
    fn hangs_only_at_its_point_and_while_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hang");
        // Only this test reads the variable in the unit-test binary.
        std::env::set_var(HANG, format!("other=/nonexistent,here={}", file.display()));
        assert_eq!(hang_file("here"), Some(file.clone()));
        assert_eq!(hang_file("there"), None);
        hang("here");
        std::fs::write(&file, "").unwrap();
        let released = std::thread::spawn(|| {
            let t = std::time::Instant::now();
            hang("here");
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        std::fs::remove_file(&file).unwrap();
        let held = released.join().unwrap();
        assert!(held >= Duration::from_millis(250), "{held:?}");
    }
}
