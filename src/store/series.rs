//! `Series`: from a StoreAPI request to frames, through Prometheus (Thanos'
//! `pkg/store/prometheus.go`).
//!
//! Runs on a worker thread: Prometheus is read with blocking I/O and every
//! frame goes to `out`, which blocks while the client is slow (so memory
//! stays bounded) and fails once the client is gone (so the upstream read
//! stops).

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use grpcio::{RpcStatus, RpcStatusCode};
use protobuf::Message;
use xxhash_rust::xxh64::xxh64;

use crate::grpc::status::{api_error, invalid_argument, unknown};
use crate::prometheus::{self, Labels, TimeRange};
use crate::proto::{prom_remote, store};
use crate::store::matchers::{self, Matcher, Op};
use crate::store::remote_read::{self, FrameReader};
use crate::store::sort::{Key, Mode, Sorter};
use crate::store::wire::{self, Response};
use crate::store::xor;
use crate::store::Store;
use crate::values::now_ms;

/// Thanos counts every chunk as this many samples for the samples limit.
const SAMPLES_PER_CHUNK: u64 = 120;

pub fn series(
    store: &Store,
    req: store::SeriesRequest,
    out: &mut dyn FnMut(Response) -> Result<(), RpcStatus>,
) -> Result<(), RpcStatus> {
    super::refuse_in_agent_mode(&store.metadata)?;
    let matchers = matchers::convert(&req.matchers)?;
    let external = store.metadata.external_labels();
    let Some(matchers) = matchers::strip_external(matchers, &external)? else {
        return Ok(());
    };
    if matchers.is_empty() {
        return Err(invalid_argument(
            "no matchers specified (excluding external labels)",
        ));
    }
    let min_time = req.min_time.max(store.metadata.min_time(now_ms()));
    let without: HashSet<String> = req.without_replica_labels.iter().cloned().collect();
    let _pending = store.metrics.in_flight();
    let mut emitter = Emitter::new(store, req.response_batch_size, out);
    let result = if req.skip_chunks {
        series_without_chunks(
            store,
            &req,
            &matchers,
            min_time,
            &external,
            &without,
            &mut emitter,
        )
    } else {
        series_with_chunks(
            store,
            &req,
            &matchers,
            min_time,
            &external,
            &without,
            &mut emitter,
        )
    };
    let result = result.and_then(|()| emitter.finish());
    if result.is_ok() {
        let metrics = &store.metrics;
        metrics.series_requested.observe(emitter.series_sent as f64);
        metrics.chunks_requested.observe(emitter.chunks_sent as f64);
    }
    if let Err(status) = &result {
        if status.code() == RpcStatusCode::CANCELLED {
            log::debug!(series = emitter.series_sent; "Series client gone; stopped reading Prometheus");
        }
    }
    result
}

fn series_without_chunks(
    store: &Store,
    req: &store::SeriesRequest,
    matchers: &[Matcher],
    min_time: i64,
    external: &Labels,
    without: &HashSet<String>,
    emitter: &mut Emitter,
) -> Result<(), RpcStatus> {
    // Prometheus' series API knows no external labels: they are set on every
    // series, their values winning, except those without_replica_labels
    // names (only external labels are dropped here, never a series' own).
    let added: Labels = external
        .iter()
        .filter(|(name, _)| !without.contains(*name))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let range = TimeRange {
        start_ms: min_time,
        end_ms: req.max_time,
        limit: req.limit,
    };
    // The selector twice: with more than one `match[]` Prometheus merges
    // sorted selects (dropping the duplicates), so its answer comes sorted by
    // label set, which the sorter's bound relies on. With one, Prometheus 3
    // lists head series in the order they were created.
    let selector = matchers::selector(matchers);
    let selectors = [selector.clone(), selector];
    // As on the chunks path: a one-series answer needs no order, a larger
    // one asks whether it must be reordered once its second series comes.
    let (mut sorter, mut ask) = series_api_order(&added).sorter();
    let mut emit = |s: wire::Series| emitter.push(s);
    let no_chunks = Arc::new(Vec::new());
    let mut previous: Option<Key> = None;
    let mut disordered = false;
    let streamed = store.client.series_each(
        &selectors,
        &range,
        store.api_timeout,
        &mut |labels: Labels| -> Result<(), RpcStatus> {
            if let Some(ask) = ask.take_if(|_| sorter.held() >= SORTED_WHOLE_SERIES) {
                sorter.decide(ask.mode(store, matchers, min_time, req.max_time), &mut emit)?;
            }
            let input: Key = labels.into_iter().collect();
            if !disordered && previous.as_ref().is_some_and(|p| input < *p) {
                // Not Prometheus' behaviour; the order sent may then be off.
                disordered = true;
                log::warn!(series = format!("{input:?}").as_str(); "series API answer out of order; Series may not come out sorted");
            }
            let output = with_labels(&input, &added);
            let item = wire::Series {
                labels: output.clone(),
                chunks: Vec::new(),
                bytes: no_chunks.clone(),
            };
            sorter.push(&input, output, item, &mut emit)?;
            previous = Some(input);
            Ok(())
        },
    );
    match streamed {
        Ok(()) => {}
        Err(prometheus::Streamed::Api(e)) => return Err(api_error(e)),
        Err(prometheus::Streamed::Stopped(status)) => return Err(status),
    }
    sorter.finish(&mut emit)?;
    if sorter.peak > 1 {
        log::debug!(peak = sorter.peak; "series held back to repair order");
    }
    Ok(())
}

/// A series API label set with `added` set on it (their values win).
fn with_labels(input: &[(String, String)], added: &Labels) -> Key {
    if added.is_empty() {
        return input.to_vec();
    }
    let mut labels: Labels = input.iter().cloned().collect();
    for (name, value) in added {
        labels.insert(name.clone(), value.clone());
    }
    labels.into_iter().collect()
}

/// How the series API's answer may need reordering once `added` is set on
/// every series: not at all when nothing is added; only within chains of
/// label sets extending one another when no series has an own label named
/// like an added one (see `sort`); else as the chunks path does when an own
/// label is overwritten.
fn series_api_order(added: &Labels) -> Order {
    let Some(n0) = added.keys().next() else {
        return Order::Known(Mode::Streaming);
    };
    Order::Ask(Ask {
        names: added.keys().cloned().collect(),
        if_named: Mode::Prefix {
            n0: n0.clone(),
            deletion: false,
        },
        if_not: Mode::Insertion,
    })
}

