//! What the sidecar knows about its Prometheus, shared by every thread.
//!
//! One mutex guards it. The heartbeat writes what it learns from Prometheus
//! (labels, lowest timestamp, version, agent mode, "Prometheus is up"); the
//! main loop writes only "serving" and health; everyone else reads.
//! Readiness is derived from the two halves under the lock, never set, so
//! `/-/ready`, the gRPC health service and `thanos_status{check="ready"}`
//! can never disagree, and a stopping sidecar stays not ready.

use std::sync::{Mutex, MutexGuard};

use prom::{IntGaugeVec, Opts, Registry};

use crate::prometheus::Labels;
use crate::values::TimeOrDuration;

/// Thanos' `--min-time` default; `maxt` is always this far in the future.
pub const MAX_TIME: i64 = i64::MAX;

pub struct Metadata {
    state: Mutex<State>,
    min_time_flag: TimeOrDuration,
    status: IntGaugeVec,
}

#[derive(Clone, Debug, Default)]
pub struct State {
    /// Prometheus' `global.external_labels`, sorted by name.
    pub external_labels: Labels,
    /// The lowest timestamp in Prometheus' TSDB, ms (`i64::MIN` when empty).
    pub lowest_timestamp: Option<i64>,
    /// Prometheus' version (`"0"` when it does not say).
    pub prometheus_version: String,
    /// Prometheus answered the last heartbeat and has external labels.
    /// Written by the heartbeat only.
    pub prometheus_up: bool,
    /// The gRPC port listens and the daemon is not stopping. Written by
    /// the main loop only.
    pub serving: bool,
    /// Both of the above: what `/-/ready` and Info say. Derived, never
    /// set, so a beat that ends during shutdown cannot make a stopping
    /// sidecar ready again.
    pub ready: bool,
    /// Prometheus runs in agent mode: no TSDB to read or upload.
    pub agent_mode: bool,
}

impl Metadata {
    pub fn new(
        registry: &Registry,
        min_time_flag: TimeOrDuration,
    ) -> Result<Metadata, prom::Error> {
        let status = IntGaugeVec::new(
            Opts::new(
                "thanos_status",
                "Represents status (0 indicates failure, 1 indicates success) of the component.",
            )
            .const_label("component", "sidecar"),
            &["check"],
        )?;
        registry.register(Box::new(status.clone()))?;
        // Both checks exist from the start, at 0, as in Thanos.
        status.with_label_values(&["ready"]).set(0);
        status.with_label_values(&["healthy"]).set(0);
        Ok(Metadata {
            state: Mutex::new(State::default()),
            min_time_flag,
            status,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written:
        // every writer replaces whole fields. So a poisoned lock is still good.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }

    pub fn external_labels(&self) -> Labels {
        self.lock().external_labels.clone()
    }

    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// The lowest timestamp served: `max(--min-time now, Prometheus' lowest timestamp)`.
    pub fn min_time(&self, now_ms: i64) -> i64 {
        let flag = self.min_time_flag.at(now_ms);
        match self.lock().lowest_timestamp {
            Some(lowest) => flag.max(lowest),
            None => flag,
        }
    }

    pub fn set_agent_mode(&self, agent: bool) {
        self.lock().agent_mode = agent;
    }

    pub fn agent_mode(&self) -> bool {
        self.lock().agent_mode
    }

    pub fn set_prometheus_version(&self, version: String) {
        self.lock().prometheus_version = version;
    }

    /// Records a successful heartbeat.
    pub fn update(&self, lowest_timestamp: i64, external_labels: Labels) {
        let mut state = self.lock();
        state.lowest_timestamp = Some(lowest_timestamp);
        state.external_labels = external_labels;
    }

    /// The heartbeat's verdict on Prometheus.
    pub fn set_prometheus_up(&self, up: bool) {
        self.set(|state| state.prometheus_up = up);
    }

    /// The main loop's: serving from the moment gRPC listens until shutdown.
    pub fn set_serving(&self, serving: bool) {
        self.set(|state| state.serving = serving);
    }

    fn set(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        change(&mut state);
        let ready = state.prometheus_up && state.serving;
        let was = std::mem::replace(&mut state.ready, ready);
        self.status.with_label_values(&["ready"]).set(ready as i64);
        drop(state);
        if was != ready {
            log::info!(status = if ready { "ready" } else { "not-ready" }; "changing probe status");
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.status
            .with_label_values(&["healthy"])
            .set(healthy as i64);
        log::info!(status = if healthy { "healthy" } else { "not-healthy" }; "changing probe status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_time_is_the_later_of_flag_and_tsdb() {
        let m = Metadata::new(&Registry::new(), TimeOrDuration::Relative(-1000)).unwrap();
        assert_eq!(m.min_time(10_000), 9_000);
        m.update(9_500, Labels::new());
        assert_eq!(m.min_time(10_000), 9_500);
        assert_eq!(m.min_time(20_000), 19_000);
        m.update(i64::MIN, Labels::new());
        assert_eq!(m.min_time(10_000), 9_000);
    }

    #[test]
    fn readiness_drives_the_status_metric() {
        let registry = Registry::new();
        let m = Metadata::new(&registry, TimeOrDuration::DEFAULT).unwrap();
        let ready = || m.status.with_label_values(&["ready"]).get();
        assert_eq!(ready(), 0);
        m.set_prometheus_up(true);
        assert!(!m.is_ready(), "not serving yet");
        m.set_serving(true);
        assert!(m.is_ready());
        assert_eq!(ready(), 1);
        m.set_prometheus_up(false);
        assert_eq!(ready(), 0);
        m.set_prometheus_up(true);
        assert_eq!(ready(), 1);
        // Shutdown: a beat that succeeds afterwards changes nothing.
        m.set_serving(false);
        m.set_prometheus_up(true);
        assert!(!m.is_ready());
        assert_eq!(ready(), 0);
    }
}
