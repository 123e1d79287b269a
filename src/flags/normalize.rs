//! The one place where Thanos' command-line spellings become argh's.
//!
//! kingpin (Thanos) accepts `--a.b=c`, `--a.b c`, `--no-a.b`, global flags
//! after the command and `@file` argument lists; argh accepts none of these.
//! This module rewrites argv into argh's form, using the flag table derived
//! from the argh structs themselves, so a flag is never described twice.

use argh::{ArgsInfo, CommandInfoWithArgs, FlagInfoKind};

use super::args::TopArgs;

/// What the user asked for, once argv is understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Normalized {
    /// Arguments ready for argh, in the order it wants them.
    Args(Vec<String>),
    /// `-h` / `--help`, for this command (`None` = the application).
    Help(Option<String>),
}

/// One flag as users spell it and as argh knows it.
#[derive(Debug, Clone)]
pub struct Flag {
    pub thanos: String,
    pub argh: String,
    pub switch: bool,
    pub hidden: bool,
    pub arg_name: String,
    pub description: String,
}

/// argh's long name (without the leading dashes) written back in Thanos' spelling:
/// runs of one, two and three dashes stand for `-`, `.` and `_`.
pub fn thanos_spelling(argh_long: &str) -> String {
    let mut out = String::with_capacity(argh_long.len());
    let mut dashes = 0;
    for c in argh_long.chars().chain(std::iter::once('\0')) {
        if c == '-' {
            dashes += 1;
            continue;
        }
        match dashes {
            0 => {}
            1 => out.push('-'),
            2 => out.push('.'),
            _ => out.push('_'),
        }
        dashes = 0;
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// The flags of one command (global flags when `command` is `None`), help excluded.
pub fn flags(info: &CommandInfoWithArgs) -> Vec<Flag> {
    info.flags
        .iter()
        .filter(|f| f.long != "--help")
        .map(|f| {
            let argh = f.long.trim_start_matches("--").to_string();
            let (switch, arg_name) = match f.kind {
                FlagInfoKind::Switch => (true, String::new()),
                FlagInfoKind::Option { arg_name } => (false, arg_name.to_string()),
            };
            Flag {
                thanos: thanos_spelling(&argh),
                argh,
                switch,
                hidden: f.hidden,
                arg_name,
                description: f.description.to_string(),
            }
        })
        .collect()
}

/// Global flags, and each command with its own flags.
pub struct Table {
    pub global: Vec<Flag>,
    pub commands: Vec<(String, String, Vec<Flag>)>,
}

impl Table {
    pub fn new() -> Table {
        let info = TopArgs::get_args_info();
        Table {
            global: flags(&info),
            commands: info
                .commands
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.command.description.to_string(),
                        flags(&c.command),
                    )
                })
                .collect(),
        }
    }

    fn command_flags(&self, command: &str) -> &[Flag] {
        self.commands
            .iter()
            .find(|(name, _, _)| name == command)
            .map(|(_, _, flags)| flags.as_slice())
            .unwrap_or(&[])
    }

    /// Rewrites argh's names in its messages back into Thanos' spellings.
    pub fn to_thanos_spelling(&self, message: &str) -> String {
        let mut all: Vec<&Flag> = self.global.iter().collect();
        for (_, _, flags) in &self.commands {
            all.extend(flags);
        }
        // Longest first, so `--objstore--config` does not eat `--objstore--config-file`.
        all.sort_by_key(|f| std::cmp::Reverse(f.argh.len()));
        let mut out = message.to_string();
        for f in all {
            out = out.replace(&format!("--{}", f.argh), &format!("--{}", f.thanos));
        }
        out
    }
}

