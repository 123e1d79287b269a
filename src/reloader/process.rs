//! Finding Prometheus' process for `--reloader.method=signal`, by name in
//! `/proc`, as Thanos does.

use std::fs;
use std::path::Path;

/// Linux truncates a process' `comm` to 15 bytes.
const COMM_MAX: usize = 15;

/// The lowest PID whose executable name is `name` (Thanos takes the first
/// process listed). Linux keeps only 15 bytes of the name in `comm`; a
/// longer name matches when `comm` is its prefix and argv[0]'s file name is
/// the whole name (Thanos never matches such names).
pub(super) fn find_process(proc_root: &Path, name: &str) -> Result<i32, String> {
    let own = std::process::id() as i32;
    let entries = fs::read_dir(proc_root).map_err(|e| format!("list processes: {e}"))?;
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid != own)
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        // Processes come and go while we look: unreadable ones are skipped.
        let Ok(comm) = fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let comm = comm.strip_suffix('\n').unwrap_or(&comm);
        if comm == name {
            return Ok(pid);
        }
        if name.len() > COMM_MAX
            && name.as_bytes().starts_with(comm.as_bytes())
            && comm.len() == COMM_MAX
        {
            let argv0 = fs::read(dir.join("cmdline")).unwrap_or_default();
            let argv0 = argv0.split(|b| *b == 0).next().unwrap_or_default();
            let base = argv0.rsplit(|b| *b == b'/').next().unwrap_or_default();
            if base == name.as_bytes() {
                return Ok(pid);
            }
        }
    }
    Err(format!("failed to find process matching {name:?}"))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn process_is_found_by_comm_lowest_pid_first() {
        let proc = tempfile::tempdir().unwrap();
        let add = |pid: &str, comm: &str, argv0: &str| {
            let d = proc.path().join(pid);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(d.join("cmdline"), format!("{argv0}\0--flag\0")).unwrap();
        };
        add("120", "prometheus", "/usr/bin/prometheus");
        add("35", "prometheus", "/usr/bin/prometheus");
        add("7", "prometheus-nod", "/bin/prometheus-node");
        add("40", "averyveryverylo", "/opt/averyveryverylongname");
        fs::create_dir(proc.path().join("self")).unwrap();
        assert_eq!(find_process(proc.path(), "prometheus"), Ok(35));
        assert_eq!(find_process(proc.path(), "averyveryverylongname"), Ok(40));
        assert_eq!(
            find_process(proc.path(), "averyveryverylongother"),
            Err("failed to find process matching \"averyveryverylongother\"".into())
        );
        assert_eq!(
            find_process(proc.path(), "promet"),
            Err("failed to find process matching \"promet\"".into())
        );
    }
}
