//! The connections of `--http-address`, each read on a thread of its own
//! with deadlines and a bounded header, in front of tiny_http.
//!
//! tiny_http reads every header line into memory without a bound, has no
//! deadlines, and its request loop blocks on a client: after answering, it
//! drains the request body that the client may send at any pace (or, with
//! `Expect: 100-continue`, never), and it writes answers to clients that may
//! never read them. With one request loop, one such client left the probes
//! unanswered for as long as it stayed, and Kubernetes restarts a pod whose
//! probes time out (1 s by default).
//!
//! So clients never talk to tiny_http. Each connection gets a thread here
//! (at most [`MAX_CONNECTIONS`]) that reads one request head at a time,
//! bounded as Go's `net/http` bounds it (1 MiB, then 431), within
//! deadlines. A complete head, without its body (no handler here reads
//! one), goes to tiny_http over a private Unix socket as a request of its
//! own; the answer is read there in full and only then written to the
//! client, so tiny_http is never left waiting on anyone. Keep-alive and
//! pipelining stay between the client and this thread. As in Go, a body
//! that was announced is skipped when it is small, and the connection is
//! closed after the answer otherwise (and after `Expect: 100-continue`).
//!
//! With `--http.config`'s `tls_server_config`, TLS ends here too
//! ([`super::tls`]); tiny_http serves plain and TLS requests alike.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::tls;

/// Connections served at once; more are closed as they arrive, so a flood
/// cannot take a small host's threads.
const MAX_CONNECTIONS: usize = 256;
/// Go's `http.DefaultMaxHeaderBytes` (1 MiB) plus the 4 KiB its reader
/// allows on top: a longer request head is answered 431.
const MAX_HEAD: usize = (1 << 20) + 4096;
/// Heads up to this long are gathered on the heap; longer ones (rare, and
/// the way to make us hold a megabyte) in a mapping of their own.
const SMALL_HEAD: usize = 64 << 10;
/// Bytes read from a client at once.
const CHUNK: usize = 16 << 10;
/// Request heads with more fields are answered 431 too.
const MAX_FIELDS: usize = 1024;
/// A request head must be complete this long after its first byte.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a kept-alive connection may wait for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bounds a write to a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// An unread body up to this size is skipped to keep the connection, as Go
/// does (256 KiB); a longer one, or one sent chunked, closes it.
const MAX_SKIPPED_BODY: u64 = 256 << 10;
/// How long a refused client's remaining bytes are read before closing.
const LINGER: Duration = Duration::from_millis(500);
/// tiny_http's answer is read in full before it is written; /metrics of a
/// busy sidecar is tens of kB.
const MAX_ANSWER: u64 = 64 << 20;

/// The listener; dropping it stops accepting and removes the private socket.
/// Connections already open finish on their own threads.
pub struct Front {
    stop: Arc<AtomicBool>,
    wake: SocketAddr,
    accept: Option<jod_thread::JoinHandle<()>>,
    socket_dir: PathBuf,
}

/// Serves `tcp` (with TLS when a web config is given) in front of a private
/// Unix socket; returns the front and the listener tiny_http should serve.
pub fn listen(
    tcp: TcpListener,
    tls_config: Option<&Path>,
) -> Result<(Front, UnixListener), String> {
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
        let tls_config = tls_config.map(Path::to_path_buf);
        jod_thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(tcp, &stop, tls_config.as_deref(), &socket))
            .map_err(|e| format!("cannot start the HTTP accept thread: {e}"))?
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

/// A fresh directory only this user can enter: the Unix socket in it
/// serves without TLS or limits, so no one else may reach it.
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

fn accept_loop(tcp: TcpListener, stop: &AtomicBool, tls_config: Option<&Path>, backend: &Path) {
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
            log::debug!(component = "http"; "too many HTTP connections; closing a new one");
            continue;
        }
        let slot = Slot::take(&active);
        let tls_config = tls_config.map(Path::to_path_buf);
        let backend = backend.to_path_buf();
        // Detached: it ends when the client goes or a deadline passes.
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = serve(stream, tls_config.as_deref(), &backend) {
                    log::debug!(component = "http", err = e.as_str(); "HTTP connection ended");
                }
            });
        if let Err(e) = spawned {
            log::warn!(component = "http", err:% = e; "cannot start a thread for an HTTP connection");
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

/// A client connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One client connection: its requests, one after the other.
fn serve(tcp: TcpStream, tls_config: Option<&Path>, backend: &Path) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    tcp.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(io)?;
    let _ = tcp.set_nodelay(true);
    let timer = tcp.try_clone().map_err(io)?;
    let stream = match tls_config {
        Some(path) => match tls::accept(tcp, path)? {
            Some(tls) => Stream::Tls(Box::new(tls)),
            None => return Ok(()),
        },
        None => Stream::Plain(tcp),
    };
    let mut conn = Connection {
        stream,
        timer,
        buf: Vec::with_capacity(4096),
    };
    let result = conn.serve(backend);
    conn.close();
    result
}

