//! Tensor statistics — element count, RMS, mean, std, min, max (over finite values),
//! NaN, ±Inf and exact-zero counts — computed from the true (dequantized) values, in
//! parallel, streaming over the memory map in bounded pieces, with f64 accumulation.
//!
//! Results are deterministic whatever the thread count: every tensor is cut into the
//! same pieces, each piece is reduced on its own, and pieces are merged in file order.
//! `scan` computes the statistics and the file's fingerprint in one read of the file.

use std::ops::Range;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprint;
use crate::gguf::{GgmlType, GgufFile, Header, TensorInfo, I2S_TAIL_BYTES};
use crate::glob::glob_match;
use crate::quant::{self, QuantError};

/// Bytes of tensor data decoded at a time by one thread (rounded to whole blocks).
pub const PIECE_BYTES: u64 = 16 << 10;
/// Bytes of file hashed (and then released from memory) per step of `scan`.
pub const WINDOW_BYTES: u64 = 16 << 20;

/// Statistics of one tensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorStats {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub elements: u64,
    /// sqrt(mean(x²)) over finite values.
    pub rms: f64,
    pub mean: f64,
    /// Population standard deviation over finite values.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub nan: u64,
    pub inf: u64,
    pub zeros: u64,
}

impl TensorStats {
    /// Finite values only (elements minus NaN and ±Inf).
    pub fn finite(&self) -> u64 {
        self.elements - self.nan - self.inf
    }
}

/// A tensor whose values could not be decoded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("tensor {tensor:?}: {error}")]
pub struct StatsError {
    pub tensor: String,
    pub error: QuantError,
}

/// Running moments of a set of values, mergeable in a fixed order (Chan et al.).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub finite: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    pub sum_sq: f64,
    pub min: f32,
    pub max: f32,
    pub nan: u64,
    pub inf: u64,
    pub zeros: u64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            finite: 0,
            mean: 0.0,
            m2: 0.0,
            sum_sq: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            nan: 0,
            inf: 0,
            zeros: 0,
        }
    }
}

/// Per-lane sums of one pass over a slice.
struct RawSums {
    sum: [f64; LANES],
    sum_sq: [f64; LANES],
    lo: [f32; LANES],
    hi: [f32; LANES],
    zeros: u64,
}

/// One pass: sums, sums of squares, min, max and zero count, in `LANES` fixed lanes.
/// Uses AVX2 when the CPU has it; the operations and their order are the same either
/// way (no FMA), so the results are identical on every x86-64 machine.
fn raw_sums(values: &[f32]) -> RawSums {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { raw_sums_avx2(values) };
    }
    raw_sums_portable(values)
}

