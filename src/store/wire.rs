//! Series answers written onto the wire from Prometheus' frames, without
//! decoding the chunks.
//!
//! A Series answer is mostly chunk bytes the sidecar passes through as they
//! came. Decoding every remote-read frame into messages and encoding Thanos'
//! `SeriesResponse` from them copied each chunk twice more and allocated a
//! buffer per chunk (BENCHMARKS.md, the Series profile). Here a frame is
//! scanned once: its labels are read (the sidecar changes them), its chunks
//! are kept as byte ranges of the frame with their hash, and the response is
//! written from those ranges into the buffer gRPC sends. The layout written is
//! rust-protobuf's (fields in number order, proto3 defaults left out), so
//! answers are byte for byte what encoding the messages gave; tests pin it.

use std::ops::Range;
use std::sync::Arc;

use protobuf::rt::compute_raw_varint64_size as varint_size;
use protobuf::CodedInputStream;
use protobuf::CodedOutputStream;
use xxhash_rust::xxh64::xxh64;

use crate::store::sort::Key;

/// One chunk of a series: where its bytes are, and what Thanos sends with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub min_time: i64,
    pub max_time: i64,
    /// Thanos' `Chunk.Encoding` (XOR = 0), not remote read's (XOR = 1).
    pub encoding: i32,
    /// XXH64 of the bytes: Thanos' sidecar always sends it and queriers
    /// deduplicate by it (`pkg/store/prometheus.go`).
    pub hash: u64,
    pub data: Range<usize>,
}

/// A series as the sidecar sends it: final labels, chunks in `bytes`.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Key,
    pub chunks: Vec<Chunk>,
    /// The frame (or, for re-encoded samples, the buffer) the chunks lie in;
    /// shared by the series of one frame, freed with the last of them.
    pub bytes: Arc<Vec<u8>>,
}

impl Series {
    /// A series of chunks made here (the SAMPLES path), each
    /// `(min_time, max_time, encoding, bytes)`.
    pub fn owned(labels: Key, chunks: Vec<(i64, i64, i32, Vec<u8>)>) -> Series {
        let mut bytes = Vec::with_capacity(chunks.iter().map(|c| c.3.len()).sum());
        let chunks = chunks
            .into_iter()
            .map(|(min_time, max_time, encoding, data)| {
                let start = bytes.len();
                bytes.extend_from_slice(&data);
                Chunk {
                    min_time,
                    max_time,
                    encoding,
                    hash: xxh64(&data, 0),
                    data: start..bytes.len(),
                }
            })
            .collect();
        Series {
            labels,
            chunks,
            bytes: Arc::new(bytes),
        }
    }

    pub fn data(&self, chunk: &Chunk) -> &[u8] {
        &self.bytes[chunk.data.clone()]
    }
}

/// One `SeriesResponse`, ready for gRPC: a series, or a batch of them.
#[derive(Debug, Clone)]
pub enum Response {
    Series(Series),
    Batch(Vec<Series>),
}

/// A series of a remote-read frame: its labels as Prometheus sent them.
pub struct Scanned {
    pub labels: Key,
    pub chunks: Vec<Chunk>,
}

// Field tags (number << 3 | wire type) of the messages read and written.
const LEN: u32 = 2;
const VARINT: u32 = 0;
const fn tag(field: u32, wire: u32) -> u32 {
    field << 3 | wire
}

/// Reads a `prometheus.ChunkedReadResponse` frame: labels decoded, chunks
/// located and hashed. Unknown fields are skipped, as a decoder would.
pub fn scan_frame(frame: &[u8]) -> protobuf::Result<Vec<Scanned>> {
    let mut is = CodedInputStream::from_bytes(frame);
    let mut out = Vec::with_capacity(1);
    while let Some(t) = is.read_raw_tag_or_eof()? {
        match t {
            // chunked_series
            t if t == tag(1, LEN) => {
                let old = enter(&mut is)?;
                out.push(scan_series(&mut is, frame)?);
                is.pop_limit(old);
            }
            t => protobuf::rt::skip_field_for_tag(t, &mut is)?,
        }
    }
    Ok(out)
}

fn enter(is: &mut CodedInputStream) -> protobuf::Result<u64> {
    let len = is.read_raw_varint64()?;
    is.push_limit(len)
}

