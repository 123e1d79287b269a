//! The HTTP server on `--http-address`: probes and metrics, as Thanos serves them.
//!
//! `/-/healthy` answers 200 while the process runs, `/-/ready` 200 only while
//! the heartbeat says Prometheus is reachable (503 `NOT OK` otherwise), and
//! `/metrics` exposes the registry every component registered into. One
//! named thread serves requests one at a time: probes and scrapes are tiny,
//! and a sidecar on a small host should not keep a pool of idle threads.

use std::sync::Arc;

use prom::{Encoder, Registry, TextEncoder};
use tiny_http::{Header, Request, Response, Server};

use crate::metadata::Metadata;

/// Stops accepting when dropped, lets the request being served finish, then joins.
pub struct Handle {
    server: Arc<Server>,
    _thread: jod_thread::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // `unblock` ends the accept loop after the current request; the
        // thread field is dropped (joined) after this body runs.
        self.server.unblock();
    }
}

pub fn spawn(address: &str, registry: Registry, metadata: Arc<Metadata>) -> Result<Handle, String> {
    let server = Server::http(address)
        .map_err(|e| format!("--http-address={address}: cannot listen: {e}"))?;
    let server = Arc::new(server);
    let serving = server.clone();
    let probes = metadata.clone();
    let thread = jod_thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                serve(request, &registry, &probes);
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    metadata.set_healthy(true);
    log::info!(service = "http/server", component = "sidecar", address = address; "listening for requests and metrics");
    Ok(Handle {
        server,
        _thread: thread,
    })
}

fn serve(request: Request, registry: &Registry, metadata: &Metadata) {
    let path = request.url().split('?').next().unwrap_or("");
    let response = match (path, request.method()) {
        ("/-/healthy", _) => text(200, "OK"),
        ("/-/ready", _) if metadata.is_ready() => text(200, "OK"),
        ("/-/ready", _) => text(503, "NOT OK\n"),
        ("/metrics", _) => metrics(registry),
        _ => text(404, "404 page not found\n"),
    };
    if let Err(e) = request.respond(response) {
        log::debug!(component = "http", err:% = e; "failed to write response");
    }
}

fn text(code: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn metrics(registry: &Registry) -> Response<std::io::Cursor<Vec<u8>>> {
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(16 * 1024);
    if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
        return text(500, &format!("error encoding metrics: {e}\n"));
    }
    Response::from_data(body).with_header(header("Content-Type", encoder.format_type()))
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII literals chosen in this file; `from_bytes` only fails on non-ASCII.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}
