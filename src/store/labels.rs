//! `LabelNames` and `LabelValues` through Prometheus' label APIs (contract §4.10–§4.11).

use std::collections::{BTreeSet, HashSet};

use grpcio::RpcStatus;

use crate::prometheus::TimeRange;
use crate::proto::store;
use crate::store::matchers::{self, invalid_argument};
use crate::store::series::api_error;
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
            .label_values(&req.label, &selectors, &range, store.api_timeout)
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
}
