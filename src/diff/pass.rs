//! The joint pass: one front-to-back read of a *driver* file (the newer release) with
//! the stats engine (`stats::stream`), and, for every tensor the *partner* file (the
//! older release) has under the same name and shape, the partner's matching bytes read
//! alongside. Per tensor it yields each side's SHA-256 and moments (RMS) and the sums of
//! the squared differences of the dequantized values, so ‖new − old‖ / ‖old‖ needs no
//! second read of either file.
//!
//! Work is split as in `stats::scan`: one thread hashes the window (per-tensor hashes, in
//! file order, and the whole-file fingerprint when asked) while the others decode pieces
//! of the two files in parallel. A piece whose bytes are the same in both files is
//! decoded once. A tensor whose bytes are the same in both files is hashed once: the
//! partner's hash shares the driver's state until the first differing byte, where it is
//! cloned. Each window of the driver, and the partner bytes read for it, is released
//! from memory before the next, so resident memory stays at a few windows.

use std::ops::Range;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprint;
use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::quant::QuantError;
use crate::stats::{self, Geometry, Moments, StatsError, TensorStats};

/// Sums over the positions of one tensor (or piece) where both sides are finite, and a
/// count of the positions where finiteness or the non-finite value differs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiffSums {
    /// Σ (new − old)² over positions finite on both sides.
    pub sum_sq: f64,
    /// Positions finite on both sides.
    pub pairs: u64,
    /// Positions where one side is NaN or ±Inf and the other is not the same value.
    pub nonfinite_changed: u64,
}

impl DiffSums {
    fn merge(&mut self, other: &DiffSums) {
        self.sum_sq += other.sum_sq;
        self.pairs += other.pairs;
        self.nonfinite_changed += other.nonfinite_changed;
    }
}

/// Independent accumulators, as in `stats` (fixed order: deterministic results).
const LANES: usize = 8;

/// Σ (new − old)² in `LANES` fixed lanes; AVX2 when the CPU has it (same operations,
/// same order, so the same result either way).
fn diff_sums(old: &[f32], new: &[f32]) -> DiffSums {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { diff_sums_avx2(old, new) };
    }
    diff_sums_portable(old, new)
}

/// `diff_sums_portable` with AVX2 intrinsics: the 8 lanes as two vectors of 4 f64, each
/// lane doing the portable loop's operations in its order (bit-identical; a test checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn diff_sums_avx2(old: &[f32], new: &[f32]) -> DiffSums {
    use std::arch::x86_64::*;
    let n = old.len().min(new.len());
    let (old, new) = (&old[..n], &new[..n]);
    let (mut acc_a, mut acc_b) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut a = old.chunks_exact(LANES);
    let mut b = new.chunks_exact(LANES);
    for (x, y) in (&mut a).zip(&mut b) {
        let x = _mm256_loadu_ps(x.as_ptr());
        let y = _mm256_loadu_ps(y.as_ptr());
        let lo = _mm256_sub_pd(
            _mm256_cvtps_pd(_mm256_castps256_ps128(y)),
            _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
        );
        let hi = _mm256_sub_pd(
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(y)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
        );
        acc_a = _mm256_add_pd(acc_a, _mm256_mul_pd(lo, lo));
        acc_b = _mm256_add_pd(acc_b, _mm256_mul_pd(hi, hi));
    }
    let mut acc = [0f64; LANES];
    _mm256_storeu_pd(acc.as_mut_ptr(), acc_a);
    _mm256_storeu_pd(acc.as_mut_ptr().add(4), acc_b);
    finish(acc, a.remainder(), b.remainder(), old, new)
}

fn diff_sums_portable(old: &[f32], new: &[f32]) -> DiffSums {
    let n = old.len().min(new.len());
    let (old, new) = (&old[..n], &new[..n]);
    let mut acc = [0f64; LANES];
    let mut a = old.chunks_exact(LANES);
    let mut b = new.chunks_exact(LANES);
    for (x, y) in (&mut a).zip(&mut b) {
        for l in 0..LANES {
            let d = f64::from(y[l]) - f64::from(x[l]);
            acc[l] += d * d;
        }
    }
    finish(acc, a.remainder(), b.remainder(), old, new)
}

