//! HTTPS on `--http-address` when `--http.config` has a `tls_server_config`.
//!
//! tiny_http's own TLS (rustls 0.20 or OpenSSL) can neither verify client
//! certificates nor limit versions, ciphers or curves, and it cannot serve a
//! stream it did not accept itself. So TLS ends here, with the rustls the
//! process already links, and each decrypted connection is bridged to
//! tiny_http listening on a Unix socket in a private (0700) directory: one
//! HTTP implementation serves both plain and TLS requests.
//!
//! The web config is read again for every handshake, as exporter-toolkit
//! does, so new certificates and client CAs apply to the next connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ServerConnection;

use super::web_config::WebConfig;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds a write to a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once (two threads each); more are refused, so a
/// flood cannot exhaust a small host's threads.
const MAX_CONNECTIONS: usize = 64;

/// The TLS listener; dropping it stops accepting and removes the socket.
pub struct Front {
    stop: Arc<AtomicBool>,
    wake: SocketAddr,
    accept: Option<jod_thread::JoinHandle<()>>,
    socket_dir: PathBuf,
}

/// Serves TLS on `tcp` in front of a private Unix socket for tiny_http;
/// returns the front and the listener tiny_http should serve.
pub fn listen(tcp: TcpListener, web_config: &Path) -> Result<(Front, UnixListener), String> {
    let local = tcp
        .local_addr()
        .map_err(|e| format!("--http-address: {e}"))?;
    let socket_dir = private_dir()?;
    let socket = socket_dir.join("http.sock");
    let backend = UnixListener::bind(&socket).map_err(|e| {
        let _ = std::fs::remove_dir_all(&socket_dir);
        format!("HTTP server socket {}: {e}", socket.display())
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let accept = {
        let stop = stop.clone();
        let web_config = web_config.to_path_buf();
        jod_thread::Builder::new()
            .name("http-tls".into())
            .spawn(move || accept_loop(tcp, &stop, &web_config, &socket))
            .map_err(|e| format!("cannot start the HTTPS thread: {e}"))?
    };
    Ok((
        Front {
            stop,
            wake: loopback(local),
            accept: Some(accept),
            socket_dir,
        },
        backend,
    ))
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A connection of our own wakes the blocking accept so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
        drop(self.accept.take());
        let _ = std::fs::remove_dir_all(&self.socket_dir);
    }
}

/// Where to connect to reach a listener bound to `addr` (e.g. `0.0.0.0`).
fn loopback(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    wake
}

/// A fresh directory only this user can enter: the Unix socket behind it
/// serves without TLS, so no one else may reach it.
fn private_dir() -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "thanos-sidecar-http-{}-{nanos:09}",
        std::process::id()
    ));
    // `create` (not `create_all`) fails if the path exists, so nobody can
    // hand us a directory or symlink of theirs.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn accept_loop(tcp: TcpListener, stop: &AtomicBool, web_config: &Path, backend: &Path) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in tcp.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                log::debug!(component = "http", err:% = e; "accept failed");
                continue;
            }
        };
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            log::debug!(component = "http"; "too many HTTPS connections; refusing one");
            continue;
        }
        let slot = Slot::take(&active);
        let web_config = web_config.to_path_buf();
        let backend = backend.to_path_buf();
        // Detached: it ends when either side closes the connection.
        let spawned = std::thread::Builder::new()
            .name("http-tls-conn".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = serve(stream, &web_config, &backend) {
                    log::debug!(component = "http", err = e.as_str(); "HTTPS connection ended");
                }
            });
        if let Err(e) = spawned {
            log::warn!(component = "http", err:% = e; "cannot start a thread for an HTTPS connection");
        }
    }
}

/// Counts a connection while it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Slot {
        active.fetch_add(1, Ordering::SeqCst);
        Slot(active.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client connection: handshake, then bytes both ways until one side closes.
fn serve(tcp: TcpStream, web_config: &Path, backend: &Path) -> Result<(), String> {
    let config = match WebConfig::read(web_config).and_then(|c| c.tls_server_config()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            log::error!(component = "http"; "--http.config no longer configures TLS; restart to serve plain HTTP");
            return Ok(());
        }
        Err(e) => {
            log::error!(component = "http", err = e.as_str(); "Unable to load the TLS config; refusing the connection");
            return Ok(());
        }
    };
    let mut conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(io)?;
    let mut sock = &tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock).map_err(io)?;
    }
    tcp.set_read_timeout(None).map_err(io)?;
    let unix = UnixStream::connect(backend).map_err(io)?;
    let conn = Arc::new(Mutex::new(conn));
    let replies = {
        let conn = conn.clone();
        let unix = unix.try_clone().map_err(io)?;
        let tcp = tcp.try_clone().map_err(io)?;
        std::thread::Builder::new()
            .name("http-tls-conn".into())
            .spawn(move || backend_to_client(&unix, &tcp, &conn))
            .map_err(io)?
    };
    let result = client_to_backend(&tcp, &unix, &conn);
    // tiny_http sees the end of the request stream and closes its side,
    // which ends the other direction.
    let _ = unix.shutdown(Shutdown::Write);
    let _ = replies.join();
    result
}

/// Decrypts what the client sends and passes it on to tiny_http.
fn client_to_backend(
    tcp: &TcpStream,
    unix: &UnixStream,
    conn: &Mutex<ServerConnection>,
) -> Result<(), String> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut plain = Vec::new();
    // The first request may have come with the end of the handshake and
    // already be decrypted: pass it on before waiting for more.
    let mut records = 0;
    loop {
        let closed = {
            let mut conn = conn.lock().map_err(|_| "TLS state poisoned")?;
            let closed = decrypt(&mut conn, &buf[..records], &mut plain);
            // Alerts and key updates the records asked for.
            while conn.wants_write() {
                if conn.write_tls(&mut &*tcp).is_err() {
                    break;
                }
            }
            closed?
        };
        (&*unix).write_all(&plain).map_err(|e| e.to_string())?;
        plain.clear();
        if closed {
            return Ok(());
        }
        // Read without the lock, so replies flow while we wait.
        records = loop {
            match (&*tcp).read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            }
        };
    }
}

/// Feeds TLS records to rustls and collects the plaintext; `Ok(true)` once
/// the client sent close_notify.
fn decrypt(
    conn: &mut ServerConnection,
    mut records: &[u8],
    plain: &mut Vec<u8>,
) -> Result<bool, String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        loop {
            match conn.reader().read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(k) => plain.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        if records.is_empty() {
            return Ok(false);
        }
        conn.read_tls(&mut records).map_err(|e| e.to_string())?;
        conn.process_new_packets().map_err(|e| e.to_string())?;
    }
}

/// Encrypts tiny_http's answers for the client; closes the TLS session
/// when tiny_http closes the connection.
fn backend_to_client(unix: &UnixStream, tcp: &TcpStream, conn: &Mutex<ServerConnection>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match (&*unix).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let Ok(mut conn) = conn.lock() else { break };
        if conn.writer().write_all(&buf[..n]).is_err() {
            break;
        }
        if flush(&mut conn, tcp).is_err() {
            break;
        }
    }
    if let Ok(mut conn) = conn.lock() {
        conn.send_close_notify();
        let _ = flush(&mut conn, tcp);
    }
    let _ = tcp.shutdown(Shutdown::Both);
}

fn flush(conn: &mut ServerConnection, tcp: &TcpStream) -> std::io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut &*tcp)?;
    }
    Ok(())
}
