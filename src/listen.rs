//! Listen addresses as Thanos reads them.
//!
//! `--http-address` and `--grpc-address` reach Go's `net.Listen("tcp", …)`
//! in Thanos, and the values operators pass were written for it:
//! prometheus-operator generates `:10901` (every interface) or
//! `[$(POD_IP)]:10901` (a bracketed IPv4 address). This module is the one
//! place both servers learn what such a value means:
//!
//! - `host:port`, `[host]:port` (brackets around IPv6 *or* IPv4), `:port`;
//!   the port may be empty or 0 (any free port), a number, or a service name
//!   from `/etc/services`;
//! - an empty host, `0.0.0.0` and `[::]` all mean every interface, served by
//!   one dual-stack IPv6 socket (IPv4 clients arrive as mapped addresses), as
//!   Go listens for `tcp` on a host with IPv6; plain IPv4 where it has none;
//! - a host name is resolved once, at start-up, and its first IPv4 address
//!   is used (else its first address), as Go's `Listen` picks one;
//! - an IPv6 zone (`[fe80::1%eth0]:10901`) names the interface.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, ToSocketAddrs};

/// A parsed `--http-address` or `--grpc-address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// As the operator wrote it, for logs and errors.
    given: String,
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    /// Empty, `0.0.0.0` or `::`: every interface.
    Any,
    Ip(IpAddr, /* IPv6 scope (zone) */ u32),
}

/// Go's built-in services, for hosts without `/etc/services` (containers
/// `FROM scratch`, as ours is).
const BUILT_IN_SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ftps", 990),
    ("gopher", 70),
    ("http", 80),
    ("https", 443),
    ("imap2", 143),
    ("imap3", 220),
    ("imaps", 993),
    ("pop3", 110),
    ("pop3s", 995),
    ("smtp", 25),
    ("submissions", 465),
    ("ssh", 22),
    ("telnet", 23),
];

impl ListenAddress {
    /// Reads `value`; the error says what is wrong with it (the caller names
    /// the flag). Host names are resolved here, so a name that does not
    /// resolve stops the sidecar at start-up rather than at listen time.
    pub fn parse(value: &str) -> Result<ListenAddress, String> {
        let (host, port) = split_host_port(value)?;
        let port = parse_port(port).map_err(|e| format!("address {value}: {e}"))?;
        let host = parse_host(host, port).map_err(|e| format!("address {value}: {e}"))?;
        Ok(ListenAddress {
            given: value.to_string(),
            host,
            port,
        })
    }

    /// The port asked for (0: any free one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What to hand gRPC's C core, which binds a wildcard `[::]` dual-stack
    /// (IPv4 alone where the host has no IPv6), as Go does.
    pub fn grpc_target(&self) -> String {
        match self.host {
            Host::Any => format!("[::]:{}", self.port),
            Host::Ip(ip, _) => SocketAddr::new(ip, self.port).to_string(),
        }
    }

    /// A listening socket, bound as Go's `net.Listen` binds it: address
    /// reuse on (a restarted sidecar does not wait out TIME_WAIT), and a
    /// wildcard served dual-stack.
    pub fn bind(&self) -> io::Result<TcpListener> {
        match self.host {
            Host::Any => match bind(
                SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), self.port),
                Some(false),
            ) {
                // A kernel without IPv6 (ipv6.disable=1): IPv4 is all there is.
                Err(e)
                    if e.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error()) =>
                {
                    bind(
                        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), self.port),
                        None,
                    )
                }
                other => other,
            },
            Host::Ip(IpAddr::V6(ip), scope) => bind(
                SocketAddrV6::new(ip, self.port, 0, scope).into(),
                Some(true),
            ),
            Host::Ip(ip, _) => bind(SocketAddr::new(ip, self.port), None),
        }
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

