//! `thanos_sidecar_reloader_*`: the reloader's metrics, named as Thanos'.

use prom::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use super::ReloadMethod;

pub(super) struct Metrics {
    pub(super) reloads: IntCounter,
    pub(super) reloads_failed: IntCounter,
    pub(super) last_reload_successful: IntGauge,
    pub(super) last_reload_success_timestamp: Gauge,
    pub(super) applies: IntCounter,
    pub(super) applies_failed: IntCounter,
    pub(super) env_expansion_errors: IntGauge,
    pub(super) watches: IntGauge,
    pub(super) watch_events: IntCounter,
    pub(super) watch_errors: IntCounter,
}

impl Metrics {
    pub(super) fn register(registry: &Registry, method: ReloadMethod) -> prom::Result<Metrics> {
        fn reg<T: prom::core::Collector + Clone + 'static>(
            registry: &Registry,
            metric: T,
        ) -> prom::Result<T> {
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        }
        const P: &str = "thanos_sidecar_reloader_";
        let counter =
            |name: &str, help: &str| reg(registry, IntCounter::new(format!("{P}{name}"), help)?);
        let gauge =
            |name: &str, help: &str| reg(registry, IntGauge::new(format!("{P}{name}"), help)?);
        let info = reg(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    format!("{P}info"),
                    "A metric with a constant '1' value labeled by reload method (either 'http' or 'signal').",
                ),
                &["method"],
            )?,
        )?;
        info.with_label_values(&[match method {
            ReloadMethod::Http => "http",
            ReloadMethod::Signal => "signal",
        }])
        .set(1);
        Ok(Metrics {
            reloads: counter("reloads_total", "Total number of reload requests.")?,
            reloads_failed: counter(
                "reloads_failed_total",
                "Total number of reload requests that failed.",
            )?,
            last_reload_successful: gauge(
                "last_reload_successful",
                "Whether the last reload attempt was successful",
            )?,
            last_reload_success_timestamp: reg(
                registry,
                Gauge::new(
                    format!("{P}last_reload_success_timestamp_seconds"),
                    "Timestamp of the last successful reload",
                )?,
            )?,
            applies: counter(
                "config_apply_operations_total",
                "Total number of config apply operations.",
            )?,
            applies_failed: counter(
                "config_apply_operations_failed_total",
                "Total number of config apply operations that failed.",
            )?,
            env_expansion_errors: gauge(
                "config_environment_variable_expansion_errors",
                "Number of environment variable expansions that failed during the last operation.",
            )?,
            watches: gauge("watches", "Number of resources watched by the reloader.")?,
            watch_events: counter(
                "watch_events_total",
                "Total number of events received by the reloader from the watcher.",
            )?,
            watch_errors: counter(
                "watch_errors_total",
                "Total number of errors received by the reloader from the watcher.",
            )?,
        })
    }
}