struct Connection {
    stream: Stream,
    /// The socket under `stream`, for its read deadlines.
    timer: TcpStream,
    /// Bytes read and not consumed yet: pipelined requests, body bytes.
    buf: Vec<u8>,
}

/// What a request asks of the connection besides its answer.
struct Request {
    /// The head as tiny_http gets it: HTTP/1.0, no body, closing.
    forward: Vec<u8>,
    head_len: usize,
    http11: bool,
    head_only: bool,
    /// Body bytes to skip after the answer; `None`: close instead.
    body: Option<u64>,
    keep_alive: bool,
}

enum Next {
    Request(Request),
    /// The client closed, or went quiet for too long: close silently, as Go does.
    Gone,
    /// Answered with this status, then closed.
    Refuse(u16),
}

impl Connection {
    fn serve(&mut self, backend: &Path) -> Result<(), String> {
        loop {
            let request = match self.next_request()? {
                Next::Request(request) => request,
                Next::Gone => return Ok(()),
                Next::Refuse(code) => return self.refuse(code),
            };
            self.buf.drain(..request.head_len);
            let answer = match ask(backend, &request.forward) {
                Ok(answer) => answer,
                Err(e) => {
                    log::warn!(component = "http", err = e.as_str(); "HTTP server did not answer");
                    return self.refuse(500);
                }
            };
            let skip = request.body.filter(|_| request.keep_alive);
            let keep_alive = skip.is_some();
            let out = reframe(&answer, request.http11, request.head_only, keep_alive)?;
            self.stream.write_all(&out).map_err(|e| e.to_string())?;
            self.stream.flush().map_err(|e| e.to_string())?;
            match skip {
                Some(len) if self.skip_body(len)? => {}
                _ => return Ok(()),
            }
        }
    }

