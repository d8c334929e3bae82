//! The matrix kernels of the AVX2 and AVX-512 paths for the formats models mostly ship
//! in (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K): one weight row against up to
//! [`COLS`] activation vectors at a time, everything in registers. Each block of the
//! row is unpacked once and multiplied into every column's eight f32 lanes with
//! `_mm256_fmadd_ps` — per lane the same single-rounding FMA as the `f32::mul_add` of
//! the reference code in `dot.rs`, in the same block order, with the same scale and
//! the same horizontal sum at the end — so the results are the reference's bits, and
//! ggml's where its AVX2 `vec_dot` kernels run (checked bit for bit on SmolLM2's Q4_1 and
//! Q8_0 matrices by `tests/quality.rs`).
//!
//! Why a second copy of the arithmetic: written as portable Rust, the lanes went
//! through memory and the FMAs ran one scalar at a time; this is what makes the engine's
//! speed comparable to llama.cpp's (`docs/performance.md`). Why several columns: a
//! prompt or a scored text multiplies each weight row by many tokens, and unpacking a
//! block's 4-bit codes once for four tokens instead of four times is most of the gain.
//!
//! Every function carries `#[target_feature(enable = "avx2,fma,f16c")]` (calling one
//! from code without those features is `unsafe`) and may only run where `isa.rs` found
//! them. Blocks are taken with `get`, loads are unaligned loads inside slices of checked
//! length, so no load leaves its slice (the prefetch hint only computes an address
//! ahead, never dereferenced); a column shorter than the row (which the loader rules
//! out) reads as zeros.
//!
//! The AVX-512 path runs the same driver ([`rows`] with `WIDE`), which hands the rows to
//! `wide.rs` two or four at a time, spread over the range (row `i` with row
//! `i + count / 2`, or with rows `i + k * count / 4`), so that each part of the range is
//! one stream through memory.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::dot::k4_scale_words;
use super::{Activations, BlockQ8K, BlockQ8_0, BlockQ8_1, MatRef};
use crate::gguf::GgmlType;

/// Activation vectors multiplied together by one pass over a weight row.
pub const COLS: usize = 4;

/// The eight lanes of a register summed as [`super::float_ops::hsum_128`] does: high
/// half plus low half, then the upper pair onto the lower, then the two left.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum(v: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
}

/// An f16 stored little-endian at `x[at..at + 2]` (0 out of range).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn f16_at(x: &[u8], at: usize) -> f32 {
    match x.get(at..at + 2) {
        Some(&[lo, hi]) => {
            let h = _mm_cvtsi32_si128(i32::from(u16::from_le_bytes([lo, hi])));
            _mm_cvtss_f32(_mm_cvtph_ps(h))
        }
        _ => 0.0,
    }
}

/// 16 bytes of `x` from `at` (zeros out of range).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load16(x: &[u8], at: usize) -> __m128i {
    match x.get(at..at + 16) {
        // SAFETY: the slice holds the 16 bytes read.
        Some(s) => unsafe { _mm_loadu_si128(s.as_ptr().cast()) },
        None => _mm_setzero_si128(),
    }
}

/// 32 bytes of `x` from `at` (zeros out of range).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn load32<T: Copy>(x: &[T], at: usize) -> __m256i {
    debug_assert!(std::mem::size_of::<T>() == 1);
    match x.get(at..at + 32) {
        // SAFETY: the slice holds the 32 one-byte elements read.
        Some(s) => unsafe { _mm256_loadu_si256(s.as_ptr().cast()) },
        None => _mm256_setzero_si256(),
    }
}

/// How far ahead of the block being multiplied a row is fetched into the cache
/// (decoding SmolLM2: 512 bytes gave +15 %, 1024 +30 % over none; 2048 no more).
pub(super) const PREFETCH_BYTES: usize = 1024;

/// Bytes of one Q4_K and one Q6_K block (256 weights).
pub(super) const Q4K_BYTES: usize = 144;
pub(super) const Q6K_BYTES: usize = 210;

