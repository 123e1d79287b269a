//! The bridge between a gRPC call and the worker thread that does its work.
//!
//! gRPC handlers run on the completion-queue thread and must not block, so
//! each call's work (blocking HTTP to Prometheus, decoding, sorting) runs on
//! a pool thread ([`Workers`]); its result travels back over a bounded
//! channel that a task on the completion queue drains into the call's sink.
//! Here too: Thanos' interceptors' bookkeeping (metrics, request log, panic
//! recovery), and giving a call up as soon as its client is gone.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::channel::{mpsc, oneshot};
use futures::{Sink, SinkExt, StreamExt};
use grpcio::{RpcContext, RpcStatus, RpcStatusCode, ServerStreamingSink, UnarySink, WriteFlags};

use super::method::Method;
use super::metrics::{Call, GrpcMetrics};
use super::status::internal;
use super::workers::Workers;

/// What every service needs to run calls; cheap to clone.
#[derive(Clone)]
pub struct Calls {
    workers: Workers,
    metrics: Arc<GrpcMetrics>,
}

impl Calls {
    pub fn new(workers: Workers, metrics: Arc<GrpcMetrics>) -> Self {
        Calls { workers, metrics }
    }

    /// Counts and logs a call answered on the completion queue itself
    /// (cheap, non-blocking ones), to be finished by [`reply`].
    pub fn call(&self, method: Method, ctx: &RpcContext) -> Call {
        self.metrics.call(method, ctx)
    }

    /// Runs `work` on a worker and answers the unary call with its result.
    pub fn unary<Resp: Send + 'static>(
        &self,
        ctx: &RpcContext,
        method: Method,
        name: &'static str,
        sink: UnarySink<Resp>,
        work: impl FnOnce() -> Result<Resp, RpcStatus> + Send + 'static,
    ) {
        let call = self.metrics.call(method, ctx);
        let (tx, rx) = oneshot::channel();
        let metrics = self.metrics.clone();
        let spawned = self.workers.spawn(name, move || {
            let _ = tx.send(recover(&metrics, work));
        });
        if let Err(status) = spawned {
            ctx.spawn(reply(call, sink, Err(status)));
            return;
        }
        ctx.spawn(async move {
            let result = match rx.await {
                Ok(result) => result,
                Err(_) => Err(internal("worker ended without an answer")),
            };
            reply(call, sink, result).await;
        });
    }

    /// Runs `work` on a worker and streams the frames it hands to its `out`
    /// (which blocks while `queue` frames wait for a slow client, and fails
    /// once the client is gone); an error from `work` ends the stream with
    /// that status after the frames already sent.
    pub fn stream<Resp: Send + 'static>(
        &self,
        ctx: &RpcContext,
        method: Method,
        name: &'static str,
        queue: usize,
        mut sink: ServerStreamingSink<Resp>,
        work: impl FnOnce(&mut dyn FnMut(Resp) -> Result<(), RpcStatus>) -> Result<(), RpcStatus>
            + Send
            + 'static,
    ) {
        let call = self.metrics.call(method, ctx);
        let (tx, mut rx) = mpsc::channel::<Result<Resp, RpcStatus>>(queue);
        let metrics = self.metrics.clone();
        let spawned = self.workers.spawn(name, move || {
            let mut frames = tx.clone();
            let mut out = |resp: Resp| -> Result<(), RpcStatus> {
                futures::executor::block_on(frames.send(Ok(resp)))
                    .map_err(|_| RpcStatus::new(RpcStatusCode::CANCELLED))
            };
            let result = recover(&metrics, || work(&mut out));
            if let Err(status) = result {
                let mut tx = tx;
                let _ = futures::executor::block_on(tx.send(Err(status)));
            }
        });
        let ticket = match spawned {
            Ok(ticket) => ticket,
            Err(status) => {
                call.finish(status.code(), Some(status.message()));
                ctx.spawn(async move {
                    let _ = sink.fail(status).await;
                });
                return;
            }
        };
        let deadline = ctx.deadline();
        ctx.spawn(async move {
            loop {
                match next_or_gone(&mut rx, &mut sink).await {
                    Ok(Some(Ok(resp))) => {
                        if let Err(e) = sink.send((resp, WriteFlags::default())).await {
                            // Dropping `rx` (on return) stops the worker at its next frame.
                            log::debug!(err = e.to_string().as_str(); "streaming client gone");
                            ticket.give_up();
                            call.finish(RpcStatusCode::CANCELLED, Some(&e.to_string()));
                            return;
                        }
                        call.sent();
                    }
                    Ok(Some(Err(status))) => {
                        call.finish(status.code(), Some(status.message()));
                        let _ = sink.fail(status).await;
                        return;
                    }
                    Ok(None) => {
                        call.finish(RpcStatusCode::OK, None);
                        let _ = sink.close().await;
                        return;
                    }
                    Err(e) => {
                        // Cancelled or past its deadline while the worker had
                        // nothing to send, e.g. waiting for Prometheus' first byte.
                        let code = if deadline.exceeded() {
                            RpcStatusCode::DEADLINE_EXCEEDED
                        } else {
                            RpcStatusCode::CANCELLED
                        };
                        log::debug!(err = e.to_string().as_str(); "streaming client gone before the answer");
                        ticket.give_up();
                        call.finish(code, Some(&e.to_string()));
                        return;
                    }
                }
            }
        });
    }
}

