//! The HTTP server on `--http-address`: probes and metrics, as Thanos serves them.
//!
//! `/-/healthy` answers 200 while the process runs, `/-/ready` 200 only while
//! the heartbeat says Prometheus is reachable (503 `NOT OK` otherwise), and
//! `/metrics` exposes the registry every component registered into.
//!
//! Clients talk to `front`: a thread per connection that reads requests
//! within deadlines and bounds, so no client can make another wait. It hands
//! complete requests to tiny_http, where one named thread answers them one
//! at a time: probes and scrapes are tiny, and a sidecar on a small host
//! should not keep a pool of idle threads.
//!
//! With `--http.config` every request first passes the web config (basic
//! auth, rate limit, extra headers; `web_config`), and a `tls_server_config`
//! puts TLS in front (`tls`).

mod front;
pub mod process;
mod tls;
mod web_config;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prom::{Encoder, Registry, TextEncoder};
use tiny_http::{Header, Request, Response, Server};

use crate::listen::ListenAddress;
use crate::metadata::Metadata;
use web_config::{Authenticator, Limiter, WebConfig};

/// Stops accepting when dropped, lets the request being served finish, then joins.
pub struct Handle {
    server: Arc<Server>,
    _thread: jod_thread::JoinHandle<()>,
    /// The connections' front, stopped after the request loop.
    _front: front::Front,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // `unblock` ends the accept loop after the current request; the
        // thread field is dropped (joined) after this body runs.
        self.server.unblock();
    }
}

/// Starts serving. A web config is checked in full first (YAML, bcrypt
/// hashes, certificates and keys): an error stops the sidecar at start-up,
/// naming the file and key, as in Thanos.
pub fn spawn(
    address: &ListenAddress,
    web_config: Option<&Path>,
    registry: Registry,
    metadata: Arc<Metadata>,
) -> Result<Handle, String> {
    let web = match web_config {
        Some(path) => Some(WebConfig::validate(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let use_tls = web.as_ref().is_some_and(WebConfig::tls_enabled);
    let tls_config = web_config.filter(|_| use_tls);
    let (front, backend) = front::listen(bind(address)?, tls_config)?;
    let server = Server::from_listener(backend, None)
        .map_err(|e| format!("--http-address={address}: {e}"))?;
    let server = Arc::new(server);
    let serving = server.clone();
    let probes = metadata.clone();
    let mut guard = match (web_config, web) {
        (Some(path), Some(web)) => Some(Guard {
            path: path.to_path_buf(),
            authenticator: Authenticator::default(),
            // exporter-toolkit sets the limiter up once, at start-up.
            limiter: web.rate_limit.map(Limiter::new),
        }),
        _ => None,
    };
    let thread = jod_thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                serve(request, &registry, &probes, guard.as_mut());
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    metadata.set_healthy(true);
    log::info!(service = "http/server", component = "sidecar", address = address.to_string().as_str(), tls = use_tls; "listening for requests and metrics");
    Ok(Handle {
        server,
        _thread: thread,
        _front: front,
    })
}

fn bind(address: &ListenAddress) -> Result<std::net::TcpListener, String> {
    address
        .bind()
        .map_err(|e| format!("--http-address={address}: cannot listen: {e}"))
}

/// What `--http.config` asks of every request.
struct Guard {
    path: PathBuf,
    authenticator: Authenticator,
    limiter: Option<Limiter>,
}

fn serve(request: Request, registry: &Registry, metadata: &Metadata, guard: Option<&mut Guard>) {
    let mut extra_headers = Vec::new();
    let refusal = guard.and_then(|guard| {
        // Read per request, as exporter-toolkit does: edits apply at once.
        let config = match WebConfig::read(&guard.path) {
            Ok(config) => config,
            Err(e) => {
                log::error!(component = "http", err:% = e; "Unable to parse configuration");
                return Some(text(500, "Internal Server Error\n"));
            }
        };
        if let Some(limiter) = &mut guard.limiter {
            if !limiter.allow() {
                return Some(text(429, "Too Many Requests\n"));
            }
        }
        extra_headers = config.headers.clone();
        if config.users.is_empty() {
            return None;
        }
        let authorization = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str());
        if guard.authenticator.allows(&config.users, authorization) {
            return None;
        }
        Some(text(401, "Unauthorized\n").with_header(header("WWW-Authenticate", "Basic")))
    });
    let path = request.url().split('?').next().unwrap_or("");
    let mut response = match refusal {
        Some(refusal) => refusal,
        None => match (path, request.method()) {
            ("/-/healthy", _) => text(200, "OK"),
            ("/-/ready", _) if metadata.is_ready() => text(200, "OK"),
            ("/-/ready", _) => text(503, "NOT OK\n"),
            ("/metrics", _) => metrics(registry),
            _ => text(404, "404 page not found\n"),
        },
    };
    for (name, value) in &extra_headers {
        // Names come from a fixed list; a value that is no valid header is skipped.
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
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
