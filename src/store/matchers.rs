//! Request matchers: validated, checked against external labels, and rendered
//! for Prometheus' remote read and its `match[]` parameter (contract §4.2, §2.2).

use grpcio::{RpcStatus, RpcStatusCode};
use regex::Regex;

use crate::prometheus::Labels;
use crate::proto::{prom_types, store_types};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Re,
    Nre,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Neq => "!=",
            Op::Re => "=~",
            Op::Nre => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub op: Op,
    pub name: String,
    pub value: String,
    /// Compiled for `=~`/`!~`, anchored at both ends with `.` matching
    /// newlines, as Prometheus compiles them.
    regex: Option<Regex>,
}

impl Matcher {
    pub fn new(op: Op, name: &str, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            Op::Re | Op::Nre => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| e.to_string())?)
            }
            Op::Eq | Op::Neq => None,
        };
        Ok(Matcher {
            op,
            name: name.to_string(),
            value: value.to_string(),
            regex,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match (&self.op, &self.regex) {
            (Op::Eq, _) => value == self.value,
            (Op::Neq, _) => value != self.value,
            (Op::Re, Some(re)) => re.is_match(value),
            (Op::Nre, Some(re)) => !re.is_match(value),
            (Op::Re | Op::Nre, None) => false,
        }
    }

    /// `name="value"` as PromQL spells it, Go-quoted like Thanos does.
    pub fn to_promql(&self) -> String {
        let name = if is_plain_name(&self.name) {
            self.name.clone()
        } else {
            go_quote(&self.name)
        };
        format!("{name}{}{}", self.op.symbol(), go_quote(&self.value))
    }

    pub fn to_remote_read(&self) -> prom_types::LabelMatcher {
        use prom_types::label_matcher::Type;
        let mut m = prom_types::LabelMatcher::new();
        m.type_ = match self.op {
            Op::Eq => Type::EQ,
            Op::Neq => Type::NEQ,
            Op::Re => Type::RE,
            Op::Nre => Type::NRE,
        }
        .into();
        m.name = self.name.clone();
        m.value = self.value.clone();
        m
    }
}

pub fn invalid_argument(message: impl Into<String>) -> RpcStatus {
    RpcStatus::with_message(RpcStatusCode::INVALID_ARGUMENT, message.into())
}

/// Converts request matchers; unknown types and bad regexes are InvalidArgument.
pub fn convert(matchers: &[store_types::LabelMatcher]) -> Result<Vec<Matcher>, RpcStatus> {
    matchers
        .iter()
        .map(|m| {
            let op = match m.type_.value() {
                0 => Op::Eq,
                1 => Op::Neq,
                2 => Op::Re,
                3 => Op::Nre,
                n => {
                    return Err(invalid_argument(format!(
                        "unrecognized label matcher type {n}"
                    )))
                }
            };
            Matcher::new(op, &m.name, &m.value).map_err(invalid_argument)
        })
        .collect()
}

/// Drops matchers on external labels that the external value satisfies.
/// `None` when one is not satisfied: this sidecar has nothing to answer.
pub fn strip_external(matchers: Vec<Matcher>, external: &Labels) -> Option<Vec<Matcher>> {
    let mut kept = Vec::with_capacity(matchers.len());
    for m in matchers {
        match external.get(&m.name) {
            Some(value) if m.matches(value) => {}
            Some(_) => return None,
            None => kept.push(m),
        }
    }
    Some(kept)
}

/// One `match[]` selector holding every matcher: `{a="1", b=~"x"}`.
pub fn selector(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers.iter().map(Matcher::to_promql).collect();
    format!("{{{}}}", parts.join(", "))
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    }
}

/// Go's `strconv.Quote` for the characters label values hold: quotes,
/// backslashes and control characters escaped, printable text kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(t: i32, name: &str, value: &str) -> store_types::LabelMatcher {
        let mut m = store_types::LabelMatcher::new();
        m.type_ = protobuf::EnumOrUnknown::from_i32(t);
        m.name = name.into();
        m.value = value.into();
        m
    }

    #[test]
    fn regexes_are_anchored_and_dot_matches_newline() {
        let m = Matcher::new(Op::Re, "a", "b.").unwrap();
        assert!(m.matches("bc"));
        assert!(m.matches("b\n"));
        assert!(!m.matches("abc"));
        assert!(!m.matches("bcd"));
        let m = Matcher::new(Op::Nre, "a", "b|c").unwrap();
        assert!(m.matches("bc"));
        assert!(!m.matches("c"));
    }

    #[test]
    fn bad_type_and_regex_are_invalid_argument() {
        let err = convert(&[pm(7, "a", "b")]).unwrap_err();
        assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT);
        assert!(err.message().contains("unrecognized label matcher type 7"));
        let err = convert(&[pm(2, "__name__", "(")]).unwrap_err();
        assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT);
        assert_eq!(convert(&[pm(3, "a", "b")]).unwrap()[0].op, Op::Nre);
    }

    #[test]
    fn external_matchers_are_dropped_or_end_the_call() {
        let ext: Labels = [
            ("cluster".into(), "test".into()),
            ("replica".into(), "0".into()),
        ]
        .into();
        let ms = vec![
            Matcher::new(Op::Eq, "cluster", "test").unwrap(),
            Matcher::new(Op::Eq, "job", "x").unwrap(),
            Matcher::new(Op::Neq, "replica", "9").unwrap(),
        ];
        let kept = strip_external(ms, &ext).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name, "job");
        let ms = vec![Matcher::new(Op::Re, "cluster", "oth.*").unwrap()];
        assert!(strip_external(ms, &ext).is_none());
    }

    #[test]
    fn selectors_quote_like_go() {
        let ms = vec![
            Matcher::new(Op::Eq, "__name__", "up").unwrap(),
            Matcher::new(Op::Nre, "a-b", "x\"y\\z\n\u{1}é").unwrap(),
        ];
        assert_eq!(selector(&ms), r#"{__name__="up", "a-b"!~"x\"y\\z\n\x01é"}"#);
    }
}