fn series_with_chunks(
    store: &Store,
    req: &store::SeriesRequest,
    matchers: &[Matcher],
    min_time: i64,
    external: &Labels,
    without: &HashSet<String>,
    emitter: &mut Emitter,
) -> Result<(), RpcStatus> {
    let body = remote_read::encode_request(&remote_read::request(min_time, req.max_time, matchers))
        .map_err(unknown)?;
    let resp = store
        .client
        .remote_read(&body, store.read_timeout)
        .map_err(|e| match e {
            prometheus::Error::Status { code, body } => {
                unknown(format!("request failed with code {code}: {body}"))
            }
            e => unknown(e.to_string()),
        })?;
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let shard = req.shard_info.as_ref().filter(|s| s.total_shards >= 1);
    if content_type.starts_with(remote_read::STREAMED_CONTENT_TYPE) {
        let mut frames = FrameReader::new(resp.into_reader());
        let (mut sorter, mut ask) = remote_read_order(external, without).sorter();
        let mut emit = |s: wire::Series| emitter.push(s);
        // Every streamed answer counts its frames, however it ends.
        let mut received = store.metrics.frames();
        loop {
            let frame = frames
                .next_payload()
                .map_err(|e| unknown(format!("next proto: {e}")))?;
            let Some(frame) = frame else { break };
            received.count += 1;
            // Past SORTED_WHOLE_SERIES the order must be known to go on.
            // Asked once the read has begun, the check sees every series
            // the read does.
            if let Some(ask) = ask.take_if(|_| sorter.held() >= SORTED_WHOLE_SERIES) {
                sorter.decide(ask.mode(store, matchers, min_time, req.max_time), &mut emit)?;
            }
            // The chunks stay in the frame; its series share it.
            let bytes = Arc::new(frame);
            let scanned = wire::scan_frame(&bytes)
                .map_err(|e| unknown(format!("next proto: decoding frame: {e}")))?;
            if scanned.len() != 1 {
                log::debug!(series = scanned.len(); "remote-read frame does not hold exactly one series");
            }
            for series in scanned {
                let output = transform(&series.labels, external, without);
                if let Some(shard) = shard {
                    if !in_shard(&output, shard) {
                        continue;
                    }
                }
                let item = wire::Series {
                    labels: output.clone(),
                    chunks: series.chunks,
                    bytes: bytes.clone(),
                };
                // Prometheus' order is that of the series' own labels.
                let own = without_external(&series.labels, external);
                sorter.push(&own, output, item, &mut emit)?;
            }
        }
        sorter.finish(&mut emit)?;
        // The insertion mode and the undecided start hold one series anyway.
        if sorter.peak > 1 {
            log::debug!(peak = sorter.peak; "series held back to repair order");
        }
        Ok(())
    } else if content_type.starts_with(remote_read::SAMPLES_CONTENT_TYPE) {
        series_from_samples(resp, external, without, emitter)
    } else {
        Err(unknown(format!(
            "not supported remote read content type: {content_type}"
        )))
    }
}

/// What the request alone says of the answer's order (see `sort`).
///
/// Prometheus sorts an answer by the series' own label sets, then adds its
/// external labels to each (own values winning) without sorting again. So
/// even when the sidecar changes nothing, a chain of label sets extending
/// one another comes out of order (`{__name__="m"}` then `{__name__="m",
/// a="1"}`, which sorts first once `cluster` is added to both): the
/// insertion case. Deleting an external label can reorder any answer.
/// Otherwise only series with their own label named like an external label
/// (Prometheus keeps the series' own value, the sidecar overwrites it) or
/// like a label to delete can move, and only Prometheus knows whether the
/// answer has any.
enum Order {
    Known(Mode),
    Ask(Ask),
}

/// The question left to Prometheus: `if_named` if a selected series has an
/// own label named in `names` ([`own_labels_named`]), else `if_not`.
struct Ask {
    names: Vec<String>,
    if_named: Mode,
    if_not: Mode,
}

impl Order {
    /// A sorter for the answer, and the question to ask before it may hold
    /// more than [`SORTED_WHOLE_SERIES`].
    fn sorter<T>(self) -> (Sorter<T>, Option<Ask>) {
        match self {
            Order::Known(mode) => (Sorter::new(mode), None),
            Order::Ask(ask) => (Sorter::undecided(), Some(ask)),
        }
    }
}

impl Ask {
    /// Asks Prometheus; the mode its answer calls for.
    fn mode(self, store: &Store, matchers: &[Matcher], min_time: i64, max_time: i64) -> Mode {
        match own_labels_named(store, matchers, min_time, max_time, &self.names) {
            true => self.if_named,
            false => self.if_not,
        }
    }
}

fn remote_read_order(external: &Labels, without: &HashSet<String>) -> Order {
    let names: Vec<String> = external.keys().chain(without.iter()).cloned().collect();
    let Some(n0) = names.iter().min().cloned() else {
        return Order::Known(Mode::Streaming);
    };
    if without.iter().any(|n| external.contains_key(n)) {
        return Order::Known(Mode::Prefix { n0, deletion: true });
    }
    let if_named = Mode::Prefix {
        n0,
        deletion: !without.is_empty(),
    };
    // No own label of those names: the labels to delete are on no series,
    // and the external ones were only inserted.
    let if_not = match external.is_empty() {
        true => Mode::Streaming,
        false => Mode::Insertion,
    };
    Order::Ask(Ask {
        names,
        if_named,
        if_not,
    })
}

/// A remote-read series' own label set, the one Prometheus sorted by: its
/// labels without those named like an external label, which Prometheus
/// added. An own label of such a name goes too, but then the sorter is in
/// prefix mode, which reads only the labels named below every external
/// one, and those are all kept.
fn without_external(labels: &[(String, String)], external: &Labels) -> Key {
    labels
        .iter()
        .filter(|(name, _)| !external.contains_key(name))
        .cloned()
        .collect()
}

