//! A remote-write (1.0) client for tests: series with float samples and
//! native histograms, sent to a Prometheus started with
//! `--web.enable-remote-write-receiver` as a snappy-compressed
//! `WriteRequest` (the messages of proto/prom_remote.proto).

use std::time::Duration;

use protobuf::Message;
use thanos_sidecar::proto::labels::Label;
use thanos_sidecar::proto::prom_remote::WriteRequest;
use thanos_sidecar::proto::prom_types::{BucketSpan, Histogram, Sample, TimeSeries};

/// A series with its labels (any order; sorted here, as the receiver wants).
pub fn series(labels: &[(&str, &str)]) -> TimeSeries {
    let mut sorted = labels.to_vec();
    sorted.sort();
    let mut ts = TimeSeries::new();
    ts.labels = sorted
        .iter()
        .map(|(n, v)| {
            let mut l = Label::new();
            l.name = n.to_string();
            l.value = v.to_string();
            l
        })
        .collect();
    ts
}

pub fn sample(t_ms: i64, value: f64) -> Sample {
    let mut s = Sample::new();
    s.timestamp = t_ms;
    s.value = value;
    s
}

fn spans(spans: &[(i32, u32)]) -> Vec<BucketSpan> {
    spans
        .iter()
        .map(|&(offset, length)| {
            let mut s = BucketSpan::new();
            s.offset = offset;
            s.length = length;
            s
        })
        .collect()
}

/// An integer native histogram: positive buckets of `schema` laid out by
/// `positive_spans` with absolute counts `counts` (delta-encoded here, as
/// the wire format wants), plus a zero bucket.
pub fn int_histogram(
    t_ms: i64,
    schema: i32,
    zero_count: u64,
    positive_spans: &[(i32, u32)],
    counts: &[u64],
    sum: f64,
) -> Histogram {
    let mut h = Histogram::new();
    h.timestamp = t_ms;
    h.schema = schema;
    h.zero_threshold = 1e-128;
    h.set_zero_count_int(zero_count);
    h.set_count_int(zero_count + counts.iter().sum::<u64>());
    h.sum = sum;
    h.positive_spans = spans(positive_spans);
    let mut previous = 0i64;
    h.positive_deltas = counts
        .iter()
        .map(|&c| {
            let delta = c as i64 - previous;
            previous = c as i64;
            delta
        })
        .collect();
    h
}

/// A float native histogram: absolute float counts.
pub fn float_histogram(
    t_ms: i64,
    schema: i32,
    zero_count: f64,
    positive_spans: &[(i32, u32)],
    counts: &[f64],
    sum: f64,
) -> Histogram {
    let mut h = Histogram::new();
    h.timestamp = t_ms;
    h.schema = schema;
    h.zero_threshold = 1e-128;
    h.set_zero_count_float(zero_count);
    h.set_count_float(zero_count + counts.iter().sum::<f64>());
    h.sum = sum;
    h.positive_spans = spans(positive_spans);
    h.positive_counts = counts.to_vec();
    h
}

/// POSTs `series` to `<base_url>/api/v1/write`; the error holds the status
/// and Prometheus' message.
pub fn write(base_url: &str, series: Vec<TimeSeries>) -> Result<(), String> {
    let mut req = WriteRequest::new();
    req.timeseries = series;
    let bytes = req.write_to_bytes().map_err(|e| e.to_string())?;
    let body = snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .map_err(|e| e.to_string())?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let resp = agent
        .post(&format!("{base_url}/api/v1/write"))
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-protobuf")
        .set("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send_bytes(&body);
    match resp {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, resp)) => Err(format!(
            "remote write: {code}: {}",
            resp.into_string().unwrap_or_default()
        )),
        Err(e) => Err(format!("remote write: {e}")),
    }
}