/// Ask for the cache line `ahead` bytes past the start of `x` (a hint: an address past
/// the row's end is never dereferenced, and the pointer is only computed, wrapping).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn prefetch(x: &[u8], ahead: usize) {
    let p = x.as_ptr().wrapping_add(ahead);
    // Safe to call: a prefetch does not access memory in the program's sense, and
    // cannot fault.
    _mm_prefetch::<_MM_HINT_T0>(p.cast());
}

/// Pair products of unsigned bytes `u` and signed bytes `y`, summed by four into eight
/// i32 lanes (`maddubs` then `madd` by one; every pair sum fits i16 for the callers'
/// ranges: `u` at most 63 here, or 128 from the sign trick).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sum4_unsigned(u: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1))
}

/// The same for two signed vectors: `|x|` times `y` with x's sign.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sum4_signed(x: __m256i, y: __m256i) -> __m256i {
    sum4_unsigned(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// 32 bytes whose byte `i` is 0xFF when bit `i` of `bits` is set (ggml's
/// `bytes_from_bits_32`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_bits(bits: u32) -> __m256i {
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        ),
    );
    let marked = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(marked, _mm256_set1_epi64x(-1))
}

/// The 32 four-bit codes of a Q4 block (`qs[j]` holds element `j` low, `j + 16` high)
/// as unsigned bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles(x: &[u8], at: usize) -> __m256i {
    let bytes = load16(x, at);
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(bytes, mask);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
    _mm256_set_m128i(hi, lo)
}

/// The formats of 32-element blocks, as the kernels' const parameter (so each format's
/// loop is compiled on its own, without a branch per block).
pub(super) const Q4_0: u8 = 0;
pub(super) const Q4_1: u8 = 1;
pub(super) const Q5_0: u8 = 2;
pub(super) const Q5_1: u8 = 3;
pub(super) const Q8_0: u8 = 4;

/// Bytes of one block of format `f`.
pub(super) const fn block_bytes(f: u8) -> usize {
    match f {
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        Q5_1 => 24,
        _ => 34,
    }
}

/// One unpacked block: its scale, its min (Q4_1/Q5_1, else 0) and its 32 codes
/// (unsigned for Q4_0/Q4_1/Q5_1, signed for Q5_0/Q8_0).
pub(super) struct Unpacked {
    pub(super) d: f32,
    pub(super) m: f32,
    pub(super) codes: __m256i,
}

/// Unpack block `x` of format `F`, as `dot.rs` reads it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn unpack<const F: u8>(x: &[u8]) -> Unpacked {
    let d = f16_at(x, 0);
    let fifth_bit = |at: usize| {
        let qh = x
            .get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10))
    };
    let (m, codes) = match F {
        Q4_0 => (0.0, nibbles(x, 2)),
        Q4_1 => (f16_at(x, 2), nibbles(x, 4)),
        Q5_0 => (
            0.0,
            _mm256_sub_epi8(
                _mm256_or_si256(nibbles(x, 6), fifth_bit(2)),
                _mm256_set1_epi8(16),
            ),
        ),
        Q5_1 => (f16_at(x, 2), _mm256_or_si256(nibbles(x, 8), fifth_bit(4))),
        _ => (0.0, load32(x, 2)),
    };
    Unpacked { d, m, codes }
}

/// The eight i32 lanes of `codes · y` for format `F` (Q4_0's codes are unsigned
/// nibbles: `n y - 8 y` per pair).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lanes<const F: u8>(codes: __m256i, y: __m256i) -> __m256i {
    match F {
        Q4_0 => {
            let p = _mm256_sub_epi16(
                _mm256_maddubs_epi16(codes, y),
                _mm256_maddubs_epi16(_mm256_set1_epi8(8), y),
            );
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        }
        Q4_1 | Q5_1 => sum4_unsigned(codes, y),
        _ => sum4_signed(codes, y),
    }
}