/// Whether any series the matchers select has an own label named in
/// `names`, or the call to find out failed (then the caller sorts
/// conservatively). It reads no further than the first such series: one
/// `/api/v1/series` call, cheap when none exists (the label's postings are
/// empty). The series API knows no external labels, so whatever it returns
/// for those names is a series' own label.
fn own_labels_named(
    store: &Store,
    matchers: &[Matcher],
    min_time: i64,
    max_time: i64,
    names: &[String],
) -> bool {
    let selectors: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let mut ms = matchers.to_vec();
            ms.push(Matcher::new(Op::Neq, name, "").ok()?);
            Some(matchers::selector(&ms))
        })
        .collect();
    // Prometheus 2.42 answers nothing for an `end` near MaxInt64 ms, and no
    // sample lies far in the future: a day ahead is enough.
    let range = TimeRange {
        start_ms: min_time,
        end_ms: max_time.min(now_ms().saturating_add(86_400_000)),
        limit: 1,
    };
    let found = store
        .client
        .series_each(&selectors, &range, store.api_timeout, &mut |_| Err(()));
    match found {
        Ok(()) => false,
        Err(prometheus::Streamed::Stopped(())) => true,
        Err(prometheus::Streamed::Api(e)) => {
            log::debug!(err = e.to_string().as_str(); "order check failed; sorting conservatively");
            true
        }
    }
}

/// Prometheus labels with the external labels set (external values win),
/// then every label named in `without_replica_labels` deleted.
pub fn transform(input: &[(String, String)], external: &Labels, without: &HashSet<String>) -> Key {
    let mut out = Vec::with_capacity(input.len() + external.len());
    let mut ext = external.iter().peekable();
    for (name, value) in input {
        while let Some((en, ev)) = ext.peek() {
            if *en < name {
                out.push(((*en).clone(), (*ev).clone()));
                ext.next();
            } else {
                break;
            }
        }
        match ext.peek() {
            Some((en, ev)) if *en == name => {
                out.push((name.clone(), (*ev).clone()));
                ext.next();
            }
            _ => out.push((name.clone(), value.clone())),
        }
    }
    out.extend(ext.map(|(n, v)| (n.clone(), v.clone())));
    if !without.is_empty() {
        out.retain(|(n, _)| !without.contains(n));
    }
    out
}

/// Thanos' shard assignment: XXH64 of `name 0xff value 0xff` over the
/// selected labels of the final label set.
pub fn in_shard(labels: &Key, shard: &store::ShardInfo) -> bool {
    let chosen: HashSet<&str> = shard.labels.iter().map(String::as_str).collect();
    let mut buf = Vec::with_capacity(256);
    for (name, value) in labels {
        if chosen.contains(name.as_str()) != shard.by {
            continue;
        }
        buf.extend_from_slice(name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(value.as_bytes());
        buf.push(0xff);
    }
    let total = shard.total_shards as u64;
    xxh64(&buf, 0) % total == shard.shard_index as u64
}

/// The SAMPLES answer of a Prometheus without streamed remote read: one
/// message, so it is in memory anyway; re-encoded as XOR chunks of ≤ 120.
/// Its series are not promised in order, so all of them (as chunks, smaller
/// than the samples they replace) are sorted before the first is sent.
fn series_from_samples(
    resp: ureq::Response,
    external: &Labels,
    without: &HashSet<String>,
    emitter: &mut Emitter,
) -> Result<(), RpcStatus> {
    let mut compressed = Vec::new();
    resp.into_reader()
        .read_to_end(&mut compressed)
        .map_err(|e| unknown(format!("reading remote read answer: {e}")))?;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .map_err(|e| unknown(format!("snappy decoding remote read answer: {e}")))?;
    // Each form of the answer goes once the next exists: at most two of
    // them are held at a time (BENCHMARKS.md, Series with skip_chunks).
    drop(compressed);
    let mut answer = prom_remote::ReadResponse::parse_from_bytes(&raw)
        .map_err(|e| unknown(format!("decoding remote read answer: {e}")))?;
    drop(raw);
    if answer.results.len() != 1 {
        return Err(unknown(format!(
            "unexpected result size, want 1, got {}",
            answer.results.len()
        )));
    }
    let mut all = Vec::new();
    for ts in answer.results.remove(0).timeseries {
        let input: Key = ts
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let output = transform(&input, external, without);
        if ts.samples.is_empty() {
            log::warn!(series = format!("{output:?}").as_str(); "remote read series has no float samples; skipped");
            continue;
        }
        let samples: Vec<(i64, f64)> = ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
        let chunks = samples
            .chunks(xor::MAX_SAMPLES_PER_CHUNK)
            .map(|part| (part[0].0, part[part.len() - 1].0, 0, xor::encode(part)))
            .collect();
        all.push(wire::Series::owned(output, chunks));
    }
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    for series in all {
        emitter.push(series)?;
    }
    Ok(())
}

/// A batch is sent once it holds this many chunk bytes, even short of the
/// `response_batch_size` series asked for. Thanos' querier asks every store
/// for 64 series a message; 64 long series (a week of 15 s samples is ~100
/// KB a series) made one message of several MB, and each of the messages
/// queued for the client and the one being written held as much: peak RSS
/// grew with the series' length (47 MB at 10⁷ samples where one series a
/// message peaks at 9 MB; BENCHMARKS.md, Series). Typical series (hours,
/// 0.5–5 KB) still go 64 to a message, as the Go sidecar sends them; the
/// querier reads a batch's series whatever the batch's size.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// An answer of at most this many series is held and sorted whole before
/// it is sent, without asking Prometheus whether the transform can reorder
/// it: that question costs a round trip, a third of a one-series call's
/// time (BENCHMARKS.md, Series). One, because a larger answer asks anyway
/// and holds what it has read while it waits for the answer: up to 64
/// series (a querier's batch) raised the memory of 50 busy clients by 2 MB
/// and made it swing 3 MB (BENCHMARKS.md, Memory over calls served).
const SORTED_WHOLE_SERIES: usize = 1;

/// Batches series into frames and enforces the request limits on what is
/// actually sent, frame by frame (as Thanos' `pkg/store/limiter.go` counts).
struct Emitter<'a> {
    store: &'a Store,
    batch_size: usize,
    batch: Vec<wire::Series>,
    /// Chunk bytes in `batch`.
    batch_bytes: usize,
    series_sent: u64,
    chunks_sent: u64,
    out: &'a mut dyn FnMut(Response) -> Result<(), RpcStatus>,
}

impl<'a> Emitter<'a> {
    fn new(
        store: &'a Store,
        batch_size: i64,
        out: &'a mut dyn FnMut(Response) -> Result<(), RpcStatus>,
    ) -> Self {
        let batch_size = batch_size.max(1) as usize;
        Emitter {
            store,
            batch_size,
            batch: Vec::with_capacity(batch_size.min(1024)),
            batch_bytes: 0,
            series_sent: 0,
            chunks_sent: 0,
            out,
        }
    }

