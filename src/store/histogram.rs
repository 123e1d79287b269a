//! Decodes Prometheus' native-histogram chunks (`tsdb/chunkenc/histogram.go`
//! and `float_histogram.go`) so that `store series --samples` can print them.
//!
//! Both formats start like every Prometheus chunk with a big-endian sample
//! count, then one flag byte whose top two bits are the counter-reset header.
//! The first sample carries the bucket layout (zero threshold, schema,
//! positive and negative spans, and for schema -53 the custom bounds); later
//! samples reuse it, because Prometheus re-encodes the whole chunk (or cuts a
//! new one) when the layout changes. Integer chunks store counts as
//! delta-of-deltas, each bucket relative to its neighbour; float chunks XOR
//! every count against its previous value, like XOR chunks do.

use std::fmt::Write as _;

use super::xor::{xor_read, BitReader};

/// The custom-buckets schema (NHCB): bounds travel with the chunk.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// Prometheus' stale marker, a NaN with this bit pattern in the sum.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Which of the two chunk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `HISTOGRAM`: integer counts.
    Integer,
    /// `FLOAT_HISTOGRAM`: float counts.
    Float,
}

/// The chunk's counter-reset header (the flag byte's top two bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterReset {
    Unknown,
    Reset,
    NotReset,
    Gauge,
}

impl CounterReset {
    pub fn name(self) -> &'static str {
        match self {
            CounterReset::Unknown => "unknown",
            CounterReset::Reset => "reset",
            CounterReset::NotReset => "not_reset",
            CounterReset::Gauge => "gauge",
        }
    }
}

/// A count of observations: integer chunks hold whole numbers, float chunks
/// (the results of rate() and friends, or float-counting clients) do not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Count {
    Int(u64),
    Float(f64),
}

impl Count {
    fn is_zero(self) -> bool {
        match self {
            Count::Int(n) => n == 0,
            Count::Float(f) => f == 0.0,
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Int(n) => write!(f, "{n}"),
            Count::Float(v) => f.write_str(&go_g(*v)),
        }
    }
}

/// A run of `length` consecutive buckets, `offset` buckets after the end of
/// the previous span (the first span's offset is its first bucket's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// One bucket's boundaries, with Prometheus' inclusiveness rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
}

/// One decoded sample; bucket counts are absolute, in the order of
/// [`Chunk::positive`] and [`Chunk::negative`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub count: Count,
    pub zero_count: Count,
    pub sum: f64,
    pub positive: Vec<Count>,
    pub negative: Vec<Count>,
}

impl Sample {
    /// A stale marker carries no counts or buckets worth showing.
    pub fn is_stale(&self) -> bool {
        self.sum.to_bits() == STALE_NAN
    }
}

/// A decoded chunk: its layout, shared by every sample, and the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub kind: Kind,
    pub counter_reset: CounterReset,
    pub schema: i32,
    pub zero_threshold: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    pub custom_values: Vec<f64>,
    /// The bounds of each positive bucket the spans lay out.
    pub positive: Vec<Bounds>,
    /// The bounds of each negative bucket, nearest to zero first.
    pub negative: Vec<Bounds>,
    pub samples: Vec<Sample>,
}

impl Chunk {
    /// `sample` the way Prometheus' `String()` prints a histogram, so that a
    /// line can be compared with Prometheus' logs and test files:
    /// `{count:N, sum:S, [lower,upper):n, ...}` with the negative buckets,
    /// the zero bucket and the positive buckets in ascending order, buckets
    /// that count nothing left out; `stale` for a stale marker.
    pub fn render(&self, sample: &Sample) -> String {
        if sample.is_stale() {
            return "stale".into();
        }
        let mut out = format!("{{count:{}, sum:{}", sample.count, go_g(sample.sum));
        let bucket = |out: &mut String, b: &Bounds, n: Count| {
            let _ = write!(
                out,
                ", {}{},{}{}:{n}",
                if b.lower_inclusive { '[' } else { '(' },
                go_g(b.lower),
                go_g(b.upper),
                if b.upper_inclusive { ']' } else { ')' },
            );
        };
        for (b, n) in self.negative.iter().zip(&sample.negative).rev() {
            if !n.is_zero() {
                bucket(&mut out, b, *n);
            }
        }
        if !sample.zero_count.is_zero() {
            let zero = Bounds {
                lower: -self.zero_threshold,
                upper: self.zero_threshold,
                lower_inclusive: true,
                upper_inclusive: true,
            };
            bucket(&mut out, &zero, sample.zero_count);
        }
        for (b, n) in self.positive.iter().zip(&sample.positive) {
            if !n.is_zero() {
                bucket(&mut out, b, *n);
            }
        }
        out.push('}');
        out
    }
}