/// A Q8_0 or Q8_1 activation block.
pub(super) trait Q8Block: Sized {
    /// The blocks of `a` when it is in this format.
    fn blocks_of(a: &Activations) -> Option<&[Self]>;
    fn d(&self) -> f32;
    /// `d * Σ q` (Q8_1), 0 for Q8_0.
    fn s(&self) -> f32;
    fn qs(&self) -> &[i8; 32];
}

impl Q8Block for BlockQ8_0 {
    fn blocks_of(a: &Activations) -> Option<&[Self]> {
        match a {
            Activations::Q8_0(v) => Some(v),
            _ => None,
        }
    }
    fn d(&self) -> f32 {
        self.d
    }
    fn s(&self) -> f32 {
        0.0
    }
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

impl Q8Block for BlockQ8_1 {
    fn blocks_of(a: &Activations) -> Option<&[Self]> {
        match a {
            Activations::Q8_1(v) => Some(v),
            _ => None,
        }
    }
    fn d(&self) -> f32 {
        self.d
    }
    fn s(&self) -> f32 {
        self.s
    }
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

/// The whole blocks of `block` bytes every row holds and every column covers.
#[inline(always)]
pub(super) fn common_blocks<T, const R: usize, const C: usize>(
    rows: &[&[u8]; R],
    block: usize,
    cols: &[&[T]; C],
) -> usize {
    let r = rows.iter().map(|r| r.len() / block).min().unwrap_or(0);
    cols.iter().map(|c| c.len()).min().map_or(r, |c| c.min(r))
}

/// `R` rows of format `F` times `C` activation vectors: per output, `dot.rs`'s
/// `BlockLanes` (plus Q4_1/Q5_1's `Σ m * s` by scalar FMA, added after the horizontal
/// sum). The `R × C` outputs are independent chains of FMAs, which is what keeps the
/// CPU busy: one chain alone waits on the latency of each FMA.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_32<A: Q8Block, const F: u8, const R: usize, const C: usize>(
    rows: [&[u8]; R],
    cols: [&[A]; C],
) -> [[f32; C]; R] {
    let bytes = block_bytes(F);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut summs = [[0.0f32; C]; R];
    for b in 0..common_blocks(&rows, bytes, &cols) {
        for r in 0..R {
            let Some(x) = rows[r].get(b * bytes..(b + 1) * bytes) else {
                continue;
            };
            prefetch(x, PREFETCH_BYTES);
            let w = unpack::<F>(x);
            for c in 0..C {
                let Some(y) = cols[c].get(b) else { continue };
                let l = lanes::<F>(w.codes, load32(y.qs(), 0));
                let scale = _mm256_set1_ps(w.d * y.d());
                acc[r][c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(l), acc[r][c]);
                if matches!(F, Q4_1 | Q5_1) {
                    summs[r][c] = w.m.mul_add(y.s(), summs[r][c]);
                }
            }
        }
    }
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let sum = hsum(acc[r][c]);
            if matches!(F, Q4_1 | Q5_1) {
                sum + summs[r][c]
            } else {
                sum
            }
        })
    })
}

