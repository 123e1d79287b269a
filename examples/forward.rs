//! The least a process between a client and Prometheus can do: copy bytes.
//! `scripts/bench-series` (`BENCH_FORWARD=1`) runs the direct remote read
//! through it as well, so the cost of a third process on the same cores
//! (two more socket copies, its wake-ups and scheduling) is measured apart
//! from what the sidecar does in that place.
//!
//! forward LISTEN_ADDRESS UPSTREAM_ADDRESS
//!
//! Prints the address it listens on (so port 0 picks a free one).
//!
//! Every accepted connection gets one to UPSTREAM_ADDRESS and two threads,
//! one per direction, each moving up to 64 KiB per read.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        return Err("usage: forward LISTEN_ADDRESS UPSTREAM_ADDRESS".into());
    };
    let listener = TcpListener::bind(listen).map_err(|e| format!("{listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{local}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    for client in listener.incoming() {
        let client = client.map_err(|e| format!("accept: {e}"))?;
        let server = TcpStream::connect(upstream).map_err(|e| format!("{upstream}: {e}"))?;
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (c2, s2) = (
            client.try_clone().map_err(|e| e.to_string())?,
            server.try_clone().map_err(|e| e.to_string())?,
        );
        std::thread::spawn(move || pipe(client, server));
        std::thread::spawn(move || pipe(s2, c2));
    }
    Ok(())
}