/// Decodes a native-histogram chunk of `kind`. Chunk bytes come from the
/// network: anything malformed is an error saying what is wrong.
pub fn decode(data: &[u8], kind: Kind) -> Result<Chunk, String> {
    let what = match kind {
        Kind::Integer => "histogram",
        Kind::Float => "float histogram",
    };
    let (count, flags) = match data {
        [hi, lo, flags, ..] => (u16::from_be_bytes([*hi, *lo]), *flags),
        _ => {
            return Err(format!(
                "{what} chunk of {} bytes is shorter than its 3-byte header",
                data.len()
            ))
        }
    };
    let counter_reset = match flags >> 6 {
        0b10 => CounterReset::Reset,
        0b01 => CounterReset::NotReset,
        0b11 => CounterReset::Gauge,
        _ => CounterReset::Unknown,
    };
    let mut chunk = Chunk {
        kind,
        counter_reset,
        schema: 0,
        zero_threshold: 0.0,
        positive_spans: Vec::new(),
        negative_spans: Vec::new(),
        custom_values: Vec::new(),
        positive: Vec::new(),
        negative: Vec::new(),
        samples: Vec::with_capacity(usize::from(count)),
    };
    if count == 0 {
        // The layout is written with the first sample: an empty chunk has none.
        return Ok(chunk);
    }
    let mut r = BitReader::new(&data[3..], what);
    read_layout(&mut r, &mut chunk)?;
    let buckets = (chunk.positive.len(), chunk.negative.len());
    match kind {
        Kind::Integer => read_integer_samples(&mut r, count, buckets, &mut chunk.samples)?,
        Kind::Float => read_float_samples(&mut r, count, buckets, &mut chunk.samples)?,
    }
    Ok(chunk)
}

fn read_layout(r: &mut BitReader, chunk: &mut Chunk) -> Result<(), String> {
    // A zero byte is 0, 255 announces a raw float, and anything else is
    // the exponent of a power of two (Prometheus' common thresholds).
    chunk.zero_threshold = match r.bits(8)? {
        0 => 0.0,
        255 => f64::from_bits(r.bits(64)?),
        b => ldexp(0.5, b as i64 - 243),
    };
    let schema = varbit_int(r)?;
    chunk.schema = i32::try_from(schema)
        .ok()
        .filter(|s| *s == CUSTOM_BUCKETS_SCHEMA || (-9..=8).contains(s))
        .ok_or_else(|| r.error(&format!("has schema {schema}; known are -9 to 8 and -53")))?;
    chunk.positive_spans = read_spans(r)?;
    chunk.negative_spans = read_spans(r)?;
    if chunk.schema == CUSTOM_BUCKETS_SCHEMA {
        let n = varbit_uint(r)?;
        // Each bound takes at least five bits.
        if n > (r.remaining() / 5) as u64 {
            return Err(r.error(&format!(
                "claims {n} custom bounds, more than its bits hold"
            )));
        }
        for _ in 0..n {
            chunk.custom_values.push(match varbit_uint(r)? {
                0 => f64::from_bits(r.bits(64)?),
                // Bounds that are multiples of 0.001 travel as 1000 * bound + 1.
                v => (v - 1) as f64 / 1000.0,
            });
        }
        if !chunk.negative_spans.is_empty() {
            return Err(r.error("has negative buckets with custom bounds"));
        }
    }
    let total: u64 = chunk
        .positive_spans
        .iter()
        .chain(&chunk.negative_spans)
        .map(|s| u64::from(s.length))
        .sum();
    // The first sample spends at least one bit on each bucket.
    if total > r.remaining() as u64 {
        return Err(r.error(&format!(
            "lays out {total} buckets, more than its bits hold"
        )));
    }
    chunk.positive = bucket_bounds(r, chunk, true)?;
    chunk.negative = bucket_bounds(r, chunk, false)?;
    Ok(())
}

fn read_spans(r: &mut BitReader) -> Result<Vec<Span>, String> {
    let n = varbit_uint(r)?;
    // Each span takes at least two bits.
    if n > (r.remaining() / 2) as u64 {
        return Err(r.error(&format!("claims {n} spans, more than its bits hold")));
    }
    let mut spans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let length = varbit_uint(r)?;
        let offset = varbit_int(r)?;
        spans.push(Span {
            length: u32::try_from(length)
                .map_err(|_| r.error(&format!("has a span of {length} buckets")))?,
            offset: i32::try_from(offset)
                .map_err(|_| r.error(&format!("has a span offset of {offset}")))?,
        });
    }
    Ok(spans)
}

fn bucket_bounds(r: &BitReader, chunk: &Chunk, positive: bool) -> Result<Vec<Bounds>, String> {
    let spans = if positive {
        &chunk.positive_spans
    } else {
        &chunk.negative_spans
    };
    let mut out = Vec::new();
    let mut index = 0i64;
    for (i, span) in spans.iter().enumerate() {
        // The first span's offset is an index, the others' a gap after the
        // previous span's last bucket.
        index = if i == 0 {
            i64::from(span.offset)
        } else {
            index.saturating_add(i64::from(span.offset))
        };
        for _ in 0..span.length {
            let b = if chunk.schema == CUSTOM_BUCKETS_SCHEMA {
                custom_bounds(r, &chunk.custom_values, index)?
            } else {
                let (near, far) = (
                    exponential_bound(index - 1, chunk.schema),
                    exponential_bound(index, chunk.schema),
                );
                let (lower, upper) = if positive { (near, far) } else { (-far, -near) };
                Bounds {
                    lower,
                    upper,
                    lower_inclusive: lower < 0.0,
                    upper_inclusive: upper > 0.0,
                }
            };
            out.push(b);
            index = index.saturating_add(1);
        }
    }
    Ok(out)
}