/// `raw_sums_portable` written with AVX2 intrinsics (the compiler does not vectorize the
/// portable loop): the 8 lanes are two vectors of 4 f64 (sums) and one of 8 f32 (min,
/// max), each lane doing exactly the portable loop's operations in its order, so the
/// results are bit-identical (a test compares them). `vminps(x, lo)` is `x < lo ? x : lo`
/// and `vmaxps(x, hi)` is `x > hi ? x : hi`, the portable comparisons.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn raw_sums_avx2(values: &[f32]) -> RawSums {
    use std::arch::x86_64::*;
    let mut r = RawSums {
        sum: [0.0; LANES],
        sum_sq: [0.0; LANES],
        lo: [f32::INFINITY; LANES],
        hi: [f32::NEG_INFINITY; LANES],
        zeros: 0,
    };
    for run in values.chunks(1 << 20) {
        let (s, q) = (r.sum.as_ptr(), r.sum_sq.as_ptr());
        let (mut sum_a, mut sum_b) = (_mm256_loadu_pd(s), _mm256_loadu_pd(s.add(4)));
        let (mut sq_a, mut sq_b) = (_mm256_loadu_pd(q), _mm256_loadu_pd(q.add(4)));
        let mut lo = _mm256_loadu_ps(r.lo.as_ptr());
        let mut hi = _mm256_loadu_ps(r.hi.as_ptr());
        let mut zero_count = _mm256_setzero_si256();
        let zero = _mm256_setzero_ps();
        let mut chunks = run.chunks_exact(LANES);
        for chunk in &mut chunks {
            let x = _mm256_loadu_ps(chunk.as_ptr());
            let a = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
            let b = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x));
            sum_a = _mm256_add_pd(sum_a, a);
            sum_b = _mm256_add_pd(sum_b, b);
            sq_a = _mm256_add_pd(sq_a, _mm256_mul_pd(a, a));
            sq_b = _mm256_add_pd(sq_b, _mm256_mul_pd(b, b));
            lo = _mm256_min_ps(x, lo);
            hi = _mm256_max_ps(x, hi);
            // An equal lane compares as all ones (-1): subtracting counts it.
            let eq = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_EQ_OQ>(x, zero));
            zero_count = _mm256_sub_epi32(zero_count, eq);
        }
        let (s, q) = (r.sum.as_mut_ptr(), r.sum_sq.as_mut_ptr());
        _mm256_storeu_pd(s, sum_a);
        _mm256_storeu_pd(s.add(4), sum_b);
        _mm256_storeu_pd(q, sq_a);
        _mm256_storeu_pd(q.add(4), sq_b);
        _mm256_storeu_ps(r.lo.as_mut_ptr(), lo);
        _mm256_storeu_ps(r.hi.as_mut_ptr(), hi);
        let mut zeros = [0u32; LANES];
        _mm256_storeu_si256(zeros.as_mut_ptr().cast(), zero_count);
        for (l, &x) in chunks.remainder().iter().enumerate() {
            accumulate(&mut r, &mut zeros, l, x);
        }
        r.zeros += zeros.iter().map(|&z| u64::from(z)).sum::<u64>();
    }
    r
}

/// Add one value to lane `l`. Plain comparisons (not `f32::min`) so the loop
/// vectorizes; NaN is handled by the caller's slow path.
#[inline(always)]
fn accumulate(r: &mut RawSums, zeros: &mut [u32; LANES], l: usize, x: f32) {
    let v = f64::from(x);
    r.sum[l] += v;
    r.sum_sq[l] += v * v;
    r.lo[l] = if x < r.lo[l] { x } else { r.lo[l] };
    r.hi[l] = if x > r.hi[l] { x } else { r.hi[l] };
    zeros[l] += u32::from(x == 0.0);
}

#[inline(always)]
fn raw_sums_portable(values: &[f32]) -> RawSums {
    let mut r = RawSums {
        sum: [0.0; LANES],
        sum_sq: [0.0; LANES],
        lo: [f32::INFINITY; LANES],
        hi: [f32::NEG_INFINITY; LANES],
        zeros: 0,
    };
    // u32 zero counters vectorize; a run of at most 2^20 values per lane cannot overflow.
    for run in values.chunks(1 << 20) {
        let mut zeros = [0u32; LANES];
        let mut chunks = run.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (l, &x) in chunk.iter().enumerate() {
                accumulate(&mut r, &mut zeros, l, x);
            }
        }
        for (l, &x) in chunks.remainder().iter().enumerate() {
            accumulate(&mut r, &mut zeros, l, x);
        }
        r.zeros += zeros.iter().map(|&z| u64::from(z)).sum::<u64>();
    }
    r
}

/// Lanes of independent f64 accumulators: lets the CPU overlap additions while the
/// summation order stays fixed (so results never depend on scheduling).
const LANES: usize = 8;

