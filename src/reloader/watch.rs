//! The reloader's file watch: inotify (through `notify`) on the config
//! file's directory and the rule dirs, filtered to what can be news.

use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};

use super::inputs::Inputs;
use super::metrics::Metrics;

/// Starts the file watch. Events are counted and filtered on notify's thread;
/// a relevant one leaves a wake-up in `changed`.
pub(super) fn watch(
    inputs: &Inputs,
    metrics: &Metrics,
    changed: Sender<()>,
) -> Result<notify::RecommendedWatcher, String> {
    let ignored: Vec<PathBuf> = match &inputs.output {
        Some(out) => {
            let mut tmp = out.as_os_str().to_owned();
            tmp.push(".tmp");
            vec![out.clone(), PathBuf::from(tmp)]
        }
        None => Vec::new(),
    };
    let (events, errors) = (metrics.watch_events.clone(), metrics.watch_errors.clone());
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // Opens and reads are not counted: Thanos' fsnotify never sees them.
            Ok(event) if is_read(&event) => {}
            Ok(event) => {
                events.inc();
                if is_relevant(&event, &ignored) {
                    // Full means a wake-up is already pending.
                    let _ = changed.try_send(());
                }
            }
            Err(e) => {
                errors.inc();
                log::error!(err:% = e; "watch error");
            }
        })
        .map_err(|e| format!("create file watcher: {e}"))?;

    // The config file's directory, not the file: see the module doc.
    let mut dirs: Vec<(PathBuf, RecursiveMode, &str)> = Vec::new();
    if let Some(file) = &inputs.config_file {
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| "/".into());
        dirs.push((dir, RecursiveMode::NonRecursive, "--reloader.config-file"));
    }
    for dir in &inputs.rule_dirs {
        match dirs.iter_mut().find(|(d, _, _)| d == dir) {
            Some(existing) => existing.1 = RecursiveMode::Recursive,
            None => dirs.push((dir.clone(), RecursiveMode::Recursive, "--reloader.rule-dir")),
        }
    }
    for (dir, mode, flag) in &dirs {
        watcher
            .watch(dir, *mode)
            .map_err(|e| format!("{flag}: watch {}: {e}", dir.display()))?;
    }
    // Thanos counts the file, its directory and each rule dir, de-duplicated.
    let mut counted: Vec<&Path> = dirs.iter().map(|(d, _, _)| d.as_path()).collect();
    counted.extend(inputs.config_file.as_deref());
    counted.sort();
    counted.dedup();
    metrics.watches.set(counted.len() as i64);
    Ok(watcher)
}

/// Opening or reading a file changes nothing (and our own hashing opens
/// them all, so heeding them would loop).
fn is_read(event: &notify::Event) -> bool {
    matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
}

/// Reads are not news, and neither are writes of our own output.
fn is_relevant(event: &notify::Event, ignored: &[PathBuf]) -> bool {
    !is_read(event) && (event.paths.is_empty() || event.paths.iter().any(|p| !ignored.contains(p)))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn access_events_and_our_own_output_are_not_news() {
        use notify::event::{CreateKind, ModifyKind};
        let out = PathBuf::from("/etc/prom/prometheus.yml");
        let ignored = vec![out.clone(), PathBuf::from("/etc/prom/prometheus.yml.tmp")];
        let ev = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(!is_relevant(&ev(open, "/etc/prom/tmpl"), &ignored));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(is_relevant(&ev(closed, "/etc/prom/tmpl"), &ignored));
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(is_relevant(&ev(modify, "/etc/prom/tmpl"), &ignored));
        assert!(!is_relevant(
            &ev(modify, "/etc/prom/prometheus.yml.tmp"),
            &ignored
        ));
        let create = EventKind::Create(CreateKind::File);
        assert!(!is_relevant(
            &ev(create, "/etc/prom/prometheus.yml"),
            &ignored
        ));
    }
}