/// `R` rows of Q4_K times `C` activation vectors: per block the scaled integer lanes
/// of each output (the integers of `avx2.rs`'s `k_lanes`, here with the nibbles unpacked
/// once per row for every column), added by
/// FMA with `dy * d`; the min lanes by FMA with `-dy * dmin` into four more; then the
/// horizontal sum plus `(m0 + m2) + (m1 + m3)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_q4_k<const R: usize, const C: usize>(
    rows: [&[u8]; R],
    cols: [&[BlockQ8K]; C],
) -> [[f32; C]; R] {
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut acc_m = [[_mm_setzero_ps(); C]; R];
    let mask = _mm256_set1_epi8(0x0F);
    for b in 0..common_blocks(&rows, Q4K_BYTES, &cols) {
        let Some(ys) = blocks_at(&cols, b) else {
            continue;
        };
        for r in 0..R {
            let Some(x) = rows[r].get(Q4K_BYTES * b..Q4K_BYTES * (b + 1)) else {
                continue;
            };
            for line in (0..Q4K_BYTES).step_by(64) {
                prefetch(x, PREFETCH_BYTES + line);
            }
            let (dx, dminx) = (f16_at(x, 0), f16_at(x, 2));
            let packed: [u8; 12] = x
                .get(4..16)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 12]);
            let [s_lo, s_hi, m_lo, m_hi] = k4_scale_words(&packed).map(|w| w as i32);
            // Lanes 0..7 the scales, 8..15 the mins, as i16.
            let scales_mins = _mm256_cvtepu8_epi16(_mm_setr_epi32(s_lo, s_hi, m_lo, m_hi));
            let mins16 = _mm256_extracti128_si256::<1>(scales_mins);
            let scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins));
            let mut isum = [_mm256_setzero_si256(); C];
            for chunk in 0..4 {
                let q = load32(x, 16 + 32 * chunk);
                let lo = _mm256_and_si256(q, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
                // Scales are at most 63: the i16 pair sums times them stay exact in i32.
                let s0 = _mm256_shuffle_epi8(scales, scale_pick(2 * chunk));
                let s1 = _mm256_shuffle_epi8(scales, scale_pick(2 * chunk + 1));
                for c in 0..C {
                    let y0 = load32(&ys[c].qs, 64 * chunk);
                    let y1 = load32(&ys[c].qs, 64 * chunk + 32);
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(p0, p1));
                }
            }
            for c in 0..C {
                let y = ys[c];
                let d = _mm256_set1_ps(y.d * dx);
                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum[c]), acc[r][c]);
                let mins = _mm_cvtepi32_ps(min_lanes(y, mins16));
                acc_m[r][c] = _mm_fmadd_ps(_mm_set1_ps(-y.d * dminx), mins, acc_m[r][c]);
            }
        }
    }
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let mut m = [0.0f32; 4];
            // SAFETY: `m` holds the four floats stored.
            unsafe { _mm_storeu_ps(m.as_mut_ptr(), acc_m[r][c]) };
            hsum(acc[r][c]) + ((m[0] + m[2]) + (m[1] + m[3]))
        })
    })
}

/// The shuffle that fills every i16 lane with lane `i` of the (duplicated) low half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_pick(i: usize) -> __m256i {
    let lo = (2 * i) as i16;
    _mm256_set1_epi16(((lo + 1) << 8) | lo)
}

/// `dot.rs`'s `k4_min_lanes` as ggml's AVX2 code forms it: the 16 sub-sums of the
/// activations added in pairs (`hadd`, exact: each pair is at most 2 · 16 · 127), times
/// the eight 6-bit mins, adjacent products summed (`madd`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn min_lanes(y: &BlockQ8K, mins16: __m128i) -> __m128i {
    // SAFETY: `bsums` is 16 i16 = 32 bytes.
    let sums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
    let pairs = _mm_hadd_epi16(
        _mm256_castsi256_si128(sums),
        _mm256_extracti128_si256::<1>(sums),
    );
    _mm_madd_epi16(mins16, pairs)
}

