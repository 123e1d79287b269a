//! gRPC client helpers shared by the tests of every service.

use grpcio::{ClientSStreamReceiver, RpcStatus, RpcStatusCode};

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
