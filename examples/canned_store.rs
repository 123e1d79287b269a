//! A StoreAPI that answers `Series` from memory: the ceiling of any gRPC
//! store in the sidecar's place, with this client on these cores.
//! `scripts/bench-series` (`BENCH_CEILING=1`) measures it beside the
//! sidecar, each against the same direct remote read.
//!
//! canned_store LISTEN_ADDRESS PROMETHEUS_URL SELECTOR START_MS END_MS
//!
//! Reads SELECTOR's answer once from Prometheus (a streamed remote read),
//! keeps its frames and serves every `Series` call from them, whatever the
//! call asks, in the sidecar's messages (batches of up to 64 series or
//! 256 KiB of chunks, written by the sidecar's own encoder on the sidecar's
//! own gRPC server). With `CANNED_ON=worker` each call's messages come from
//! a worker thread through the sidecar's channel to the completion queue
//! (`Calls::stream`), as the sidecar's do; by default the completion queue
//! writes them itself, the least a gRPC server can do. Prints the port it
//! listens on once serving.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use grpcio::{RpcContext, ServerStreamingSink, WriteFlags};
use prom::Registry;
use thanos_sidecar::grpc::calls::Calls;
use thanos_sidecar::grpc::metrics::GrpcMetrics;
use thanos_sidecar::grpc::{self, method, GrpcServerConfig};
use thanos_sidecar::listen::ListenAddress;
use thanos_sidecar::metadata::Metadata;
use thanos_sidecar::prometheus::Client;
use thanos_sidecar::proto::{services, store};
use thanos_sidecar::store::cli::parse_selector;
use thanos_sidecar::store::remote_read::{self, FrameReader};
use thanos_sidecar::store::series;
use thanos_sidecar::store::wire::{self, Response};
use thanos_sidecar::store::{matchers, SERIES_QUEUE};
use thanos_sidecar::values::TimeOrDuration;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Series a message, as Thanos' querier asks every store for (the sidecar
/// also closes a batch at `series::MAX_BATCH_BYTES` of chunks).
const BATCH_SERIES: usize = 64;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, prom, selector, start, end] = args.as_slice() else {
        return Err(
            "usage: canned_store LISTEN_ADDRESS PROMETHEUS_URL SELECTOR START_MS END_MS".into(),
        );
    };
    let start: i64 = start.parse().map_err(|e| format!("START_MS: {e}"))?;
    let end: i64 = end.parse().map_err(|e| format!("END_MS: {e}"))?;
    let on_worker = match std::env::var("CANNED_ON").as_deref() {
        Ok("worker") => true,
        Ok("cq") | Err(_) => false,
        Ok(other) => return Err(format!("CANNED_ON={other}: want cq or worker")),
    };
    let answer = Arc::new(read_answer(prom, selector, start, end)?);

    let registry = Registry::new();
    let metadata =
        Arc::new(Metadata::new(&registry, TimeOrDuration::DEFAULT).map_err(|e| e.to_string())?);
    let metrics = Arc::new(GrpcMetrics::new(&registry, None).map_err(|e| e.to_string())?);
    let config = GrpcServerConfig {
        address: ListenAddress::parse(listen).map_err(|e| format!("{listen}: {e}"))?,
        tls: None,
        max_connection_age: Duration::ZERO,
        grace_period: Duration::ZERO,
        max_workers: 256,
        max_queued_calls: 1024,
    };
    let server = grpc::start(&config, metadata, metrics, |calls| {
        vec![services::create_store(Canned {
            answer,
            calls,
            on_worker,
        })]
    })?;
    println!("{}", server.port);
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    loop {
        std::thread::park();
    }
}

/// SELECTOR's answer as the sidecar would send it (without external labels:
/// the client only decodes chunks).
fn read_answer(prom: &str, selector: &str, start: i64, end: i64) -> Result<Vec<Response>, String> {
    let ms = matchers::convert(&parse_selector(selector)?).map_err(|e| format!("{e:?}"))?;
    let url = url::Url::parse(prom).map_err(|e| format!("{prom}: {e}"))?;
    let client = Client::new(url, &Default::default()).map_err(|e| e.to_string())?;
    let body = remote_read::encode_request(&remote_read::request(start, end, &ms))?;
    let resp = client
        .remote_read(&body, Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let mut frames = FrameReader::new(resp.into_reader());
    let (mut answer, mut batch, mut bytes) = (Vec::new(), Vec::new(), 0);
    while let Some(frame) = frames.next_payload()? {
        let frame = Arc::new(frame);
        for s in wire::scan_frame(&frame).map_err(|e| format!("{e:?}"))? {
            bytes += s.chunks.iter().map(|c| c.data.len()).sum::<usize>();
            batch.push(wire::Series {
                labels: s.labels,
                chunks: s.chunks,
                bytes: frame.clone(),
            });
            if batch.len() >= BATCH_SERIES || bytes >= series::MAX_BATCH_BYTES {
                answer.push(Response::Batch(std::mem::take(&mut batch)));
                bytes = 0;
            }
        }
    }
    if !batch.is_empty() {
        answer.push(Response::Batch(batch));
    }
    Ok(answer)
}

#[derive(Clone)]
struct Canned {
    answer: Arc<Vec<Response>>,
    calls: Calls,
    on_worker: bool,
}

impl services::Store for Canned {
    fn series(
        &mut self,
        ctx: RpcContext,
        _req: store::SeriesRequest,
        mut sink: ServerStreamingSink<Response>,
    ) {
        let answer = self.answer.clone();
        if self.on_worker {
            self.calls.stream(
                &ctx,
                method::STORE_SERIES,
                "canned-series",
                SERIES_QUEUE,
                sink,
                move |out| answer.iter().try_for_each(|r| out(r.clone())),
            );
            return;
        }
        // As the sidecar's completion-queue task writes: one message at a time.
        ctx.spawn(async move {
            for r in answer.iter() {
                if sink.send((r.clone(), WriteFlags::default())).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
    }
}