/// `R` rows of Q6_K times `C` activation vectors: the 6-bit codes of each 32-element
/// quarter and their two scales unpacked once per row, `q y - 32 y` per pair, scaled
/// lanes summed over the block in i32, then one FMA per block with `dy * d` (the
/// integers of `avx2.rs`'s `q6k_lanes`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_q6_k<const R: usize, const C: usize>(
    rows: [&[u8]; R],
    cols: [&[BlockQ8K]; C],
) -> [[f32; C]; R] {
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(3);
    let m32 = _mm256_set1_epi8(32);
    for b in 0..common_blocks(&rows, Q6K_BYTES, &cols) {
        let Some(ys) = blocks_at(&cols, b) else {
            continue;
        };
        for r in 0..R {
            let Some(x) = rows[r].get(Q6K_BYTES * b..Q6K_BYTES * (b + 1)) else {
                continue;
            };
            for line in (0..Q6K_BYTES).step_by(64) {
                prefetch(x, PREFETCH_BYTES + line);
            }
            // The sixteen i8 scales of the block.
            let group_scales = load16(x, 192);
            let mut isum = [_mm256_setzero_si256(); C];
            for half in 0..2 {
                let l0 = load32(x, 64 * half);
                let l1 = load32(x, 64 * half + 32);
                let h = load32(x, 128 + 32 * half);
                let high = |shift: __m128i| {
                    _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srl_epi16(h, shift), m2))
                };
                let quarters = [
                    _mm256_or_si256(_mm256_and_si256(l0, m4), high(_mm_cvtsi32_si128(0))),
                    _mm256_or_si256(_mm256_and_si256(l1, m4), high(_mm_cvtsi32_si128(2))),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
                        high(_mm_cvtsi32_si128(4)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
                        high(_mm_cvtsi32_si128(6)),
                    ),
                ];
                for (k, q) in quarters.into_iter().enumerate() {
                    let at = 128 * half + 32 * k;
                    // Lanes 0..7 hold group g's pair sums, lanes 8..15 group g + 1's.
                    let g = at / 16;
                    let pick = _mm_set_epi64x(
                        0x0101_0101_0101_0101 * (g as i64 + 1),
                        0x0101_0101_0101_0101 * g as i64,
                    );
                    let scales = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(group_scales, pick));
                    for c in 0..C {
                        let y = load32(&ys[c].qs, at);
                        let p = _mm256_sub_epi16(
                            _mm256_maddubs_epi16(q, y),
                            _mm256_maddubs_epi16(m32, y),
                        );
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, scales));
                    }
                }
            }
            let dx = f16_at(x, 208);
            for c in 0..C {
                let d = _mm256_set1_ps(ys[c].d * dx);
                acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum[c]), acc[r][c]);
            }
        }
    }
    std::array::from_fn(|r| std::array::from_fn(|c| hsum(acc[r][c])))
}

/// Block `b` of every column, or `None` if a column is too short.
#[inline(always)]
pub(super) fn blocks_at<'a, const C: usize>(
    cols: &[&'a [BlockQ8K]; C],
    b: usize,
) -> Option<[&'a BlockQ8K; C]> {
    let mut out = [cols[0].first()?; C];
    for (o, col) in out.iter_mut().zip(cols) {
        *o = col.get(b)?;
    }
    Some(out)
}

/// The const format parameter of rows of type `ty`, if they are 32-element blocks.
fn format32(ty: GgmlType) -> Option<u8> {
    Some(match ty {
        GgmlType::Q4_0 => Q4_0,
        GgmlType::Q4_1 => Q4_1,
        GgmlType::Q5_0 => Q5_0,
        GgmlType::Q5_1 => Q5_1,
        GgmlType::Q8_0 => Q8_0,
        _ => return None,
    })
}

/// An activation block type and the kernels that take it.
trait Column: Sized {
    /// Whether a column that goes alone (a decoded token) is multiplied by [`ROWS`] rows
    /// at once: that keeps four independent chains of FMAs busy for the 32-element
    /// formats; the K-quants' block already holds eight chains' worth of integer work,
    /// and two or four rows of it no longer fit the registers (measured 15–60 %
    /// slower).
    const GROUP_ROWS: bool;

    /// The blocks of `a` when it is in this format.
    fn of(a: &Activations) -> Option<&[Self]>;

    /// `R` rows of type `ty` times `C` columns (zeros for a type without a kernel here).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    unsafe fn tile<const R: usize, const C: usize>(
        ty: GgmlType,
        rows: [&[u8]; R],
        cols: [&[Self]; C],
    ) -> [[f32; C]; R];

    /// `P` pairs of rows of type `ty` times `C` columns on the AVX-512 path (`wide.rs`).
    ///
    /// # Safety
    /// The CPU must have AVX-512F/BW/VL/DQ and VNNI besides AVX2, FMA and F16C.
    unsafe fn wide<const P: usize, const C: usize>(
        ty: GgmlType,
        pairs: [[&[u8]; 2]; P],
        cols: [&[Self]; C],
    ) -> [[[f32; C]; 2]; P];
}

