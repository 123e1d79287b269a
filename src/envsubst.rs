//! Thanos' `$(VAR)` environment substitution, shared by the config flags and the reloader.
//!
//! Only `$(NAME)` with `NAME` in `[a-zA-Z0-9_]+` is replaced; `${NAME}` and
//! `$NAME` are left alone, because Prometheus configs use them themselves.
//! An unset variable is an error naming it: a half-substituted config is
//! worse than none.

use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub struct MissingVar(pub String);

impl fmt::Display for MissingVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "environment variable {:?} is not set", self.0)
    }
}

impl std::error::Error for MissingVar {}

pub fn expand(input: &str) -> Result<String, MissingVar> {
    expand_with(input, |name| std::env::var(name).ok())
}

pub fn expand_with(
    input: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, MissingVar> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with(')') {
            let name = &after[..name_len];
            out.push_str(&lookup(name).ok_or_else(|| MissingVar(name.to_string()))?);
            rest = &after[name_len + 1..];
        } else {
            out.push_str("$(");
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("bar".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_only_thanos_syntax() {
        assert_eq!(
            expand_with("a=$(FOO) b=${FOO} c=$FOO d=$(EMPTY)", env),
            Ok("a=bar b=${FOO} c=$FOO d=".to_string())
        );
        assert_eq!(
            expand_with("$(not-a-name) $( x", env),
            Ok("$(not-a-name) $( x".to_string())
        );
        assert_eq!(expand_with("$(FOO)$(FOO)", env), Ok("barbar".to_string()));
    }

    #[test]
    fn missing_variable_is_named() {
        let err = expand_with("key: $(SECRET_KEY)", env).unwrap_err();
        assert_eq!(err, MissingVar("SECRET_KEY".to_string()));
        assert_eq!(
            err.to_string(),
            "environment variable \"SECRET_KEY\" is not set"
        );
    }
}