/// Rewrites `args` (argv without the program name) for argh.
pub fn normalize(table: &Table, args: &[String]) -> Result<Normalized, String> {
    let args = expand_at_files(args)?;
    let mut command: Option<String> = None;
    let mut global_out: Vec<String> = Vec::new();
    let mut command_out: Vec<String> = Vec::new();
    // Switches keep their last spelling (`--x --no-x` is false), as in kingpin.
    let mut switches: Vec<(bool, String, bool)> = Vec::new();

    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(extra) = args.get(i) {
                return Err(format!("unexpected {extra}"));
            }
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Normalized::Help(command));
        }
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(format!("unknown short flag '{arg}'"));
            }
            if command.is_none() && table.commands.iter().any(|(name, _, _)| name == arg) {
                command = Some(arg.clone());
                continue;
            }
            return Err(format!("unexpected {arg}"));
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let lookup = |name: &str| -> Option<(bool, &Flag)> {
            let in_command = command
                .as_deref()
                .map(|c| table.command_flags(c))
                .unwrap_or(&[]);
            if let Some(f) = in_command.iter().find(|f| f.thanos == name) {
                return Some((false, f));
            }
            table
                .global
                .iter()
                .find(|f| f.thanos == name)
                .map(|f| (true, f))
        };
        let (global, flag, negated) = match lookup(name) {
            Some((global, flag)) => (global, flag, false),
            None => match name.strip_prefix("no-").and_then(lookup) {
                Some((global, flag)) if flag.switch => (global, flag, true),
                _ => return Err(format!("unknown long flag '--{name}'")),
            },
        };
        if flag.switch {
            if let Some(value) = inline_value {
                return Err(format!(
                    "unexpected {value}: '--{0}' is a boolean flag and takes no value; \
                     use --{0} or --no-{0}",
                    flag.thanos
                ));
            }
            switches.retain(|(_, argh, _)| argh != &flag.argh);
            switches.push((global, flag.argh.clone(), !negated));
            continue;
        }
        let value = match inline_value {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) if !v.starts_with('-') || v == "-" => {
                    i += 1;
                    v.clone()
                }
                _ => {
                    return Err(format!(
                        "expected argument for flag '--{}' (for a value that starts with '-', write --{}=VALUE)",
                        flag.thanos, flag.thanos
                    ))
                }
            },
        };
        let out = if global {
            &mut global_out
        } else {
            &mut command_out
        };
        out.push(format!("--{}", flag.argh));
        out.push(value);
    }
    for (global, argh, on) in switches {
        if on {
            let out = if global {
                &mut global_out
            } else {
                &mut command_out
            };
            out.push(format!("--{argh}"));
        }
    }
    if let Some(c) = command {
        global_out.push(c);
        global_out.extend(command_out);
    }
    Ok(Normalized::Args(global_out))
}

