//! Prometheus remote read as the sidecar uses it (`storage/remote` in
//! Prometheus, `pkg/store/prometheus.go` in Thanos): the request
//! body, and an incremental reader of the streamed, framed answer.

use std::io::{BufRead, BufReader, Read};

use protobuf::Message;

use crate::proto::{prom_remote, prom_types};
use crate::store::matchers::Matcher;

/// Prometheus' `DefaultChunkedReadLimit`: the largest frame accepted.
pub const MAX_FRAME: u64 = 50_000_000;

pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
pub const SAMPLES_CONTENT_TYPE: &str = "application/x-protobuf";

/// One query for `[start, end]`, accepting streamed chunks first, then samples.
pub fn request(start_ms: i64, end_ms: i64, matchers: &[Matcher]) -> prom_remote::ReadRequest {
    use prom_remote::read_request::ResponseType;
    let mut query = prom_remote::Query::new();
    query.start_timestamp_ms = start_ms;
    query.end_timestamp_ms = end_ms;
    query.matchers = matchers.iter().map(Matcher::to_remote_read).collect();
    let mut req = prom_remote::ReadRequest::new();
    req.queries.push(query);
    req.accepted_response_types = vec![
        ResponseType::STREAMED_XOR_CHUNKS.into(),
        ResponseType::SAMPLES.into(),
    ];
    req
}

/// The request as Prometheus wants it on the wire: snappy block format.
pub fn encode_request(req: &prom_remote::ReadRequest) -> Result<Vec<u8>, String> {
    let bytes = req.write_to_bytes().map_err(|e| e.to_string())?;
    snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .map_err(|e| e.to_string())
}

/// Bytes read ahead of a frame (see [`FrameReader::new`]).
const FRAME_HEAD_BUFFER: usize = 4 * 1024;

/// Reads `uvarint length, big-endian CRC-32C, payload` frames one at a time;
/// memory is the frames the caller still holds, however long the stream.
pub struct FrameReader<R: Read> {
    reader: BufReader<R>,
}

impl<R: Read> FrameReader<R> {
    pub fn new(reader: R) -> Self {
        FrameReader {
            // Small on purpose: the buffer serves the few bytes of each
            // frame's length and checksum. A frame's body is read with one
            // `read_exact`, which std's BufReader hands straight to the inner
            // reader once its buffer is drained, so only what the buffer
            // already holds (at most this much) is copied twice. With 64 KiB
            // most of every frame was (BENCHMARKS.md, Series profile).
            reader: BufReader::with_capacity(FRAME_HEAD_BUFFER, reader),
        }
    }

    /// The next frame, decoded; `None` at a clean end of stream.
    pub fn next_frame(&mut self) -> Result<Option<prom_remote::ChunkedReadResponse>, String> {
        let Some(payload) = self.next_payload()? else {
            return Ok(None);
        };
        prom_remote::ChunkedReadResponse::parse_from_bytes(&payload)
            .map(Some)
            .map_err(|e| format!("decoding frame: {e}"))
    }

    /// The next frame's checked payload, its own buffer (the Series path
    /// sends its chunks from it); `None` at a clean end of stream.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, String> {
        let Some(size) = self.uvarint()? else {
            return Ok(None);
        };
        if size > MAX_FRAME {
            return Err(format!(
                "chunked read frame of {size} bytes exceeds the limit of {MAX_FRAME}"
            ));
        }
        let mut crc = [0u8; 4];
        self.reader
            .read_exact(&mut crc)
            .map_err(|e| format!("reading frame checksum: {e}"))?;
        let mut payload = vec![0; size as usize];
        self.reader
            .read_exact(&mut payload)
            .map_err(|e| format!("reading frame of {size} bytes: {e}"))?;
        let want = u32::from_be_bytes(crc);
        let got = crc32c::crc32c(&payload);
        if want != got {
            return Err(format!(
                "chunked read frame checksum mismatch: expected {want:#010x}, got {got:#010x}"
            ));
        }
        Ok(Some(payload))
    }

    fn uvarint(&mut self) -> Result<Option<u64>, String> {
        let mut x = 0u64;
        for i in 0..10 {
            let buf = self
                .reader
                .fill_buf()
                .map_err(|e| format!("reading frame length: {e}"))?;
            let Some(&b) = buf.first() else {
                return if i == 0 {
                    Ok(None)
                } else {
                    Err("stream ends inside a frame length".into())
                };
            };
            self.reader.consume(1);
            x |= ((b & 0x7f) as u64) << (7 * i);
            if b < 0x80 {
                return Ok(Some(x));
            }
        }
        Err("frame length varint is too long".into())
    }
}

/// Writes one frame as Prometheus does; used by tests and benchmarks.
pub fn write_frame(
    out: &mut Vec<u8>,
    msg: &prom_remote::ChunkedReadResponse,
) -> Result<(), String> {
    let payload = msg.write_to_bytes().map_err(|e| e.to_string())?;
    let mut n = payload.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// A remote-read series as the tests and the SAMPLES path build them.
pub fn chunked_series(
    labels: &[(&str, &str)],
    chunks: Vec<prom_types::Chunk>,
) -> prom_types::ChunkedSeries {
    let mut s = prom_types::ChunkedSeries::new();
    s.labels = labels
        .iter()
        .map(|(n, v)| {
            let mut l = crate::proto::labels::Label::new();
            l.name = n.to_string();
            l.value = v.to_string();
            l
        })
        .collect();
    s.chunks = chunks;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str) -> prom_remote::ChunkedReadResponse {
        let mut msg = prom_remote::ChunkedReadResponse::new();
        msg.chunked_series
            .push(chunked_series(&[("__name__", name)], vec![]));
        msg
    }

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut bytes = Vec::new();
        // Long enough for a two-byte length varint.
        let long = "x".repeat(300);
        for name in ["a", long.as_str(), "c"] {
            write_frame(&mut bytes, &frame(name)).unwrap();
        }
        let mut r = FrameReader::new(bytes.as_slice());
        let mut names = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            names.push(f.chunked_series[0].labels[0].value.clone());
        }
        assert_eq!(names, vec!["a".to_string(), long, "c".to_string()]);
    }

    #[test]
    fn corrupt_truncated_and_oversized_frames_fail() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &frame("a")).unwrap();
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = FrameReader::new(bad.as_slice()).next_frame().unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        let err = FrameReader::new(&bytes[..bytes.len() - 1])
            .next_frame()
            .unwrap_err();
        assert!(err.contains("reading frame"), "{err}");
        // 50,000,001 as a uvarint.
        let huge = [0x81, 0xe1, 0xeb, 0x17, 0, 0, 0, 0];
        let err = FrameReader::new(&huge[..]).next_frame().unwrap_err();
        assert!(err.contains("exceeds"), "{err}");
    }

    #[test]
    fn request_asks_for_streamed_chunks_first() {
        let m = Matcher::new(crate::store::matchers::Op::Eq, "job", "x").unwrap();
        let req = request(5, 10, &[m]);
        let body = encode_request(&req).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let back = prom_remote::ReadRequest::parse_from_bytes(&raw).unwrap();
        assert_eq!(back.queries.len(), 1);
        assert_eq!(back.queries[0].start_timestamp_ms, 5);
        assert_eq!(back.queries[0].matchers[0].name, "job");
        let types: Vec<i32> = back
            .accepted_response_types
            .iter()
            .map(|t| t.value())
            .collect();
        assert_eq!(types, vec![1, 0]);
        assert!(back.queries[0].hints.is_none());
    }
}
