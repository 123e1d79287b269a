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
//! answers are byte for byte what encoding the messages gave; tests pin it,
//! and an integration test compares them with Thanos' own sidecar.
//!
//! The wire format is read and written by the few lines below rather than
//! with protobuf's `CodedInputStream`/`CodedOutputStream`: their per-field
//! calls (limits, buffer checks, not inlined across the crate) cost about
//! 600 instructions per chunk each way, more than hashing the chunk.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

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

/// Why a frame could not be read; the texts follow protobuf's decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    UnexpectedEof,
    IncorrectVarint,
    UnknownWireType(u8),
    Utf8,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::UnexpectedEof => f.write_str("unexpected EOF"),
            Error::IncorrectVarint => f.write_str("incorrect varint"),
            Error::UnknownWireType(w) => write!(f, "unknown wire type {w}"),
            Error::Utf8 => f.write_str("invalid UTF-8 sequence"),
        }
    }
}

impl std::error::Error for Error {}

// Wire types of the fields read and written.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A field's key as written: field number and wire type in one byte (every
/// field here is numbered below 16).
const fn key(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}

/// A cursor over one message (or a nested one: `end` bounds it).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// Most varints here (keys, encodings, short lengths) are one byte.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Error> {
        match self.buf[..self.end].get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            Some(_) => self.long_varint(),
            None => Err(Error::UnexpectedEof),
        }
    }

    fn long_varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for (i, &b) in self.buf[self.pos..self.end].iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if self.end - self.pos < 10 {
            Err(Error::UnexpectedEof)
        } else {
            Err(Error::IncorrectVarint)
        }
    }

    /// The next field's number and wire type, `None` at the end.
    #[inline(always)]
    fn field(&mut self) -> Result<Option<(u64, u8)>, Error> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    /// A length-delimited field's bytes, as a range of the buffer.
    #[inline(always)]
    fn len_delimited(&mut self) -> Result<Range<usize>, Error> {
        let len = self.varint()?;
        let start = self.pos;
        if len > (self.end - start) as u64 {
            return Err(Error::UnexpectedEof);
        }
        self.pos = start + len as usize;
        Ok(start..self.pos)
    }

    fn nested(&self, range: Range<usize>) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos: range.start,
            end: range.end,
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        let range = self.len_delimited()?;
        std::str::from_utf8(&self.buf[range])
            .map(str::to_string)
            .map_err(|_| Error::Utf8)
    }

    /// Steps over a field this reader does not use, as a decoder would.
    fn skip(&mut self, wire: u8) -> Result<(), Error> {
        let size = match wire {
            VARINT => return self.varint().map(drop),
            LEN => return self.len_delimited().map(drop),
            FIXED64 => 8,
            FIXED32 => 4,
            other => return Err(Error::UnknownWireType(other)),
        };
        if self.end - self.pos < size {
            return Err(Error::UnexpectedEof);
        }
        self.pos += size;
        Ok(())
    }
}