/// kingpin's `@path`: the file's lines become arguments (blank lines and `#` comments skipped).
fn expand_at_files(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        match arg.strip_prefix('@') {
            Some(path) if !path.is_empty() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read argument file {path}: {e}"))?;
                out.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from),
                );
            }
            _ => out.push(arg.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Result<Normalized, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        normalize(&Table::new(), &args)
    }

    fn argv(args: &[&str]) -> Normalized {
        Normalized::Args(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn spelling_round_trip() {
        assert_eq!(thanos_spelling("prometheus--url"), "prometheus.url");
        assert_eq!(
            thanos_spelling("prometheus--get---config---interval"),
            "prometheus.get_config_interval"
        );
        assert_eq!(thanos_spelling("http-grace-period"), "http-grace-period");
        assert_eq!(
            thanos_spelling("store--limits--request-series"),
            "store.limits.request-series"
        );
    }

    #[test]
    fn spellings_are_unique() {
        let table = Table::new();
        let mut names: Vec<&str> = table.global.iter().map(|f| f.thanos.as_str()).collect();
        for (_, _, flags) in &table.commands {
            names.extend(flags.iter().map(|f| f.thanos.as_str()));
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(names.contains(&"prometheus.ready_timeout"));
        assert!(names.contains(&"reloader.rule-dir"));
    }

    #[test]
    fn both_value_forms() {
        assert_eq!(
            norm(&[
                "sidecar",
                "--prometheus.url=http://p:9090",
                "--tsdb.path",
                "/d"
            ]),
            Ok(argv(&[
                "sidecar",
                "--prometheus--url",
                "http://p:9090",
                "--tsdb--path",
                "/d"
            ]))
        );
        // The `=` form passes the value verbatim, even when it starts with '-'.
        assert_eq!(
            norm(&["sidecar", "--min-time=-1h"]),
            Ok(argv(&["sidecar", "--min-time", "-1h"]))
        );
        assert!(norm(&["sidecar", "--min-time", "-1h"])
            .unwrap_err()
            .contains("expected argument for flag '--min-time'"));
        assert!(norm(&["sidecar", "--tsdb.path"]).is_err());
    }

    #[test]
    fn global_flags_go_before_the_command() {
        assert_eq!(
            norm(&["sidecar", "--log.level=debug", "--grpc-address=:1"]),
            Ok(argv(&[
                "--log--level",
                "debug",
                "sidecar",
                "--grpc-address",
                ":1"
            ]))
        );
        assert_eq!(
            norm(&["--log.format", "json", "sidecar"]),
            Ok(argv(&["--log--format", "json", "sidecar"]))
        );
    }

    #[test]
    fn switches_and_negation() {
        assert_eq!(
            norm(&["sidecar", "--shipper.upload-compacted"]),
            Ok(argv(&["sidecar", "--shipper--upload-compacted"]))
        );
        assert_eq!(
            norm(&[
                "sidecar",
                "--shipper.upload-compacted",
                "--no-shipper.upload-compacted"
            ]),
            Ok(argv(&["sidecar"]))
        );
        assert_eq!(
            norm(&[
                "sidecar",
                "--no-shipper.upload-compacted",
                "--shipper.upload-compacted"
            ]),
            Ok(argv(&["sidecar", "--shipper--upload-compacted"]))
        );
        let err = norm(&["sidecar", "--shipper.upload-compacted=true"]).unwrap_err();
        assert!(
            err.contains("'--shipper.upload-compacted' is a boolean flag"),
            "{err}"
        );
        let err = norm(&["sidecar", "--no-prometheus.url"]).unwrap_err();
        assert_eq!(err, "unknown long flag '--no-prometheus.url'");
    }

    #[test]
    fn repeated_flags_accumulate() {
        assert_eq!(
            norm(&[
                "sidecar",
                "--reloader.rule-dir=/a",
                "--reloader.rule-dir",
                "/b"
            ]),
            Ok(argv(&[
                "sidecar",
                "--reloader--rule-dir",
                "/a",
                "--reloader--rule-dir",
                "/b"
            ]))
        );
    }

    #[test]
    fn unknown_and_stray_arguments() {
        assert_eq!(
            norm(&["sidecar", "--prometheus-url=x"]),
            Err("unknown long flag '--prometheus-url'".to_string())
        );
        // argh's internal spelling is not a Thanos spelling.
        assert!(norm(&["sidecar", "--prometheus--url=x"]).is_err());
        // Sidecar flags are not valid before the command.
        assert!(norm(&["--tsdb.path=/d", "sidecar"]).is_err());
        assert_eq!(
            norm(&["sidecar", "extra"]),
            Err("unexpected extra".to_string())
        );
        assert_eq!(
            norm(&["sidecar", "--", "x"]),
            Err("unexpected x".to_string())
        );
        assert!(norm(&["sidecar", "-x"]).is_err());
    }

    #[test]
    fn help_for_the_right_command() {
        assert_eq!(norm(&["-h"]), Ok(Normalized::Help(None)));
        assert_eq!(
            norm(&["sidecar", "--tsdb.path=/x", "--help"]),
            Ok(Normalized::Help(Some("sidecar".to_string())))
        );
    }

    #[test]
    fn at_file_arguments() {
        let dir = std::env::temp_dir().join(format!("thanos-sidecar-at-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("args");
        std::fs::write(&file, "# flags\nsidecar\n\n--tsdb.path=/d\n").unwrap();
        assert_eq!(
            norm(&[&format!("@{}", file.display())]),
            Ok(argv(&["sidecar", "--tsdb--path", "/d"]))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_use_thanos_spellings() {
        let table = Table::new();
        assert_eq!(
            table.to_thanos_spelling(
                "Error parsing option '--objstore--config-file' and --objstore--config"
            ),
            "Error parsing option '--objstore.config-file' and --objstore.config"
        );
    }
}
