//! `--help` in Thanos' spellings, written from the same flag table argh uses.

use super::normalize::{Flag, Table};

pub fn render(table: &Table, command: Option<&str>) -> String {
    let mut out = String::new();
    match command.and_then(|c| table.commands.iter().find(|(name, _, _)| name == c)) {
        Some((name, description, flags)) => {
            out.push_str(&format!(
                "usage: thanos-sidecar {name} [<flags>]\n\n{description}\n\nFlags:\n"
            ));
            out.push_str(HELP_LINE);
            section(&mut out, &table.global);
            section(&mut out, flags);
        }
        None => {
            out.push_str(
                "usage: thanos-sidecar [<flags>] <command> [<args> ...]\n\n\
                 A small, thread-based drop-in replacement for `thanos sidecar`.\n\nFlags:\n",
            );
            out.push_str(HELP_LINE);
            section(&mut out, &table.global);
            out.push_str("\nCommands:\n");
            for (name, description, _) in &table.commands {
                out.push_str(&format!("  {name}\n    {description}\n"));
            }
        }
    }
    out
}

const HELP_LINE: &str = "  -h, --[no-]help\n        Show context-sensitive help.\n";

fn section(out: &mut String, flags: &[Flag]) {
    for f in flags.iter().filter(|f| !f.hidden) {
        let spelling = if f.switch {
            format!("--[no-]{}", f.thanos)
        } else {
            format!("--{}={}", f.thanos, f.arg_name)
        };
        out.push_str(&format!(
            "      {spelling}\n        {}\n",
            capitalize(&f.description)
        ));
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_thanos_spellings_and_hides_hidden_flags() {
        let help = render(&Table::new(), Some("sidecar"));
        assert!(help.contains("--prometheus.url=URL"), "{help}");
        assert!(help.contains("--prometheus.get_config_interval=DURATION"));
        assert!(help.contains("--[no-]shipper.upload-compacted"));
        assert!(help.contains("--log.level=LEVEL"));
        assert!(help.contains("--reloader.rule-dir=DIR"));
        assert!(!help.contains("shipper.skip-corrupted-blocks"));
        assert!(!help.contains("debug.name"));
        assert!(!help.contains("prometheus--url"));
        assert!(!help.contains("---"));
    }
}
