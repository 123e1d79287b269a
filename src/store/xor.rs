//! Prometheus' XOR chunk format (`tsdb/chunkenc/xor.go`).
//!
//! The encoder builds chunks for the remote-read SAMPLES fallback; the
//! decoder serves the `store series` client subcommand and the tests. The
//! streamed path never re-encodes: Prometheus' chunk bytes pass through.

/// Thanos cuts SAMPLES answers into chunks of at most this many samples.
pub const MAX_SAMPLES_PER_CHUNK: usize = 120;

/// Bits written most significant first, as Prometheus' `bstream` lays them
/// out; the histogram decoder's tests build chunks with it too.
pub(super) struct BitWriter {
    pub(super) bytes: Vec<u8>,
    /// Bits still free in the last byte (0 when a new byte is needed).
    free: u8,
}

impl BitWriter {
    pub(super) fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bytes),
            free: 0,
        }
    }

    pub(super) fn bit(&mut self, one: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        if one {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 1 << (self.free - 1);
            }
        }
        self.free -= 1;
    }

    /// The low `n` bits of `value`, most significant first.
    pub(super) fn bits(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    pub(super) fn byte(&mut self, b: u8) {
        self.bits(b as u64, 8);
    }
}

/// Encodes up to 65535 samples as one XOR chunk.
pub fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(2 + samples.len() * 2);
    w.byte(0);
    w.byte(0);
    let (mut t_prev, mut v_prev, mut delta_prev) = (0i64, 0f64, 0i64);
    // 0xff: no window yet, as Prometheus marks it.
    let (mut leading, mut trailing) = (0xffu8, 0u8);
    for (i, &(t, v)) in samples.iter().enumerate() {
        match i {
            0 => {
                let zigzag = ((t << 1) ^ (t >> 63)) as u64;
                put_uvarint(&mut w, zigzag);
                w.bits(v.to_bits(), 64);
            }
            1 => {
                let delta = t.wrapping_sub(t_prev);
                put_uvarint(&mut w, delta as u64);
                xor_write(&mut w, v, v_prev, &mut leading, &mut trailing);
                delta_prev = delta;
            }
            _ => {
                let delta = t.wrapping_sub(t_prev);
                let dod = delta.wrapping_sub(delta_prev);
                if dod == 0 {
                    w.bit(false);
                } else if (-8191..=8192).contains(&dod) {
                    w.bits(0b10, 2);
                    w.bits(dod as u64, 14);
                } else if (-65535..=65536).contains(&dod) {
                    w.bits(0b110, 3);
                    w.bits(dod as u64, 17);
                } else if (-524287..=524288).contains(&dod) {
                    w.bits(0b1110, 4);
                    w.bits(dod as u64, 20);
                } else {
                    w.bits(0b1111, 4);
                    w.bits(dod as u64, 64);
                }
                xor_write(&mut w, v, v_prev, &mut leading, &mut trailing);
                delta_prev = delta;
            }
        }
        t_prev = t;
        v_prev = v;
    }
    let count = (samples.len().min(u16::MAX as usize) as u16).to_be_bytes();
    w.bytes[0] = count[0];
    w.bytes[1] = count[1];
    w.bytes
}

fn put_uvarint(w: &mut BitWriter, mut x: u64) {
    while x >= 0x80 {
        w.byte((x as u8) | 0x80);
        x >>= 7;
    }
    w.byte(x as u8);
}

pub(super) fn xor_write(w: &mut BitWriter, v: f64, prev: f64, leading: &mut u8, trailing: &mut u8) {
    let delta = v.to_bits() ^ prev.to_bits();
    if delta == 0 {
        w.bit(false);
        return;
    }
    w.bit(true);
    let new_leading = (delta.leading_zeros() as u8).min(31);
    let new_trailing = delta.trailing_zeros() as u8;
    if *leading != 0xff && new_leading >= *leading && new_trailing >= *trailing {
        w.bit(false);
        w.bits(delta >> *trailing, 64 - *leading as u32 - *trailing as u32);
        return;
    }
    *leading = new_leading;
    *trailing = new_trailing;
    w.bit(true);
    w.bits(new_leading as u64, 5);
    let significant = 64 - new_leading as u32 - new_trailing as u32;
    // 64 significant bits do not fit in 6 bits; they are written as 0.
    w.bits(significant as u64 & 0x3f, 6);
    w.bits(delta >> new_trailing, significant);
}

/// Reads what [`BitWriter`] writes; shared with the histogram decoder,
/// whose chunks use the same bit stream. `what` names the chunk in errors.
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        BitReader {
            bytes,
            pos: 0,
            what,
        }
    }

    /// An error naming the chunk kind: "`what` chunk <problem>".
    pub(super) fn error(&self, problem: &str) -> String {
        format!("{} chunk {problem}", self.what)
    }

    /// Bits not yet read, to bound what a length field may claim.
    pub(super) fn remaining(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(self.pos)
    }

    pub(super) fn bit(&mut self) -> Result<bool, String> {
        let byte = self
            .bytes
            .get(self.pos / 8)
            .ok_or_else(|| self.error("ends early"))?;
        let b = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Ok(b)
    }

    /// `n` (at most 64) bits, most significant first, taken a byte's worth
    /// at a time: a value's bits one by one made decoding cost ~100 ns a
    /// sample (BENCHMARKS.md, Series: the benchmark client).
    pub(super) fn bits(&mut self, n: u32) -> Result<u64, String> {
        debug_assert!(n <= 64);
        if self.remaining() < n as usize {
            return Err(self.error("ends early"));
        }
        let mut v = 0u64;
        let mut need = n;
        while need > 0 {
            let byte = u64::from(self.bytes[self.pos / 8]);
            let avail = 8 - (self.pos % 8) as u32;
            let take = avail.min(need);
            // `take` ≤ 8 and `v` holds n − need bits, so nothing shifts out.
            v = (v << take) | ((byte >> (avail - take)) & ((1 << take) - 1));
            self.pos += take as usize;
            need -= take;
        }
        Ok(v)
    }

    fn uvarint(&mut self) -> Result<u64, String> {
        let mut x = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.bits(8)?;
            x |= (b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(self.error("has an overlong varint"))
    }
}

