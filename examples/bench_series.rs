//! Series throughput: the sidecar's StoreAPI against a direct streamed remote
//! read of the same query from Prometheus, alternating, decoding every chunk
//! on both sides so the client work is the same. Used by `scripts/bench-series`.
//!
//! bench_series PROMETHEUS_URL SIDECAR_GRPC SELECTOR RUNS START_MS END_MS
//!
//! The sidecar is asked for 64 series per answer message, as Thanos'
//! querier asks every store (`BENCH_BATCH` sets another number; 0 or 1 is
//! a message per series).
//!
//! Prints both rates, their ratio, the client's own CPU time on each path
//! and each path's mean time to its first answer (the first message through
//! the sidecar, the first frame direct). With
//! `BENCH_FORWARD_ADDRESS=HOST:PORT` (`examples/forward` to Prometheus) the
//! direct read is also made through that forwarder, and its rate and ratio
//! to the direct read printed: the cost of a third process that only copies
//! bytes, on the same cores.
//!
//! With `BENCH_SKIP_CHUNKS=1`: label sets only, the sidecar's `Series` with
//! `skip_chunks` against Prometheus' `/api/v1/series`, counting series.
//!
//! With `BENCH_LABELS=1`: the label calls, the sidecar's `LabelNames` and
//! `LabelValues` (of label `i`) for SELECTOR against Prometheus' own
//! `/api/v1/labels` and `/api/v1/label/i/values`, alternating; mean latency
//! of each, and the ratio direct / sidecar (1 = as fast as Prometheus).
//!
//! With `BENCH_FLOOR=1`: what a call costs before any data, alternating: the
//! sidecar's `thanos.info.Info` (a gRPC call answered from memory, no
//! Prometheus) against Prometheus' `/-/ready` (an HTTP call), and `Series`
//! for SELECTOR (meant to match nothing) against the direct remote read of
//! it; mean latency of each. The difference of the last two is the fixed
//! cost of a call through the sidecar, which no answer size hides below it.
//! `BENCH_IDLE_US` waits that long before each call, so the cores go idle
//! in between as between a querier's calls and every call first wakes them.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use grpcio::{ChannelBuilder, EnvBuilder};
use protobuf::Message;
use thanos_sidecar::proto::info;
use thanos_sidecar::proto::services::{InfoClient, StoreClient};
use thanos_sidecar::proto::store;
use thanos_sidecar::proto::store_types::LabelMatcher;
use thanos_sidecar::store::cli::parse_selector;
use thanos_sidecar::store::matchers::{self, Matcher};
use thanos_sidecar::store::remote_read::{self, FrameReader};
use thanos_sidecar::store::wire::SERIES_AS_BYTES;
use thanos_sidecar::store::xor;

// The sidecar's allocator for the client too (static builds): with zig
// libc's `malloc`, `perf` on the client put ~8 % of its CPU in page faults,
// that allocator and munmap's TLB shootdowns, the answers' large messages
// mapped and unmapped one by one, and the client is the busiest of the three
// processes (BENCHMARKS.md, Series). Thanos' querier, in Go, reuses its heap.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [prom, grpc, selector, runs, start, end] = args.as_slice() else {
        return Err(
            "usage: bench_series PROMETHEUS_URL SIDECAR_GRPC SELECTOR RUNS START_MS END_MS".into(),
        );
    };
    let runs: usize = runs.parse().map_err(|e| format!("RUNS: {e}"))?;
    let start: i64 = start.parse().map_err(|e| format!("START_MS: {e}"))?;
    let end: i64 = end.parse().map_err(|e| format!("END_MS: {e}"))?;
    let pb_matchers = parse_selector(selector)?;
    let ms = matchers::convert(&pb_matchers).map_err(|e| format!("{selector}: {e:?}"))?;

    let env = Arc::new(EnvBuilder::new().cq_count(1).name_prefix("bench").build());
    let channel = ChannelBuilder::new(env)
        .max_receive_message_len(i32::MAX)
        .connect(grpc);
    let bench = Bench {
        info: InfoClient::new(channel.clone()),
        client: StoreClient::new(channel),
        agent: ureq::AgentBuilder::new().build(),
        prom,
        selector,
        pb_matchers,
        runs,
        start,
        end,
    };
    if std::env::var_os("BENCH_LABELS").is_some_and(|v| v == "1") {
        return bench.label_calls();
    }
    if std::env::var_os("BENCH_SKIP_CHUNKS").is_some_and(|v| v == "1") {
        return bench.skip_chunks();
    }
    if std::env::var_os("BENCH_FLOOR").is_some_and(|v| v == "1") {
        return bench.floor(&ms);
    }
    bench.chunks(&ms)
}

