//! The process metrics client_golang exposes on Linux beyond what the
//! `prometheus` crate's process collector has, with client_golang's
//! meaning: network bytes are the `IpExt` octet counters of
//! `/proc/self/net/netstat` (so, like Go's, they count the whole network
//! namespace, which in a pod is the pod), and the address-space limit is
//! the soft `Max address space` of `/proc/self/limits` (2^64 when
//! unlimited, as Go reports it).

use prom::core::{Collector, Desc};
use prom::proto::MetricFamily;
use prom::{Counter, Gauge, Opts, Registry};

pub fn register(registry: &Registry) -> Result<(), prom::Error> {
    registry.register(Box::new(
        prom::process_collector::ProcessCollector::for_self(),
    ))?;
    registry.register(Box::new(Extras::new()?))
}

struct Extras {
    receive: Counter,
    transmit: Counter,
    max_vm: Gauge,
    descs: Vec<Desc>,
}

impl Extras {
    fn new() -> Result<Extras, prom::Error> {
        let receive = Counter::with_opts(Opts::new(
            "process_network_receive_bytes_total",
            "Number of bytes received by the process over the network.",
        ))?;
        let transmit = Counter::with_opts(Opts::new(
            "process_network_transmit_bytes_total",
            "Number of bytes sent by the process over the network.",
        ))?;
        let max_vm = Gauge::with_opts(Opts::new(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
        ))?;
        let descs = [receive.desc(), transmit.desc(), max_vm.desc()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Ok(Extras {
            receive,
            transmit,
            max_vm,
            descs,
        })
    }
}

impl Collector for Extras {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        let netstat = std::fs::read_to_string("/proc/self/net/netstat").unwrap_or_default();
        if let Some((received, sent)) = ip_octets(&netstat) {
            // Scrapes are serial (one HTTP thread), so set-by-reset is safe.
            self.receive.reset();
            self.receive.inc_by(received);
            self.transmit.reset();
            self.transmit.inc_by(sent);
            families.extend(self.receive.collect());
            families.extend(self.transmit.collect());
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        if let Some(max) = address_space_limit(&limits) {
            self.max_vm.set(max);
            families.extend(self.max_vm.collect());
        }
        families
    }
}

/// `InOctets` and `OutOctets` of the `IpExt` lines (a header, then values).
fn ip_octets(netstat: &str) -> Option<(f64, f64)> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("IpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let field = |wanted: &str| -> Option<f64> {
        let at = names.split_whitespace().position(|n| n == wanted)?;
        values.split_whitespace().nth(at)?.parse().ok()
    };
    Some((field("InOctets")?, field("OutOctets")?))
}

/// The soft limit of `Max address space`, in bytes.
fn address_space_limit(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX as f64),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_procfs_as_client_golang_does() {
        let netstat =
            "TcpExt: A B\nTcpExt: 1 2\nIpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 140 135\n";
        assert_eq!(ip_octets(netstat), Some((140.0, 135.0)));
        assert_eq!(ip_octets("TcpExt: A\nTcpExt: 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(1.8446744073709552e19));
        let limits = "Max address space         4294967296           unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(4294967296.0));
    }

    #[test]
    fn families_appear_with_their_names() {
        let registry = Registry::new();
        register(&registry).unwrap();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for name in [
            "process_network_receive_bytes_total",
            "process_network_transmit_bytes_total",
            "process_virtual_memory_max_bytes",
            "process_resident_memory_bytes",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
        }
    }
}