impl Moments {
    /// The moments of `values`.
    pub fn of(values: &[f32]) -> Moments {
        let raw = raw_sums(values);
        let total: f64 = raw.sum.iter().sum();
        if !total.is_finite() {
            // A NaN or an infinity is present (f32 values cannot overflow an f64 sum).
            return Moments::of_nonfinite(values);
        }
        let n = values.len() as u64;
        let sum_sq: f64 = raw.sum_sq.iter().sum();
        let (mean, m2) = if n == 0 {
            (0.0, 0.0)
        } else {
            let mean = total / n as f64;
            // Within one piece (at most a few hundred thousand values) the f64 sums
            // keep sum_sq - n·mean² exact to ~1e-12 relative for any real weight
            // distribution; pieces are then combined with Chan's update.
            (mean, (sum_sq - total * mean).max(0.0))
        };
        Moments {
            finite: n,
            mean,
            m2,
            sum_sq,
            min: raw.lo.iter().copied().fold(f32::INFINITY, f32::min),
            max: raw.hi.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            nan: 0,
            inf: 0,
            zeros: raw.zeros,
        }
    }

    /// The slow path: split off NaN and ±Inf, then take the moments of the rest.
    fn of_nonfinite(values: &[f32]) -> Moments {
        let finite: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let mut m = Moments::of(&finite);
        m.nan = values.iter().filter(|x| x.is_nan()).count() as u64;
        m.inf = values.iter().filter(|x| x.is_infinite()).count() as u64;
        m
    }

    /// Merge `other` (values that come after `self`'s).
    pub fn merge(&mut self, other: &Moments) {
        let n = self.finite + other.finite;
        if other.finite > 0 {
            let (na, nb) = (self.finite as f64, other.finite as f64);
            let delta = other.mean - self.mean;
            self.mean += delta * nb / n as f64;
            self.m2 += other.m2 + delta * delta * na * nb / n as f64;
        }
        self.finite = n;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.nan += other.nan;
        self.inf += other.inf;
        self.zeros += other.zeros;
    }

    /// The statistics of tensor `t` from the moments of all its values.
    pub fn finish(&self, t: &TensorInfo) -> TensorStats {
        let n = self.finite as f64;
        let (rms, std, min, max) = if self.finite == 0 {
            (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
        } else {
            (
                (self.sum_sq / n).sqrt(),
                (self.m2 / n).max(0.0).sqrt(),
                f64::from(self.min),
                f64::from(self.max),
            )
        };
        TensorStats {
            name: t.name.clone(),
            ty: t.ty.name().to_string(),
            elements: t.elements,
            rms,
            mean: if self.finite == 0 {
                f64::NAN
            } else {
                self.mean
            },
            std,
            min,
            max,
            nan: self.nan,
            inf: self.inf,
            zeros: self.zeros,
        }
    }
}

/// How a tensor's data is cut into independently decodable blocks. I2_S is special: its
/// data is 128-element blocks of 32 bytes of codes followed by a 32-byte tail whose first
/// four bytes are the tensor's scale, so its blocks cover `size - I2S_TAIL_BYTES` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub block_elems: u64,
    pub block_bytes: u64,
    /// Bytes the blocks cover (the tensor's size, less I2_S's tail).
    pub data_bytes: u64,
}

impl Geometry {
    /// The geometry of a tensor we can decode, or why we cannot.
    pub fn of(t: &TensorInfo) -> Result<Geometry, QuantError> {
        if !quant::is_supported(t.ty) {
            return Err(QuantError::Unsupported { ty: t.ty });
        }
        let (block_elems, block_bytes, data_bytes) = if t.ty == GgmlType::I2S {
            (128, 32, t.size.checked_sub(I2S_TAIL_BYTES))
        } else {
            (t.ty.block_size(), t.ty.block_bytes(), Some(t.size))
        };
        let not_multiple = || QuantError::NotBlockMultiple {
            ty: t.ty,
            elements: t.elements as usize,
            block: block_elems as usize,
        };
        if block_elems == 0 || !t.elements.is_multiple_of(block_elems) {
            return Err(not_multiple());
        }
        // The reader validated `size` against the element count; I2_S's tail is checked here.
        let data_bytes = data_bytes
            .filter(|&d| Some(d) == (t.elements / block_elems).checked_mul(block_bytes))
            .ok_or_else(not_multiple)?;
        Ok(Geometry {
            block_elems,
            block_bytes,
            data_bytes,
        })
    }

