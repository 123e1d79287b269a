//! Value syntaxes of Thanos' flags and configs, parsed exactly as kingpin and
//! Prometheus do. A leaf: the flags, the YAML configs and the daemon's modules
//! all read durations and times through it.
//!
//! Thanos has two duration syntaxes: kingpin's (Go's `time.ParseDuration` plus
//! `d` and `w`, fractions allowed) and Prometheus' `model.Duration` (whole
//! numbers in the fixed unit order `y w d h m s ms`). Operators copy flag values
//! from working `thanos sidecar` command lines, so each flag keeps its family.

use std::time::Duration;

/// Now, in Unix milliseconds: the `now` that relative times count from.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const MS_PER: [(&str, f64); 9] = [
    ("ns", 1e-6),
    ("us", 1e-3),
    ("µs", 1e-3),
    ("ms", 1.0),
    ("s", 1e3),
    ("m", 60e3),
    ("h", 3600e3),
    ("d", 86400e3),
    ("w", 7.0 * 86400e3),
];

/// Parses kingpin's duration syntax (`300ms`, `1.5h`, `1d2h`, `0`).
pub fn go_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?} (expected e.g. 30s, 1.5h, 1d2h)");
    if s.starts_with('-') {
        return Err(format!("negative duration {s:?} is not allowed"));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(err());
    }
    let mut total_ms = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(err());
        }
        let value: f64 = num.parse().map_err(|_| err())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let per = MS_PER
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, per)| *per)
            .ok_or_else(|| format!("unknown unit {unit:?} in duration {s:?}"))?;
        total_ms += value * per;
        rest = next;
    }
    Ok(Duration::from_nanos((total_ms * 1e6).round() as u64))
}

/// `model.Duration`'s units in the only order it allows, with their milliseconds.
const MODEL_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses Prometheus' `model.Duration` (`2h45m`, `1d`, `90s`, `0`).
pub fn model_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("not a valid duration string: {s:?} (expected e.g. 2h45m, 1d, 90s)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration string".to_string());
    }
    let mut total: u64 = 0;
    let mut next_unit = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: u64 = rest[..num_len].parse().map_err(|_| err())?;
        let after = &rest[num_len..];
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let unit = &after[..unit_len];
        let pos = MODEL_UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(err)?;
        let (_, per) = MODEL_UNITS[next_unit + pos];
        total = value
            .checked_mul(per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        next_unit += pos + 1;
        rest = &after[unit_len..];
    }
    Ok(Duration::from_millis(total))
}

/// Prints a duration as Prometheus' `model.Duration` does (`1d`, `2h`, `1h30m`, `0s`).
pub fn format_model_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, per) in MODEL_UNITS {
        if ms >= per {
            out.push_str(&format!("{}{unit}", ms / per));
            ms %= per;
        }
    }
    out
}

/// `--min-time`: an RFC 3339 instant, or a duration relative to "now" that is
/// evaluated afresh every time the bound is used, as Thanos does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOrDuration {
    /// Milliseconds since the Unix epoch.
    Time(i64),
    /// Milliseconds added to "now" (negative for `-1d`).
    Relative(i64),
}

impl TimeOrDuration {
    /// Thanos' default, `0000-01-01T00:00:00Z`.
    pub const DEFAULT: TimeOrDuration = TimeOrDuration::Time(-62_167_219_200_000);

    pub fn at(self, now_ms: i64) -> i64 {
        match self {
            TimeOrDuration::Time(ms) => ms,
            TimeOrDuration::Relative(offset) => now_ms.saturating_add(offset),
        }
    }
}

pub fn time_or_duration(s: &str) -> Result<TimeOrDuration, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(TimeOrDuration::Time(t.timestamp_millis()));
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let d = model_duration(body).map_err(|_| {
        format!(
            "{s:?} is neither an RFC 3339 time (2024-01-02T03:04:05Z) nor a duration (-1d, 2h45m)"
        )
    })?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("duration {s:?} is too large"))?;
    Ok(TimeOrDuration::Relative(if negative { -ms } else { ms }))
}