/// `prometheus.ChunkedSeries { repeated Label labels = 1; repeated Chunk chunks = 2; }`
fn scan_series(is: &mut CodedInputStream, frame: &[u8]) -> protobuf::Result<Scanned> {
    let mut labels = Vec::new();
    let mut chunks = Vec::new();
    while let Some(t) = is.read_raw_tag_or_eof()? {
        match t {
            t if t == tag(1, LEN) => {
                let old = enter(is)?;
                let (mut name, mut value) = (String::new(), String::new());
                while let Some(t) = is.read_raw_tag_or_eof()? {
                    match t {
                        t if t == tag(1, LEN) => is.read_string_into(&mut name)?,
                        t if t == tag(2, LEN) => is.read_string_into(&mut value)?,
                        t => protobuf::rt::skip_field_for_tag(t, is)?,
                    }
                }
                is.pop_limit(old);
                labels.push((name, value));
            }
            t if t == tag(2, LEN) => {
                let old = enter(is)?;
                chunks.push(scan_chunk(is, frame)?);
                is.pop_limit(old);
            }
            t => protobuf::rt::skip_field_for_tag(t, is)?,
        }
    }
    Ok(Scanned { labels, chunks })
}

/// `prometheus.Chunk { int64 min_time_ms = 1; int64 max_time_ms = 2;
/// Encoding type = 3; bytes data = 4; }`
fn scan_chunk(is: &mut CodedInputStream, frame: &[u8]) -> protobuf::Result<Chunk> {
    let mut chunk = Chunk {
        min_time: 0,
        max_time: 0,
        encoding: 0,
        hash: 0,
        data: 0..0,
    };
    let mut remote_type = 0;
    while let Some(t) = is.read_raw_tag_or_eof()? {
        match t {
            t if t == tag(1, VARINT) => chunk.min_time = is.read_int64()?,
            t if t == tag(2, VARINT) => chunk.max_time = is.read_int64()?,
            t if t == tag(3, VARINT) => remote_type = is.read_int32()?,
            t if t == tag(4, LEN) => {
                let len = is.read_raw_varint32()?;
                // The stream reads a slice from its start, so its position
                // is the offset in the frame.
                let start = is.pos() as usize;
                is.skip_raw_bytes(len)?;
                chunk.data = start..start + len as usize;
            }
            t => protobuf::rt::skip_field_for_tag(t, is)?,
        }
    }
    // Remote read numbers encodings from UNKNOWN = 0, Thanos from XOR = 0.
    chunk.encoding = remote_type - 1;
    chunk.hash = xxh64(&frame[chunk.data.clone()], 0);
    Ok(chunk)
}

impl Response {
    /// The encoded `thanos.SeriesResponse`.
    pub fn to_bytes(&self) -> protobuf::Result<Vec<u8>> {
        // Zeroed rather than uninitialised: `CodedOutputStream` writes into
        // an initialised slice, and fresh pages come zeroed from the OS.
        let size = self.size();
        let mut out = vec![0u8; size as usize];
        let mut os = CodedOutputStream::bytes(&mut out);
        self.write(&mut os)?;
        // Sizes and bodies are computed apart: never send a message whose
        // tail would be the zeros it started as.
        if os.total_bytes_written() != size {
            return Err(protobuf::Error::from(std::io::Error::other(format!(
                "SeriesResponse written as {} bytes, sized as {size}",
                os.total_bytes_written()
            ))));
        }
        drop(os);
        Ok(out)
    }

    /// `SeriesResponse { oneof result { Series series = 1; SeriesBatch batch = 4; } }`
    fn size(&self) -> u64 {
        match self {
            Response::Series(s) => nested(series_size(s)),
            Response::Batch(all) => nested(all.iter().map(|s| nested(series_size(s))).sum()),
        }
    }

    fn write(&self, os: &mut CodedOutputStream) -> protobuf::Result<()> {
        match self {
            Response::Series(s) => {
                os.write_raw_varint32(tag(1, LEN))?;
                write_series(os, s)
            }
            Response::Batch(all) => {
                os.write_raw_varint32(tag(4, LEN))?;
                os.write_raw_varint64(all.iter().map(|s| nested(series_size(s))).sum())?;
                for s in all {
                    os.write_raw_varint32(tag(1, LEN))?;
                    write_series(os, s)?;
                }
                Ok(())
            }
        }
    }
}

/// A message field's tag, length and body (every tag written is one byte).
fn nested(body: u64) -> u64 {
    1 + varint_size(body) + body
}

/// A proto3 scalar: left out at its default.
fn varint_field(v: u64) -> u64 {
    if v == 0 {
        0
    } else {
        1 + varint_size(v)
    }
}

fn bytes_field(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        nested(len as u64)
    }
}

/// `thanos.Label { string name = 1; string value = 2; }`
fn label_size(name: &str, value: &str) -> u64 {
    bytes_field(name.len()) + bytes_field(value.len())
}

/// `thanos.Chunk { Encoding type = 1; bytes data = 2; uint64 hash = 3; }`
/// (an enum is written as its int32 sign-extended to 64 bits).
fn raw_size(c: &Chunk) -> u64 {
    varint_field(c.encoding as i64 as u64) + bytes_field(c.data.len()) + varint_field(c.hash)
}

