//! An HTTP proxy in front of Prometheus that records what the sidecar sends
//! and what Prometheus answered to it.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Prometheus' answer (status, body); 0 while in flight or when it
    /// did not answer.
    pub status: u16,
    pub response: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or("")
    }

    /// The decoded query parameters, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let query = self.url.split_once('?').map(|(_, q)| q).unwrap_or("");
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The answer's JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.response).unwrap_or_else(|e| {
            panic!(
                "{} answered {} with no JSON ({e}): {}",
                self.url,
                self.status,
                String::from_utf8_lossy(&self.response)
            )
        })
    }
}

pub struct RecordingProxy {
    pub port: u16,
    server: Arc<tiny_http::Server>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingProxy {
    /// Forwards every request to `upstream` (e.g. `http://127.0.0.1:9090`),
    /// or, used as a forward proxy, to the URL the request names.
    pub fn start(upstream: &str) -> RecordingProxy {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("proxy listen"));
        let port = server.server_addr().to_ip().expect("IP listener").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (srv, log, upstream) = (server.clone(), requests.clone(), upstream.to_string());
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let rec = Recorded {
                    method: req.method().to_string(),
                    url: req.url().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|h| (h.field.to_string(), h.value.to_string()))
                        .collect(),
                    body,
                    status: 0,
                    response: Vec::new(),
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(rec.clone());
                    log.len() - 1
                };
                // As a forward proxy (`proxy_url`) the request names its
                // target in full; as a reverse proxy only the path.
                let target = if rec.url.starts_with("http://") {
                    rec.url.clone()
                } else {
                    format!("{upstream}{}", rec.url)
                };
                let mut out = ureq::request(&rec.method, &target);
                for (k, v) in &rec.headers {
                    if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length")
                    {
                        out = out.set(k, v);
                    }
                }
                let resp = match out.send_bytes(&rec.body) {
                    Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                    Err(_) => {
                        let _ = req.respond(tiny_http::Response::empty(502));
                        continue;
                    }
                };
                let status = resp.status();
                let mut data = Vec::new();
                let _ = resp.into_reader().read_to_end(&mut data);
                if let Some(done) = log.lock().unwrap().get_mut(index) {
                    done.status = status;
                    done.response = data.clone();
                }
                let _ = req.respond(tiny_http::Response::from_data(data).with_status_code(status));
            }
        });
        RecordingProxy {
            port,
            server,
            requests,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests to `path` (without query), oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let mut all = self.requests();
        all.retain(|r| r.path() == path);
        all
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A forward proxy for HTTPS: answers `CONNECT host:port` and then relays
/// bytes both ways, counting the tunnels it opened.
pub struct ConnectProxy {
    pub port: u16,
    tunnels: Arc<std::sync::atomic::AtomicUsize>,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("local address").port();
        let tunnels = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = tunnels.clone();
        // Detached: the test process ends it.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let target = match line.split_whitespace().collect::<Vec<_>>()[..] {
                        ["CONNECT", target, _] => target.to_string(),
                        _ => return,
                    };
                    // The rest of the request head.
                    loop {
                        let mut header = String::new();
                        match reader.read_line(&mut header) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if header == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                        return;
                    };
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut client = client;
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut up_w, mut up_r) = (upstream.try_clone().expect("clone"), upstream);
                    let mut client_w = client.try_clone().expect("clone");
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up_r, &mut client_w);
                        let _ = client_w.shutdown(std::net::Shutdown::Both);
                    });
                    // Bytes the reader buffered beyond the head go first.
                    let _ = up_w.write_all(reader.buffer());
                    let _ = std::io::copy(&mut reader.into_inner(), &mut up_w);
                    let _ = up_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        ConnectProxy { port, tunnels }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn tunnels(&self) -> usize {
        self.tunnels.load(std::sync::atomic::Ordering::SeqCst)
    }
}