/// Add the last (fewer than `LANES`) pairs, sum the lanes, and take the slow path when a
/// NaN or an infinity made the sum non-finite.
fn finish(mut acc: [f64; LANES], a: &[f32], b: &[f32], old: &[f32], new: &[f32]) -> DiffSums {
    for (l, (x, y)) in a.iter().zip(b).enumerate() {
        let d = f64::from(*y) - f64::from(*x);
        acc[l] += d * d;
    }
    let n = old.len().min(new.len());
    let sum_sq: f64 = acc.iter().sum();
    if sum_sq.is_finite() {
        return DiffSums {
            sum_sq,
            pairs: n as u64,
            nonfinite_changed: 0,
        };
    }
    // A NaN or an infinity on some side: the slow path separates them.
    let mut sums = DiffSums::default();
    for (x, y) in old.iter().zip(new) {
        if x.is_finite() && y.is_finite() {
            let d = f64::from(*y) - f64::from(*x);
            sums.sum_sq += d * d;
            sums.pairs += 1;
        } else if x.to_bits() != y.to_bits() {
            sums.nonfinite_changed += 1;
        }
    }
    sums
}

/// One tensor of the pass: an index into the driver's tensors and, when the partner has
/// a tensor of the same name and shape, into the partner's.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub driver: usize,
    pub partner: Option<usize>,
}

/// What the pass learnt about one side of one tensor.
#[derive(Clone, Debug)]
pub struct SideResult {
    pub sha256: [u8; 32],
    /// Statistics of the dequantized values, or why they could not be decoded.
    pub stats: Result<TensorStats, StatsError>,
}

/// What the pass learnt about one entry.
#[derive(Clone, Debug)]
pub struct EntryResult {
    pub driver: SideResult,
    pub partner: Option<SideResult>,
    /// Same type and shape, and every byte equal (compared, not inferred from the hash).
    pub byte_identical: bool,
    /// The difference of the values, when both sides were decoded.
    pub diff: Option<DiffSums>,
}

/// The pass's results, in the order of the entries.
pub struct PassOutput {
    /// The driver file's fingerprint, when asked for.
    pub fingerprint: Option<Fingerprint>,
    pub entries: Vec<EntryResult>,
}

impl PassOutput {
    /// The driver's statistics and decoding errors, as `stats::scan` reports them.
    pub fn driver_stats(&self) -> (Vec<TensorStats>, Vec<StatsError>) {
        let mut stats = Vec::new();
        let mut errors = Vec::new();
        for e in &self.entries {
            match &e.driver.stats {
                Ok(s) => stats.push(s.clone()),
                Err(error) => errors.push(error.clone()),
            }
        }
        (stats, errors)
    }
}

/// Per entry, fixed before the pass.
struct Layout {
    driver: Result<Geometry, QuantError>,
    partner: Option<Result<Geometry, QuantError>>,
    /// Paired, same type and same size: bytes compare one to one.
    same_bytes: bool,
}

/// A block-aligned run of elements of one entry, decoded on one side or both.
struct Piece {
    entry: usize,
    elements: Range<u64>,
    /// Where in the driver file the piece's work belongs (its window).
    start: u64,
}

/// What one piece produced.
struct PieceOut {
    driver: Option<Result<Moments, QuantError>>,
    partner: Option<Result<Moments, QuantError>>,
    diff: Option<DiffSums>,
}

/// Per-entry hashing state, advanced in file order by the serial task.
struct Hashing {
    driver: Sha256,
    /// `None` while the partner's bytes have equalled the driver's (same layout only).
    partner: Option<Sha256>,
}

struct Files<'a> {
    driver: &'a GgufFile,
    partner: Option<&'a GgufFile>,
}

impl Files<'_> {
    fn driver_tensor(&self, e: &Entry) -> &TensorInfo {
        &self.driver.header.tensors[e.driver]
    }

    fn partner_tensor(&self, e: &Entry) -> Option<(&GgufFile, &TensorInfo)> {
        let file = self.partner?;
        Some((file, file.header.tensors.get(e.partner?)?))
    }

    /// Absolute byte range of the partner's data matching the driver's data bytes `rel`
    /// (relative): the same bytes when the layouts agree, else the proportional range,
    /// so that walking the driver's tensor front to back walks the partner's too.
    fn partner_bytes(&self, e: &Entry, rel: &Range<u64>) -> Option<Range<u64>> {
        let (file, p) = self.partner_tensor(e)?;
        let d = self.driver_tensor(e);
        let base = file.header.data_range(p).start;
        let map = |x: u64| -> u64 {
            if x >= d.size {
                p.size
            } else {
                // x < d.size, so the result is below p.size and fits in u64.
                (u128::from(x) * u128::from(p.size) / u128::from(d.size.max(1))) as u64
            }
        };
        Some(base + map(rel.start)..base + map(rel.end))
    }
}