/// Bucket `index` of a custom layout ends at bound `index`; the bucket after
/// the last bound ends at +Inf, and the first starts, inclusively, at -Inf.
fn custom_bounds(r: &BitReader, bounds: &[f64], index: i64) -> Result<Bounds, String> {
    let at = |i: i64| -> Result<f64, String> {
        match usize::try_from(i) {
            Err(_) if i == -1 => Ok(f64::NEG_INFINITY),
            Ok(i) if i == bounds.len() => Ok(f64::INFINITY),
            Ok(i) if i < bounds.len() => Ok(bounds[i]),
            _ => Err(r.error(&format!(
                "has bucket {index} beyond its {} custom bounds",
                bounds.len()
            ))),
        }
    };
    Ok(Bounds {
        lower: at(index - 1)?,
        upper: at(index)?,
        lower_inclusive: index == 0,
        upper_inclusive: true,
    })
}

/// The upper bound of exponential bucket `index`: 2^(index * 2^-schema).
fn exponential_bound(index: i64, schema: i32) -> f64 {
    if schema < 0 {
        let exp = index.saturating_mul(1 << -schema);
        // The last finite bucket ends at the largest float, not at +Inf,
        // which has a bucket of its own.
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let fraction = BOUNDS_SCHEMA_8[((index & ((1 << schema) - 1)) << (8 - schema)) as usize];
    let exp = (index >> schema) + 1;
    if fraction == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(fraction, exp)
}

/// `x * 2^exp` in steps that stay in the normal range, so that only the last
/// multiplication can round.
fn ldexp(mut x: f64, exp: i64) -> f64 {
    let pow2 = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    let mut e = exp.clamp(-2200, 2200);
    while e > 1000 {
        x *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= pow2(-1000);
        e += 1000;
    }
    x * pow2(e)
}

fn read_integer_samples(
    r: &mut BitReader,
    count: u16,
    (np, nn): (usize, usize),
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    let (mut t, mut t_delta) = (0i64, 0i64);
    let (mut cnt, mut cnt_delta, mut zcnt, mut zcnt_delta) = (0u64, 0i64, 0u64, 0i64);
    let mut sum = 0.0;
    let (mut leading, mut trailing) = (0u32, 0u32);
    // Buckets as stored: each the difference to its neighbour below.
    let mut buckets = vec![0i64; np + nn];
    let mut deltas = vec![0i64; np + nn];
    for i in 0..count {
        if i == 0 {
            t = varbit_int(r)?;
            cnt = varbit_uint(r)?;
            zcnt = varbit_uint(r)?;
            sum = f64::from_bits(r.bits(64)?);
            for b in buckets.iter_mut() {
                *b = varbit_int(r)?;
            }
        } else {
            t_delta = t_delta.wrapping_add(varbit_int(r)?);
            t = t.wrapping_add(t_delta);
            cnt_delta = cnt_delta.wrapping_add(varbit_int(r)?);
            cnt = cnt.wrapping_add_signed(cnt_delta);
            zcnt_delta = zcnt_delta.wrapping_add(varbit_int(r)?);
            zcnt = zcnt.wrapping_add_signed(zcnt_delta);
            sum = xor_read(r, sum, &mut leading, &mut trailing)?;
            // A stale marker ends the chunk's counts: no buckets follow.
            if sum.to_bits() != STALE_NAN {
                for (b, d) in buckets.iter_mut().zip(deltas.iter_mut()) {
                    *d = d.wrapping_add(varbit_int(r)?);
                    *b = b.wrapping_add(*d);
                }
            }
        }
        let mut sample = Sample {
            t,
            count: Count::Int(cnt),
            zero_count: Count::Int(zcnt),
            sum,
            positive: Vec::new(),
            negative: Vec::new(),
        };
        if sum.to_bits() != STALE_NAN {
            sample.positive = absolute(r, &buckets[..np])?;
            sample.negative = absolute(r, &buckets[np..])?;
        }
        out.push(sample);
    }
    Ok(())
}

/// Neighbour-relative integer buckets as absolute counts.
fn absolute(r: &BitReader, relative: &[i64]) -> Result<Vec<Count>, String> {
    let mut running = 0i64;
    relative
        .iter()
        .enumerate()
        .map(|(i, d)| {
            running = running.wrapping_add(*d);
            u64::try_from(running)
                .map(Count::Int)
                .map_err(|_| r.error(&format!("has bucket {i} counting {running}")))
        })
        .collect()
}

fn read_float_samples(
    r: &mut BitReader,
    count: u16,
    (np, nn): (usize, usize),
    out: &mut Vec<Sample>,
) -> Result<(), String> {
    let (mut t, mut t_delta) = (0i64, 0i64);
    // Value, leading and trailing zeros of the previous XOR window, for the
    // count, zero count, sum and each bucket.
    let mut values = vec![(0f64, 0u32, 0u32); 3 + np + nn];
    for i in 0..count {
        if i == 0 {
            t = varbit_int(r)?;
            for v in values.iter_mut() {
                v.0 = f64::from_bits(r.bits(64)?);
            }
        } else {
            t_delta = t_delta.wrapping_add(varbit_int(r)?);
            t = t.wrapping_add(t_delta);
            let (head, buckets) = values.split_at_mut(3);
            for v in head.iter_mut() {
                v.0 = xor_read(r, v.0, &mut v.1, &mut v.2)?;
            }
            // A stale marker ends the chunk's counts: no buckets follow.
            if head[2].0.to_bits() != STALE_NAN {
                for v in buckets.iter_mut() {
                    v.0 = xor_read(r, v.0, &mut v.1, &mut v.2)?;
                }
            }
        }
        let sum = values[2].0;
        let value = |k: usize| Count::Float(values[k].0);
        let stale = sum.to_bits() == STALE_NAN;
        let buckets = |range: std::ops::Range<usize>| match stale {
            true => Vec::new(),
            false => range.map(value).collect(),
        };
        out.push(Sample {
            t,
            count: value(0),
            zero_count: value(1),
            sum,
            positive: buckets(3..3 + np),
            negative: buckets(3 + np..3 + np + nn),
        });
    }
    Ok(())
}

/// Prometheus' variable-width signed integer: a unary prefix of up to eight
/// one bits picks how many value bits follow (0, 3, 6, 9, 12, 18, 25, 56 or
/// a whole 64-bit word).
fn varbit_int(r: &mut BitReader) -> Result<i64, String> {
    let size = varbit_size(r)?;
    if size == 0 {
        return Ok(0);
    }
    let bits = r.bits(size)?;
    if size == 64 {
        return Ok(bits as i64);
    }
    // Sizes below 64 hold -(2^(size-1) - 1) ..= 2^(size-1).
    Ok(if bits > 1 << (size - 1) {
        bits as i64 - (1i64 << size)
    } else {
        bits as i64
    })
}

/// The unsigned twin of [`varbit_int`], with the same prefixes.
fn varbit_uint(r: &mut BitReader) -> Result<u64, String> {
    match varbit_size(r)? {
        0 => Ok(0),
        size => r.bits(size),
    }
}

fn varbit_size(r: &mut BitReader) -> Result<u32, String> {
    let mut ones = 0;
    while ones < 8 && r.bit()? {
        ones += 1;
    }
    Ok([0, 3, 6, 9, 12, 18, 25, 56, 64][ones])
}

/// Go's `%g`: the shortest decimal that reads back as `v`, switching to an
/// exponent below 1e-4 and from 1e6 up, `+Inf`, `-Inf` and `NaN`. Prometheus
/// prints histograms, and the bounds of their buckets, this way.
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{v:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Prometheus' bucket boundaries within [0.5, 1) for schema 8; schema s < 8
/// uses every 2^(8-s)-th entry. They are Prometheus' numbers rather than
/// computed powers of two because its table is not always the correctly
/// rounded 2^(k/256)/2, and printed bounds should match Prometheus' own.
#[rustfmt::skip]
const BOUNDS_SCHEMA_8: [f64; 256] = [
    0.5, 0.5013556375251013, 0.5027149505564014, 0.5040779490592088, 0.5054446430258502,
    0.5068150424757447, 0.5081891574554764, 0.509566998038869, 0.5109485743270583,
    0.5123338964485679, 0.5137229745593818, 0.5151158188430205, 0.5165124395106142,
    0.5179128468009786, 0.5193170509806894, 0.520725062344158, 0.5221368912137069,
    0.5235525479396449, 0.5249720429003435, 0.526395386502313, 0.5278225891802786,
    0.5292536613972564, 0.5306886136446309, 0.5321274564422321, 0.5335702003384117,
    0.5350168559101208, 0.5364674337629877, 0.5379219445313954, 0.5393803988785598,
    0.5408428074966075, 0.5423091811066545, 0.5437795304588847, 0.5452538663326288,
    0.5467321995364429, 0.5482145409081883, 0.549700901315111, 0.5511912916539204,
    0.5526857228508706, 0.5541842058618393, 0.5556867516724088, 0.5571933712979462,
    0.5587040757836845, 0.5602188762048033, 0.5617377836665098, 0.5632608093041209,
    0.564787964283144, 0.5663192597993595, 0.5678547070789026, 0.5693943173783458,
    0.5709381019847808, 0.572486072215902, 0.5740382394200894, 0.5755946149764913,
    0.5771552102951081, 0.5787200368168754, 0.5802891060137493, 0.5818624293887887,
    0.5834400184762408, 0.585021884841625, 0.5866080400818185, 0.5881984958251406,
    0.5897932637314379, 0.5913923554921704, 0.5929957828304968, 0.5946035575013605,
    0.5962156912915756, 0.5978321960199137, 0.5994530835371903, 0.6010783657263515,
    0.6027080545025619, 0.6043421618132907, 0.6059806996384005, 0.6076236799902344,
    0.6092711149137041, 0.6109230164863786, 0.6125793968185725, 0.6142402680534349,
    0.6159056423670379, 0.6175755319684665, 0.6192499490999082, 0.620928906036742,
    0.622612415087629, 0.6243004885946023, 0.6259931389331581, 0.6276903785123455,
    0.6293922197748583, 0.6310986751971253, 0.6328097572894031, 0.6345254785958666,
    0.6362458516947014, 0.637970889198196, 0.6397006037528346, 0.6414350080393891,
    0.6431741147730128, 0.6449179367033329, 0.6466664866145447, 0.6484197773255048,
    0.6501778216898253, 0.6519406325959679, 0.6537082229673385, 0.6554806057623822,
    0.6572577939746774, 0.659039800633032, 0.6608266388015788, 0.6626183215798706,
    0.6644148621029772, 0.6662162735415805, 0.6680225691020727, 0.6698337620266515,
    0.6716498655934177, 0.6734708931164728, 0.6752968579460171, 0.6771277734684463,
    0.6789636531064505, 0.6808045103191123, 0.6826503586020058, 0.6845012114872953,
    0.6863570825438342, 0.688217985377265, 0.690083933630119, 0.6919549409819159,
    0.6938310211492645, 0.6957121878859629, 0.6975984549830999, 0.6994898362691555,
    0.7013863456101023, 0.7032879969095076, 0.7051948041086352, 0.7071067811865475,
    0.7090239421602076, 0.7109463010845827, 0.7128738720527471, 0.7148066691959849,
    0.7167447066838943, 0.718687998724491, 0.7206365595643126, 0.7225904034885232,
    0.7245495448210174, 0.7265139979245261, 0.7284837772007218, 0.7304588970903234,
    0.7324393720732029, 0.7344252166684908, 0.7364164454346837, 0.7384130729697496,
    0.7404151139112358, 0.7424225829363761, 0.7444354947621984, 0.7464538641456323,
    0.7484777058836176, 0.7505070348132126, 0.7525418658117031, 0.7545822137967112,
    0.7566280937263048, 0.7586795205991071, 0.7607365094544071, 0.762799075372269,
    0.7648672334736434, 0.7669409989204777, 0.7690203869158282, 0.7711054127039704,
    0.7731960915705107, 0.7752924388424999, 0.7773944698885442, 0.7795022001189185,
    0.7816156449856788, 0.7837348199827764, 0.7858597406461707, 0.7879904225539431,
    0.7901268813264122, 0.7922691326262467, 0.7944171921585818, 0.7965710756711334,
    0.7987307989543135, 0.8008963778413465, 0.8030678282083853, 0.805245165974627,
    0.8074284071024302, 0.8096175675974316, 0.8118126635086642, 0.8140137109286738,
    0.8162207259936375, 0.8184337248834821, 0.820652723822003, 0.8228777390769823,
    0.8251087869603088, 0.8273458838280969, 0.8295890460808079, 0.8318382901633681,
    0.8340936325652911, 0.8363550898207981, 0.8386226785089391, 0.8408964152537144,
    0.8431763167241966, 0.8454623996346523, 0.8477546807446661, 0.8500531768592616,
    0.8523579048290255, 0.8546688815502312, 0.8569861239649629, 0.8593096490612387,
    0.8616394738731368, 0.8639756154809185, 0.8663180910111553, 0.8686669176368529,
    0.871022112577578, 0.8733836930995842, 0.8757516765159389, 0.8781260801866495,
    0.8805069215187917, 0.8828942179666361, 0.8852879870317771, 0.8876882462632604,
    0.890095013257712, 0.8925083056594671, 0.8949281411607002, 0.8973545375015533,
    0.8997875124702672, 0.9022270839033115, 0.9046732696855155, 0.9071260877501991,
    0.909585556079304, 0.9120516927035263, 0.9145245157024483, 0.9170040432046711,
    0.9194902933879467, 0.9219832844793128, 0.9244830347552253, 0.9269895625416926,
    0.92950288621441, 0.9320230241988943, 0.9345499949706191, 0.9370838170551498, 0.93962450902828,
    0.9421720895161669, 0.9447265771954693, 0.9472879907934827, 0.9498563490882775,
    0.9524316709088368, 0.9550139751351947, 0.9576032806985735, 0.9601996065815236,
    0.9628029718180622, 0.9654133954938133, 0.9680308967461471, 0.9706554947643201,
    0.9732872087896164, 0.9759260581154889, 0.9785720620876999, 0.9812252401044634,
    0.9838856116165875, 0.9865531961276168, 0.9892280131939752, 0.9919100824251095,
    0.9945994234836328, 0.9972960560854698,
];

#[cfg(test)]
mod tests {
    use super::super::xor::{xor_write, BitWriter};
    use super::*;

    // Chunks a real Prometheus 3.16 cut from the series that
    // tests/it/prom3.rs (write_more_histograms) remote-writes, as the
    // sidecar streamed them; the expected values follow from how that
    // function builds each sample.

    /// `it_hist_more{kind="gauge"}`: FLOAT_HISTOGRAM, 5 samples.
    const GAUGE: &[&str] = &[
        "0005c0ff3f50624dd2f1a9fc9465194af19ff0000d12510812c20180000000000002002000000000",
        "0006014800000000000201100000000000000000000000000001ff00000000000002008000000000",
        "00000000000000000007c1d4c6b1bbda0f607750bfc457ffac2f585e22bfd42e133fff50dcc4c257",
        "ff84dfffcc01b58fd6001969da85cc002c25fffd80d15800b09bffbc267ffc9d627cfff58580",
    ];

    /// `it_hist_more{kind="neg"}`: HISTOGRAM, 5 samples and a stale marker.
    const NEG: &[&str] = &[
        "000600eabce3692348c9fc00034494418f81b01fe00000000000004636c2b851f07531e3ee9e197f",
        "51896802f1f47b066f1310d6e4000001986dd4adb9c727c77400319b495b1d946883fe3ba00cc96b",
        "a56dc98bdf9cc4b40040000080",
    ];

    /// `it_hist_more{kind="nhcb"}`: HISTOGRAM with custom buckets, 5 samples.
    const NHCB: &[&str] = &[
        "00050000ee5ca68c55e32f7d7c7d3e9c520974240400000007f0000d12510812c540000000000000",
        "0008de9f07531876233ffe318d986612fff986dd30cd62e4c36e9864930dba",
    ];

    fn bytes(hex: &[&str]) -> Vec<u8> {
        let hex: String = hex.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ints(counts: &[u64]) -> Vec<Count> {
        counts.iter().map(|c| Count::Int(*c)).collect()
    }

    fn floats(counts: &[f64]) -> Vec<Count> {
        counts.iter().map(|c| Count::Float(*c)).collect()
    }

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    #[test]
    fn integer_chunk_with_negative_buckets_and_a_stale_marker() {
        let c = decode(&bytes(NEG), Kind::Integer).unwrap();
        assert_eq!(c.counter_reset, CounterReset::Unknown);
        assert_eq!((c.schema, c.zero_threshold), (-1, 1.0 / 1024.0));
        assert_eq!(c.positive_spans, [span(-2, 1), span(0, 2), span(4, 1)]);
        assert_eq!(c.negative_spans, [span(0, 2)]);
        let t0 = 1_796_539_992_000;
        assert_eq!(c.samples.len(), 6);
        for (i, s) in c.samples.iter().take(5).enumerate() {
            let i = i as u64;
            let t = t0 + i as i64 * 15_000 - if i == 3 { 7 } else { 0 };
            let (positive, negative) = ([1, 2 + i * 1000, i * i * i, 5], [i * i, 40 + i]);
            let count = 3 * i + positive.iter().sum::<u64>() + negative.iter().sum::<u64>();
            assert_eq!(
                s,
                &Sample {
                    t,
                    count: Count::Int(count),
                    zero_count: Count::Int(3 * i),
                    sum: 1e7 * i as f64 + 0.125,
                    positive: ints(&positive),
                    negative: ints(&negative),
                },
                "sample {i}"
            );
        }
        let stale = &c.samples[5];
        assert!(stale.is_stale() && stale.positive.is_empty());
        assert_eq!(stale.t, t0 + 75_000);
        assert_eq!(c.render(stale), "stale");
        // Schema -1: bucket i spans (4^(i-1), 4^i]; negative ones mirror it.
        assert_eq!(
            c.render(&c.samples[1]),
            "{count:1054, sum:1.0000000125e+07, [-4,-1):41, [-1,-0.25):1, \
             [-0.0009765625,0.0009765625]:3, (0.015625,0.0625]:1, (0.0625,0.25]:1002, \
             (0.25,1]:1, (256,1024]:5}"
        );
        // Empty buckets and an empty zero bucket are left out.
        assert_eq!(
            c.render(&c.samples[0]),
            "{count:48, sum:0.125, [-4,-1):40, (0.015625,0.0625]:1, (0.0625,0.25]:2, (256,1024]:5}"
        );
    }

    #[test]
    fn float_gauge_chunk_with_a_raw_zero_threshold() {
        let c = decode(&bytes(GAUGE), Kind::Float).unwrap();
        assert_eq!(c.counter_reset, CounterReset::Gauge);
        assert_eq!((c.schema, c.zero_threshold), (2, 0.001));
        assert_eq!(c.positive_spans, [span(1, 2)]);
        assert_eq!(c.negative_spans, [span(-1, 2), span(3, 1)]);
        assert_eq!(c.samples.len(), 5);
        for (i, s) in c.samples.iter().enumerate() {
            let x = i as f64;
            let negative = [0.5 + x, 4.0 - x, 0.25 * x];
            let positive = [9.0 - 2.0 * x, x * x];
            let zero = 2.5 - 0.5 * x;
            assert_eq!(
                s,
                &Sample {
                    t: 1_796_540_007_000 + i as i64 * 15_000,
                    count: Count::Float(
                        zero + negative.iter().sum::<f64>() + positive.iter().sum::<f64>()
                    ),
                    zero_count: Count::Float(zero),
                    sum: -12.5 + 3.0 * x,
                    positive: floats(&positive),
                    negative: floats(&negative),
                },
                "sample {i}"
            );
        }
        // Prometheus' own bounds for schema 2, not recomputed powers of two.
        assert_eq!(
            c.render(&c.samples[1]),
            "{count:14.75, sum:-9.5, [-2,-1.6817928305074288):0.25, [-1,-0.8408964152537144):3, \
             [-0.8408964152537144,-0.7071067811865475):1.5, [-0.001,0.001]:2, \
             (1,1.189207115002721]:7, (1.189207115002721,1.414213562373095]:1}"
        );
    }

    #[test]
    fn custom_bucket_chunk() {
        let c = decode(&bytes(NHCB), Kind::Integer).unwrap();
        assert_eq!((c.schema, c.zero_threshold), (CUSTOM_BUCKETS_SCHEMA, 0.0));
        // 1000000.25 is no multiple of 0.001 below 33554.43: a raw float.
        assert_eq!(c.custom_values, [0.1, 0.5, 1.0, 2.5, 1e6 + 0.25]);
        assert_eq!(c.positive_spans, [span(0, 3), span(1, 1)]);
        for (i, s) in c.samples.iter().enumerate() {
            let i = i as u64;
            let counts = [i, 2 * i + 1, 3 * i * i, i + 4];
            assert_eq!(s.t, 1_796_540_007_000 + i as i64 * 15_000);
            assert_eq!(s.count, Count::Int(counts.iter().sum()));
            assert_eq!(s.sum, i as f64 * 1.75);
            assert_eq!(s.positive, ints(&counts));
        }
        // The first bucket starts, inclusively, at -Inf.
        assert_eq!(
            c.render(&c.samples[1]),
            "{count:12, sum:1.75, [-Inf,0.1]:1, (0.1,0.5]:3, (0.5,1]:3, (2.5,1.00000025e+06]:5}"
        );
        assert_eq!(c.positive[3].upper, 1e6 + 0.25);
    }

    #[test]
    fn an_empty_chunk_has_no_layout() {
        let c = decode(&[0, 0, 0b0100_0000], Kind::Float).unwrap();
        assert!(c.samples.is_empty());
        assert_eq!(c.counter_reset, CounterReset::NotReset);
    }

    /// Prometheus' variable-width integer, for building chunks by hand.
    fn put_varbit(w: &mut BitWriter, v: i64) {
        let fits = |bits: u32| v > -(1i64 << (bits - 1)) && v <= 1i64 << (bits - 1);
        if v == 0 {
            w.bit(false);
            return;
        }
        for (prefix, size) in [(0b10, 3), (0b110, 6), (0b1110, 9), (0b11110, 12)]
            .into_iter()
            .chain([(0b111110, 18), (0b1111110, 25), (0b11111110, 56)])
        {
            if fits(size) {
                w.bits(prefix, 64 - prefix.leading_zeros());
                w.bits(v as u64, size);
                return;
            }
        }
        w.bits(0xff, 8);
        w.bits(v as u64, 64);
    }

    #[test]
    fn varbit_integers_at_every_width_boundary() {
        let mut values = vec![0, 1, -1, i64::MIN, i64::MAX];
        for bits in [3, 6, 9, 12, 18, 25, 56] {
            let edge = 1i64 << (bits - 1);
            values.extend([edge, edge + 1, -edge + 1, -edge]);
        }
        let mut w = BitWriter::with_capacity(0);
        for v in &values {
            put_varbit(&mut w, *v);
        }
        let mut r = BitReader::new(&w.bytes, "test");
        for v in &values {
            assert_eq!(varbit_int(&mut r).unwrap(), *v);
        }
        let mut w = BitWriter::with_capacity(0);
        w.bits(0xff, 8);
        w.bits(u64::MAX, 64);
        w.bits(0b10, 2);
        w.bits(7, 3);
        let mut r = BitReader::new(&w.bytes, "test");
        assert_eq!(varbit_uint(&mut r).unwrap(), u64::MAX);
        assert_eq!(varbit_uint(&mut r).unwrap(), 7);
    }

    /// A chunk header, zero threshold 0 and `schema`, then `rest`.
    fn chunk(count: u16, schema: i64, rest: impl FnOnce(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::with_capacity(0);
        w.bits(u64::from(count), 16);
        w.byte(0);
        w.byte(0);
        put_varbit(&mut w, schema);
        rest(&mut w);
        w.bytes
    }

    #[test]
    fn a_float_stale_marker_has_no_buckets() {
        let (sum, stale) = (2.0f64, f64::from_bits(STALE_NAN));
        let data = chunk(2, 0, |w| {
            for spans in [1, 0] {
                put_varbit(w, spans);
                if spans == 1 {
                    put_varbit(w, 1);
                    put_varbit(w, 0);
                }
            }
            put_varbit(w, 5_000);
            for v in [1.0f64, 0.0, sum, 1.0] {
                w.bits(v.to_bits(), 64);
            }
            put_varbit(w, 10_000);
            for (v, prev) in [(0.0, 1.0), (0.0, 0.0), (stale, sum)] {
                let (mut leading, mut trailing) = (0xff, 0);
                xor_write(w, v, prev, &mut leading, &mut trailing);
            }
        });
        let c = decode(&data, Kind::Float).unwrap();
        assert_eq!(c.render(&c.samples[0]), "{count:1, sum:2, (0.5,1]:1}");
        assert_eq!(
            (c.samples[1].t, c.render(&c.samples[1])),
            (15_000, "stale".into())
        );
        assert!(c.samples[1].positive.is_empty());
    }

    #[test]
    fn malformed_chunks_are_errors_that_say_what_is_wrong() {
        for (name, hex, kind) in [
            ("gauge", GAUGE, Kind::Float),
            ("neg", NEG, Kind::Integer),
            ("nhcb", NHCB, Kind::Integer),
        ] {
            let data = bytes(hex);
            for n in 0..data.len() {
                let err = decode(&data[..n], kind).unwrap_err();
                assert!(
                    err.contains("ends early")
                        || err.contains("more than its bits hold")
                        || err.contains("shorter than its 3-byte header"),
                    "{name} cut to {n} bytes: {err}"
                );
            }
        }
        let err = |data: Vec<u8>, kind| decode(&data, kind).unwrap_err();
        assert_eq!(
            err(chunk(1, 9, |_| {}), Kind::Integer),
            "histogram chunk has schema 9; known are -9 to 8 and -53"
        );
        // Lengths that would allocate far more than the chunk could hold.
        let spans = err(chunk(1, 0, |w| put_varbit(w, 1 << 40)), Kind::Float);
        assert!(spans.contains("spans, more than its bits hold"), "{spans}");
        let buckets = err(
            chunk(1, 0, |w| {
                put_varbit(w, 1);
                put_varbit(w, 1 << 30);
                put_varbit(w, 0);
                put_varbit(w, 0);
            }),
            Kind::Integer,
        );
        assert!(
            buckets.contains("buckets, more than its bits hold"),
            "{buckets}"
        );
        let bounds = err(
            chunk(1, -53, |w| {
                put_varbit(w, 0);
                put_varbit(w, 0);
                put_varbit(w, 1 << 40);
            }),
            Kind::Integer,
        );
        assert!(bounds.contains("custom bounds, more than"), "{bounds}");
        // Custom bucket 2 needs two bounds; there is one.
        let beyond = err(
            chunk(1, -53, |w| {
                put_varbit(w, 1);
                put_varbit(w, 1);
                put_varbit(w, 2);
                put_varbit(w, 0);
                put_varbit(w, 1);
                put_varbit(w, 1001);
                w.bits(0, 64);
            }),
            Kind::Integer,
        );
        assert_eq!(
            beyond,
            "histogram chunk has bucket 2 beyond its 1 custom bounds"
        );
        // An integer bucket whose running count drops below zero.
        let negative = err(
            chunk(1, 0, |w| {
                put_varbit(w, 1);
                put_varbit(w, 2);
                put_varbit(w, 0);
                put_varbit(w, 0);
                put_varbit(w, 1000);
                put_varbit(w, 0);
                put_varbit(w, 0);
                w.bits(0, 64);
                put_varbit(w, 1);
                put_varbit(w, -2);
            }),
            Kind::Integer,
        );
        assert_eq!(negative, "histogram chunk has bucket 1 counting -1");
    }

    #[test]
    fn bounds_at_the_edges_of_the_float_range() {
        // The last finite bucket ends at the largest float; the next one,
        // for infinite observations, at +Inf.
        assert_eq!(exponential_bound(1023, 0), 2f64.powi(1023));
        assert_eq!(exponential_bound(1024, 0), f64::MAX);
        assert_eq!(exponential_bound(1025, 0), f64::INFINITY);
        assert_eq!(exponential_bound(256, -2), f64::MAX);
        assert_eq!(exponential_bound(8 * 1024, 3), f64::MAX);
        assert_eq!(exponential_bound(-1073, 0), 1e-323);
        assert_eq!(exponential_bound(-1074, 0), 5e-324);
        assert_eq!(exponential_bound(-1100, 0), 0.0);
        assert_eq!(exponential_bound(i64::MAX, -4), f64::INFINITY);
        assert_eq!(exponential_bound(i64::MIN, 8), 0.0);
        assert_eq!(exponential_bound(-1, 1), 0.7071067811865475);
    }

    #[test]
    fn numbers_print_as_gos_percent_g() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (100000.0, "100000"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e-128, "1e-128"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (12345.678, "12345.678"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(go_g(v), want, "{v:e}");
        }
    }
}