/// The worker's next message, or the error that ended the call meanwhile.
/// A server-streaming sink learns of its call's end (the client cancelled,
/// or the deadline passed and gRPC cancelled it) in `poll_ready`, which
/// also registers this task to be woken by it; waiting on `rx` alone would
/// only notice at the next send, which may be an hour away.
async fn next_or_gone<T, Resp>(
    rx: &mut mpsc::Receiver<T>,
    sink: &mut ServerStreamingSink<Resp>,
) -> Result<Option<T>, grpcio::Error> {
    futures::future::poll_fn(|cx| {
        if let Poll::Ready(Err(e)) = Pin::new(&mut *sink).poll_ready(cx) {
            return Poll::Ready(Err(e));
        }
        rx.poll_next_unpin(cx).map(Ok)
    })
    .await
}

/// Answers a unary call: counts it as Thanos' interceptors do (the response
/// is a message sent once the handler succeeded), then writes it.
pub async fn reply<T>(call: Call, sink: UnarySink<T>, result: Result<T, RpcStatus>) {
    let sent = match result {
        Ok(resp) => {
            call.sent();
            call.finish(RpcStatusCode::OK, None);
            sink.success(resp).await
        }
        Err(status) => {
            call.finish(status.code(), Some(status.message()));
            sink.fail(status).await
        }
    };
    if let Err(e) = sent {
        log::debug!(err = e.to_string().as_str(); "answering a gRPC call failed");
    }
}

/// Runs a handler's work; a panic in it becomes an Internal status carrying
/// the panic's message and is counted, as Thanos' recovery interceptor does,
/// instead of ending the call without an answer.
fn recover<T>(
    metrics: &GrpcMetrics,
    work: impl FnOnce() -> Result<T, RpcStatus>,
) -> Result<T, RpcStatus> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        metrics.panic_recovered();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        log::error!(panic = message.as_str(); "recovered from panic");
        Err(internal(message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prom::Registry;

    #[test]
    fn a_panic_in_a_calls_work_is_answered_internal_and_counted() {
        let registry = Registry::new();
        let metrics = GrpcMetrics::new(&registry, None).unwrap();
        let result: Result<(), RpcStatus> = recover(&metrics, || panic!("index out of bounds"));
        let status = result.unwrap_err();
        assert_eq!(status.code(), RpcStatusCode::INTERNAL);
        assert_eq!(status.message(), "index out of bounds");
        let panics = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "grpc_req_panics_recovered_total")
            .map(|f| f.get_metric()[0].get_counter().get_value());
        assert_eq!(panics, Some(1.0));
        assert_eq!(recover(&metrics, || Ok(7)).unwrap(), 7);
    }
}