    /// Reads until a whole request head is buffered.
    fn next_request(&mut self) -> Result<Next, String> {
        let mut deadline = (!self.buf.is_empty()).then(|| Instant::now() + HEAD_TIMEOUT);
        let mut scanned = 0;
        loop {
            if head_ends(&self.buf, scanned) {
                return Ok(parse(&self.buf));
            }
            if self.buf.len() > SMALL_HEAD {
                let deadline = deadline.unwrap_or_else(|| Instant::now() + HEAD_TIMEOUT);
                return self.large_head(deadline);
            }
            scanned = self.buf.len();
            let wait = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => IDLE_TIMEOUT,
            };
            match self.read_more(wait)? {
                0 => return Ok(Next::Gone),
                _ => {
                    deadline.get_or_insert_with(|| Instant::now() + HEAD_TIMEOUT);
                }
            }
        }
    }

    /// A head longer than [`SMALL_HEAD`], gathered in an anonymous mapping
    /// rather than on the heap: what a hostile client makes us hold (up to
    /// [`MAX_HEAD`]) goes back to the system with the mapping, whatever the
    /// allocator would have kept cached per thread.
    fn large_head(&mut self, deadline: Instant) -> Result<Next, String> {
        let mut map = memmap2::MmapMut::map_anon(MAX_HEAD + CHUNK)
            .map_err(|e| format!("cannot map memory for a request head: {e}"))?;
        let mut len = self.buf.len();
        map[..len].copy_from_slice(&self.buf);
        self.buf = Vec::with_capacity(CHUNK);
        let mut scanned = 0;
        loop {
            if head_ends(&map[..len], scanned) {
                let mut next = parse(&map[..len]);
                if let Next::Request(request) = &mut next {
                    // What followed the head stays for the next reads.
                    self.buf.extend_from_slice(&map[request.head_len..len]);
                    request.head_len = 0;
                }
                return Ok(next);
            }
            if len > MAX_HEAD {
                return Ok(Next::Refuse(431));
            }
            scanned = len;
            let wait = deadline.saturating_duration_since(Instant::now());
            match read_within(
                &mut self.stream,
                &self.timer,
                wait,
                &mut map[len..len + CHUNK],
            )? {
                0 => return Ok(Next::Gone),
                n => len += n,
            }
        }
    }

    /// Reads what is there within `wait` into the buffer; 0 when the
    /// client closed or the time is up.
    fn read_more(&mut self, wait: Duration) -> Result<usize, String> {
        let mut chunk = [0u8; CHUNK];
        let n = read_within(&mut self.stream, &self.timer, wait, &mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Skips an announced body; false if the client did not send it in time.
    fn skip_body(&mut self, len: u64) -> Result<bool, String> {
        let mut left = len;
        let deadline = Instant::now() + HEAD_TIMEOUT;
        loop {
            let here = left.min(self.buf.len() as u64) as usize;
            self.buf.drain(..here);
            left -= here as u64;
            if left == 0 {
                return Ok(true);
            }
            if self.read_more(deadline.saturating_duration_since(Instant::now()))? == 0 {
                return Ok(false);
            }
        }
    }

    /// Go's answers to requests it cannot serve, then the end of the connection.
    fn refuse(&mut self, code: u16) -> Result<(), String> {
        let reason = match code {
            400 => "Bad Request",
            431 => "Request Header Fields Too Large",
            _ => "Internal Server Error",
        };
        let answer = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{code} {reason}"
        );
        let _ = self.stream.write_all(answer.as_bytes());
        let _ = self.stream.flush();
        // As Go does: stop sending, then read what the client still sends
        // for a moment, so that closing with unread bytes does not reset
        // the connection before the client has read the refusal.
        let _ = self.timer.shutdown(std::net::Shutdown::Write);
        let until = Instant::now() + LINGER;
        loop {
            self.buf.clear();
            if self.read_more(until.saturating_duration_since(Instant::now()))? == 0 {
                break;
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Stream::Tls(tls) = &mut self.stream {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.timer.shutdown(std::net::Shutdown::Both);
    }
}

/// Reads what is there within `wait` into `dst`; 0 when the client closed
/// or the time is up.
fn read_within(
    stream: &mut Stream,
    timer: &TcpStream,
    wait: Duration,
    dst: &mut [u8],
) -> Result<usize, String> {
    if wait.is_zero() {
        return Ok(0);
    }
    timer
        .set_read_timeout(Some(wait))
        .map_err(|e| e.to_string())?;
    loop {
        return match stream.read(dst) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(0),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(e.to_string()),
        };
    }
}

/// Whether `buf` holds a blank line (the end of a head), looking only at
/// what came after `scanned` (and the three bytes before it): re-parsing
/// the whole buffer on every byte of a slow client would be quadratic.
fn head_ends(buf: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(3);
    let tail = &buf[from..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

fn parse(buf: &[u8]) -> Next {
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        // The blank line was seen, so a partial head is a malformed one.
        Ok(httparse::Status::Partial) => return Next::Refuse(400),
        Err(httparse::Error::TooManyHeaders) => return Next::Refuse(431),
        Err(_) => return Next::Refuse(400),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Next::Refuse(400);
    };
    let http11 = version >= 1;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut close = !http11;
    let mut forward = Vec::with_capacity(head_len + 32);
    forward.extend_from_slice(format!("{method} {target} HTTP/1.0\r\n").as_bytes());
    for field in req.headers.iter() {
        let value = String::from_utf8_lossy(field.value);
        let name = field.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => match value.trim().parse::<u64>() {
                Ok(n) if content_length.is_none_or(|m| m == n) => content_length = Some(n),
                _ => return Next::Refuse(400),
            },
            "transfer-encoding" => chunked = true,
            "expect" => expect_continue = value.trim().eq_ignore_ascii_case("100-continue"),
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                        close = false;
                    }
                }
            }
            "keep-alive" | "te" | "upgrade" => {}
            _ => {
                forward.extend_from_slice(field.name.as_bytes());
                forward.extend_from_slice(b": ");
                forward.extend_from_slice(field.value);
                forward.extend_from_slice(b"\r\n");
            }
        }
    }
    forward.extend_from_slice(b"Connection: close\r\n\r\n");
    let body = match (chunked, expect_continue, content_length) {
        (true, _, _) | (_, true, _) => None,
        (false, false, len) => Some(len.unwrap_or(0)).filter(|n| *n <= MAX_SKIPPED_BODY),
    };
    Next::Request(Request {
        forward,
        head_len,
        http11,
        head_only: method.eq_ignore_ascii_case("HEAD"),
        body,
        keep_alive: !close,
    })
}