    /// Bytes, relative to the tensor's data, holding the (block-aligned) `elements`.
    pub fn bytes_of(&self, elements: &Range<u64>) -> Range<u64> {
        elements.start / self.block_elems * self.block_bytes
            ..elements.end / self.block_elems * self.block_bytes
    }

    /// Elements per piece of about `PIECE_BYTES`, a multiple of `align` (itself a multiple
    /// of the block size).
    pub fn piece_elements(&self, align: u64) -> u64 {
        let blocks = (PIECE_BYTES / self.block_bytes).max(1);
        (blocks * self.block_elems).div_ceil(align).max(1) * align
    }
}

/// Decode the block-aligned `elements` of tensor `t` (of geometry `g`) into `out`.
pub fn decode(
    file: &GgufFile,
    t: &TensorInfo,
    g: &Geometry,
    elements: &Range<u64>,
    out: &mut Vec<f32>,
) -> Result<(), QuantError> {
    let range = file.header.data_range(t);
    let rel = g.bytes_of(elements);
    let bytes = slice(
        file.bytes(),
        &(range.start + rel.start..range.start + rel.end),
    );
    out.resize((elements.end - elements.start) as usize, 0.0);
    if t.ty == GgmlType::I2S {
        let tail_start = range.end - I2S_TAIL_BYTES;
        let tail = slice(file.bytes(), &(tail_start..tail_start + 4));
        let scale = f32::from_le_bytes(tail.try_into().unwrap_or([0; 4]));
        quant::dequantize_i2_s_codes(bytes, scale, out)
    } else {
        quant::dequantize(t.ty, bytes, out)
    }
}

/// A block-aligned slice of one tensor's data: the unit of parallel work.
#[derive(Clone, Debug)]
struct Piece {
    tensor: usize,
    geometry: Geometry,
    elements: Range<u64>,
    /// Absolute file offset of the piece's first byte.
    start: u64,
}

/// Cut the selected tensors into pieces, in file order. Tensors of a type we cannot
/// decode are reported instead.
fn plan(file: &GgufFile, selected: &[usize]) -> (Vec<Piece>, Vec<StatsError>) {
    let h = &file.header;
    let mut pieces = Vec::new();
    let mut errors = Vec::new();
    for &i in selected {
        let Some(t) = h.tensors.get(i) else { continue };
        let geometry = match Geometry::of(t) {
            Ok(g) => g,
            Err(error) => {
                errors.push(StatsError {
                    tensor: t.name.clone(),
                    error,
                });
                continue;
            }
        };
        let step = geometry.piece_elements(geometry.block_elems);
        let base = h.data_range(t).start;
        let mut at = 0;
        while at < t.elements {
            let elements = at..(at + step).min(t.elements);
            pieces.push(Piece {
                tensor: i,
                geometry,
                start: base + geometry.bytes_of(&elements).start,
                elements,
            });
            at += step;
        }
    }
    // File order: `scan` walks the file front to back; per-tensor merge order follows.
    pieces.sort_by_key(|p| p.start);
    (pieces, errors)
}

/// Decode one piece into `buf` and take its moments.
fn piece_moments(
    file: &GgufFile,
    piece: &Piece,
    buf: &mut Vec<f32>,
) -> Result<Moments, QuantError> {
    let t = &file.header.tensors[piece.tensor];
    decode(file, t, &piece.geometry, &piece.elements, buf)?;
    Ok(Moments::of(buf))
}

/// `bytes[range]`, empty when the range is not inside (ranges come from a validated
/// header, so in practice they always are).
pub fn slice<'a>(bytes: &'a [u8], range: &Range<u64>) -> &'a [u8] {
    match (usize::try_from(range.start), usize::try_from(range.end)) {
        (Ok(start), Ok(end)) => bytes.get(start..end).unwrap_or(&[]),
        _ => &[],
    }
}

