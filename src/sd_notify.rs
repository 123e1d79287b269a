//! systemd's readiness protocol (`sd_notify`), spoken directly over `$NOTIFY_SOCKET`.
//!
//! With `Type=notify`, systemd considers the service started when it receives
//! `READY=1`, shows `STATUS=` lines in `systemctl status`, restarts it when
//! `WATCHDOG=1` stops arriving within `WatchdogSec`, and knows a stop is under
//! way on `STOPPING=1`. The protocol is one datagram per message on a Unix
//! socket, so libsystemd is not needed. Outside systemd (no `$NOTIFY_SOCKET`)
//! every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    socket: Option<(UnixDatagram, Address)>,
    watchdog: Option<Duration>,
}

enum Address {
    Path(std::path::PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (honouring `$WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            use std::os::unix::ffi::OsStringExt;
            let path = path.into_vec();
            let address = match path.strip_prefix(b"@") {
                #[cfg(target_os = "linux")]
                Some(name) => Address::Abstract(name.to_vec()),
                #[cfg(not(target_os = "linux"))]
                Some(_) => return None,
                None => Address::Path(std::path::PathBuf::from(std::ffi::OsString::from_vec(path))),
            };
            match UnixDatagram::unbound() {
                Ok(socket) => Some((socket, address)),
                Err(e) => {
                    log::warn!(err:% = e; "cannot create the sd_notify socket; systemd will not hear from us");
                    None
                }
            }
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// How often to send `WATCHDOG=1`: half the period systemd allows, as
    /// systemd recommends, so one late ping does not get us killed.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        self.watchdog.map(|period| period / 2)
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, message: &str) {
        let Some((socket, address)) = &self.socket else {
            return;
        };
        let sent = match address {
            Address::Path(path) => socket.send_to(message.as_bytes(), path),
            #[cfg(target_os = "linux")]
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
            }
        };
        if let Err(e) = sent {
            log::debug!(err:% = e, message = message; "sd_notify failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_to_the_socket_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), Address::Path(path))),
            watchdog: Some(Duration::from_secs(10)),
        };
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(5)));
        notifier.ready("serving");
        notifier.watchdog();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn silent_without_systemd() {
        let notifier = Notifier {
            socket: None,
            watchdog: Some(Duration::from_secs(10)),
        };
        assert_eq!(notifier.watchdog_interval(), None);
        notifier.ready("serving");
    }
}