fn bind(addr: SocketAddr, v6_only: Option<bool>) -> io::Result<TcpListener> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let socket = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    if let Some(v6_only) = v6_only {
        sockopt::set_ipv6_v6only(&socket, v6_only)?;
    }
    sockopt::set_socket_reuseaddr(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    // The kernel caps the backlog at net.core.somaxconn, which Go passes.
    rustix::net::listen(&socket, i32::MAX)?;
    Ok(TcpListener::from(socket))
}

/// Go's `net.SplitHostPort`: the port follows the last colon; a host with
/// colons needs brackets; brackets may also hold an IPv4 address or a name.
fn split_host_port(value: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| format!("address {value}: {why}");
    let colon = value
        .rfind(':')
        .ok_or_else(|| err("missing port in address"))?;
    let (host, rest) = if let Some(inner) = value.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| err("missing ']' in address"))?
            + 1;
        if close + 1 != colon {
            return Err(err(if value[close + 1..].starts_with(':') {
                "too many colons in address"
            } else {
                "missing port in address"
            }));
        }
        (&value[1..close], &value[close + 1..])
    } else {
        let host = &value[..colon];
        if host.contains(':') {
            return Err(err("too many colons in address"));
        }
        (host, &value[colon..])
    };
    if host.contains('[') || value[1..].contains('[') {
        return Err(err("unexpected '[' in address"));
    }
    if host.contains(']') || rest.contains(']') {
        return Err(err("unexpected ']' in address"));
    }
    Ok((host, &value[colon + 1..]))
}

/// A port number, empty (0), or a service name, as Go's `LookupPort`.
fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Ok(0);
    }
    let digits = port.strip_prefix('+').unwrap_or(port);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits
            .parse::<u16>()
            .map_err(|_| format!("invalid port {port:?}"));
    }
    if let Some(digits) = port.strip_prefix('-') {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port {port:?}"));
        }
    }
    service_port(port).ok_or_else(|| format!("unknown port {port:?}"))
}

/// A TCP service name from `/etc/services` (names and aliases), else Go's
/// built-in list; matched without regard to case, as Go does.
fn service_port(name: &str) -> Option<u16> {
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    services
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('#').next()?.split_whitespace();
            let (first, number) = (fields.next()?, fields.next()?);
            let (port, proto) = number.split_once('/')?;
            if proto != "tcp" {
                return None;
            }
            let port = port.parse().ok()?;
            std::iter::once(first)
                .chain(fields)
                .any(|n| n.eq_ignore_ascii_case(name))
                .then_some(port)
        })
        .next()
        .or_else(|| {
            BUILT_IN_SERVICES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|&(_, port)| port)
        })
}

fn parse_host(host: &str, port: u16) -> Result<Host, String> {
    if host.is_empty() {
        return Ok(Host::Any);
    }
    let (ip, zone) = match host.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (host, None),
    };
    if let Ok(ip) = ip.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Ok(Host::Any);
        }
        let scope = match (ip, zone) {
            (_, None) => 0,
            (IpAddr::V6(_), Some(zone)) => zone_index(zone)?,
            (IpAddr::V4(_), Some(_)) => return Err(format!("no such host {host:?}")),
        };
        return Ok(Host::Ip(ip, scope));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?
        .collect();
    let chosen = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .ok_or_else(|| format!("no address for host {host:?}"))?;
    Ok(match chosen {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => Host::Any,
        SocketAddr::V6(v6) => Host::Ip(IpAddr::V6(*v6.ip()), v6.scope_id()),
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => Host::Any,
        SocketAddr::V4(v4) => Host::Ip(IpAddr::V4(*v4.ip()), 0),
    })
}

