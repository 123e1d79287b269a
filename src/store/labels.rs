//! `LabelNames` and `LabelValues` through Prometheus' label APIs (Thanos'
//! `pkg/store/prometheus.go`).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use grpcio::RpcStatus;

use crate::grpc::status::{api_error, invalid_argument};
use crate::prometheus::TimeRange;
use crate::proto::store;
use crate::store::matchers;
use crate::store::Store;

/// Prometheus takes `match[]` on its label APIs from 2.24.0 on.
fn label_api_takes_matchers(version: &str) -> bool {
    let core = version.split(['+', '-']).next().unwrap_or("");
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(_patch))) => (major, minor) >= (2, 24),
        _ => false,
    }
}

/// The label name as the `<name>` segment of `/api/v1/label/<name>/values`.
///
/// Prometheus 3 takes any UTF-8 label name, but a path segment cannot carry
/// every one of them (`a/b`), so it reads a segment starting with `U__` as
/// prometheus/common's value-encoding escape: `U__`, then `_` doubled, the
/// runes of legacy names kept and any other as `_<hex code point>_`. Names
/// that are not legacy are escaped so; so is a legacy name that itself
/// starts with `U__`, which Prometheus 3 would otherwise unescape to
/// something else. Prometheus 2 knows no escaping (nor non-legacy names),
/// so its names go as they are.
fn label_path_segment<'a>(name: &'a str, version: &str) -> Cow<'a, str> {
    let prometheus3 = major_version(version).is_some_and(|major| major >= 3);
    if !prometheus3 || (is_legacy_metric_name(name) && !name.starts_with("U__")) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    out.push_str("U__");
    for (i, c) in name.char_indices() {
        match c {
            '_' => out.push_str("__"),
            c if is_legacy_rune(c, i) => out.push(c),
            c => out.push_str(&format!("_{:x}_", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// prometheus/common's legacy metric-name runes; digits not first (by byte
/// index, as Go's `range` over a string counts).
fn is_legacy_rune(c: char, byte_index: usize) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (c.is_ascii_digit() && byte_index > 0)
}

fn is_legacy_metric_name(name: &str) -> bool {
    !name.is_empty() && name.char_indices().all(|(i, c)| is_legacy_rune(c, i))
}

fn major_version(version: &str) -> Option<u64> {
    version.split('.').next()?.parse().ok()
}

pub fn label_names(
    store: &Store,
    req: &store::LabelNamesRequest,
) -> Result<store::LabelNamesResponse, RpcStatus> {
    super::refuse_in_agent_mode(&store.metadata)?;
    let mut resp = store::LabelNamesResponse::new();
    let matchers = matchers::convert(&req.matchers)?;
    let state = store.metadata.snapshot();
    let Some(matchers) = matchers::strip_external(matchers, &state.external_labels)? else {
        return Ok(resp);
    };
    let range = TimeRange {
        start_ms: req.start,
        end_ms: req.end,
        limit: req.limit,
    };
    let mut names = if matchers.is_empty() || label_api_takes_matchers(&state.prometheus_version) {
        let selectors: Vec<String> = if matchers.is_empty() {
            Vec::new()
        } else {
            vec![matchers::selector(&matchers)]
        };
        store
            .client
            .label_names(&selectors, &range, store.api_timeout)
            .map_err(api_error)?
    } else {
        let series = store
            .client
            .series(&[matchers::selector(&matchers)], &range, store.api_timeout)
            .map_err(api_error)?;
        let names: BTreeSet<String> = series.into_iter().flat_map(|s| s.into_keys()).collect();
        names.into_iter().collect()
    };
    if names.is_empty() {
        return Ok(resp);
    }
    let without: HashSet<&str> = req
        .without_replica_labels
        .iter()
        .map(String::as_str)
        .collect();
    // Thanos appends without de-duplicating; a name both in Prometheus and
    // external appears twice.
    names.extend(
        state
            .external_labels
            .keys()
            .filter(|n| !without.contains(n.as_str()))
            .cloned(),
    );
    names.sort_unstable();
    resp.names = names;
    Ok(resp)
}

pub fn label_values(
    store: &Store,
    req: &store::LabelValuesRequest,
) -> Result<store::LabelValuesResponse, RpcStatus> {
    super::refuse_in_agent_mode(&store.metadata)?;
    let mut resp = store::LabelValuesResponse::new();
    if req.label.is_empty() {
        return Err(invalid_argument("label name parameter cannot be empty"));
    }
    if req.without_replica_labels.contains(&req.label) {
        return Ok(resp);
    }
    let matchers = matchers::convert(&req.matchers)?;
    let state = store.metadata.snapshot();
    let Some(matchers) = matchers::strip_external(matchers, &state.external_labels)? else {
        return Ok(resp);
    };
    let range = TimeRange {
        start_ms: req.start,
        end_ms: req.end,
        limit: req.limit,
    };
    if let Some(value) = state.external_labels.get(&req.label) {
        if matchers.is_empty() {
            resp.values = vec![value.clone()];
            return Ok(resp);
        }
        let series = store
            .client
            .series(&[matchers::selector(&matchers)], &range, store.api_timeout)
            .map_err(api_error)?;
        if !series.is_empty() {
            resp.values = vec![value.clone()];
        }
        return Ok(resp);
    }
    let mut values = if matchers.is_empty() || label_api_takes_matchers(&state.prometheus_version) {
        let selectors: Vec<String> = if matchers.is_empty() {
            Vec::new()
        } else {
            vec![matchers::selector(&matchers)]
        };
        store
            .client
            .label_values(
                &label_path_segment(&req.label, &state.prometheus_version),
                &selectors,
                &range,
                store.api_timeout,
            )
            .map_err(api_error)?
    } else {
        let series = store
            .client
            .series(&[matchers::selector(&matchers)], &range, store.api_timeout)
            .map_err(api_error)?;
        let values: BTreeSet<String> = series
            .into_iter()
            .filter_map(|mut s| s.remove(&req.label))
            .collect();
        values.into_iter().collect()
    };
    values.sort_unstable();
    resp.values = values;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_2_24_take_matchers() {
        assert!(label_api_takes_matchers("2.42.0+ds"));
        assert!(label_api_takes_matchers("2.24.0"));
        assert!(label_api_takes_matchers("3.1.0-rc.0"));
        assert!(!label_api_takes_matchers("2.23.9"));
        assert!(!label_api_takes_matchers("0"));
        assert!(!label_api_takes_matchers(""));
    }

    #[test]
    fn label_names_in_paths_are_escaped_for_prometheus_3_only() {
        // Expected segments as prometheus/common's EscapeName writes them.
        for (name, want) in [
            ("job", "job"),
            ("a:b_1", "a:b_1"),
            ("a.b", "U__a_2e_b"),
            ("a/b", "U__a_2f_b"),
            ("1a_b", "U___31_a__b"),
            ("ü", "U___fc_"),
            ("🙂x", "U___1f642_x"),
            ("U__x", "U__U____x"),
        ] {
            assert_eq!(label_path_segment(name, "3.16.0"), want, "{name}");
        }
        for name in ["a.b", "U__x", "job"] {
            assert_eq!(label_path_segment(name, "2.42.0+ds"), name);
            assert_eq!(label_path_segment(name, ""), name);
        }
    }
}