/// One front-to-back pass over `file` in `WINDOW_BYTES` windows: the engine of `scan`
/// and of `diff`. For each window, `serial` runs on one thread (hashing, which must see
/// the bytes in order) while `work` maps the items that start in the window in parallel
/// (rayon, one `scratch` per thread); then `done` sees the window, to release it from
/// memory and count progress. `items` must be sorted by `start`. Results come back in
/// item order whatever the thread count, so merging them in order is deterministic.
pub fn stream<I, S, R>(
    file: &GgufFile,
    items: &[I],
    start: impl Fn(&I) -> u64,
    scratch: impl Fn() -> S + Sync + Send,
    work: impl Fn(&mut S, &I) -> R + Sync + Send,
    mut serial: impl FnMut(Range<u64>, &[I]) + Send,
    mut done: impl FnMut(Range<u64>, &[I]),
) -> Vec<R>
where
    I: Sync,
    R: Send,
{
    let len = file.bytes().len() as u64;
    let mut results = Vec::with_capacity(items.len());
    let mut next = 0;
    let mut at = 0u64;
    while at < len {
        let end = (at + WINDOW_BYTES).min(len);
        let first = next;
        while next < items.len() && start(&items[next]) < end {
            next += 1;
        }
        let window = &items[first..next];
        let (_, out) = rayon::join(
            || serial(at..end, window),
            || {
                window
                    .par_iter()
                    .map_init(&scratch, |s, item| work(s, item))
                    .collect::<Vec<R>>()
            },
        );
        results.extend(out);
        done(at..end, window);
        at = end;
    }
    results
}

/// Merge per-piece moments into per-tensor statistics, in the order of `selected`.
fn assemble(
    file: &GgufFile,
    selected: &[usize],
    pieces: &[Piece],
    moments: Vec<Result<Moments, QuantError>>,
    mut errors: Vec<StatsError>,
) -> (Vec<TensorStats>, Vec<StatsError>) {
    let h = &file.header;
    let mut per_tensor: Vec<Option<Result<Moments, QuantError>>> = vec![None; h.tensors.len()];
    for (piece, m) in pieces.iter().zip(moments) {
        let slot = &mut per_tensor[piece.tensor];
        match (slot.as_mut(), m) {
            (None, m) => *slot = Some(m),
            (Some(Ok(acc)), Ok(m)) => acc.merge(&m),
            (Some(Ok(_)), Err(e)) => *slot = Some(Err(e)),
            (Some(Err(_)), _) => {}
        }
    }
    let mut stats = Vec::with_capacity(selected.len());
    for &i in selected {
        let t = &h.tensors[i];
        match per_tensor[i].take() {
            Some(Ok(m)) => stats.push(m.finish(t)),
            // Empty tensors and tensors reported in `plan` have no pieces.
            None if errors.iter().all(|e| e.tensor != t.name) => {
                stats.push(Moments::default().finish(t))
            }
            None => {}
            Some(Err(error)) => errors.push(StatsError {
                tensor: t.name.clone(),
                error,
            }),
        }
    }
    (stats, errors)
}

/// What one pass over the file produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// The whole file's fingerprint, when it was asked for.
    pub fingerprint: Option<Fingerprint>,
    /// Statistics of the selected tensors, in the order they were selected.
    pub stats: Vec<TensorStats>,
    /// Selected tensors that could not be decoded.
    pub errors: Vec<StatsError>,
}

/// Statistics of the selected tensors (indices into the header's tensor list).
pub fn tensor_stats(file: &GgufFile, selected: &[usize]) -> (Vec<TensorStats>, Vec<StatsError>) {
    let result = scan(file, selected, false, |_| {});
    (result.stats, result.errors)
}