/// An IPv6 zone: an interface name or its index.
fn zone_index(zone: &str) -> Result<u32, String> {
    if let Ok(index) = zone.parse() {
        return Ok(index);
    }
    let path = format!("/sys/class/net/{zone}/ifindex");
    std::fs::read_to_string(&path)
        .ok()
        .filter(|_| !zone.contains('/'))
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no network interface {zone:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: &str) -> (Host, u16) {
        let a = ListenAddress::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
        (a.host, a.port)
    }

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap(), 0)
    }

    #[test]
    fn every_form_go_listens_on() {
        assert_eq!(parsed(":10901"), (Host::Any, 10901));
        assert_eq!(parsed("0.0.0.0:10902"), (Host::Any, 10902));
        assert_eq!(parsed("[::]:10902"), (Host::Any, 10902));
        assert_eq!(parsed("[0.0.0.0]:1"), (Host::Any, 1));
        assert_eq!(parsed("[10.1.2.3]:10901"), (ip("10.1.2.3"), 10901));
        assert_eq!(parsed("10.1.2.3:10901"), (ip("10.1.2.3"), 10901));
        assert_eq!(parsed("[::1]:9"), (ip("::1"), 9));
        assert_eq!(
            parsed("[fe80::1%1]:9"),
            (Host::Ip("fe80::1".parse().unwrap(), 1), 9)
        );
        assert_eq!(parsed("127.0.0.1:0"), (ip("127.0.0.1"), 0));
        assert_eq!(parsed("127.0.0.1:"), (ip("127.0.0.1"), 0));
        assert_eq!(parsed(":+80"), (Host::Any, 80));
        assert_eq!(parsed(":http"), (Host::Any, 80));
        assert_eq!(parsed(":HTTPS"), (Host::Any, 443));
        assert_eq!(parsed("localhost:10901").1, 10901);
        // `localhost` resolves to IPv4 first where it has both, as in Go.
        assert!(matches!(parsed("localhost:1").0, Host::Ip(ip, _) if ip.is_loopback()));
    }

    #[test]
    fn what_go_refuses_is_refused_with_its_reason() {
        for (value, why) in [
            ("10901", "missing port in address"),
            ("[::1]", "missing port in address"),
            ("[::1]x:1", "missing port in address"),
            ("::1:80", "too many colons in address"),
            ("[::1]:80:90", "too many colons in address"),
            ("[::1:80", "missing ']' in address"),
            ("a[b:80", "unexpected '[' in address"),
            ("ab]:80", "unexpected ']' in address"),
            (":65536", "invalid port \"65536\""),
            (":-1", "invalid port \"-1\""),
            (":no-such-service", "unknown port \"no-such-service\""),
            (
                "[fe80::1%no-such-if0]:1",
                "no network interface \"no-such-if0\"",
            ),
            (
                "no-such-host.invalid:1",
                "cannot resolve host \"no-such-host.invalid\"",
            ),
        ] {
            let err = ListenAddress::parse(value).expect_err(value);
            assert!(
                err.starts_with(&format!("address {value}: {why}")),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn grpc_is_given_a_literal_address() {
        let target = |v: &str| ListenAddress::parse(v).unwrap().grpc_target();
        assert_eq!(target(":10901"), "[::]:10901");
        assert_eq!(target("0.0.0.0:10901"), "[::]:10901");
        assert_eq!(target("[10.1.2.3]:10901"), "10.1.2.3:10901");
        assert_eq!(target("[::1]:10901"), "[::1]:10901");
        assert_eq!(target("localhost:0"), "127.0.0.1:0");
    }

    #[test]
    fn a_wildcard_serves_ipv4_and_ipv6_clients() {
        let listener = ListenAddress::parse(":0").unwrap().bind().unwrap();
        let port = listener.local_addr().unwrap().port();
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("IPv4 client");
        if has_ipv6_loopback() {
            std::net::TcpStream::connect(("::1", port)).expect("IPv6 client");
        }
    }

    #[test]
    fn a_bracketed_ipv4_address_binds_that_address_only() {
        let listener = ListenAddress::parse("[127.0.0.1]:0")
            .unwrap()
            .bind()
            .unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(local.ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
    }

    fn has_ipv6_loopback() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }
}