/// The 32-element formats, against Q8_0 or Q8_1 activations.
impl<A: Q8Block> Column for A {
    const GROUP_ROWS: bool = true;

    fn of(a: &Activations) -> Option<&[Self]> {
        A::blocks_of(a)
    }

    #[inline(always)]
    unsafe fn wide<const P: usize, const C: usize>(
        ty: GgmlType,
        pairs: [[&[u8]; 2]; P],
        cols: [&[Self]; C],
    ) -> [[[f32; C]; 2]; P] {
        use super::wide::tile_32;
        // SAFETY: the caller guarantees the features.
        unsafe {
            match format32(ty) {
                Some(Q4_0) => tile_32::<A, Q4_0, P, C>(pairs, cols),
                Some(Q4_1) => tile_32::<A, Q4_1, P, C>(pairs, cols),
                Some(Q5_0) => tile_32::<A, Q5_0, P, C>(pairs, cols),
                Some(Q5_1) => tile_32::<A, Q5_1, P, C>(pairs, cols),
                Some(Q8_0) => tile_32::<A, Q8_0, P, C>(pairs, cols),
                _ => [[[0.0; C]; 2]; P],
            }
        }
    }

    #[inline(always)]
    unsafe fn tile<const R: usize, const C: usize>(
        ty: GgmlType,
        rows: [&[u8]; R],
        cols: [&[Self]; C],
    ) -> [[f32; C]; R] {
        // SAFETY: the caller guarantees the features.
        unsafe {
            match format32(ty) {
                Some(Q4_0) => tile_32::<A, Q4_0, R, C>(rows, cols),
                Some(Q4_1) => tile_32::<A, Q4_1, R, C>(rows, cols),
                Some(Q5_0) => tile_32::<A, Q5_0, R, C>(rows, cols),
                Some(Q5_1) => tile_32::<A, Q5_1, R, C>(rows, cols),
                Some(Q8_0) => tile_32::<A, Q8_0, R, C>(rows, cols),
                _ => [[0.0; C]; R],
            }
        }
    }
}

impl Column for BlockQ8K {
    const GROUP_ROWS: bool = false;

    fn of(a: &Activations) -> Option<&[Self]> {
        match a {
            Activations::Q8K(v) => Some(v),
            _ => None,
        }
    }

    #[inline(always)]
    unsafe fn wide<const P: usize, const C: usize>(
        ty: GgmlType,
        pairs: [[&[u8]; 2]; P],
        cols: [&[Self]; C],
    ) -> [[[f32; C]; 2]; P] {
        // SAFETY: the caller guarantees the features.
        unsafe {
            match ty {
                GgmlType::Q4K => super::wide::tile_q4_k(pairs, cols),
                GgmlType::Q6K => super::wide::tile_q6_k(pairs, cols),
                _ => [[[0.0; C]; 2]; P],
            }
        }
    }

    #[inline(always)]
    unsafe fn tile<const R: usize, const C: usize>(
        ty: GgmlType,
        rows: [&[u8]; R],
        cols: [&[Self]; C],
    ) -> [[f32; C]; R] {
        // SAFETY: the caller guarantees the features.
        unsafe {
            match ty {
                GgmlType::Q4K => tile_q4_k(rows, cols),
                GgmlType::Q6K => tile_q6_k(rows, cols),
                _ => [[0.0; C]; R],
            }
        }
    }
}

/// `R` (2 or 4) rows as the pairs `wide.rs` takes: rows 0 and 1, then rows 2 and 3.
fn pairs_of<const R: usize>(rows: [&[u8]; R]) -> [[&[u8]; 2]; 2] {
    let row = |r: usize| rows.get(r).copied().unwrap_or_default();
    [[row(0), row(1)], [row(2), row(3)]]
}

