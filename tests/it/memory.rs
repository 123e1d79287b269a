//! The daemon's memory is a function of its configuration and of the calls
//! in flight, never of the number of calls it has served: a querier fleet
//! asks every few seconds for as long as the sidecar runs.
//!
//! These tests measure memory, not time: anonymous RSS (heap, thread stacks
//! in use, allocator caches; not the binary's own pages) before and after
//! many calls, after a warm-up that fills every allocator cache. They run
//! against the host build and, in `scripts/test`, the static musl binary.

use std::time::Duration;

use thanos_sidecar::proto::services::StoreClient;
use thanos_sidecar::proto::{store, store_types};

use crate::support::grpc::collect;
use crate::support::sidecar::skip_if_emulated;
use crate::support::{Prometheus, PrometheusOptions, Sidecar};

/// Sequential calls of each kind after the warm-up.
const CALLS: usize = 20_000;
/// What those calls may move anonymous RSS by.
const BUDGET_KB: i64 = 1024;

fn rss_anon_kb(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

struct Rig {
    _prometheus: Prometheus,
    sidecar: Sidecar,
    store: StoreClient,
    start_ms: i64,
}

fn start() -> Rig {
    let (prometheus, start) = Prometheus::start_with_gauge(
        PrometheusOptions {
            scrape_self: false,
            ..Default::default()
        },
        "mem_gauge",
        5,
    );
    let sidecar = Sidecar::start(&[
        format!("--prometheus.url={}", prometheus.url()),
        "--prometheus.get_config_interval=500ms".into(),
    ]);
    assert!(
        sidecar.wait_ready(Duration::from_secs(20)),
        "{}",
        sidecar.log()
    );
    let channel = crate::support::grpc::connect(sidecar.grpc_port, "test-mem");
    Rig {
        _prometheus: prometheus,
        sidecar,
        store: StoreClient::new(channel),
        start_ms: start * 1000,
    }
}

impl Rig {
    fn series(&self, name: &str) -> usize {
        let mut m = store_types::LabelMatcher::new();
        m.name = "s".into();
        m.value = name.into();
        let mut req = store::SeriesRequest::new();
        req.min_time = self.start_ms;
        req.max_time = self.start_ms + 3_600_000;
        req.matchers = vec![m];
        collect(self.store.series(&req))
            .unwrap_or_else(|e| panic!("Series: {e:?}; log:\n{}", self.sidecar.log()))
            .len()
    }

    fn labels(&self, n: usize) {
        let (start, end) = (self.start_ms, self.start_ms + 3_600_000);
        let result = if n % 2 == 0 {
            let mut req = store::LabelNamesRequest::new();
            (req.start, req.end) = (start, end);
            self.store.label_names(&req).map(|r| r.names.len())
        } else {
            let mut req = store::LabelValuesRequest::new();
            (req.start, req.end) = (start, end);
            req.label = "s".into();
            self.store.label_values(&req).map(|r| r.values.len())
        };
        let found =
            result.unwrap_or_else(|e| panic!("labels: {e:?}; log:\n{}", self.sidecar.log()));
        assert!(found > 0);
    }
}

#[test]
fn anonymous_memory_does_not_grow_with_calls_served() {
    // Under qemu-user the anonymous RSS holds the emulator's translation
    // cache, which grows with the code run, not with what the sidecar keeps.
    if skip_if_emulated("anonymous RSS over calls served") {
        return;
    }
    let rig = start();
    let pid = rig.sidecar.pid();
    assert_eq!(rig.series("1"), 1);
    // Warm-up: every allocator cache and connection pool at its working size.
    for n in 0..2_000 {
        rig.series(&(n % 5).to_string());
        rig.labels(n);
    }
    let before = rss_anon_kb(pid);
    let threads = thread_count(pid);
    for n in 0..CALLS {
        rig.series(&(n % 5).to_string());
    }
    let after_series = rss_anon_kb(pid);
    for n in 0..CALLS {
        rig.labels(n);
    }
    let after_labels = rss_anon_kb(pid);
    let grown = [
        after_series - before,
        after_labels - after_series,
        after_labels - before,
    ];
    eprintln!(
        "anonymous RSS {before} kB, after {CALLS} Series calls {after_series} kB, \
         after {CALLS} label calls {after_labels} kB"
    );
    assert!(
        grown.iter().all(|&kb| kb < BUDGET_KB),
        "anonymous RSS {before} kB, after {CALLS} Series calls {after_series} kB, \
         after {CALLS} label calls {after_labels} kB (threads {threads} -> {})",
        thread_count(pid)
    );
}