/// Go's `strconv.ParseUint(s, 0, 64)`: `0x`, `0o`, `0b` and a leading `0` (octal) select the base.
pub fn go_uint(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    let digits = if radix == 10 {
        digits.to_string()
    } else {
        digits.replace('_', "")
    };
    u64::from_str_radix(&digits, radix).map_err(|e| format!("invalid unsigned integer {s:?}: {e}"))
}

/// kingpin parses Thanos' int flags as floats and truncates (`2.9` → 2, `1e1` → 10).
pub fn go_int_via_float(s: &str) -> Result<i64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() < 9.2e18 => Ok(v.trunc() as i64),
        _ => Err(format!("invalid number {s:?}")),
    }
}

/// Builds the `from_str_fn` for an enum flag, with kingpin's message.
pub fn one_of<'a>(s: &str, allowed: &[&'a str]) -> Result<&'a str, String> {
    allowed
        .iter()
        .find(|a| **a == s)
        .copied()
        .ok_or_else(|| format!("enum value must be one of {}, got '{s}'", allowed.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(go_duration("1d2h"), Ok(Duration::from_secs(26 * 3600)));
        assert_eq!(go_duration("1w"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(go_duration("1h30m15s"), Ok(Duration::from_secs(5415)));
        assert_eq!(go_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "1x", "h", "-1s", "1.5.2h", "."] {
            assert!(go_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn model_durations() {
        assert_eq!(model_duration("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(model_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(model_duration("1y"), Ok(Duration::from_secs(365 * 86400)));
        assert_eq!(model_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(model_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(model_duration("0"), Ok(Duration::ZERO));
        // Fractions, Go-only units and out-of-order units are not model.Duration.
        for bad in ["", "1.5h", "10us", "30m1h", "5", "1h1h", "-1h"] {
            assert!(model_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn model_durations_print_like_prometheus() {
        for s in ["2h", "1d", "1w", "1h30m", "1y", "90ms", "1d2h3m4s5ms"] {
            assert_eq!(format_model_duration(model_duration(s).unwrap()), s);
        }
        assert_eq!(format_model_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn min_time() {
        assert_eq!(
            time_or_duration("0000-01-01T00:00:00Z"),
            Ok(TimeOrDuration::DEFAULT)
        );
        assert_eq!(
            time_or_duration("2030-01-01T00:00:00Z"),
            Ok(TimeOrDuration::Time(1_893_456_000_000))
        );
        assert_eq!(
            time_or_duration("2030-01-01T02:00:00+02:00"),
            Ok(TimeOrDuration::Time(1_893_456_000_000))
        );
        assert_eq!(
            time_or_duration("-1d"),
            Ok(TimeOrDuration::Relative(-86_400_000))
        );
        assert_eq!(
            time_or_duration("2h45m"),
            Ok(TimeOrDuration::Relative(9_900_000))
        );
        assert_eq!(TimeOrDuration::Relative(-5).at(100), 95);
        assert!(time_or_duration("").is_err());
        assert!(time_or_duration("yesterday").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(go_uint("10"), Ok(10));
        assert_eq!(go_uint("0x10"), Ok(16));
        assert_eq!(go_uint("0o17"), Ok(15));
        assert_eq!(go_uint("017"), Ok(15));
        assert_eq!(go_uint("0b101"), Ok(5));
        assert_eq!(go_uint("0"), Ok(0));
        assert!(go_uint("-1").is_err());
        assert!(go_uint("ten").is_err());
        assert_eq!(go_int_via_float("2.9"), Ok(2));
        assert_eq!(go_int_via_float("1e1"), Ok(10));
        assert!(go_int_via_float("NaN").is_err());
    }

    #[test]
    fn enums_name_the_choices() {
        assert_eq!(one_of("info", &["error", "info"]), Ok("info"));
        assert_eq!(
            one_of("verbose", &["error", "info"]),
            Err("enum value must be one of error,info, got 'verbose'".to_string())
        );
    }
}