/// `wide.rs`'s outputs, pair by pair, as `R` rows.
fn rows_from_pairs<const R: usize, const C: usize, const P: usize>(
    out: [[[f32; C]; 2]; P],
) -> [[f32; C]; R] {
    std::array::from_fn(|r| out.get(r / 2).map_or([0.0; C], |pair| pair[r % 2]))
}

/// Rows taken together when columns go one at a time (see [`Column::GROUP_ROWS`]).
const ROWS: usize = 4;

/// Whether [`rows`] has a kernel for matrices of type `ty`.
pub fn handles(ty: GgmlType) -> bool {
    format32(ty).is_some() || matches!(ty, GgmlType::Q4K | GgmlType::Q6K)
}

/// `out[i * n + t] = row (first + i) · acts[t]` (`isa.rs`'s layout) when [`handles`]
/// accepts the type and every activation is in its format; returns false, touching
/// nothing, otherwise. Columns go [`COLS`] at a time against one row; the remaining
/// columns one at a time, against [`ROWS`] rows at once where
/// [`Column::GROUP_ROWS`] says so.
///
/// `WIDE` (the AVX-512 path) multiplies K-quant rows two at a time (`wide.rs`).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and AVX-512F/BW/VL/DQ and VNNI when `WIDE`.
pub unsafe fn rows<const WIDE: bool>(
    w: &MatRef<'_>,
    acts: &[Activations],
    first: usize,
    out: &mut [f32],
) -> bool {
    if !handles(w.ty) {
        return false;
    }
    // SAFETY: the caller guarantees the features.
    unsafe {
        match acts.first() {
            Some(Activations::Q8_0(_)) => rows_of::<BlockQ8_0, WIDE>(w, acts, first, out),
            Some(Activations::Q8_1(_)) => rows_of::<BlockQ8_1, WIDE>(w, acts, first, out),
            Some(Activations::Q8K(_)) => rows_of::<BlockQ8K, WIDE>(w, acts, first, out),
            _ => false,
        }
    }
}

/// The blocks of `a` (empty when not in format `A`, which [`rows_of`] checks first).
fn blocks<A: Column>(a: &Activations) -> &[A] {
    A::of(a).unwrap_or(&[])
}

/// Row `i` of a group of `R` rows starting at `first` whose rows are `stride` apart.
#[inline(always)]
fn group_row(first: usize, stride: usize, r: usize) -> usize {
    first + r * stride
}

/// The groups of rows [`rows_of`] multiplies together, as (first row, rows, stride):
/// `rows` adjacent rows at a time, then single rows; or, `spread`, row `i` with rows
/// `i + k * count / rows` (the AVX-512 path: each part of the range is then read front to
/// back as one stream, which the prefetch hints and the CPU's prefetchers follow;
/// adjacent rows read side by side left every other row's start unfetched, and decoding
/// ran 35 % slower).
fn row_groups(
    count: usize,
    rows: usize,
    spread: bool,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let rows = rows.max(1);
    let (groups, stride) = if spread {
        (count / rows, count / rows)
    } else {
        (count / rows, rows)
    };
    let grouped = (0..groups).map(move |g| {
        if spread {
            (g, rows, stride)
        } else {
            (g * rows, rows, 1)
        }
    });
    let singles = (groups * rows..count).map(|i| (i, 1, 1));
    grouped.chain(singles)
}

