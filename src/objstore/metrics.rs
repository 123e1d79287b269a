//! `thanos_objstore_bucket_*`: the metrics Thanos' instrumented bucket exports,
//! with the same names, help texts, labels and buckets, present from start-up.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prom::{CounterVec, Gauge, HistogramOpts, HistogramVec, Opts, Registry};

use super::{Bucket, Cancel, Error, ErrorKind};

const OPERATIONS: [&str; 7] = [
    "iter",
    "get",
    "get_range",
    "exists",
    "upload",
    "delete",
    "attributes",
];

pub struct Instrumented {
    inner: Box<dyn Bucket>,
    ops: CounterVec,
    failures: CounterVec,
    fetched_bytes: CounterVec,
    transferred_bytes: HistogramVec,
    duration: HistogramVec,
    last_upload: Gauge,
}

impl Instrumented {
    pub fn new(inner: Box<dyn Bucket>, registry: &Registry) -> Result<Instrumented, prom::Error> {
        let name = inner.name();
        let opts =
            |metric: &str, help: &str| Opts::new(metric, help).const_label("bucket", name.clone());
        let ops = CounterVec::new(
            opts(
                "thanos_objstore_bucket_operations_total",
                "Total number of all attempted operations against a bucket.",
            ),
            &["operation"],
        )?;
        let failures = CounterVec::new(
            opts(
                "thanos_objstore_bucket_operation_failures_total",
                "Total number of operations against a bucket that failed, but were not expected to fail in certain way from caller perspective. Those errors have to be investigated.",
            ),
            &["operation"],
        )?;
        let fetched_bytes = CounterVec::new(
            opts(
                "thanos_objstore_bucket_operation_fetched_bytes_total",
                "Total number of bytes fetched from bucket, per operation.",
            ),
            &["operation"],
        )?;
        let transferred_bytes = HistogramVec::new(
            HistogramOpts::from(opts(
                "thanos_objstore_bucket_operation_transferred_bytes",
                "Number of bytes transferred from/to bucket per operation.",
            ))
            // 32 KiB, 64 KiB, ... 1 GiB, as Thanos.
            .buckets(prom::exponential_buckets(32768.0, 2.0, 16)?),
            &["operation"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::from(opts(
                "thanos_objstore_bucket_operation_duration_seconds",
                "Duration of successful operations against the bucket per operation - iter operations include time spent on each callback.",
            ))
            .buckets(vec![
                0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
            ]),
            &["operation"],
        )?;
        let last_upload = Gauge::with_opts(opts(
            "thanos_objstore_bucket_last_successful_upload_time",
            "Second timestamp of the last successful upload to the bucket.",
        ))?;
        registry.register(Box::new(ops.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(fetched_bytes.clone()))?;
        registry.register(Box::new(transferred_bytes.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(last_upload.clone()))?;
        // Thanos creates every operation's series at 0 so dashboards see them.
        for op in OPERATIONS {
            ops.with_label_values(&[op]);
            failures.with_label_values(&[op]);
            duration.with_label_values(&[op]);
        }
        for op in ["get", "get_range", "upload"] {
            fetched_bytes.with_label_values(&[op]);
            transferred_bytes.with_label_values(&[op]);
        }
        Ok(Instrumented {
            inner,
            ops,
            failures,
            fetched_bytes,
            transferred_bytes,
            duration,
            last_upload,
        })
    }

    /// Counts one operation; a failure counts unless it is a shutdown (as
    /// Thanos ignores a cancelled context).
    fn observe<T>(
        &self,
        op: &str,
        f: impl FnOnce() -> Result<T, Error>,
        bytes: impl Fn(&T) -> Option<u64>,
    ) -> Result<T, Error> {
        self.ops.with_label_values(&[op]).inc();
        let start = Instant::now();
        let result = f();
        match &result {
            Ok(v) => {
                self.duration
                    .with_label_values(&[op])
                    .observe(start.elapsed().as_secs_f64());
                if let Some(n) = bytes(v) {
                    self.transferred_bytes
                        .with_label_values(&[op])
                        .observe(n as f64);
                    if op == "get" {
                        self.fetched_bytes.with_label_values(&[op]).inc_by(n as f64);
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::Cancelled => {}
            Err(_) => self.failures.with_label_values(&[op]).inc(),
        }
        result
    }

    fn uploaded(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_upload.set(now);
    }
}

impl Bucket for Instrumented {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn upload_file(&self, key: &str, path: &Path, cancel: &Cancel) -> Result<u64, Error> {
        let n = self.observe(
            "upload",
            || self.inner.upload_file(key, path, cancel),
            |n| Some(*n),
        )?;
        self.uploaded();
        Ok(n)
    }

    fn upload_bytes(&self, key: &str, data: &[u8], cancel: &Cancel) -> Result<(), Error> {
        let len = data.len() as u64;
        self.observe(
            "upload",
            || self.inner.upload_bytes(key, data, cancel),
            |_| Some(len),
        )?;
        self.uploaded();
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        self.observe("exists", || self.inner.exists(key), |_| None)
    }

    fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        self.observe("attributes", || self.inner.size(key), |_| None)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, Error> {
        self.observe("get", || self.inner.get(key), |v| Some(v.len() as u64))
    }

    fn iter(&self, dir: &str) -> Result<Vec<String>, Error> {
        self.observe("iter", || self.inner.iter(dir), |_| None)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        self.observe("delete", || self.inner.delete(key), |_| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::filesystem::Filesystem;
    use prom::Encoder;

    #[test]
    fn series_exist_from_start_and_count_operations() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let fs = Filesystem::new(dir.path(), "fs: /b".into()).unwrap();
        let b = Instrumented::new(Box::new(fs), &registry).unwrap();
        let text = || {
            let mut out = Vec::new();
            prom::TextEncoder::new()
                .encode(&registry.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        let before = text();
        assert!(before.contains(
            "thanos_objstore_bucket_operations_total{bucket=\"fs: /b\",operation=\"attributes\"} 0"
        ));
        assert!(before
            .contains("thanos_objstore_bucket_last_successful_upload_time{bucket=\"fs: /b\"} 0"));
        b.upload_bytes("A/meta.json", b"{}", &Cancel::new())
            .unwrap();
        assert!(!b.exists("B").unwrap());
        assert!(b.get("B").is_err());
        let after = text();
        assert!(after.contains(
            "thanos_objstore_bucket_operations_total{bucket=\"fs: /b\",operation=\"upload\"} 1"
        ));
        assert!(after.contains(
            "thanos_objstore_bucket_operations_total{bucket=\"fs: /b\",operation=\"exists\"} 1"
        ));
        assert!(after.contains(
            "thanos_objstore_bucket_operation_failures_total{bucket=\"fs: /b\",operation=\"get\"} 1"
        ));
        assert!(!after
            .contains("thanos_objstore_bucket_last_successful_upload_time{bucket=\"fs: /b\"} 0\n"));
    }
}