/// Run the pass over `entries` (sorted by nothing in particular; the pass orders them).
pub fn run(
    driver: &GgufFile,
    partner: Option<&GgufFile>,
    entries: &[Entry],
    with_fingerprint: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> PassOutput {
    let files = Files { driver, partner };
    let layouts: Vec<Layout> = entries.iter().map(|e| layout(&files, e)).collect();
    let pieces = plan(&files, entries, &layouts);

    // Entries in the driver's file order, for the serial hashing walk.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| {
        driver
            .header
            .data_range(files.driver_tensor(&entries[i]))
            .start
    });
    let mut hashing: Vec<Hashing> = layouts
        .iter()
        .zip(entries)
        .map(|(l, e)| Hashing {
            driver: Sha256::new(),
            partner: (e.partner.is_some() && partner.is_some() && !l.same_bytes).then(Sha256::new),
        })
        .collect();
    let mut file_hasher = Sha256::new();
    let mut cursor = 0;
    let touched: Mutex<Vec<Range<u64>>> = Mutex::new(Vec::new());

    let outs = stats::stream(
        driver,
        &pieces,
        |p| p.start,
        || (Vec::new(), Vec::new()),
        |bufs, piece| piece_work(&files, entries, &layouts, piece, bufs),
        |window, _| {
            if with_fingerprint {
                file_hasher.update(stats::slice(driver.bytes(), &window));
            }
            let mut local = Vec::new();
            while let Some(&i) = order.get(cursor) {
                let e = &entries[i];
                let range = driver.header.data_range(files.driver_tensor(e));
                if range.start >= window.end {
                    break;
                }
                let (a, b) = (range.start.max(window.start), range.end.min(window.end));
                if a < b {
                    let rel = a - range.start..b - range.start;
                    if let Some(p) = feed(&files, e, &layouts[i], &mut hashing[i], &rel) {
                        local.push(p);
                    }
                }
                if range.end > window.end {
                    break;
                }
                cursor += 1;
            }
            if let Ok(mut t) = touched.lock() {
                t.extend(local);
            }
        },
        |window, window_pieces| {
            driver.release(window.clone());
            if let (Some(file), Ok(mut t)) = (partner, touched.lock()) {
                for piece in window_pieces {
                    let e = &entries[piece.entry];
                    let geometry = layouts[piece.entry].partner.as_ref();
                    if let (Some((_, p)), Some(Ok(g))) = (files.partner_tensor(e), geometry) {
                        let base = file.header.data_range(p).start;
                        let rel = g.bytes_of(&piece.elements);
                        t.push(base + rel.start..base + rel.end);
                    }
                }
                release_all(file, &mut t);
            }
            progress(window.end - window.start);
        },
    );

    let fingerprint = with_fingerprint.then(|| Fingerprint(file_hasher.finalize().into()));
    let results = assemble(&files, entries, &layouts, &pieces, outs, hashing);
    PassOutput {
        fingerprint,
        entries: results,
    }
}

fn layout(files: &Files<'_>, e: &Entry) -> Layout {
    let d = files.driver_tensor(e);
    let partner = files.partner_tensor(e);
    Layout {
        driver: Geometry::of(d),
        partner: partner.map(|(_, p)| Geometry::of(p)),
        // Equal bytes mean equal values for every type but I2_S, whose scale lives in a
        // tail outside the element bytes the pieces compare.
        same_bytes: partner
            .is_some_and(|(_, p)| p.ty == d.ty && p.size == d.size && d.ty != GgmlType::I2S),
    }
}