/// Reads a `prometheus.ChunkedReadResponse` frame: labels decoded, chunks
/// located and hashed. Unknown fields are skipped, as a decoder would.
pub fn scan_frame(frame: &[u8]) -> Result<Vec<Scanned>, Error> {
    let mut r = Reader {
        buf: frame,
        pos: 0,
        end: frame.len(),
    };
    let mut out = Vec::with_capacity(1);
    while let Some((field, wire)) = r.field()? {
        match (field, wire) {
            // repeated ChunkedSeries chunked_series = 1;
            (1, LEN) => {
                let range = r.len_delimited()?;
                out.push(scan_series(r.nested(range))?);
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(out)
}

/// `prometheus.ChunkedSeries { repeated Label labels = 1; repeated Chunk chunks = 2; }`
fn scan_series(mut r: Reader) -> Result<Scanned, Error> {
    let mut labels = Vec::new();
    let mut chunks = Vec::new();
    while let Some((field, wire)) = r.field()? {
        match (field, wire) {
            (1, LEN) => {
                let range = r.len_delimited()?;
                labels.push(scan_label(r.nested(range))?);
            }
            (2, LEN) => {
                let range = r.len_delimited()?;
                chunks.push(scan_chunk(r.nested(range))?);
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(Scanned { labels, chunks })
}

/// `thanos.Label { string name = 1; string value = 2; }`
fn scan_label(mut r: Reader) -> Result<(String, String), Error> {
    let (mut name, mut value) = (String::new(), String::new());
    while let Some((field, wire)) = r.field()? {
        match (field, wire) {
            (1, LEN) => name = r.string()?,
            (2, LEN) => value = r.string()?,
            _ => r.skip(wire)?,
        }
    }
    Ok((name, value))
}

/// `prometheus.Chunk { int64 min_time_ms = 1; int64 max_time_ms = 2;
/// Encoding type = 3; bytes data = 4; }`
fn scan_chunk(mut r: Reader) -> Result<Chunk, Error> {
    let (mut min_time, mut max_time, mut remote_type) = (0, 0, 0);
    let mut data = 0..0;
    while let Some((field, wire)) = r.field()? {
        match (field, wire) {
            // int64 and enum values travel as two's complement varints.
            (1, VARINT) => min_time = r.varint()? as i64,
            (2, VARINT) => max_time = r.varint()? as i64,
            (3, VARINT) => remote_type = r.varint()? as i32,
            (4, LEN) => data = r.len_delimited()?,
            _ => r.skip(wire)?,
        }
    }
    Ok(Chunk {
        min_time,
        max_time,
        // Remote read numbers encodings from UNKNOWN = 0, Thanos from XOR = 0.
        encoding: remote_type.wrapping_sub(1),
        hash: xxh64(&r.buf[data.clone()], 0),
        data,
    })
}

impl Response {
    /// The encoded `thanos.SeriesResponse`, in a buffer of exactly its size.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            // oneof result { Series series = 1; SeriesBatch batch = 4; }
            Response::Series(s) => {
                let size = series_size(s);
                let mut out = Vec::with_capacity(nested(size));
                write_series(&mut out, 1, s, size);
                out
            }
            Response::Batch(all) => {
                let sizes: Vec<usize> = all.iter().map(series_size).collect();
                let batch: usize = sizes.iter().map(|&size| nested(size)).sum();
                let mut out = Vec::with_capacity(nested(batch));
                out.push(key(4, LEN));
                put_varint(&mut out, batch as u64);
                for (s, size) in all.iter().zip(sizes) {
                    // SeriesBatch { repeated Series series = 1; }
                    write_series(&mut out, 1, s, size);
                }
                out
            }
        }
    }
}

/// Bytes of `v` as a varint.
#[inline]
fn varint_len(v: u64) -> usize {
    // 7 bits a byte; `| 1` counts 0 as one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline(always)]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    // A push a byte: appending a stack buffer instead calls memcpy, which
    // costs more for these few bytes (measured with callgrind).
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A message field of `body` bytes: its key, length and body.
#[inline]
fn nested(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

/// A proto3 scalar, left out at its default.
#[inline]
fn varint_field(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v)
    }
}

#[inline]
fn bytes_field(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        nested(len)
    }
}

/// `thanos.Label { string name = 1; string value = 2; }`
fn label_size(name: &str, value: &str) -> usize {
    bytes_field(name.len()) + bytes_field(value.len())
}

/// `thanos.Chunk { Encoding type = 1; bytes data = 2; uint64 hash = 3; }`
/// (an enum is written as its int32 sign-extended to 64 bits).
#[inline]
fn raw_size(c: &Chunk) -> usize {
    varint_field(c.encoding as i64 as u64) + bytes_field(c.data.len()) + varint_field(c.hash)
}

/// `thanos.AggrChunk { int64 min_time = 1; int64 max_time = 2; Chunk raw = 3; }`
/// (`raw` is always set, so written even when empty).
#[inline]
fn aggr_size(raw: usize, c: &Chunk) -> usize {
    varint_field(c.min_time as u64) + varint_field(c.max_time as u64) + nested(raw)
}

/// `thanos.Series { repeated Label labels = 1; repeated AggrChunk chunks = 2; }`
fn series_size(s: &Series) -> usize {
    let labels: usize = s.labels.iter().map(|(n, v)| nested(label_size(n, v))).sum();
    let chunks: usize = s
        .chunks
        .iter()
        .map(|c| nested(aggr_size(raw_size(c), c)))
        .sum();
    labels + chunks
}

/// The series as field `field`: key, length (`size`, its `series_size`), body.
fn write_series(out: &mut Vec<u8>, field: u8, s: &Series, size: usize) {
    out.push(key(field, LEN));
    put_varint(out, size as u64);
    for (name, value) in &s.labels {
        out.push(key(1, LEN));
        put_varint(out, label_size(name, value) as u64);
        write_bytes(out, 1, name.as_bytes());
        write_bytes(out, 2, value.as_bytes());
    }
    for c in &s.chunks {
        let raw = raw_size(c);
        out.push(key(2, LEN));
        put_varint(out, aggr_size(raw, c) as u64);
        write_varint(out, 1, c.min_time as u64);
        write_varint(out, 2, c.max_time as u64);
        out.push(key(3, LEN));
        put_varint(out, raw as u64);
        write_varint(out, 1, c.encoding as i64 as u64);
        write_bytes(out, 2, s.data(c));
        write_varint(out, 3, c.hash);
    }
}

#[inline]
fn write_varint(out: &mut Vec<u8>, field: u8, v: u64) {
    if v != 0 {
        out.push(key(field, VARINT));
        put_varint(out, v);
    }
}

#[inline]
fn write_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    if !b.is_empty() {
        out.push(key(field, LEN));
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
}

/// gRPC's serializer for the server side of `Series` (build.rs names it):
/// the answer is written once, and the buffer becomes gRPC's slice as it is
/// (a Vec whose length is its capacity is handed over without a copy).
pub fn ser(resp: &Response, buf: &mut grpcio::GrpcSlice) -> grpcio::Result<()> {
    *buf = grpcio::GrpcSlice::from(resp.to_bytes());
    Ok(())
}

/// The server never reads a `SeriesResponse`; clients decode it with the
/// generated message (`proto::store::SeriesResponse`).
pub fn de(_: grpcio::MessageReader) -> grpcio::Result<Response> {
    Err(grpcio::Error::Codec(
        "Series answers are only written by the server".into(),
    ))
}

/// `thanos.Store/Series` for a client that takes each answer as its bytes:
/// gathered into one buffer, then parsed from the slice, as Go's gRPC and
/// Thanos' querier do. grpcio's own decoder parses through a reader over
/// gRPC's slices, which costs a client more per chunk; the benchmarks use
/// this so the client's work matches that of a direct remote read, and
/// tests use it to compare answers byte for byte.
pub const SERIES_AS_BYTES: grpcio::Method<crate::proto::store::SeriesRequest, Vec<u8>> =
    grpcio::Method {
        ty: grpcio::MethodType::ServerStreaming,
        name: "/thanos.Store/Series",
        req_mar: grpcio::Marshaller {
            ser: grpcio::pb_ser,
            de: grpcio::pb_de,
        },
        resp_mar: grpcio::Marshaller {
            ser: |_, _| Err(grpcio::Error::Codec("answers are only read".into())),
            de: answer_bytes,
        },
    };

fn answer_bytes(mut reader: grpcio::MessageReader) -> grpcio::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(reader.len());
    std::io::Read::read_to_end(&mut reader, &mut bytes)
        .map_err(|e| grpcio::Error::Codec(Box::new(e)))?;
    Ok(bytes)
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
                Response::Series(s.clone()).to_bytes(),
                resp.write_to_bytes().unwrap()
            );
        }
        let mut resp = store::SeriesResponse::new();
        resp.set_batch(want);
        assert_eq!(
            Response::Batch(series).to_bytes(),
            resp.write_to_bytes().unwrap()
        );
        let mut empty = store::SeriesResponse::new();
        empty.set_batch(store_types::SeriesBatch::new());
        assert_eq!(
            Response::Batch(vec![]).to_bytes(),
            empty.write_to_bytes().unwrap()
        );
    }

    #[test]
    fn lengths_and_values_at_every_varint_boundary_encode_identically() {
        let sizes = [0usize, 1, 127, 128, 16_383, 16_384, 70_000];
        let times = [0i64, 1, -1, 127, 128, i64::MIN, i64::MAX, 1_700_000_000_000];
        let mut chunks = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            for (j, &t) in times.iter().enumerate() {
                let data: Vec<u8> = (0..len).map(|b| (b * 31 + i + j) as u8).collect();
                chunks.push(chunk(
                    t,
                    times[(j + 3) % times.len()],
                    (i + j) as i32 % 4,
                    &data,
                ));
            }
        }
        let long: Vec<String> = sizes.iter().map(|&n| "é".repeat(n / 2)).collect();
        let pairs: Vec<(&str, &str)> = long
            .iter()
            .zip(long.iter().rev())
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut msg = prom_remote::ChunkedReadResponse::new();
        msg.chunked_series
            .push(remote_read::chunked_series(&pairs, chunks));
        let series = scanned(&msg.write_to_bytes().unwrap());
        let want = by_messages(&series);
        let mut resp = store::SeriesResponse::new();
        resp.set_series(want.series[0].clone());
        let got = Response::Series(series[0].clone()).to_bytes();
        assert_eq!(got.len(), got.capacity(), "sized exactly");
        assert!(got == resp.write_to_bytes().unwrap());
        let mut resp = store::SeriesResponse::new();
        resp.set_batch(want);
        let got = Response::Batch(vec![series[0].clone(); 3]).to_bytes();
        let mut batch = store_types::SeriesBatch::new();
        batch.series = vec![resp.batch().series[0].clone(); 3];
        resp.set_batch(batch);
        assert_eq!(got.len(), got.capacity(), "sized exactly");
        assert!(got == resp.write_to_bytes().unwrap());
    }

    #[test]
    fn unknown_fields_are_skipped_and_broken_frames_refused() {
        let mut msg = prom_remote::ChunkedReadResponse::new();
        msg.chunked_series = frame_series();
        let mut frame = msg.write_to_bytes().unwrap();
        // Field 9 (varint 1) at the top and, in a new series, field 7
        // (bytes "ab") before a label.
        frame.extend_from_slice(&[9 << 3, 1]);
        frame.extend_from_slice(&[key(1, LEN), 9, 7 << 3 | 2, 2, b'a', b'b']);
        frame.extend_from_slice(&[key(1, LEN), 3, key(1, LEN), 1, b'n']);
        let series = scan_frame(&frame).unwrap();
        assert_eq!(series.len(), 4);
        assert_eq!(series[3].labels, vec![("n".to_string(), String::new())]);
        for cut in [1, 2, 7] {
            assert!(scan_frame(&frame[..frame.len() - cut]).is_err(), "{cut}");
        }
        // A key of eleven bytes; one cut short.
        assert_eq!(scan_frame(&[0xff; 11]).err(), Some(Error::IncorrectVarint));
        assert_eq!(scan_frame(&[0xff; 3]).err(), Some(Error::UnexpectedEof));
        // A label that is not UTF-8.
        let bad = [key(1, LEN), 5, key(1, LEN), 3, 10, 1, 0xff];
        assert_eq!(scan_frame(&bad).err(), Some(Error::Utf8));
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