    fn push(&mut self, series: wire::Series) -> Result<(), RpcStatus> {
        if self.batch_size <= 1 {
            return self.send(vec![series]);
        }
        self.batch_bytes += series.chunks.iter().map(|c| c.data.len()).sum::<usize>();
        self.batch.push(series);
        if self.batch.len() >= self.batch_size || self.batch_bytes >= MAX_BATCH_BYTES {
            let batch = std::mem::take(&mut self.batch);
            self.batch_bytes = 0;
            self.send(batch)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), RpcStatus> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.send(batch)
    }

    fn send(&mut self, mut series: Vec<wire::Series>) -> Result<(), RpcStatus> {
        let n = series.len() as u64;
        let chunks: u64 = series.iter().map(|s| s.chunks.len() as u64).sum();
        let limits = &self.store.limits;
        if limits.series > 0 && self.series_sent + n > limits.series {
            self.store.dropped.with_label_values(&["series"]).inc();
            return Err(unknown(format!(
                "failed to send series: limit {} violated (got {})",
                limits.series,
                self.series_sent + n
            )));
        }
        let samples = (self.chunks_sent + chunks) * SAMPLES_PER_CHUNK;
        if limits.samples > 0 && samples > limits.samples {
            self.store.dropped.with_label_values(&["chunks"]).inc();
            return Err(unknown(format!(
                "failed to send samples: limit {} violated (got {samples})",
                limits.samples
            )));
        }
        self.series_sent += n;
        self.chunks_sent += chunks;
        let resp = if self.batch_size <= 1 && series.len() == 1 {
            Response::Series(series.remove(0))
        } else {
            Response::Batch(series)
        };
        (self.out)(resp)
    }
}