/// Decodes an XOR chunk into (timestamp ms, value) pairs.
pub fn decode(chunk: &[u8]) -> Result<Vec<(i64, f64)>, String> {
    if chunk.len() < 2 {
        return Err("XOR chunk shorter than its header".into());
    }
    let count = u16::from_be_bytes([chunk[0], chunk[1]]) as usize;
    let mut r = BitReader::new(&chunk[2..], "XOR");
    let mut out = Vec::with_capacity(count);
    let (mut t, mut v, mut delta) = (0i64, 0f64, 0i64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    for i in 0..count {
        match i {
            0 => {
                let zigzag = r.uvarint()?;
                t = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
                v = f64::from_bits(r.bits(64)?);
            }
            1 => {
                delta = r.uvarint()? as i64;
                t = t.wrapping_add(delta);
                v = xor_read(&mut r, v, &mut leading, &mut trailing)?;
            }
            _ => {
                let mut prefix = 0;
                while prefix < 4 && r.bit()? {
                    prefix += 1;
                }
                let dod = match prefix {
                    0 => 0,
                    4 => r.bits(64)? as i64,
                    _ => {
                        let size = [0, 14, 17, 20][prefix];
                        let bits = r.bits(size)? as i64;
                        if bits > 1 << (size - 1) {
                            bits - (1 << size)
                        } else {
                            bits
                        }
                    }
                };
                delta = delta.wrapping_add(dod);
                t = t.wrapping_add(delta);
                v = xor_read(&mut r, v, &mut leading, &mut trailing)?;
            }
        }
        out.push((t, v));
    }
    Ok(out)
}

/// One value XOR-ed against `prev` with the window (`leading`, `trailing`)
/// the previous value left; histogram sums and float buckets use it too.
pub(super) fn xor_read(
    r: &mut BitReader,
    prev: f64,
    leading: &mut u32,
    trailing: &mut u32,
) -> Result<f64, String> {
    if !r.bit()? {
        return Ok(prev);
    }
    if r.bit()? {
        *leading = r.bits(5)? as u32;
        let mut significant = r.bits(6)? as u32;
        if significant == 0 {
            significant = 64;
        }
        *trailing = 64u32
            .checked_sub(*leading + significant)
            .ok_or_else(|| r.error("has an impossible bit window"))?;
    }
    let significant = 64u32
        .checked_sub(*leading + *trailing)
        .ok_or_else(|| r.error("has an impossible bit window"))?;
    let bits = r.bits(significant)?;
    Ok(f64::from_bits(prev.to_bits() ^ (bits << *trailing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
    }

    #[test]
    fn bits_read_at_every_offset_and_width_as_one_by_one() {
        let bytes: Vec<u8> = (0..40u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for offset in 0..16 {
            for n in 0..=64 {
                let mut fast = BitReader::new(&bytes, "XOR");
                let mut slow = BitReader::new(&bytes, "XOR");
                fast.pos = offset;
                slow.pos = offset;
                let mut want = 0u64;
                for _ in 0..n {
                    want = (want << 1) | slow.bit().unwrap() as u64;
                }
                assert_eq!(fast.bits(n).unwrap(), want, "offset {offset}, {n} bits");
                assert_eq!(fast.pos, slow.pos);
            }
        }
        let mut r = BitReader::new(&bytes[..1], "XOR");
        r.pos = 3;
        assert_eq!(r.bits(6).unwrap_err(), "XOR chunk ends early");
    }

    #[test]
    fn round_trips_awkward_values_and_gaps() {
        let samples = vec![
            (-5_000, 1.0),
            (10_000, 1.0),
            (25_000, f64::NAN),
            (40_000, f64::INFINITY),
            (40_001, f64::NEG_INFINITY),
            (1_000_000, -3.25),
            (1_000_015, 0.1),
            (900_000_000, 1e300),
            (900_000_001, -0.0),
            (900_065_537, 12345.678),
            (i64::MAX / 2, 5e-324),
        ];
        for n in 0..=samples.len() {
            let chunk = encode(&samples[..n]);
            let back = decode(&chunk).unwrap();
            assert!(same(&back, &samples[..n]), "n={n}: {back:?}");
        }
    }

    #[test]
    fn a_regular_counter_is_compact() {
        let samples: Vec<(i64, f64)> = (0..120).map(|i| (i * 15_000, i as f64)).collect();
        let chunk = encode(&samples);
        assert!(chunk.len() < 200, "{} bytes", chunk.len());
        assert!(same(&decode(&chunk).unwrap(), &samples));
    }

    #[test]
    fn truncated_chunks_are_errors() {
        let chunk = encode(&[(1, 1.0), (2, 2.0), (3, 4.0)]);
        assert!(decode(&chunk[..chunk.len() - 2]).is_err());
        assert!(decode(&[0]).is_err());
    }
}