/// What every mode measures: one query, asked of Prometheus directly and of
/// the sidecar, `runs` times each in turn.
struct Bench<'a> {
    info: InfoClient,
    client: StoreClient,
    agent: ureq::Agent,
    prom: &'a str,
    selector: &'a str,
    pb_matchers: Vec<LabelMatcher>,
    runs: usize,
    start: i64,
    end: i64,
}

impl Bench<'_> {
    /// Samples: a streamed remote read of Prometheus against the sidecar's
    /// `Series`, every chunk decoded on both sides.
    fn chunks(&self, ms: &[Matcher]) -> Result<(), String> {
        let (runs, start, end) = (self.runs, self.start, self.end);
        // BENCH_FORWARD_ADDRESS: a byte forwarder to Prometheus (`examples/forward`);
        // the direct read is then also made through it.
        let forward = std::env::var("BENCH_FORWARD_ADDRESS")
            .ok()
            .filter(|v| !v.is_empty());
        let (mut sidecar, mut direct, mut forwarded) =
            (Side::default(), Side::default(), Side::default());
        // Series per answer message, as Thanos' querier asks (its
        // `store.DefaultResponseBatchSize`); BENCH_BATCH=0 asks for one each.
        let batch_size: i64 = match std::env::var("BENCH_BATCH") {
            Ok(v) => v.parse().map_err(|e| format!("BENCH_BATCH={v}: {e}"))?,
            Err(_) => 64,
        };
        let mut samples_seen = 0u64;
        for _ in 0..runs {
            let n = direct.time(|| remote_read(&self.agent, self.prom, start, end, ms))?;
            if let Some(forward) = &forward {
                let via = forwarded.time(|| {
                    remote_read(&self.agent, &format!("http://{forward}"), start, end, ms)
                })?;
                if via != n {
                    return Err(format!("sample counts differ: forwarded {via}, direct {n}"));
                }
            }

            // Through the sidecar.
            let via = sidecar.time(|| {
                let mut req = self.series_request();
                req.response_batch_size = batch_size;
                // Each answer gathered, then parsed from the slice, as Thanos'
                // querier (Go's gRPC) takes it: the client's work then matches the
                // direct read's (BENCHMARKS.md: the client is the busiest process).
                let mut stream = self
                    .client
                    .client
                    .server_streaming(&SERIES_AS_BYTES, &req, grpcio::CallOption::default())
                    .map_err(|e| e.to_string())?;
                let mut via = 0u64;
                futures::executor::block_on(async {
                    while let Some(bytes) = stream.next().await {
                        let bytes = bytes.map_err(|e| e.to_string())?;
                        arrived();
                        let frame = store::SeriesResponse::parse_from_bytes(&bytes)
                            .map_err(|e| e.to_string())?;
                        let series = match frame.has_batch() {
                            true => &frame.batch().series[..],
                            false => std::slice::from_ref(frame.series()),
                        };
                        for c in series.iter().flat_map(|s| &s.chunks) {
                            via += xor::decode(&c.raw.data)?.len() as u64;
                        }
                    }
                    Ok::<(), String>(())
                })?;
                Ok(via)
            })?;
            if via != n {
                return Err(format!("sample counts differ: sidecar {via}, direct {n}"));
            }
            samples_seen = n;
        }
        let total = samples_seen as f64 * runs as f64;
        let rate = |side: &Side| total / side.secs;
        let mut line = format!(
        "samples={samples_seen} runs={runs} sidecar_samples_per_s={:.0} direct_samples_per_s={:.0} ratio={:.3} client_cpu_sidecar_s={:.2} client_cpu_direct_s={:.2} first_answer_ms_sidecar={:.3} first_answer_ms_direct={:.3}",
        rate(&sidecar),
        rate(&direct),
        rate(&sidecar) / rate(&direct),
        sidecar.cpu,
        direct.cpu,
        sidecar.first * 1e3 / runs as f64,
        direct.first * 1e3 / runs as f64,
    );
        if forward.is_some() {
            line += &format!(
                " forwarded_samples_per_s={:.0} forwarded_ratio={:.3} client_cpu_forwarded_s={:.2}",
                rate(&forwarded),
                rate(&forwarded) / rate(&direct),
                forwarded.cpu
            );
        }
        println!("{line}");
        Ok(())
    }

    /// Series of label sets only: Prometheus' series API directly, then the
    /// sidecar's `Series` with `skip_chunks`, alternating.
    fn skip_chunks(&self) -> Result<(), String> {
        let runs = self.runs;
        let (mut sidecar_secs, mut direct_secs, mut series_seen) = (0.0, 0.0, 0u64);
        for _ in 0..runs {
            let t = Instant::now();
            let answer = self.prometheus_api("/api/v1/series")?;
            let direct = answer.as_array().map_or(0, |a| a.len()) as u64;
            direct_secs += t.elapsed().as_secs_f64();

            let t = Instant::now();
            let mut req = self.series_request();
            req.skip_chunks = true;
            let via = self.messages(&req)?;
            sidecar_secs += t.elapsed().as_secs_f64();
            if via != direct {
                return Err(format!(
                    "series counts differ: sidecar {via}, direct {direct}"
                ));
            }
            series_seen = via;
        }
        let sidecar_rate = series_seen as f64 * runs as f64 / sidecar_secs;
        let direct_rate = series_seen as f64 * runs as f64 / direct_secs;
        println!(
        "series={series_seen} runs={runs} sidecar_series_per_s={sidecar_rate:.0} direct_series_per_s={direct_rate:.0} ratio={:.3}",
        sidecar_rate / direct_rate
    );
        Ok(())
    }

    /// The label calls against Prometheus' label APIs, alternating per run;
    /// both sides' answers are checked against each other.
    fn label_calls(&self) -> Result<(), String> {
        let (runs, start, end) = (self.runs, self.start, self.end);
        let direct = |path: &str| -> Result<Vec<String>, String> {
            let answer = self.prometheus_api(path)?;
            Ok(answer
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default())
        };
        let (mut names_via, mut names_direct, mut values_via, mut values_direct) =
            (0.0, 0.0, 0.0, 0.0);
        for _ in 0..runs {
            let t = Instant::now();
            let want_names = direct("/api/v1/labels")?;
            names_direct += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut req = store::LabelNamesRequest::new();
            req.start = start;
            req.end = end;
            req.matchers = self.pb_matchers.to_vec();
            let names = self.client.label_names(&req).map_err(|e| e.to_string())?;
            names_via += t.elapsed().as_secs_f64();
            // The sidecar adds the external labels' names.
            if !want_names.iter().all(|n| names.names.contains(n)) {
                return Err(format!(
                    "label names differ: {:?} vs {want_names:?}",
                    names.names
                ));
            }

            let t = Instant::now();
            let want_values = direct("/api/v1/label/i/values")?;
            values_direct += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut req = store::LabelValuesRequest::new();
            req.label = "i".into();
            req.start = start;
            req.end = end;
            req.matchers = self.pb_matchers.to_vec();
            let values = self.client.label_values(&req).map_err(|e| e.to_string())?;
            values_via += t.elapsed().as_secs_f64();
            if values.values != want_values {
                return Err(format!(
                    "label values differ: {} vs {}",
                    values.values.len(),
                    want_values.len()
                ));
            }
        }
        let us = |secs: f64| secs / runs as f64 * 1e6;
        println!(
        "runs={runs} names_sidecar_us={:.0} names_direct_us={:.0} names_ratio={:.3} values_sidecar_us={:.0} values_direct_us={:.0} values_ratio={:.3}",
        us(names_via),
        us(names_direct),
        names_direct / names_via,
        us(values_via),
        us(values_direct),
        values_direct / values_via
    );
        Ok(())
    }

    /// A `Series` request for the selector over the range.
    fn series_request(&self) -> store::SeriesRequest {
        let mut req = store::SeriesRequest::new();
        req.min_time = self.start;
        req.max_time = self.end;
        req.matchers = self.pb_matchers.clone();
        req
    }

    /// Makes a `Series` call; returns the messages of its answer.
    fn messages(&self, req: &store::SeriesRequest) -> Result<u64, String> {
        let mut stream = self.client.series(req).map_err(|e| e.to_string())?;
        let mut messages = 0u64;
        futures::executor::block_on(async {
            while let Some(message) = stream.next().await {
                message.map_err(|e| e.to_string())?;
                messages += 1;
            }
            Ok::<(), String>(())
        })?;
        Ok(messages)
    }

    /// The cost of a call with no data, each transport alone and the whole
    /// path of an empty `Series` (see the module doc).
    fn floor(&self, ms: &[Matcher]) -> Result<(), String> {
        let (runs, start, end) = (self.runs, self.start, self.end);
        let (mut info, mut ready, mut series, mut read) = (0.0, 0.0, 0.0, 0.0);
        let idle = match std::env::var("BENCH_IDLE_US") {
            Ok(v) => v.parse().map_err(|e| format!("BENCH_IDLE_US={v}: {e}"))?,
            Err(_) => 0,
        };
        let pause = || std::thread::sleep(std::time::Duration::from_micros(idle));
        for _ in 0..runs {
            pause();
            let t = Instant::now();
            self.info
                .info(&info::InfoRequest::new())
                .map_err(|e| e.to_string())?;
            info += t.elapsed().as_secs_f64();

            pause();
            let t = Instant::now();
            let resp = self
                .agent
                .get(&format!("{}/-/ready", self.prom))
                .call()
                .map_err(|e| e.to_string())?;
            std::io::copy(&mut resp.into_reader(), &mut std::io::sink())
                .map_err(|e| e.to_string())?;
            ready += t.elapsed().as_secs_f64();

            pause();
            let t = Instant::now();
            let direct = remote_read(&self.agent, self.prom, start, end, ms)?;
            read += t.elapsed().as_secs_f64();

            pause();
            let t = Instant::now();
            let mut req = self.series_request();
            req.response_batch_size = 64;
            let frames = self.messages(&req)?;
            series += t.elapsed().as_secs_f64();
            if direct != 0 || frames != 0 {
                return Err(format!(
                    "{} matches data ({direct} samples direct, {frames} messages through the sidecar): the floor needs a selector that matches nothing",
                    self.selector
                ));
            }
        }
        let us = |secs: f64| secs / runs as f64 * 1e6;
        println!(
            "runs={runs} info_us={:.0} ready_us={:.0} empty_series_us={:.0} empty_read_us={:.0} fixed_cost_us={:.0}",
            us(info),
            us(ready),
            us(series),
            us(read),
            us(series - read)
        );
        Ok(())
    }

    /// The `data` of one of Prometheus' JSON APIs for `selector` over
    /// `[start, end]` (ms): the direct side of the label-set benchmarks.
    fn prometheus_api(&self, path: &str) -> Result<serde_json::Value, String> {
        let mut answer: serde_json::Value = self
            .agent
            .get(&format!("{}{path}", self.prom))
            .query("match[]", self.selector)
            .query("start", &format!("{}", self.start as f64 / 1000.0))
            .query("end", &format!("{}", self.end as f64 / 1000.0))
            .call()
            .map_err(|e| e.to_string())
            .and_then(|resp| {
                serde_json::from_reader(resp.into_reader()).map_err(|e| e.to_string())
            })?;
        Ok(answer["data"].take())
    }
}