/// Sends one request to tiny_http and reads its whole answer.
fn ask(backend: &Path, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut unix = UnixStream::connect(backend).map_err(|e| format!("connect: {e}"))?;
    // tiny_http answers in milliseconds; this only guards against a bug
    // there leaving this connection's thread forever.
    let _ = unix.set_read_timeout(Some(WRITE_TIMEOUT));
    unix.write_all(request).map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::with_capacity(4096);
    (&mut unix)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| format!("receive: {e}"))?;
    Ok(answer)
}

/// tiny_http's HTTP/1.0 answer as this connection's answer: the client's
/// version, a Content-Length, and keep-alive as decided here.
fn reframe(
    answer: &[u8],
    http11: bool,
    head_only: bool,
    keep_alive: bool,
) -> Result<Vec<u8>, String> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut fields);
    let head_len = match resp.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err("malformed answer from the HTTP server".into()),
    };
    let code = resp.code.unwrap_or(500);
    let reason = resp.reason.unwrap_or("");
    let body = &answer[head_len..];
    let mut out = Vec::with_capacity(answer.len() + 64);
    let version = if http11 { "HTTP/1.1" } else { "HTTP/1.0" };
    out.extend_from_slice(format!("{version} {code} {reason}\r\n").as_bytes());
    let mut length = None;
    for field in resp.headers.iter() {
        let name = field.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => length = Some(String::from_utf8_lossy(field.value).to_string()),
            "connection" | "keep-alive" | "transfer-encoding" => {}
            _ => {
                out.extend_from_slice(field.name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(field.value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    // A HEAD answer announces the length its GET would have.
    let length = match (head_only, length) {
        (true, Some(announced)) => announced,
        _ => body.len().to_string(),
    };
    out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
    match (keep_alive, http11) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, false) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, true) => {}
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Request {
        match parse(raw.as_bytes()) {
            Next::Request(r) => r,
            Next::Refuse(code) => panic!("refused {code}: {raw:?}"),
            Next::Gone => panic!("gone"),
        }
    }

    #[test]
    fn heads_are_forwarded_without_body_or_hop_by_hop_fields() {
        let raw = "POST /metrics?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YTpi\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        let r = request(raw);
        assert_eq!(
            String::from_utf8_lossy(&r.forward),
            "POST /metrics?x=1 HTTP/1.0\r\nHost: h\r\nAuthorization: Basic YTpi\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(r.head_len, raw.len() - "hello".len());
        assert!(r.http11 && r.keep_alive && !r.head_only);
        assert_eq!(r.body, Some(5));
    }

    #[test]
    fn bodies_that_cannot_be_skipped_close_the_connection() {
        let expect =
            request("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(expect.body, None);
        let chunked = request("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(chunked.body, None);
        let big = request("POST / HTTP/1.1\r\nContent-Length: 262145\r\n\r\n");
        assert_eq!(big.body, None);
        let old = request("GET / HTTP/1.0\r\n\r\n");
        assert!(!old.keep_alive);
        let old_kept = request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(old_kept.keep_alive);
        assert!(!request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for raw in [
            "GET\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Field: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw.as_bytes()), Next::Refuse(400)),
                "{raw:?}"
            );
        }
        let many: String = (0..=MAX_FIELDS).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse(raw.as_bytes()), Next::Refuse(431)));
    }

    #[test]
    fn head_end_is_found_across_reads() {
        let buf = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        assert!(head_ends(buf, buf.len() - 1));
        assert!(!head_ends(b"GET / HTTP/1.1\r\nA: b\r\n", 0));
        assert!(head_ends(b"GET / HTTP/1.1\nA: b\n\n", 10));
    }

    #[test]
    fn answers_take_the_clients_version_and_framing() {
        let answer = b"HTTP/1.0 200 OK\r\nServer: tiny-http (Rust)\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK";
        let out = reframe(answer, true, false, true).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 200 OK\r\nServer: tiny-http (Rust)\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK"
        );
        let out = reframe(answer, false, false, false).unwrap();
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(String::from_utf8_lossy(&out).contains("Connection: close\r\n"));
        let head = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n";
        let out = reframe(head, true, true, true).unwrap();
        assert!(String::from_utf8_lossy(&out).ends_with("Content-Length: 2\r\n\r\n"));
        // No length from tiny_http (an answer read to its end): counted here.
        let out = reframe(
            b"HTTP/1.0 503 Service Unavailable\r\n\r\nNOT OK\n",
            true,
            false,
            true,
        )
        .unwrap();
        assert!(String::from_utf8_lossy(&out).contains("Content-Length: 7\r\n"));
    }
}
