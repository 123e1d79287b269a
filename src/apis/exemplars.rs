//! `thanos.Exemplars/Exemplars` from Prometheus' `/api/v1/query_exemplars`
//! (Thanos' `pkg/exemplars/prometheus.go`): one frame per series, its labels extended with the
//! external labels; the exemplars' own labels are left as they are.

use grpcio::{RpcContext, RpcStatus, ServerStreamingSink};
use serde::Deserialize;

use super::{decode_error, nullable, with_external, zlabels, QUEUE};
use crate::grpc::status::api_error;
use crate::prometheus::{format_seconds, Labels};
use crate::proto::exemplars::{Exemplar, ExemplarData, ExemplarsRequest, ExemplarsResponse};
use crate::proto::services;
use crate::store::{Services, Store};

const PATH: &str = "/api/v1/query_exemplars";

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DataJson {
    #[serde(deserialize_with = "nullable")]
    series_labels: Labels,
    #[serde(deserialize_with = "nullable")]
    exemplars: Vec<ExemplarJson>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExemplarJson {
    #[serde(deserialize_with = "nullable")]
    labels: Labels,
    /// A float in a string, as Prometheus writes sample values.
    value: Option<String>,
    /// Seconds, a JSON number.
    timestamp: Option<serde_json::Number>,
}

pub fn exemplars(
    store: &Store,
    req: &ExemplarsRequest,
    out: &mut dyn FnMut(ExemplarsResponse) -> Result<(), RpcStatus>,
) -> Result<(), RpcStatus> {
    let (start, end) = (format_seconds(req.start), format_seconds(req.end));
    let params = [
        ("query", req.query.as_str()),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let json: Vec<DataJson> = store
        .client
        .get_data(PATH, &params, store.api_timeout)
        .map_err(api_error)?;
    let external = store.metadata.external_labels();
    let data = json
        .into_iter()
        .map(|d| data(d, &external))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| decode_error(PATH, e))?;
    for d in data {
        let mut resp = ExemplarsResponse::new();
        resp.set_data(d);
        out(resp)?;
    }
    Ok(())
}

fn data(json: DataJson, external: &Labels) -> Result<ExemplarData, String> {
    let mut d = ExemplarData::new();
    d.seriesLabels = zlabels(&with_external(json.series_labels, external));
    d.exemplars = json
        .exemplars
        .into_iter()
        .map(|e| {
            let mut x = Exemplar::new();
            x.labels = zlabels(&e.labels);
            if let Some(value) = &e.value {
                x.value = value
                    .parse()
                    .map_err(|_| format!("exemplar value {value:?} is not a float"))?;
            }
            if let Some(ts) = &e.timestamp {
                x.ts = seconds_to_ms(&ts.to_string())?;
            }
            Ok(x)
        })
        .collect::<Result<_, String>>()?;
    Ok(d)
}

/// Decimal seconds as Prometheus' time type reads them: digits past the
/// millisecond are cut, not rounded (no float arithmetic on the way).
fn seconds_to_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid exemplar timestamp {text}");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds: i64 = whole.parse().map_err(|_| bad())?;
    let millis: i64 = format!("{:0<3.3}", fraction).parse().map_err(|_| bad())?;
    let ms = seconds.checked_mul(1000).ok_or_else(bad)?;
    // "-0.5" has a whole part of 0: the sign is the text's.
    Ok(if whole.starts_with('-') {
        ms - millis
    } else {
        ms + millis
    })
}

impl services::Exemplars for Services {
    fn exemplars(
        &mut self,
        ctx: RpcContext,
        req: ExemplarsRequest,
        sink: ServerStreamingSink<ExemplarsResponse>,
    ) {
        self.stream(
            &ctx,
            crate::grpc::method::EXEMPLARS,
            "api-exemplars",
            QUEUE,
            sink,
            move |store, out| exemplars(store, &req, out),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_their_milliseconds() {
        assert_eq!(seconds_to_ms("1600096945.479").unwrap(), 1_600_096_945_479);
        assert_eq!(seconds_to_ms("1600096945.4").unwrap(), 1_600_096_945_400);
        assert_eq!(seconds_to_ms("1600096945").unwrap(), 1_600_096_945_000);
        assert_eq!(seconds_to_ms("1.23456").unwrap(), 1_234);
        assert_eq!(seconds_to_ms("-0.5").unwrap(), -500);
        assert_eq!(seconds_to_ms("-1.25").unwrap(), -1_250);
        assert!(seconds_to_ms("1e16").is_err());
        assert!(seconds_to_ms("9223372036854775807").is_err());
    }

    #[test]
    fn series_labels_are_extended_and_exemplar_labels_are_not() {
        let json = serde_json::json!({
            "seriesLabels": {"__name__": "x_total", "replica": "9"},
            "exemplars": [
                {"labels": {"trace_id": "a", "replica": "9"}, "value": "6", "timestamp": 1700000000.123},
                {"labels": {}, "value": "+Inf", "timestamp": 1700000001},
                {"labels": {}, "value": "NaN", "timestamp": 1700000002.5}
            ]
        });
        let external: Labels = [("replica".to_string(), "0".to_string())].into();
        let d = data(serde_json::from_value(json).unwrap(), &external).unwrap();
        let series: Vec<_> = d
            .seriesLabels
            .labels
            .iter()
            .map(|l| l.value.as_str())
            .collect();
        assert_eq!(series, ["x_total", "0"]);
        let e = &d.exemplars;
        assert_eq!(e[0].labels.labels[0].value, "9");
        assert_eq!((e[0].value, e[0].ts), (6.0, 1_700_000_000_123));
        assert_eq!((e[1].value, e[1].ts), (f64::INFINITY, 1_700_000_001_000));
        assert!(e[2].value.is_nan());
        assert_eq!(e[2].ts, 1_700_000_002_500);
        let unquoted = serde_json::json!({"exemplars": [{"value": 6}]});
        assert!(serde_json::from_value::<DataJson>(unquoted).is_err());
        let bad = serde_json::json!({"exemplars": [{"value": "six"}]});
        assert!(data(serde_json::from_value(bad).unwrap(), &external).is_err());
    }
}