/// One way of reading the answer: its wall time and this process' CPU
/// time (all threads, gRPC's included), summed over the runs.
#[derive(Default)]
struct Side {
    secs: f64,
    cpu: f64,
    /// Seconds from the call to its first message or frame, summed.
    first: f64,
}

thread_local! {
    /// When the current read's first message or frame arrived.
    static FIRST: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Notes the arrival of a read's message or frame (only the first counts).
fn arrived() {
    FIRST.with(|f| {
        if f.get().is_none() {
            f.set(Some(Instant::now()));
        }
    });
}

impl Side {
    fn time(&mut self, read: impl FnOnce() -> Result<u64, String>) -> Result<u64, String> {
        // The clock starts after the CPU reading and stops before the next:
        // reading /proc is not part of the answer's time.
        let cpu = process_cpu()?;
        FIRST.with(|f| f.set(None));
        let t = Instant::now();
        let samples = read()?;
        self.secs += t.elapsed().as_secs_f64();
        if let Some(first) = FIRST.with(|f| f.get()) {
            self.first += (first - t).as_secs_f64();
        }
        self.cpu += process_cpu()? - cpu;
        Ok(samples)
    }
}

/// This process' user and system time in seconds, from `/proc/self/stat`
/// (clock ticks of 10 ms: enough over the runs of 10⁶ samples and more).
fn process_cpu() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("/proc/self/stat: field {}", i + 3))
    };
    // utime and stime are the stat file's fields 14 and 15.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// A streamed remote read of the matchers from `base`, every chunk decoded;
/// returns the samples read.
fn remote_read(
    agent: &ureq::Agent,
    base: &str,
    start: i64,
    end: i64,
    ms: &[Matcher],
) -> Result<u64, String> {
    let body = remote_read::encode_request(&remote_read::request(start, end, ms))?;
    let resp = agent
        .post(&format!("{base}/api/v1/read"))
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-stream-protobuf")
        .set("X-Prometheus-Remote-Read-Version", "0.1.0")
        .send_bytes(&body)
        .map_err(|e| e.to_string())?;
    let mut frames = FrameReader::new(resp.into_reader());
    let mut samples = 0u64;
    while let Some(frame) = frames.next_frame()? {
        arrived();
        for s in frame.chunked_series {
            for c in s.chunks {
                samples += xor::decode(&c.data)?.len() as u64;
            }
        }
    }
    Ok(samples)
}
