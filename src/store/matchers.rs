//! Request matchers: validated, checked against external labels, and rendered
//! for Prometheus' remote read and its `match[]` parameter (Thanos'
//! `pkg/store/prometheus.go` and `pkg/promclient/promclient.go`).

use std::sync::OnceLock;

use grpcio::RpcStatus;
use regex::Regex;

use crate::grpc::status::invalid_argument;
use crate::prometheus::Labels;
use crate::proto::{prom_types, store_types};
use crate::store::goregex::{self, GoRegex};

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
    /// For `=~`/`!~`: the value checked and read as Go's regexp syntax,
    /// which Prometheus uses.
    regex: Option<LazyRegex>,
}

/// Compiled on first use: most matchers are only passed on to Prometheus,
/// and only those on external labels are evaluated here.
#[derive(Debug, Clone)]
struct LazyRegex {
    source: GoRegex,
    compiled: OnceLock<Result<Regex, String>>,
}

impl Matcher {
    /// Refuses a regex Go refuses, with Go's reason, before anything is
    /// asked of Prometheus.
    pub fn new(op: Op, name: &str, value: &str) -> Result<Matcher, String> {
        let mut m = Matcher {
            op,
            name: name.to_string(),
            value: value.to_string(),
            regex: None,
        };
        if let Op::Re | Op::Nre = op {
            let source =
                goregex::translate(value).map_err(|e| format!("{}: {e}", m.to_promql()))?;
            m.regex = Some(LazyRegex {
                source,
                compiled: OnceLock::new(),
            });
        }
        Ok(m)
    }

    /// Whether `value` satisfies the matcher, anchored at both ends with `.`
    /// matching newlines as in Prometheus. An error only for a regex Go
    /// accepts that is beyond the `regex` crate's limits (see `goregex`).
    pub fn matches(&self, value: &str) -> Result<bool, String> {
        let regex = match (&self.op, &self.regex) {
            (Op::Eq, _) => return Ok(value == self.value),
            (Op::Neq, _) => return Ok(value != self.value),
            (Op::Re | Op::Nre, Some(regex)) => regex,
            (Op::Re | Op::Nre, None) => return Ok(false),
        };
        match regex.compiled.get_or_init(|| regex.source.compile()) {
            Ok(re) => Ok(re.is_match(value) == (self.op == Op::Re)),
            Err(e) => Err(format!(
                "{}: cannot evaluate the regex here: {e}",
                self.to_promql()
            )),
        }
    }

    /// `name="value"` as PromQL spells it, Go-quoted like Thanos does.
    pub fn to_promql(&self) -> String {
        format!(
            "{}{}{}",
            promql_name(&self.name),
            self.op.symbol(),
            go_quote(&self.value)
        )
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
pub fn strip_external(
    matchers: Vec<Matcher>,
    external: &Labels,
) -> Result<Option<Vec<Matcher>>, RpcStatus> {
    let mut kept = Vec::with_capacity(matchers.len());
    for m in matchers {
        match external.get(&m.name) {
            Some(value) if m.matches(value).map_err(invalid_argument)? => {}
            Some(_) => return Ok(None),
            None => kept.push(m),
        }
    }
    Ok(Some(kept))
}

/// One `match[]` selector holding every matcher: `{a="1", b=~"x"}`.
pub fn selector(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers.iter().map(Matcher::to_promql).collect();
    format!("{{{}}}", parts.join(", "))
}

/// A label name as PromQL spells it: bare when it is a legacy name, else
/// Go-quoted (Prometheus 3 reads `{"a.b"="c"}`; 2.x has no such names).
pub fn promql_name(name: &str) -> std::borrow::Cow<'_, str> {
    if is_plain_name(name) {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(go_quote(name))
    }
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
    use grpcio::RpcStatusCode;

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
        assert_eq!(m.matches("bc"), Ok(true));
        assert_eq!(m.matches("b\n"), Ok(true));
        assert_eq!(m.matches("abc"), Ok(false));
        assert_eq!(m.matches("bcd"), Ok(false));
        let m = Matcher::new(Op::Nre, "a", "b|c").unwrap();
        assert_eq!(m.matches("bc"), Ok(true));
        assert_eq!(m.matches("c"), Ok(false));
        // Go's syntax, not the `regex` crate's.
        let m = Matcher::new(Op::Re, "a", r"\Q.*\E|\0").unwrap();
        assert_eq!(m.matches(".*"), Ok(true));
        assert_eq!(m.matches("\0"), Ok(true));
        assert_eq!(m.matches("x"), Ok(false));
    }

    #[test]
    fn regexes_go_refuses_are_invalid_argument_naming_the_matcher() {
        for (value, reason) in [
            ("a**", "invalid nested repetition operator: `**`"),
            ("a++", "invalid nested repetition operator: `++`"),
            ("x{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("a{1001}", "invalid repeat count: `{1001}`"),
            ("(?x)a", "invalid or unsupported Perl syntax: `(?x`"),
        ] {
            let err = convert(&[pm(2, "name", value)]).unwrap_err();
            assert_eq!(err.code(), RpcStatusCode::INVALID_ARGUMENT);
            assert_eq!(
                err.message(),
                format!("name=~{}: error parsing regexp: {reason}", go_quote(value))
            );
        }
        let err = convert(&[pm(3, "a-b", "(")]).unwrap_err();
        assert_eq!(
            err.message(),
            r#""a-b"!~"(": error parsing regexp: missing closing ): `(`"#
        );
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
        let kept = strip_external(ms, &ext).unwrap().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name, "job");
        let ms = vec![Matcher::new(Op::Re, "cluster", "oth.*").unwrap()];
        assert!(strip_external(ms, &ext).unwrap().is_none());
        // Go's syntax here too: `\Q…\E` is literal text.
        let ms = vec![Matcher::new(Op::Re, "cluster", r"\Qte\E(?i:ST)").unwrap()];
        assert_eq!(strip_external(ms, &ext).unwrap().unwrap().len(), 0);
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