/// How long one remote read may take in all; the querier's own deadline or
/// cancellation normally ends it much sooner.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Metadata;
    use crate::prometheus::Client;
    use crate::proto::{labels, prom_types, store_types};
    use crate::store::Limits;
    use crate::values::TimeOrDuration;

    fn test_store(url: &str, limits: Limits) -> Store {
        let registry = prom::Registry::new();
        let metadata = Arc::new(Metadata::new(&registry, TimeOrDuration::DEFAULT).unwrap());
        metadata.update(
            0,
            [
                ("cluster".into(), "test".into()),
                ("replica".into(), "0".into()),
            ]
            .into(),
        );
        let client = Client::new(url::Url::parse(url).unwrap(), &Default::default()).unwrap();
        Store::new(client, metadata, limits, Duration::from_secs(30), &registry).unwrap()
    }

    fn named(name: &str, chunks: usize) -> wire::Series {
        wire::Series::owned(
            key(&[("__name__", name)]),
            (0..chunks).map(|_| (0, 0, 0, Vec::new())).collect(),
        )
    }

    /// A response as the client reads it.
    fn decoded(r: &Response) -> store::SeriesResponse {
        store::SeriesResponse::parse_from_bytes(&r.to_bytes()).unwrap()
    }

    #[test]
    fn batches_and_limits_count_what_is_sent() {
        let store = test_store(
            "http://127.0.0.1:1",
            Limits {
                series: 4,
                samples: 0,
            },
        );
        let mut sent = Vec::new();
        let mut out = |r: Response| -> Result<(), RpcStatus> {
            let r = decoded(&r);
            sent.push(r);
            Ok(())
        };
        let mut e = Emitter::new(&store, 2, &mut out);
        for name in ["a", "b", "c"] {
            e.push(named(name, 1)).unwrap();
        }
        e.finish().unwrap();
        let mut e = Emitter::new(&store, 2, &mut out);
        for name in ["a", "b", "c", "d"] {
            e.push(named(name, 1)).unwrap();
        }
        e.push(named("e", 1)).unwrap();
        let err = e.push(named("f", 1)).unwrap_err();
        assert_eq!(err.code(), RpcStatusCode::UNKNOWN);
        assert_eq!(
            err.message(),
            "failed to send series: limit 4 violated (got 6)"
        );
        let sizes: Vec<usize> = sent.iter().map(|r| r.batch().series.len()).collect();
        assert_eq!(sizes, vec![2, 1, 2, 2]);
        assert_eq!(store.dropped.with_label_values(&["series"]).get(), 1);
    }

    #[test]
    fn a_batch_ends_at_its_byte_cap_before_its_series_count() {
        let store = test_store("http://127.0.0.1:1", Limits::default());
        let mut sizes = Vec::new();
        let mut out = |r: Response| -> Result<(), RpcStatus> {
            sizes.push(decoded(&r).batch().series.len());
            Ok(())
        };
        // Series of a quarter of the cap each: four to a batch, not 64;
        // small ones fill the batch up to its count as asked.
        let long = |name: &str| {
            wire::Series::owned(
                key(&[("__name__", name)]),
                vec![(0, 0, 1, vec![0u8; MAX_BATCH_BYTES / 4])],
            )
        };
        let mut e = Emitter::new(&store, 64, &mut out);
        for n in 0..10 {
            e.push(long(&format!("long{n:02}"))).unwrap();
        }
        for n in 0..70 {
            e.push(named(&format!("short{n:02}"), 1)).unwrap();
        }
        e.finish().unwrap();
        assert_eq!(sizes, vec![4, 4, 64, 8]);
    }

    #[test]
    fn samples_limit_counts_120_per_chunk() {
        let store = test_store(
            "http://127.0.0.1:1",
            Limits {
                series: 0,
                samples: 100,
            },
        );
        let mut sent = 0;
        let mut out = |_: Response| -> Result<(), RpcStatus> {
            sent += 1;
            Ok(())
        };
        let mut e = Emitter::new(&store, 0, &mut out);
        e.push(named("no-chunks", 0)).unwrap();
        let err = e.push(named("a", 1)).unwrap_err();
        assert_eq!(
            err.message(),
            "failed to send samples: limit 100 violated (got 120)"
        );
        assert_eq!(sent, 1);
        assert_eq!(store.dropped.with_label_values(&["chunks"]).get(), 1);
    }

    /// A stand-in Prometheus answering remote read with `frames` and the
    /// series API with `series_json`; returns its URL and the thread.
    fn fake_prometheus(
        frames: Vec<u8>,
        series_json: &'static str,
    ) -> (
        String,
        Arc<tiny_http::Server>,
        std::thread::JoinHandle<Vec<String>>,
    ) {
        fake_prometheus_typed(frames, series_json, remote_read::STREAMED_CONTENT_TYPE)
    }

    fn fake_prometheus_typed(
        frames: Vec<u8>,
        series_json: &'static str,
        content_type: &'static str,
    ) -> (
        String,
        Arc<tiny_http::Server>,
        std::thread::JoinHandle<Vec<String>>,
    ) {
        fake_http(move |req| {
            let resp = if req.url().starts_with("/api/v1/read") {
                let ct =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                        .unwrap();
                tiny_http::Response::from_data(frames.clone()).with_header(ct)
            } else {
                tiny_http::Response::from_data(format!(
                    r#"{{"status":"success","data":{series_json}}}"#
                ))
            };
            (req.url().to_string(), resp)
        })
    }

    type Answer = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

    /// A stand-in HTTP server on a free port answering each request with
    /// `answer`, which also says what to note of it; returns its URL, the
    /// server (unblock it to stop) and the thread, which yields the notes.
    fn fake_http<T: Send + 'static>(
        mut answer: impl FnMut(&tiny_http::Request) -> (T, Answer) + Send + 'static,
    ) -> (
        String,
        Arc<tiny_http::Server>,
        std::thread::JoinHandle<Vec<T>>,
    ) {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let srv = server.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for req in srv.incoming_requests() {
                let (note, resp) = answer(&req);
                seen.push(note);
                let _ = req.respond(resp);
            }
            seen
        });
        (format!("http://127.0.0.1:{port}"), server, thread)
    }

    fn stream_of(inputs: &[Key]) -> Vec<u8> {
        padded_stream_of(inputs, 0)
    }

    /// Frames of one series each, one sample and `pad` more bytes a chunk.
    fn padded_stream_of(inputs: &[Key], pad: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for input in inputs {
            let pairs: Vec<(&str, &str)> = input
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let mut c = prom_types::Chunk::new();
            c.type_ = prom_types::chunk::Encoding::XOR.into();
            c.data = xor::encode(&[(1000, 1.0)]);
            c.data.resize(c.data.len() + pad, 0);
            let mut frame = prom_remote::ChunkedReadResponse::new();
            frame
                .chunked_series
                .push(remote_read::chunked_series(&pairs, vec![c]));
            remote_read::write_frame(&mut bytes, &frame).unwrap();
        }
        bytes
    }

    fn request_for(name: &str) -> store::SeriesRequest {
        let mut req = store::SeriesRequest::new();
        let mut m = store_types::LabelMatcher::new();
        m.name = "__name__".into();
        m.value = name.into();
        req.matchers.push(m);
        req.max_time = 10_000;
        req
    }

    fn collect(store: &Store, req: store::SeriesRequest) -> Result<Vec<Key>, RpcStatus> {
        let mut keys = Vec::new();
        let mut out = |r: Response| -> Result<(), RpcStatus> {
            let r = decoded(&r);
            let series = match r.has_batch() {
                true => &r.batch().series[..],
                false => std::slice::from_ref(r.series()),
            };
            for s in series {
                keys.push(
                    s.labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                );
            }
            Ok(())
        };
        series(store, req, &mut out)?;
        Ok(keys)
    }

    #[test]
    fn streamed_answers_are_sorted_after_replica_labels_go() {
        let inputs = as_prometheus_sends(&[
            key(&[("__name__", "m"), ("a", "1")]),
            key(&[("__name__", "m")]),
            key(&[("__name__", "m"), ("z", "1")]),
        ]);
        let (url, server, thread) = fake_prometheus(stream_of(&inputs), "[]");
        let store = test_store(&url, Limits::default());
        let mut req = request_for("m");
        req.without_replica_labels = vec!["replica".into()];
        let got = collect(&store, req).unwrap();
        let mut want: Vec<Key> = inputs
            .iter()
            .map(|k| k.iter().filter(|(n, _)| n != "replica").cloned().collect())
            .collect();
        want.sort();
        assert_eq!(got, want);
        // Deleting an external label can reorder any answer: nothing asked.
        server.unblock();
        assert_eq!(thread.join().unwrap(), ["/api/v1/read"]);
    }

    /// Remote-read label sets as Prometheus streams them: sorted by the
    /// series' own labels, then its external labels (the test store's)
    /// added, own values winning.
    fn as_prometheus_sends(own: &[Key]) -> Vec<Key> {
        let mut own = own.to_vec();
        own.sort();
        own.into_iter()
            .map(|k| {
                let mut merged: Labels = [("cluster", "test"), ("replica", "0")]
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                merged.extend(k);
                merged.into_iter().collect()
            })
            .collect()
    }

    #[test]
    fn own_external_named_labels_and_chains_together_are_sorted() {
        // Own `cluster` values (Prometheus keeps them, the sidecar writes
        // `test` over them) among chains, in the order Prometheus sends.
        let own = [
            key(&[("__name__", "m")]),
            key(&[("__name__", "m"), ("a", "1")]),
            key(&[("__name__", "m"), ("cluster", "a")]),
            key(&[("__name__", "m"), ("cluster", "a"), ("z", "1")]),
            key(&[("__name__", "m"), ("cluster", "zz"), ("y", "1")]),
            key(&[("__name__", "m"), ("z", "1")]),
        ];
        let inputs = as_prometheus_sends(&own);
        let want = cluster_written_over_and_sorted(&inputs);
        let named = r#"[{"__name__":"m","cluster":"a"}]"#;
        let (url, server, thread) = fake_prometheus(stream_of(&inputs), named);
        let store = test_store(&url, Limits::default());
        assert_eq!(collect(&store, request_for("m")).unwrap(), want);
        server.unblock();
        let seen = thread.join().unwrap();
        assert!(
            seen.iter().any(|u| u.starts_with("/api/v1/series?")),
            "{seen:?}"
        );
    }

    #[test]
    fn label_sets_extending_one_another_are_sorted_once_external_labels_are_in() {
        // `m` sorts before `m{a="1"}`, but `{__name__="m", a="1",
        // cluster="test"}` before `{__name__="m", cluster="test"}`: Prometheus
        // sends such chains turned around, and sorts nothing after adding.
        let own = [
            key(&[("__name__", "m")]),
            key(&[("__name__", "m"), ("a", "1")]),
            key(&[("__name__", "m"), ("a", "1"), ("b", "2")]),
            key(&[("__name__", "m"), ("a", "2")]),
            key(&[("__name__", "m"), ("zone", "z")]),
            key(&[("__name__", "n"), ("instance", "i"), ("job", "j")]),
        ];
        let inputs = as_prometheus_sends(&own);
        let mut want = inputs.clone();
        want.sort();
        assert_ne!(inputs, want, "Prometheus' order is not the sorted one here");
        for batch in [0, 64] {
            let (url, server, thread) = fake_prometheus(stream_of(&inputs), "[]");
            let store = test_store(&url, Limits::default());
            let mut req = request_for("m");
            req.response_batch_size = batch;
            assert_eq!(collect(&store, req).unwrap(), want, "batch {batch}");
            server.unblock();
            let seen = thread.join().unwrap();
            assert!(
                seen.iter().any(|u| u.starts_with("/api/v1/series?")),
                "{seen:?}"
            );
        }
    }

    /// What the sidecar sends for these remote-read label sets: the test
    /// store's `cluster` value written over every one, sorted.
    fn cluster_written_over_and_sorted(inputs: &[Key]) -> Vec<Key> {
        let mut out: Vec<Key> = inputs
            .iter()
            .map(|k| {
                k.iter()
                    .map(|(n, v)| match n.as_str() {
                        "cluster" => (n.clone(), "test".to_string()),
                        _ => (n.clone(), v.clone()),
                    })
                    .collect()
            })
            .collect();
        out.sort();
        out
    }

    /// Prometheus' answer for series whose own `cluster` label (kept by
    /// Prometheus, overwritten by the sidecar's `cluster="test"`) puts them
    /// out of the sidecar's order; `pad` bytes of chunk data each.
    fn own_cluster_labels(n: usize, pad: usize) -> (Vec<u8>, Vec<Key>) {
        let mut inputs = Vec::new();
        for i in 0..n {
            // `a` sorts before `test`, so Prometheus sends the own-labelled
            // series first, and the sidecar's order differs by `i`.
            let cluster = if i % 2 == 0 { "a" } else { "test" };
            inputs.push(key(&[
                ("__name__", "m"),
                ("cluster", cluster),
                ("i", &format!("{:03}", n - i)),
                ("replica", "0"),
            ]));
        }
        inputs.sort();
        let bytes = padded_stream_of(&inputs, pad);
        let want = cluster_written_over_and_sorted(&inputs);
        (bytes, want)
    }

    #[test]
    fn a_one_series_answer_needs_no_order_check() {
        // The series API would deny any own `cluster` label: not asked.
        let (frames, want) = own_cluster_labels(1, 0);
        let (url, server, thread) = fake_prometheus(frames, "[]");
        let store = test_store(&url, Limits::default());
        assert_eq!(collect(&store, request_for("m")).unwrap(), want);
        server.unblock();
        let seen = thread.join().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].starts_with("/api/v1/read"), "{seen:?}");
    }

    #[test]
    fn an_answer_of_more_series_asks_for_own_labels_and_is_sorted() {
        for (n, pad) in [(2, 0), (40, 16 * 1024), (100, 0)] {
            let (frames, want) = own_cluster_labels(n, pad);
            let own = r#"[{"__name__":"m","cluster":"a","i":"040","replica":"0"}]"#;
            let (url, server, thread) = fake_prometheus(frames, own);
            let store = test_store(&url, Limits::default());
            assert_eq!(collect(&store, request_for("m")).unwrap(), want, "{n}");
            server.unblock();
            let seen = thread.join().unwrap();
            assert!(
                seen.iter().any(|u| u.starts_with("/api/v1/series?")),
                "{n}: {seen:?}"
            );
        }
    }

    #[test]
    fn a_gone_client_stops_the_read() {
        let inputs: Vec<Key> = (0..100)
            .map(|i| key(&[("__name__", "m"), ("i", &format!("{i:03}"))]))
            .collect();
        let (url, server, thread) = fake_prometheus(stream_of(&inputs), "[]");
        let store = test_store(&url, Limits::default());
        stops_when_the_client_goes(&store, request_for("m"));
        server.unblock();
        thread.join().unwrap();
    }

    /// The client takes three messages, then is gone: the call ends
    /// Cancelled without producing a fourth.
    fn stops_when_the_client_goes(store: &Store, req: store::SeriesRequest) {
        let mut sent = 0;
        let mut out = |_: Response| -> Result<(), RpcStatus> {
            sent += 1;
            if sent == 3 {
                return Err(RpcStatus::new(RpcStatusCode::CANCELLED));
            }
            Ok(())
        };
        let err = series(store, req, &mut out).unwrap_err();
        assert_eq!(err.code(), RpcStatusCode::CANCELLED);
        assert_eq!(sent, 3);
    }

    #[test]
    fn samples_answers_become_sorted_xor_chunks_of_120() {
        let mut result = prom_remote::QueryResult::new();
        for (name, n) in [("b", 250usize), ("a", 3), ("empty", 0)] {
            let mut ts = prom_types::TimeSeries::new();
            let mut l = labels::Label::new();
            l.name = "__name__".into();
            l.value = name.into();
            ts.labels.push(l);
            for i in 0..n {
                let mut sample = prom_types::Sample::new();
                sample.timestamp = i as i64 * 15_000;
                sample.value = if i == 7 { f64::NAN } else { i as f64 - 3.5 };
                ts.samples.push(sample);
            }
            result.timeseries.push(ts);
        }
        let mut answer = prom_remote::ReadResponse::new();
        answer.results.push(result);
        let body = snap::raw::Encoder::new()
            .compress_vec(&answer.write_to_bytes().unwrap())
            .unwrap();
        let (url, server, thread) =
            fake_prometheus_typed(body, "[]", remote_read::SAMPLES_CONTENT_TYPE);
        let store = test_store(&url, Limits::default());
        let mut got = Vec::new();
        let mut out = |r: Response| -> Result<(), RpcStatus> {
            let r = decoded(&r);
            got.push(r.series().clone());
            Ok(())
        };
        let mut req = request_for("x");
        req.matchers[0].type_ = store_types::label_matcher::Type::RE.into();
        req.matchers[0].value = ".+".into();
        series(&store, req, &mut out).unwrap();
        server.unblock();
        thread.join().unwrap();
        // "empty" has no float samples and is skipped; "a" sorts first.
        let names: Vec<&str> = got.iter().map(|s| s.labels[0].value.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(got[0].labels.len(), 3, "external labels added");
        let sizes: Vec<usize> = got[1]
            .chunks
            .iter()
            .map(|c| xor::decode(&c.raw.data).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![120, 120, 10]);
        let c = &got[1].chunks[2];
        assert_eq!((c.min_time, c.max_time), (240 * 15_000, 249 * 15_000));
        assert_eq!(c.raw.hash, xxh64(&c.raw.data, 0));
        let first = xor::decode(&got[1].chunks[0].raw.data).unwrap();
        assert!(first[7].1.is_nan());
        assert_eq!(first[8], (120_000, 4.5));
    }

    #[test]
    fn broken_streams_are_unknown_errors() {
        let mut bytes = stream_of(&[key(&[("__name__", "m")])]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let (url, server, thread) = fake_prometheus(bytes, "[]");
        let store = test_store(&url, Limits::default());
        let err = collect(&store, request_for("m")).unwrap_err();
        assert_eq!(err.code(), RpcStatusCode::UNKNOWN);
        assert!(
            err.message().starts_with("next proto: "),
            "{}",
            err.message()
        );
        server.unblock();
        thread.join().unwrap();
    }

    /// A stand-in series API: `main` answers the Series call, `precheck` the
    /// order check (its selectors ask for `name!=""`). Returns its URL, the
    /// server and the thread, which yields every request's `match[]` list.
    fn fake_series_api(
        main: String,
        precheck: &'static str,
    ) -> (
        String,
        Arc<tiny_http::Server>,
        std::thread::JoinHandle<Vec<Vec<String>>>,
    ) {
        fake_http(move |req| {
            let url = url::Url::parse(&format!("http://x{}", req.url())).unwrap();
            let selectors: Vec<String> = url
                .query_pairs()
                .filter(|(k, _)| k == "match[]")
                .map(|(_, v)| v.into_owned())
                .collect();
            let body = if selectors.iter().any(|s| s.contains("!=\"\"")) {
                format!(r#"{{"status":"success","data":{precheck}}}"#)
            } else {
                main.clone()
            };
            (selectors, tiny_http::Response::from_data(body))
        })
    }

    fn label_sets_json(sets: &[Key]) -> String {
        let data: Vec<serde_json::Map<String, serde_json::Value>> = sets
            .iter()
            .map(|k| {
                k.iter()
                    .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
                    .collect()
            })
            .collect();
        // Prometheus writes `status` first, then `data`; warnings come last.
        format!(
            r#"{{"status":"success","data":{},"warnings":["w"]}}"#,
            serde_json::to_string(&data).unwrap()
        )
    }

    fn skip_chunks(name: &str) -> store::SeriesRequest {
        let mut req = request_for(name);
        req.skip_chunks = true;
        req
    }

    /// What the series path sent before it streamed: every label set with
    /// the external labels not in `without` set, then all sorted.
    fn buffered(inputs: &[Key], without: &[&str]) -> Vec<Key> {
        let mut all: Vec<Key> = inputs
            .iter()
            .map(|k| {
                let mut labels: Labels = k.iter().cloned().collect();
                for (n, v) in [("cluster", "test"), ("replica", "0")] {
                    if !without.contains(&n) {
                        labels.insert(n.into(), v.into());
                    }
                }
                labels.into_iter().collect()
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// Prometheus' order, with label sets that extend one another (which
    /// inserting `replica` reorders) and many that do not.
    fn series_api_inputs() -> Vec<Key> {
        let mut inputs = vec![
            key(&[("__name__", "m")]),
            key(&[("__name__", "m"), ("a", "1")]),
            key(&[("__name__", "m"), ("a", "1"), ("job", "j")]),
            key(&[("__name__", "m"), ("a", "2")]),
            key(&[("__name__", "m"), ("zone", "z")]),
        ];
        for i in 0..200 {
            inputs.push(key(&[
                ("__name__", "n"),
                ("instance", &format!("h{i:03}")),
                ("job", "j"),
            ]));
        }
        inputs.sort();
        inputs
    }

    #[test]
    fn skip_chunks_streams_in_the_order_it_always_sent() {
        let inputs = series_api_inputs();
        let (url, server, thread) = fake_series_api(label_sets_json(&inputs), "[]");
        let store = test_store(&url, Limits::default());
        let got = collect(&store, skip_chunks("m")).unwrap();
        assert_eq!(got, buffered(&inputs, &[]));
        assert_ne!(
            got,
            inputs
                .iter()
                .map(|k| with_labels(k, &store.metadata.external_labels()))
                .collect::<Vec<_>>(),
            "the case must need repair"
        );
        // Dropping the external replica label: the order repair differs.
        let mut req = skip_chunks("m");
        req.without_replica_labels = vec!["replica".into(), "job".into()];
        let got = collect(&store, req).unwrap();
        assert_eq!(got, buffered(&inputs, &["replica"]), "own `job` kept");
        // Both external labels dropped: the answer passes straight through.
        let mut req = skip_chunks("m");
        req.without_replica_labels = vec!["replica".into(), "cluster".into()];
        assert_eq!(collect(&store, req).unwrap(), inputs);
        server.unblock();
        let seen = thread.join().unwrap();
        // The Series calls name their selector twice (so Prometheus sorts).
        let main: Vec<&Vec<String>> = seen
            .iter()
            .filter(|s| !s.iter().any(|m| m.contains("!=")))
            .collect();
        assert_eq!(main.len(), 3, "{seen:?}");
        for selectors in main {
            assert_eq!(selectors.len(), 2, "{selectors:?}");
            assert_eq!(selectors[0], selectors[1]);
        }
    }

    #[test]
    fn skip_chunks_external_labels_win_over_own_ones() {
        // Own `cluster` values, overwritten by the external one. One series
        // needs no order; with more (here behind 100 others) the order
        // check finds the own labels and the path sorts as the chunks path
        // does.
        for (own, more) in [(1, 0), (4, 100)] {
            let mut inputs = vec![
                key(&[("__name__", "n"), ("cluster", "a-own"), ("x", "1")]),
                key(&[("__name__", "n"), ("cluster", "zz-own"), ("job", "b")]),
                key(&[("__name__", "n"), ("job", "m")]),
                key(&[("__name__", "n"), ("job", "m"), ("x", "1")]),
            ];
            inputs.truncate(own);
            for i in 0..more {
                inputs.push(key(&[("__name__", "m"), ("job", &format!("{i:03}"))]));
            }
            inputs.sort();
            let (url, server, thread) = fake_series_api(
                label_sets_json(&inputs),
                r#"[{"__name__":"n","cluster":"a-own","x":"1"}]"#,
            );
            let store = test_store(&url, Limits::default());
            let got = collect(&store, skip_chunks("m")).unwrap();
            assert_eq!(got, buffered(&inputs, &[]));
            assert!(got
                .iter()
                .all(|k| k.contains(&("cluster".to_string(), "test".to_string()))));
            server.unblock();
            let seen = thread.join().unwrap();
            let checked = seen.iter().any(|s| s.iter().any(|m| m.contains("!=")));
            assert_eq!(checked, more > 0, "{seen:?}");
        }
    }

    #[test]
    fn skip_chunks_stops_reading_when_the_client_is_gone() {
        let inputs = series_api_inputs();
        let (url, server, thread) = fake_series_api(label_sets_json(&inputs), "[]");
        let store = test_store(&url, Limits::default());
        stops_when_the_client_goes(&store, skip_chunks("m"));
        server.unblock();
        thread.join().unwrap();
    }

    #[test]
    fn skip_chunks_reports_broken_and_failed_answers() {
        for (body, want) in [
            (
                r#"{"status":"success","data":[{"__name__":"m"},{"__name__":3}]}"#,
                "/api/v1/series: invalid type",
            ),
            (
                r#"{"status":"error","errorType":"bad_data","error":"boom"}"#,
                "/api/v1/series: status \"error\": boom",
            ),
            (r#"{"status":"success","data":[{"__name__":"m"}"#, "EOF"),
        ] {
            let (url, server, thread) = fake_series_api(body.to_string(), "[]");
            let store = test_store(&url, Limits::default());
            let err = collect(&store, skip_chunks("m")).unwrap_err();
            assert_eq!(err.code(), RpcStatusCode::INTERNAL, "{body}");
            assert!(err.message().contains(want), "{body}: {}", err.message());
            server.unblock();
            thread.join().unwrap();
        }
        // `data: null` is an empty answer.
        let (url, server, thread) =
            fake_series_api(r#"{"status":"success","data":null}"#.into(), "[]");
        let store = test_store(&url, Limits::default());
        assert_eq!(
            collect(&store, skip_chunks("m")).unwrap(),
            Vec::<Key>::new()
        );
        server.unblock();
        thread.join().unwrap();
    }

    fn key(pairs: &[(&str, &str)]) -> Key {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn external_labels_win_and_without_deletes_any_label() {
        let ext: Labels = [
            ("cluster".into(), "test".into()),
            ("replica".into(), "0".into()),
        ]
        .into();
        let input = key(&[("__name__", "up"), ("cluster", "local"), ("job", "j")]);
        assert_eq!(
            transform(&input, &ext, &HashSet::new()),
            key(&[
                ("__name__", "up"),
                ("cluster", "test"),
                ("job", "j"),
                ("replica", "0")
            ])
        );
        let without: HashSet<String> = ["replica".to_string(), "job".to_string()].into();
        assert_eq!(
            transform(&input, &ext, &without),
            key(&[("__name__", "up"), ("cluster", "test")])
        );
        let input = key(&[("a", "1"), ("zz", "2")]);
        assert_eq!(
            transform(&input, &ext, &HashSet::new()),
            key(&[
                ("a", "1"),
                ("cluster", "test"),
                ("replica", "0"),
                ("zz", "2")
            ])
        );
    }

    #[test]
    fn shards_partition_series() {
        let mut counts = [0; 3];
        for i in 0..300 {
            let labels = key(&[
                ("__name__", "up"),
                ("instance", &format!("h{i}")),
                ("job", "j"),
            ]);
            let mut hits = 0;
            for (index, count) in counts.iter_mut().enumerate() {
                let mut shard = store::ShardInfo::new();
                shard.total_shards = 3;
                shard.shard_index = index as i64;
                shard.by = true;
                shard.labels = vec!["instance".into()];
                if in_shard(&labels, &shard) {
                    hits += 1;
                    *count += 1;
                }
            }
            assert_eq!(hits, 1);
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
    }

    #[test]
    fn shard_hash_is_xxh64_of_selected_labels() {
        let labels = key(&[("a", "1"), ("b", "2")]);
        let mut shard = store::ShardInfo::new();
        shard.total_shards = 1_000_003;
        shard.by = false;
        shard.labels = vec!["b".into()];
        let want = xxh64(b"a\xff1\xff", 0) % 1_000_003;
        shard.shard_index = want as i64;
        assert!(in_shard(&labels, &shard));
    }

    /// The one series of a frame holding `c`, as the sidecar sends it.
    fn passed_through(c: prom_types::Chunk) -> store_types::Series {
        let mut frame = prom_remote::ChunkedReadResponse::new();
        frame
            .chunked_series
            .push(remote_read::chunked_series(&[("__name__", "m")], vec![c]));
        let bytes = Arc::new(frame.write_to_bytes().unwrap());
        let scanned = wire::scan_frame(&bytes).unwrap().remove(0);
        let series = wire::Series {
            labels: scanned.labels,
            chunks: scanned.chunks,
            bytes,
        };
        decoded(&Response::Series(series)).series().clone()
    }

    #[test]
    fn chunks_pass_through_with_their_hash() {
        let mut c = prom_types::Chunk::new();
        c.type_ = prom_types::chunk::Encoding::XOR.into();
        c.data = vec![0, 1, 2, 3];
        c.min_time_ms = 5;
        c.max_time_ms = 9;
        let a = &passed_through(c).chunks[0];
        let raw = a.raw.as_ref().unwrap();
        assert_eq!(raw.type_.value(), 0);
        assert_eq!(raw.data, vec![0, 1, 2, 3]);
        assert_eq!(raw.hash, xxh64(&[0, 1, 2, 3], 0));
        assert_eq!((a.min_time, a.max_time), (5, 9));
    }

    #[test]
    fn histogram_chunks_keep_their_kind() {
        use prom_types::chunk::Encoding as Remote;
        use store_types::chunk::Encoding as Store;
        for (remote, store) in [
            (Remote::XOR, Store::XOR),
            (Remote::HISTOGRAM, Store::HISTOGRAM),
            (Remote::FLOAT_HISTOGRAM, Store::FLOAT_HISTOGRAM),
        ] {
            let mut c = prom_types::Chunk::new();
            c.type_ = remote.into();
            let a = &passed_through(c).chunks[0];
            assert_eq!(a.raw.as_ref().unwrap().type_.enum_value(), Ok(store));
        }
    }
}
