//! The Rules, Targets, Metadata, Exemplars and Status APIs (Thanos'
//! `pkg/{rules,targets,metadata,exemplars}/prometheus.go`, `pkg/status`):
//! each call is one GET on Prometheus' JSON API, turned into the messages
//! Thanos sends, with the external labels added where Thanos adds them.
//!
//! Like Series, a call runs on a worker (`crate::grpc::calls`).
//! Each file decodes its endpoint's JSON into small structs first: absent
//! fields stay empty as with Go's decoder, and a field of the wrong type
//! fails the call with Internal, as Thanos' decode errors do. Everything is
//! decoded before the first frame goes out, so a bad answer sends nothing.

pub mod exemplars;
pub mod metric_metadata;
pub mod rules;
pub mod status;
pub mod targets;

use grpcio::RpcStatus;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::MessageField;
use serde::{Deserialize, Deserializer};

use crate::grpc::status::api_error;
use crate::prometheus::{self, Labels};
use crate::proto::labels::ZLabelSet;
use crate::store::label_set;

/// Frames waiting for a slow client. The whole answer is decoded already,
/// so this only bounds how much of it gRPC buffers at once.
const QUEUE: usize = 4;

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), which Thanos
/// sends for a timestamp Prometheus left out.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// A label set, present even when empty: Thanos' fields are non-nullable,
/// so Go always writes them.
fn zlabels(labels: &Labels) -> MessageField<ZLabelSet> {
    let mut set = ZLabelSet::new();
    set.labels = label_set(labels);
    MessageField::some(set)
}

/// `labels` with the external labels set over them: an external label wins
/// over one of the same name, and the result stays sorted by name.
fn with_external(mut labels: Labels, external: &Labels) -> Labels {
    labels.extend(external.iter().map(|(n, v)| (n.clone(), v.clone())));
    labels
}

/// An RFC 3339 time as Go's `time.Time` reads it from JSON; absent is Go's
/// zero time.
fn timestamp(text: Option<&str>) -> Result<Timestamp, String> {
    let mut ts = Timestamp::new();
    match text {
        None => ts.seconds = GO_ZERO_TIME_SECONDS,
        Some(text) => {
            let time = chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| format!("parsing time {text:?}: {e}"))?;
            ts.seconds = time.timestamp();
            ts.nanos = time.timestamp_subsec_nanos() as i32;
        }
    }
    Ok(ts)
}

/// Prometheus' enum strings (`firing`, `up`) matched upper-cased against
/// the proto names, as Thanos matches them; empty and unknown are errors.
fn enum_value<E: protobuf::Enum>(what: &str, text: Option<&str>) -> Result<E, String> {
    let Some(text) = text else {
        return Ok(E::default());
    };
    if text.is_empty() {
        return Err(format!("empty {what}"));
    }
    E::from_str(&text.to_ascii_uppercase()).ok_or_else(|| format!("unknown {what}: {text:?}"))
}

/// A request's type or state filter as Thanos forwards it: nothing for the
/// enum's 0 (ALL, ANY), else its name in lower case (`alert`, `dropped`),
/// or the bare number for a value this build does not know.
fn filter_param<E: protobuf::EnumFull>(value: protobuf::EnumOrUnknown<E>) -> Option<String> {
    match value.enum_value() {
        _ if value.value() == 0 => None,
        Ok(e) => Some(e.descriptor().name().to_ascii_lowercase()),
        Err(n) => Some(n.to_string()),
    }
}

/// For collections Prometheus might send as `null`: Go's decoder leaves
/// them empty where serde would fail.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A body that decoded as JSON but not as the API promises: Internal.
fn decode_error(path: &str, e: String) -> RpcStatus {
    api_error(prometheus::Error::Decode(format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rules::AlertState;
    use crate::proto::targets::TargetHealth;

    #[test]
    fn external_labels_win_and_stay_sorted() {
        let labels: Labels = [("replica", "9"), ("a", "1"), ("zone", "z")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .into();
        let external: Labels = [("cluster", "test"), ("replica", "0")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .into();
        let got = zlabels(&with_external(labels, &external));
        let pairs: Vec<(&str, &str)> = got
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a", "1"),
                ("cluster", "test"),
                ("replica", "0"),
                ("zone", "z")
            ]
        );
        assert!(zlabels(&Labels::new()).is_some());
    }

    #[test]
    fn times_are_read_as_go_reads_rfc3339() {
        let ts = timestamp(Some("2023-03-01T10:00:00.123456789+01:00")).unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_677_661_200, 123_456_789));
        let ts = timestamp(Some("0001-01-01T00:00:00Z")).unwrap();
        assert_eq!((ts.seconds, ts.nanos), (GO_ZERO_TIME_SECONDS, 0));
        let ts = timestamp(None).unwrap();
        assert_eq!((ts.seconds, ts.nanos), (GO_ZERO_TIME_SECONDS, 0));
        assert!(timestamp(Some("yesterday")).is_err());
    }

    #[test]
    fn filters_go_as_thanos_sends_them() {
        use crate::proto::rules::rules_request::Type;
        use crate::proto::targets::targets_request::State;
        assert_eq!(filter_param(Type::ALL.into()), None);
        assert_eq!(filter_param(Type::ALERT.into()).as_deref(), Some("alert"));
        assert_eq!(filter_param(Type::RECORD.into()).as_deref(), Some("record"));
        assert_eq!(filter_param(State::ANY.into()), None);
        assert_eq!(
            filter_param(State::DROPPED.into()).as_deref(),
            Some("dropped")
        );
        let unknown = protobuf::EnumOrUnknown::<State>::from_i32(7);
        assert_eq!(filter_param(unknown).as_deref(), Some("7"));
    }

    #[test]
    fn enum_strings_are_upper_cased() {
        let state: AlertState = enum_value("alertState", Some("firing")).unwrap();
        assert_eq!(state, AlertState::FIRING);
        let state: AlertState = enum_value("alertState", None).unwrap();
        assert_eq!(state, AlertState::UNKNOWN);
        let health: TargetHealth = enum_value("targetHealth", Some("Down")).unwrap();
        assert_eq!(health, TargetHealth::DOWN);
        assert!(enum_value::<TargetHealth>("targetHealth", Some("")).is_err());
        assert!(enum_value::<TargetHealth>("targetHealth", Some("sideways")).is_err());
    }
}
