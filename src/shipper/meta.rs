//! A block's `meta.json`: Prometheus' block meta plus Thanos' `thanos` section.
//!
//! Reading is as lenient as Go's decoder (unknown keys are dropped, a missing
//! `thanos` section is fine); writing reproduces Go's `encoding/json` output
//! byte for byte as Thanos writes it: declaration key order, `omitempty`
//! rules, tab indentation, a trailing newline and HTML-safe escaping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub ulid: Ulid,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    // Go's omitempty never omits a struct: `stats` is always written.
    #[serde(default, deserialize_with = "nullable")]
    pub stats: Stats,
    #[serde(default, deserialize_with = "nullable")]
    pub compaction: Compaction,
    #[serde(default)]
    pub version: i64,
    #[serde(default, deserialize_with = "nullable")]
    pub thanos: Thanos,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    #[serde(rename = "numSamples", default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    #[serde(rename = "numFloatSamples", default, skip_serializing_if = "is_zero")]
    pub num_float_samples: u64,
    #[serde(
        rename = "numHistogramSamples",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub num_histogram_samples: u64,
    #[serde(rename = "numSeries", default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    #[serde(rename = "numChunks", default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    #[serde(default)]
    pub level: i64,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sources: Vec<Ulid>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deletable: bool,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub parents: Vec<BlockDesc>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDesc {
    pub ulid: Ulid,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    #[serde(rename = "maxTime")]
    pub max_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thanos {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub version: i64,
    /// Go writes a nil map as `null`; Thanos always fills it before writing.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub downsample: Downsample,
    #[serde(default)]
    pub source: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub segment_files: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub files: Vec<File>,
    /// Kept as read: the sidecar never writes rewrites itself.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub rewrites: Vec<serde_json::Value>,
    #[serde(default)]
    pub index_stats: IndexStats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
    #[serde(default = "zero_time")]
    pub upload_time: String,
}

impl Default for Thanos {
    fn default() -> Self {
        Thanos {
            version: 0,
            labels: BTreeMap::new(),
            downsample: Downsample::default(),
            source: String::new(),
            segment_files: Vec::new(),
            files: Vec::new(),
            rewrites: Vec::new(),
            index_stats: IndexStats::default(),
            extensions: None,
            upload_time: zero_time(),
        }
    }
}

/// Go's zero `time.Time`, as `encoding/json` writes it.
fn zero_time() -> String {
    "0001-01-01T00:00:00Z".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Downsample {
    #[serde(default)]
    pub resolution: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexStats {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub series_max_size: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub chunk_max_size: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub rel_path: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ObjectHash>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectHash {
    #[serde(rename = "hashFunc")]
    pub func: String,
    pub value: String,
}

/// Go decodes `null` into a slice, map or struct as its zero value.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Why a `meta.json` (or another file Thanos reads back) could not be read
/// or written. The sync names the file around it; callers can tell a
/// version Thanos would refuse from a damaged file.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("empty file")]
    Empty,
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("unexpected meta file version {0}")]
    Version(i64),
    #[error("unexpected meta file Thanos section version {0}")]
    ThanosVersion(i64),
    #[error("encode JSON: {0}")]
    Encode(serde_json::Error),
    /// Cannot happen with serde_json's output; kept rather than unwrapped.
    #[error("{0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
}

impl Meta {
    /// Parses a `meta.json` as Thanos does: index version 1 and Thanos
    /// section version 0 (absent) or 1 are the only ones accepted.
    pub fn parse(data: &[u8]) -> Result<Meta, MetaError> {
        // Go's decoder reads the first JSON value and ignores what follows.
        let mut stream = serde_json::Deserializer::from_slice(data).into_iter::<Meta>();
        let meta = match stream.next() {
            Some(Ok(meta)) => meta,
            Some(Err(e)) => return Err(MetaError::Json(e)),
            None => return Err(MetaError::Empty),
        };
        if meta.version != 1 {
            return Err(MetaError::Version(meta.version));
        }
        if !matches!(meta.thanos.version, 0 | 1) {
            return Err(MetaError::ThanosVersion(meta.thanos.version));
        }
        Ok(meta)
    }

    /// The JSON Thanos writes: tab-indented, with a trailing newline.
    pub fn to_json(&self) -> Result<Vec<u8>, MetaError> {
        go_json(self)
    }
}

/// Serializes like Go's `json.Encoder` with `SetIndent("", "\t")`.
pub fn go_json<T: Serialize>(value: &T) -> Result<Vec<u8>, MetaError> {
    let mut out = Vec::with_capacity(1024);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).map_err(MetaError::Encode)?;
    out.push(b'\n');
    // Go escapes these inside strings (HTML safety, JS line separators);
    // outside strings JSON never contains them, so a global pass is exact.
    let text = String::from_utf8(out)?;
    let escaped = text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    Ok(escaped.into_bytes())
}

/// A UTC time as Go's `time.Time` JSON: RFC 3339 with the nanoseconds'
/// trailing zeros trimmed (no fraction at all when they are zero).
pub fn go_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMTOOL_META: &str = r#"{
    "ulid": "01HZY5N3M1X1TR0J9V7Q9QW6XA",
    "minTime": 1700000000000,
    "maxTime": 1700007200000,
    "stats": {
        "numSamples": 720,
        "numSeries": 2,
        "numChunks": 8
    },
    "compaction": {
        "level": 1,
        "sources": [
            "01HZY5N3M1X1TR0J9V7Q9QW6XA"
        ]
    },
    "version": 1,
    "unknownKey": {"dropped": true}
}"#;

    #[test]
    fn reads_prometheus_meta_and_writes_thanos_layout() {
        let mut m = Meta::parse(PROMTOOL_META.as_bytes()).unwrap();
        assert_eq!(m.stats.num_samples, 720);
        assert_eq!(m.thanos, Thanos::default());
        m.thanos.labels.insert("replica".into(), "0".into());
        m.thanos.labels.insert("cluster".into(), "a<b>&c".into());
        m.thanos.source = "sidecar".into();
        m.thanos.segment_files = vec!["000001".into()];
        m.thanos.files = vec![
            File {
                rel_path: "chunks/000001".into(),
                size_bytes: 100,
                hash: Some(ObjectHash {
                    func: "SHA256".into(),
                    value: "ab".into(),
                }),
            },
            File {
                rel_path: "index".into(),
                size_bytes: 50,
                hash: None,
            },
            File {
                rel_path: "meta.json".into(),
                size_bytes: 0,
                hash: None,
            },
        ];
        m.thanos.upload_time = "2024-01-02T03:04:05.1Z".into();
        let json = String::from_utf8(m.to_json().unwrap()).unwrap();
        let want = "{\n\t\"ulid\": \"01HZY5N3M1X1TR0J9V7Q9QW6XA\",\n\t\"minTime\": 1700000000000,\n\t\"maxTime\": 1700007200000,\n\t\"stats\": {\n\t\t\"numSamples\": 720,\n\t\t\"numSeries\": 2,\n\t\t\"numChunks\": 8\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01HZY5N3M1X1TR0J9V7Q9QW6XA\"\n\t\t]\n\t},\n\t\"version\": 1,\n\t\"thanos\": {\n\t\t\"labels\": {\n\t\t\t\"cluster\": \"a\\u003cb\\u003e\\u0026c\",\n\t\t\t\"replica\": \"0\"\n\t\t},\n\t\t\"downsample\": {\n\t\t\t\"resolution\": 0\n\t\t},\n\t\t\"source\": \"sidecar\",\n\t\t\"segment_files\": [\n\t\t\t\"000001\"\n\t\t],\n\t\t\"files\": [\n\t\t\t{\n\t\t\t\t\"rel_path\": \"chunks/000001\",\n\t\t\t\t\"size_bytes\": 100,\n\t\t\t\t\"hash\": {\n\t\t\t\t\t\"hashFunc\": \"SHA256\",\n\t\t\t\t\t\"value\": \"ab\"\n\t\t\t\t}\n\t\t\t},\n\t\t\t{\n\t\t\t\t\"rel_path\": \"index\",\n\t\t\t\t\"size_bytes\": 50\n\t\t\t},\n\t\t\t{\n\t\t\t\t\"rel_path\": \"meta.json\"\n\t\t\t}\n\t\t],\n\t\t\"index_stats\": {},\n\t\t\"upload_time\": \"2024-01-02T03:04:05.1Z\"\n\t}\n}\n";
        assert_eq!(json, want);
        // And it reads back to the same value.
        assert_eq!(Meta::parse(json.as_bytes()).unwrap(), m);
    }

    #[test]
    fn rejects_what_thanos_rejects() {
        assert!(Meta::parse(b"").is_err());
        assert!(Meta::parse(b"{not json").is_err());
        let v2 = PROMTOOL_META.replace("\"version\": 1", "\"version\": 2");
        let err = Meta::parse(v2.as_bytes()).unwrap_err();
        assert!(matches!(err, MetaError::Version(2)), "{err:?}");
        assert_eq!(err.to_string(), "unexpected meta file version 2");
        assert!(matches!(Meta::parse(b""), Err(MetaError::Empty)));
        let bad_ulid = PROMTOOL_META.replace(
            "01HZY5N3M1X1TR0J9V7Q9QW6XA\",\n    \"minTime",
            "nope\",\n    \"minTime",
        );
        assert!(Meta::parse(bad_ulid.as_bytes()).is_err());
    }

    #[test]
    fn nulls_read_as_empty() {
        let with_nulls = PROMTOOL_META.replace(
            "\"version\": 1,",
            "\"version\": 1, \"thanos\": {\"labels\": null, \"files\": null},",
        );
        let m = Meta::parse(with_nulls.as_bytes()).unwrap();
        assert!(m.thanos.labels.is_empty());
        assert!(m.thanos.files.is_empty());
    }

    #[test]
    fn times_like_go() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 120_000_000)
            .unwrap();
        assert_eq!(go_time(t), "2023-11-14T22:13:20.12Z");
        let t = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(go_time(t), "2023-11-14T22:13:20Z");
        let t = chrono::Utc.timestamp_opt(1_700_000_000, 1).unwrap();
        assert_eq!(go_time(t), "2023-11-14T22:13:20.000000001Z");
    }
}