/// The statistics of the selected tensors and, optionally, the fingerprint of the whole
/// file, in one read of the file: window by window, one thread hashes while the others
/// decode the pieces that start in the window; each finished window is released from
/// memory, so resident memory stays at a few windows whatever the model size.
pub fn scan(
    file: &GgufFile,
    selected: &[usize],
    with_fingerprint: bool,
    mut progress: impl FnMut(u64),
) -> Scan {
    let (pieces, errors) = plan(file, selected);
    let mut hasher = Sha256::new();
    let moments = stream(
        file,
        &pieces,
        |p| p.start,
        Vec::new,
        |buf, piece| piece_moments(file, piece, buf),
        |window, _| {
            if with_fingerprint {
                hasher.update(slice(file.bytes(), &window));
            }
        },
        |window, _| {
            file.release(window.clone());
            progress(window.end - window.start);
        },
    );
    let fingerprint = with_fingerprint.then(|| Fingerprint(hasher.finalize().into()));
    let (stats, errors) = assemble(file, selected, &pieces, moments, errors);
    Scan {
        fingerprint,
        stats,
        errors,
    }
}

/// A number in reports and diffs: four decimals between 0.001 and 10 000, else
/// scientific with four significant digits.
pub fn num(x: f64) -> String {
    if x == 0.0 || (1e-3..1e4).contains(&x.abs()) {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.3e}")
    }
}

/// Indices of the tensors whose names match any of `filters` (all tensors when empty).
pub fn select(header: &Header, filters: &[String]) -> Vec<usize> {
    header
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, t)| filters.is_empty() || filters.iter().any(|f| glob_match(f, &t.name)))
        .map(|(i, _)| i)
        .collect()
}

/// The JSON document of `stats --format json` (NaN, for tensors without finite values, is null).
pub fn to_json(stats: &[TensorStats], errors: &[StatsError]) -> serde_json::Value {
    let errors: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| serde_json::json!({"tensor": e.tensor, "error": e.error.to_string()}))
        .collect();
    serde_json::json!({ "tensors": stats, "errors": errors })
}

/// The text table of `stats`.
pub fn to_text(stats: &[TensorStats], errors: &[StatsError]) -> String {
    use std::fmt::Write as _;
    let width = stats.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:width$}  {:7} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>6} {:>6} {:>9}",
        "name", "type", "elements", "rms", "mean", "std", "min", "max", "nan", "inf", "zeros"
    );
    for s in stats {
        let _ = writeln!(
            out,
            "{:width$}  {:7} {:>11} {:>11.5e} {:>11.4e} {:>11.5e} {:>11.4e} {:>11.4e} {:>6} {:>6} {:>9}",
            crate::escape::visible(&s.name), s.ty, s.elements, s.rms, s.mean, s.std, s.min, s.max, s.nan, s.inf, s.zeros
        );
    }
    for e in errors {
        let _ = writeln!(out, "error: {}", crate::escape::visible(&e.to_string()));
    }
    out
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_avx2_sums_are_the_portable_sums_bit_for_bit() {
        if std::is_x86_feature_detected!("avx2") {
            let mut seed = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                match seed % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => ((seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 3.0,
                }
            };
            let values: Vec<f32> = (0..(1 << 20) + 2 * 1000 + 13).map(|_| next()).collect();
            for len in [0, 1, 7, 8, 9, 1000, 1 << 20, (1 << 20) + 5, values.len()] {
                let (a, b) = (raw_sums_portable(&values[..len]), unsafe {
                    raw_sums_avx2(&values[..len])
                });
                let bits = |r: &RawSums| {
                    (
                        r.sum.map(f64::to_bits),
                        r.sum_sq.map(f64::to_bits),
                        r.lo.map(f32::to_bits),
                        r.hi.map(f32::to_bits),
                        r.zeros,
                    )
                };
                assert_eq!(bits(&a), bits(&b), "length {len}");
            }
        }
    }
}