/// [`rows`] for activations of block type `A`.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and AVX-512F/BW/VL/DQ and VNNI when `WIDE`.
unsafe fn rows_of<A: Column, const WIDE: bool>(
    w: &MatRef<'_>,
    acts: &[Activations],
    first: usize,
    out: &mut [f32],
) -> bool {
    if !acts.iter().all(|a| A::of(a).is_some()) {
        return false;
    }
    let n = acts.len().max(1);
    let count = out.len() / n;
    // Columns up to COLS at a time; a lone last column goes below. Fewer than four
    // columns go against two rows at once where that pays, to keep enough independent
    // chains of FMAs; on the AVX-512 path rows always go in pairs.
    let grouped = if acts.len() % COLS == 1 {
        acts.len() - 1
    } else {
        acts.len()
    };
    let pair_rows = (A::GROUP_ROWS && grouped < 4) || WIDE;
    if grouped > 0 {
        for (i, r, stride) in row_groups(count, if pair_rows { 2 } else { 1 }, WIDE) {
            let mut t = 0;
            while t < grouped {
                let take = (grouped - t).min(COLS);
                let (acts, out) = (&acts[t..t + take], &mut out[i * n + t..]);
                let row = (first + i, stride);
                // SAFETY: the caller guarantees the features.
                unsafe {
                    match (r, take) {
                        (2, 2) => row_times::<A, WIDE, 2, 2>(w, row, acts, out, n),
                        (2, 3) => row_times::<A, WIDE, 2, 3>(w, row, acts, out, n),
                        (2, _) => row_times::<A, WIDE, 2, COLS>(w, row, acts, out, n),
                        (_, 2) => row_times::<A, WIDE, 1, 2>(w, row, acts, out, n),
                        (_, 3) => row_times::<A, WIDE, 1, 3>(w, row, acts, out, n),
                        _ => row_times::<A, WIDE, 1, COLS>(w, row, acts, out, n),
                    }
                }
                t += take;
            }
        }
    }
    // The lone column: ROWS rows at a time where that pays; on the AVX-512 path every
    // format's rows four at a time, spread (two pairs: one activation block loaded for
    // four rows, four streams of weights in flight; K-quants: 2 pairs decoded Qwen2.5
    // about 8 % faster than 1).
    let lone_rows = if A::GROUP_ROWS || WIDE { ROWS } else { 1 };
    for t in grouped..acts.len() {
        let acts = &acts[t..=t];
        for (i, r, stride) in row_groups(count, lone_rows, WIDE) {
            let (row, out) = ((first + i, stride), &mut out[i * n + t..]);
            // SAFETY: the caller guarantees the features.
            unsafe {
                match r {
                    ROWS => row_times::<A, WIDE, ROWS, 1>(w, row, acts, out, n),
                    2 => row_times::<A, WIDE, 2, 1>(w, row, acts, out, n),
                    _ => row_times::<A, WIDE, 1, 1>(w, row, acts, out, n),
                }
            }
        }
    }
    true
}

/// `R` rows (the first and the distance between them in `row`) times the `C` activation
/// vectors `acts` into `out[(r * stride) * n + c]`.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and AVX-512F/BW/VL/DQ and VNNI when `WIDE`.
#[inline(always)]
unsafe fn row_times<A: Column, const WIDE: bool, const R: usize, const C: usize>(
    w: &MatRef<'_>,
    (row, stride): (usize, usize),
    acts: &[Activations],
    out: &mut [f32],
    n: usize,
) {
    let rows: [&[u8]; R] = std::array::from_fn(|r| w.row(group_row(row, stride, r)));
    let cols: [&[A]; C] = std::array::from_fn(|c| acts.get(c).map_or(&[][..], blocks::<A>));
    // SAFETY: the caller guarantees the features.
    let got = unsafe {
        if WIDE && (R == 2 || R == 4) {
            let pairs = pairs_of(rows);
            if R == 2 {
                rows_from_pairs(A::wide::<1, C>(w.ty, [pairs[0]], cols))
            } else {
                rows_from_pairs(A::wide::<2, C>(w.ty, pairs, cols))
            }
        } else {
            A::tile::<R, C>(w.ty, rows, cols)
        }
    };
    for (r, values) in got.iter().enumerate() {
        let at = group_row(0, stride, r) * n;
        if let Some(out) = out.get_mut(at..at + C) {
            out.copy_from_slice(values);
        }
    }
}
