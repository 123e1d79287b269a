//! A TCP proxy that can stall or cut the connection to a server on demand:
//! "the S3 server stopped", "the network hangs mid-upload", "Prometheus
//! has not answered this remote read yet".

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    /// Client-to-server bytes forwarded so far.
    upstream_bytes: AtomicU64,
    /// Stop forwarding (data waits) once this many bytes went upstream.
    pause_after: AtomicU64,
    /// Refuse and cut every connection.
    down: AtomicBool,
    /// Hold back the answers to remote reads sent while this is on.
    hold_reads: AtomicBool,
    /// Per connection: its answer is held now.
    held: Mutex<Vec<Arc<AtomicBool>>>,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

pub struct FaultyProxy {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyProxy {
    pub fn start(upstream_port: u16) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            pause_after: AtomicU64::new(u64::MAX),
            ..Default::default()
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if s.down.load(Ordering::SeqCst) {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                            continue;
                        };
                        if let (Ok(c), Ok(sv)) = (client.try_clone(), server.try_clone()) {
                            let mut conns = s.conns.lock().unwrap();
                            conns.push(c);
                            conns.push(sv);
                        }
                        let read = Arc::new(AtomicBool::new(false));
                        s.held.lock().unwrap().push(read.clone());
                        pipe(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            s.clone(),
                            true,
                            read.clone(),
                        );
                        pipe(server, client, s.clone(), false, read);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FaultyProxy {
            port,
            shared,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn upstream_bytes(&self) -> u64 {
        self.shared.upstream_bytes.load(Ordering::SeqCst)
    }

    /// Holds all traffic once `bytes` more have gone upstream.
    pub fn pause_after(&self, bytes: u64) {
        let now = self.upstream_bytes();
        self.shared.pause_after.store(now + bytes, Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.upstream_bytes() >= self.shared.pause_after.load(Ordering::SeqCst)
    }

    /// Cuts every connection and refuses new ones.
    pub fn down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Back to normal: forwarding, accepting, no pause.
    pub fn up(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
        self.shared.pause_after.store(u64::MAX, Ordering::SeqCst);
    }

    /// While on, Prometheus' answer to each remote read
    /// (`POST /api/v1/read`) sent is held back, as from a Prometheus still
    /// busy selecting: the client waits for the first byte. Other requests
    /// pass; turning it off leaves the reads held so far held.
    pub fn hold_remote_reads(&self, hold: bool) {
        self.shared.hold_reads.store(hold, Ordering::SeqCst);
    }

    /// Lets the held answers through.
    pub fn release_remote_reads(&self) {
        for held in self.shared.held.lock().unwrap().iter() {
            held.store(false, Ordering::SeqCst);
        }
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    s: Arc<Shared>,
    upstream: bool,
    held: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            while upstream
                && s.upstream_bytes.load(Ordering::SeqCst) >= s.pause_after.load(Ordering::SeqCst)
                && !s.down.load(Ordering::SeqCst)
                && !s.stop.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            if s.down.load(Ordering::SeqCst) {
                break;
            }
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // A pooled connection carries other requests after a remote read.
            let head = &buf[..n];
            if upstream && (head.starts_with(b"GET ") || head.starts_with(b"POST ")) {
                let hold =
                    s.hold_reads.load(Ordering::SeqCst) && head.starts_with(b"POST /api/v1/read");
                held.store(hold, Ordering::SeqCst);
            }
            while !upstream
                && held.load(Ordering::SeqCst)
                && !s.down.load(Ordering::SeqCst)
                && !s.stop.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            if upstream {
                s.upstream_bytes.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.down();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