/// `thanos.AggrChunk { int64 min_time = 1; int64 max_time = 2; Chunk raw = 3; }`
/// (`raw` is always set, so written even when empty).
fn aggr_size(c: &Chunk) -> u64 {
    varint_field(c.min_time as u64) + varint_field(c.max_time as u64) + nested(raw_size(c))
}

/// `thanos.Series { repeated Label labels = 1; repeated AggrChunk chunks = 2; }`
fn series_size(s: &Series) -> u64 {
    let labels: u64 = s.labels.iter().map(|(n, v)| nested(label_size(n, v))).sum();
    let chunks: u64 = s.chunks.iter().map(|c| nested(aggr_size(c))).sum();
    labels + chunks
}

/// The series' length, then its body.
fn write_series(os: &mut CodedOutputStream, s: &Series) -> protobuf::Result<()> {
    os.write_raw_varint64(series_size(s))?;
    for (name, value) in &s.labels {
        os.write_raw_varint32(tag(1, LEN))?;
        os.write_raw_varint64(label_size(name, value))?;
        write_bytes(os, 1, name.as_bytes())?;
        write_bytes(os, 2, value.as_bytes())?;
    }
    for c in &s.chunks {
        os.write_raw_varint32(tag(2, LEN))?;
        os.write_raw_varint64(aggr_size(c))?;
        write_varint(os, 1, c.min_time as u64)?;
        write_varint(os, 2, c.max_time as u64)?;
        os.write_raw_varint32(tag(3, LEN))?;
        os.write_raw_varint64(raw_size(c))?;
        write_varint(os, 1, c.encoding as i64 as u64)?;
        write_bytes(os, 2, s.data(c))?;
        write_varint(os, 3, c.hash)?;
    }
    Ok(())
}

fn write_varint(os: &mut CodedOutputStream, field: u32, v: u64) -> protobuf::Result<()> {
    if v != 0 {
        os.write_raw_varint32(tag(field, VARINT))?;
        os.write_raw_varint64(v)?;
    }
    Ok(())
}

fn write_bytes(os: &mut CodedOutputStream, field: u32, b: &[u8]) -> protobuf::Result<()> {
    if !b.is_empty() {
        os.write_raw_varint32(tag(field, LEN))?;
        os.write_raw_varint64(b.len() as u64)?;
        os.write_raw_bytes(b)?;
    }
    Ok(())
}

/// gRPC's serializer for the server side of `Series` (build.rs names it):
/// the answer is written once, and the buffer becomes gRPC's slice as it is.
pub fn ser(resp: &Response, buf: &mut grpcio::GrpcSlice) -> grpcio::Result<()> {
    let bytes = resp
        .to_bytes()
        .map_err(|e| grpcio::Error::Codec(Box::new(e)))?;
    // A Vec whose length is its capacity is handed over without a copy.
    *buf = grpcio::GrpcSlice::from(bytes);
    Ok(())
}