/// Pieces of every entry with a decodable side, aligned to both sides' blocks, in the
/// driver's file order.
fn plan(files: &Files<'_>, entries: &[Entry], layouts: &[Layout]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for (i, (e, l)) in entries.iter().zip(layouts).enumerate() {
        let d = files.driver_tensor(e);
        let driver = l.driver.as_ref().ok();
        let partner = l.partner.as_ref().and_then(|p| p.as_ref().ok());
        // Block sizes are powers of two, so the larger is a multiple of the smaller;
        // the product is a common multiple in any case.
        let align = match (driver, partner) {
            (Some(a), Some(b)) if a.block_elems % b.block_elems == 0 => a.block_elems,
            (Some(a), Some(b)) if b.block_elems % a.block_elems == 0 => b.block_elems,
            (Some(a), Some(b)) => a.block_elems.saturating_mul(b.block_elems),
            (Some(a), None) | (None, Some(a)) => a.block_elems,
            (None, None) => continue,
        };
        let Some(sizing) = driver.or(partner) else {
            continue;
        };
        let step = sizing.piece_elements(align);
        let base = files.driver.header.data_range(d).start;
        let mut at = 0u64;
        while at < d.elements {
            let elements = at..at.saturating_add(step).min(d.elements);
            let start = match driver {
                Some(g) => base + g.bytes_of(&elements).start,
                None => base,
            };
            pieces.push(Piece {
                entry: i,
                elements,
                start,
            });
            at = at.saturating_add(step);
        }
    }
    pieces.sort_by_key(|p| p.start);
    pieces
}

/// Bytes `rel` (relative to the tensor's data) of tensor `t` of `file`.
fn data_bytes<'f>(file: &'f GgufFile, t: &TensorInfo, rel: &Range<u64>) -> &'f [u8] {
    let base = file.header.data_range(t).start;
    stats::slice(file.bytes(), &(base + rel.start..base + rel.end))
}

fn piece_work(
    files: &Files<'_>,
    entries: &[Entry],
    layouts: &[Layout],
    piece: &Piece,
    (a, b): &mut (Vec<f32>, Vec<f32>),
) -> PieceOut {
    let e = &entries[piece.entry];
    let l = &layouts[piece.entry];
    let d = files.driver_tensor(e);
    let partner = files.partner_tensor(e);
    if let (true, Ok(g), Some((pf, p))) = (l.same_bytes, &l.driver, partner) {
        let rel = g.bytes_of(&piece.elements);
        if data_bytes(files.driver, d, &rel) == data_bytes(pf, p, &rel) {
            let m = stats::decode(files.driver, d, g, &piece.elements, a).map(|()| Moments::of(a));
            return PieceOut {
                diff: m.is_ok().then(DiffSums::default).map(|mut s| {
                    s.pairs = m.as_ref().map_or(0, |m| m.finite);
                    s
                }),
                partner: Some(m.clone()),
                driver: Some(m),
            };
        }
    }
    let driver =
        l.driver.as_ref().ok().map(|g| {
            stats::decode(files.driver, d, g, &piece.elements, a).map(|()| Moments::of(a))
        });
    let partner = match (&l.partner, partner) {
        (Some(Ok(g)), Some((pf, p))) => {
            Some(stats::decode(pf, p, g, &piece.elements, b).map(|()| Moments::of(b)))
        }
        _ => None,
    };
    let diff = match (&driver, &partner) {
        (Some(Ok(_)), Some(Ok(_))) => Some(diff_sums(b, a)),
        _ => None,
    };
    PieceOut {
        driver,
        partner,
        diff,
    }
}

/// Hash the driver's bytes `rel` (relative to the entry's data) and the partner's
/// matching bytes; returns the partner range read, to be released.
fn feed(
    files: &Files<'_>,
    e: &Entry,
    layout: &Layout,
    h: &mut Hashing,
    rel: &Range<u64>,
) -> Option<Range<u64>> {
    let d = files.driver_tensor(e);
    let ours = data_bytes(files.driver, d, rel);
    let Some(range) = files.partner_bytes(e, rel) else {
        h.driver.update(ours);
        return None;
    };
    let theirs = stats::slice(files.partner?.bytes(), &range);
    if layout.same_bytes && h.partner.is_none() && ours != theirs {
        // The first difference: until here the partner's bytes were the driver's.
        h.partner = Some(h.driver.clone());
    }
    h.driver.update(ours);
    if let Some(p) = h.partner.as_mut() {
        p.update(theirs);
    }
    Some(range)
}

/// Release every range read from `file` (merged, so each page is advised once).
fn release_all(file: &GgufFile, ranges: &mut Vec<Range<u64>>) {
    ranges.sort_by_key(|r| r.start);
    let mut current: Option<Range<u64>> = None;
    for r in ranges.drain(..) {
        current = match current {
            Some(c) if r.start <= c.end => Some(c.start..c.end.max(r.end)),
            Some(c) => {
                file.release(c);
                Some(r)
            }
            None => Some(r),
        };
    }
    if let Some(c) = current {
        file.release(c);
    }
}

