//! HTTPS on `--http-address` when `--http.config` has a `tls_server_config`.
//!
//! tiny_http's own TLS (rustls 0.20 or OpenSSL) can neither verify client
//! certificates nor limit versions, ciphers or curves. So TLS ends in the
//! connection threads of [`super::front`], with the rustls the process
//! already links, and tiny_http serves the decrypted requests.
//!
//! The web config is read again for every handshake, as exporter-toolkit
//! does, so new certificates and client CAs apply to the next connection.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use rustls::{ServerConnection, StreamOwned};

use super::web_config::WebConfig;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS session of a new connection, once its handshake is done; `None`
/// when the web config no longer allows one (logged).
pub fn accept(
    tcp: TcpStream,
    web_config: &Path,
) -> Result<Option<StreamOwned<ServerConnection, TcpStream>>, String> {
    let config = match WebConfig::read(web_config).and_then(|c| c.tls_server_config()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            log::error!(component = "http"; "--http.config no longer configures TLS; restart to serve plain HTTP");
            return Ok(None);
        }
        Err(e) => {
            log::error!(component = "http", err:% = e; "Unable to load the TLS config; refusing the connection");
            return Ok(None);
        }
    };
    let mut conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    let mut sock = &tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock).map_err(io)?;
    }
    Ok(Some(StreamOwned::new(conn, tcp)))
}
