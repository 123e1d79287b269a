//! A querier fleet in one process: CLIENTS threads, each with its own
//! connection, calling `Series`, `LabelNames` and `LabelValues` in turn on a
//! StoreAPI for SECONDS; prints the calls made and failed. The series asked
//! for are `soak_gauge`'s (`scripts/bench-soak` writes them as a block over
//! START_MS..END_MS), so every answer has the same size all run long.
//!
//! soak GRPC_ADDRESS CLIENTS SECONDS START_MS END_MS [all|series|labels]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use grpcio::{CallOption, ChannelBuilder, EnvBuilder};
use thanos_sidecar::proto::services::StoreClient;
use thanos_sidecar::proto::store;
use thanos_sidecar::store::cli::parse_selector;

/// The first few failures, on stderr: what failed says more than a count.
fn report(e: &grpcio::Error) {
    static REPORTED: AtomicU64 = AtomicU64::new(0);
    if REPORTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("soak: call failed: {e}");
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (grpc, clients, seconds, start, end, mode) = match args.as_slice() {
        [g, c, s, a, b] => (g, c, s, a, b, "all"),
        [g, c, s, a, b, m] => (g, c, s, a, b, m.as_str()),
        _ => {
            return Err(
                "usage: soak GRPC_ADDRESS CLIENTS SECONDS START_MS END_MS [all|series|labels]"
                    .into(),
            )
        }
    };
    // Which calls the clients make, in turn: 0 Series, 1 LabelNames, 2 LabelValues.
    let kinds: &'static [usize] = match mode {
        "all" => &[0, 1, 2],
        "series" => &[0],
        "labels" => &[1, 2],
        other => return Err(format!("mode {other:?}: all, series or labels")),
    };
    let clients: usize = clients.parse().map_err(|e| format!("CLIENTS: {e}"))?;
    let seconds: u64 = seconds.parse().map_err(|e| format!("SECONDS: {e}"))?;
    let start: i64 = start.parse().map_err(|e| format!("START_MS: {e}"))?;
    let end: i64 = end.parse().map_err(|e| format!("END_MS: {e}"))?;
    let selectors = [
        parse_selector(r#"soak_gauge{s="7"}"#)?,
        parse_selector(r#"soak_gauge{s=~"1.*"}"#)?,
        parse_selector(r#"soak_gauge"#)?,
    ];

    let env = Arc::new(EnvBuilder::new().cq_count(2).name_prefix("soak").build());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let threads: Vec<_> = (0..clients)
        .map(|n| {
            let channel = ChannelBuilder::new(env.clone())
                .max_receive_message_len(i32::MAX)
                // Its own connection, as each querier has.
                .use_local_subchannel_pool(true)
                .connect(grpc);
            let client = StoreClient::new(channel);
            let (calls, failed, selectors) = (calls.clone(), failed.clone(), selectors.clone());
            std::thread::spawn(move || {
                let option = || CallOption::default().timeout(Duration::from_secs(30));
                let mut i = n;
                while Instant::now() < deadline {
                    i += 1;
                    let ok = match kinds[i % kinds.len()] {
                        0 => {
                            let mut req = store::SeriesRequest::new();
                            (req.min_time, req.max_time) = (start, end);
                            req.matchers = selectors[i / kinds.len() % selectors.len()].clone();
                            match client.series_opt(&req, option()) {
                                Ok(mut stream) => futures::executor::block_on(async {
                                    let mut ok = true;
                                    while let Some(frame) = stream.next().await {
                                        if let Err(e) = frame {
                                            report(&e);
                                            ok = false;
                                        }
                                    }
                                    ok
                                }),
                                Err(e) => {
                                    report(&e);
                                    false
                                }
                            }
                        }
                        1 => {
                            let mut req = store::LabelNamesRequest::new();
                            (req.start, req.end) = (start, end);
                            client
                                .label_names_opt(&req, option())
                                .map_err(|e| report(&e))
                                .is_ok()
                        }
                        _ => {
                            let mut req = store::LabelValuesRequest::new();
                            (req.start, req.end) = (start, end);
                            req.label = "__name__".into();
                            client
                                .label_values_opt(&req, option())
                                .map_err(|e| report(&e))
                                .is_ok()
                        }
                    };
                    calls.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    println!(
        "calls={} failed={}",
        calls.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}