/// Per-entry accumulation of piece results.
#[derive(Default)]
struct Acc {
    driver: Option<Result<Moments, QuantError>>,
    partner: Option<Result<Moments, QuantError>>,
    diff: Option<DiffSums>,
}

fn merge_into(
    slot: &mut Option<Result<Moments, QuantError>>,
    m: Option<Result<Moments, QuantError>>,
) {
    match (slot.as_mut(), m) {
        (_, None) => {}
        (None, Some(m)) => *slot = Some(m),
        (Some(Ok(acc)), Some(Ok(m))) => acc.merge(&m),
        (Some(Ok(_)), Some(Err(e))) => *slot = Some(Err(e)),
        (Some(Err(_)), Some(_)) => {}
    }
}

/// A side's statistics from its merged moments (no pieces: an empty tensor).
fn side_stats(
    t: &TensorInfo,
    geometry: &Result<Geometry, QuantError>,
    moments: Option<Result<Moments, QuantError>>,
) -> Result<TensorStats, StatsError> {
    let error = |error: QuantError| StatsError {
        tensor: t.name.clone(),
        error,
    };
    match (geometry, moments) {
        (Err(e), _) => Err(error(e.clone())),
        (Ok(_), Some(Err(e))) => Err(error(e)),
        (Ok(_), Some(Ok(m))) => Ok(m.finish(t)),
        (Ok(_), None) => Ok(Moments::default().finish(t)),
    }
}

fn assemble(
    files: &Files<'_>,
    entries: &[Entry],
    layouts: &[Layout],
    pieces: &[Piece],
    outs: Vec<PieceOut>,
    hashing: Vec<Hashing>,
) -> Vec<EntryResult> {
    let mut acc: Vec<Acc> = entries.iter().map(|_| Acc::default()).collect();
    for (piece, out) in pieces.iter().zip(outs) {
        let a = &mut acc[piece.entry];
        merge_into(&mut a.driver, out.driver);
        merge_into(&mut a.partner, out.partner);
        if let Some(s) = out.diff {
            a.diff.get_or_insert_with(DiffSums::default).merge(&s);
        }
    }
    let mut results = Vec::with_capacity(entries.len());
    for (((e, l), a), h) in entries.iter().zip(layouts).zip(acc).zip(hashing) {
        let d = files.driver_tensor(e);
        let partner = files.partner_tensor(e).zip(l.partner.as_ref());
        // The hashing walk compared every byte of a same-layout pair: identical when it
        // never found a difference.
        let byte_identical = l.same_bytes && partner.is_some() && h.partner.is_none();
        let partner = partner.map(|((pf, p), geometry)| {
            let mut hasher = h.partner.clone().unwrap_or_else(|| h.driver.clone());
            // A driver tensor of no bytes never reached the walk: hash the partner's whole.
            if d.size == 0 && p.size > 0 && !byte_identical {
                hasher.update(stats::slice(pf.bytes(), &pf.header.data_range(p)));
            }
            SideResult {
                sha256: hasher.finalize().into(),
                stats: side_stats(p, geometry, a.partner),
            }
        });
        results.push(EntryResult {
            driver: SideResult {
                sha256: h.driver.finalize().into(),
                stats: side_stats(d, &l.driver, a.driver),
            },
            partner,
            byte_identical,
            diff: a.diff,
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_sums_are_exact_the_same_with_avx2_and_split_out_nonfinite_values() {
        let old: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut new: Vec<f32> = old.iter().map(|x| x * 1.5 + 0.01).collect();
        let naive: f64 = old
            .iter()
            .zip(&new)
            .map(|(x, y)| (f64::from(*y) - f64::from(*x)).powi(2))
            .sum();
        let s = diff_sums(&old, &new);
        assert!(
            (s.sum_sq - naive).abs() <= 1e-12 * naive,
            "{} vs {naive}",
            s.sum_sq
        );
        assert_eq!((s.pairs, s.nonfinite_changed), (1003, 0));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            let avx = unsafe { diff_sums_avx2(&old, &new) };
            assert_eq!(
                avx.sum_sq.to_bits(),
                diff_sums_portable(&old, &new).sum_sq.to_bits()
            );
        }
        new[5] = f32::NAN;
        let mut old2 = old.clone();
        old2[7] = f32::INFINITY;
        new[7] = f32::INFINITY;
        let s = diff_sums(&old2, &new);
        assert_eq!((s.pairs, s.nonfinite_changed), (1001, 1));
    }
}
