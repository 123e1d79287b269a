//! gRPC client helpers shared by the tests of every service.

use std::sync::Arc;

use grpcio::{
    Channel, ChannelBuilder, ClientSStreamReceiver, EnvBuilder, RpcStatus, RpcStatusCode,
};

/// A channel builder on an environment of its own (one completion queue,
/// threads named `name`), taking answers of any size.
pub fn builder(name: &str) -> ChannelBuilder {
    let env = Arc::new(EnvBuilder::new().cq_count(1).name_prefix(name).build());
    ChannelBuilder::new(env).max_receive_message_len(i32::MAX)
}

/// A plaintext channel to a gRPC port on 127.0.0.1.
pub fn connect(port: u16, name: &str) -> Channel {
    builder(name).connect(&format!("127.0.0.1:{port}"))
}

/// Every frame of a server-streaming call, or the status it ended with.
pub fn collect<T>(call: grpcio::Result<ClientSStreamReceiver<T>>) -> Result<Vec<T>, RpcStatus> {
    use futures::StreamExt;
    let mut stream = call.map_err(status)?;
    futures::executor::block_on(async {
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            out.push(item.map_err(status)?);
        }
        Ok(out)
    })
}

/// The status a call failed with; a client-side failure reads as Internal.
pub fn status(e: grpcio::Error) -> RpcStatus {
    match e {
        grpcio::Error::RpcFailure(s) => s,
        other => RpcStatus::with_message(RpcStatusCode::INTERNAL, format!("{other}")),
    }
}

/// A Series request for every sample of metric `name`, at any time.
pub fn series_of_metric(name: &str) -> thanos_sidecar::proto::store::SeriesRequest {
    let mut matcher = thanos_sidecar::proto::store_types::LabelMatcher::new();
    matcher.name = "__name__".into();
    matcher.value = name.into();
    let mut req = thanos_sidecar::proto::store::SeriesRequest::new();
    req.matchers = vec![matcher];
    req.max_time = i64::MAX;
    req
}