/// The server never reads a `SeriesResponse`; clients decode it with the
/// generated message (`proto::store::SeriesResponse`).
pub fn de(_: grpcio::MessageReader) -> grpcio::Result<Response> {
    Err(grpcio::Error::Codec(
        "Series answers are only written by the server".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{labels, prom_remote, prom_types, store, store_types};
    use crate::store::remote_read;
    use protobuf::{Message, MessageField};

    fn chunk(min: i64, max: i64, ty: i32, data: &[u8]) -> prom_types::Chunk {
        let mut c = prom_types::Chunk::new();
        c.min_time_ms = min;
        c.max_time_ms = max;
        c.type_ = protobuf::EnumOrUnknown::from_i32(ty);
        c.data = data.to_vec();
        c
    }

    /// What the sidecar sent before this module: the messages, encoded.
    fn by_messages(series: &[Series]) -> store_types::SeriesBatch {
        let mut batch = store_types::SeriesBatch::new();
        for s in series {
            let mut out = store_types::Series::new();
            for (n, v) in &s.labels {
                let mut l = labels::Label::new();
                l.name = n.clone();
                l.value = v.clone();
                out.labels.push(l);
            }
            for c in &s.chunks {
                let mut raw = store_types::Chunk::new();
                raw.type_ = protobuf::EnumOrUnknown::from_i32(c.encoding);
                raw.data = s.data(c).to_vec();
                raw.hash = xxh64(&raw.data, 0);
                let mut aggr = store_types::AggrChunk::new();
                aggr.min_time = c.min_time;
                aggr.max_time = c.max_time;
                aggr.raw = MessageField::some(raw);
                out.chunks.push(aggr);
            }
            batch.series.push(out);
        }
        batch
    }

    fn frame_series() -> Vec<prom_types::ChunkedSeries> {
        vec![
            remote_read::chunked_series(
                &[("__name__", "up"), ("empty", ""), ("job", "x")],
                vec![
                    chunk(-5, 1_700_000_000_000, 1, &[1, 2, 3]),
                    chunk(0, 0, 2, &[]),
                    chunk(7, i64::MAX, 3, &[9; 300]),
                ],
            ),
            remote_read::chunked_series(&[("", "v")], vec![]),
            remote_read::chunked_series(&[], vec![chunk(1, 2, 0, &[4])]),
        ]
    }

    fn scanned(frame: &[u8]) -> Vec<Series> {
        let bytes = Arc::new(frame.to_vec());
        scan_frame(frame)
            .unwrap()
            .into_iter()
            .map(|s| Series {
                labels: s.labels,
                chunks: s.chunks,
                bytes: bytes.clone(),
            })
            .collect()
    }

    #[test]
    fn a_scanned_frame_reads_as_the_decoded_message() {
        let mut msg = prom_remote::ChunkedReadResponse::new();
        msg.chunked_series = frame_series();
        msg.query_index = 3;
        let frame = msg.write_to_bytes().unwrap();
        let series = scanned(&frame);
        assert_eq!(series.len(), 3);
        for (got, want) in series.iter().zip(&msg.chunked_series) {
            let labels: Key = want
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            assert_eq!(got.labels, labels);
            assert_eq!(got.chunks.len(), want.chunks.len());
            for (c, w) in got.chunks.iter().zip(&want.chunks) {
                assert_eq!(
                    (c.min_time, c.max_time, c.encoding, got.data(c)),
                    (
                        w.min_time_ms,
                        w.max_time_ms,
                        w.type_.value() - 1,
                        w.data.as_slice()
                    )
                );
                assert_eq!(c.hash, xxh64(&w.data, 0));
            }
        }
    }

    #[test]
    fn responses_are_byte_identical_to_encoded_messages() {
        let mut msg = prom_remote::ChunkedReadResponse::new();
        msg.chunked_series = frame_series();
        let series = scanned(&msg.write_to_bytes().unwrap());
        let want = by_messages(&series);
        for (s, w) in series.iter().zip(&want.series) {
            let mut resp = store::SeriesResponse::new();
            resp.set_series(w.clone());
            assert_eq!(
                Response::Series(s.clone()).to_bytes().unwrap(),
                resp.write_to_bytes().unwrap()
            );
        }
        let mut resp = store::SeriesResponse::new();
        resp.set_batch(want);
        assert_eq!(
            Response::Batch(series).to_bytes().unwrap(),
            resp.write_to_bytes().unwrap()
        );
        let mut empty = store::SeriesResponse::new();
        empty.set_batch(store_types::SeriesBatch::new());
        assert_eq!(
            Response::Batch(vec![]).to_bytes().unwrap(),
            empty.write_to_bytes().unwrap()
        );
    }

    #[test]
    fn unknown_fields_are_skipped_and_broken_frames_refused() {
        let mut msg = prom_remote::ChunkedReadResponse::new();
        msg.chunked_series = frame_series();
        let mut frame = msg.write_to_bytes().unwrap();
        // Field 9 (varint 1) at the top and, in a new series, field 7
        // (bytes "ab") before a label.
        frame.extend_from_slice(&[9 << 3, 1]);
        frame.extend_from_slice(&[tag(1, LEN) as u8, 9, 7 << 3 | 2, 2, b'a', b'b']);
        frame.extend_from_slice(&[tag(1, LEN) as u8, 3, tag(1, LEN) as u8, 1, b'n']);
        let series = scan_frame(&frame).unwrap();
        assert_eq!(series.len(), 4);
        assert_eq!(series[3].labels, vec![("n".to_string(), String::new())]);
        for cut in [1, 2, 7] {
            assert!(scan_frame(&frame[..frame.len() - cut]).is_err(), "{cut}");
        }
        // A label that is not UTF-8.
        let bad = [tag(1, LEN) as u8, 5, tag(1, LEN) as u8, 3, 10, 1, 0xff];
        assert!(scan_frame(&bad).is_err());
    }

    #[test]
    fn owned_series_hash_and_locate_their_chunks() {
        let s = Series::owned(
            vec![("a".into(), "b".into())],
            vec![(1, 2, 0, vec![1, 2]), (3, 4, 1, vec![]), (5, 6, 0, vec![7])],
        );
        let got: Vec<&[u8]> = s.chunks.iter().map(|c| s.data(c)).collect();
        assert_eq!(got, vec![&[1u8, 2][..], &[][..], &[7][..]]);
        assert_eq!(s.chunks[2].hash, xxh64(&[7], 0));
        assert_eq!(s.chunks[1].encoding, 1);
    }
}
