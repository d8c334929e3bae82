//! The dot product of one weight row (quantized blocks, in place) with one activation
//! vector in the row type's `vec_dot_type` format — every type the engine multiplies.
//!
//! Each function is written so that its result does not depend on the instruction set:
//! inside a block everything is integer arithmetic (exact in any order), and the float
//! parts are combined in one fixed order — that of ggml's x86 AVX2 + FMA kernels
//! (`ggml/src/ggml-cpu/arch/x86/quants.c`) for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and
//! Q6_K: eight f32 lanes, lane `j` receiving the integer sum of elements `4j..4j + 4` of
//! each 32-element row by one FMA (`f32::mul_add`, one rounding on every CPU), summed at
//! the end as `hsum_float_8`. Q5_K, TQ1_0/TQ2_0 and I2_S keep a fixed order of our own.
//! The functions are `#[inline(always)]` so that `isa.rs` compiles the same source once
//! per instruction set (scalar, AVX2, AVX-512, NEON): the compiler vectorizes the integer
//! loops, and the bits of every result stay the same (Rust never fuses a multiply and an
//! add on its own). Float weights (F32/F16/BF16) accumulate in eight f64 lanes, combined
//! in a fixed order.
//!
//! The block layouts are ggml's (`ggml/src/ggml-common.h`); the integer sums are those of
//! ggml's reference dots (`ggml/src/ggml-cpu/quants.c`).

use super::{float_ops, Activations, BlockQ8K, BlockQ8_0, BlockQ8_1, MatRef, QK_I2S, QK_K};
use crate::gguf::GgmlType;
use crate::quant::f16_le;

/// Float weight formats, as [`dot_float`]'s const parameter (shared with the SIMD
/// modules' `float_lanes`).
pub(super) const F32: u8 = 0;
pub(super) const F16: u8 = 1;
pub(super) const BF16: u8 = 2;

/// Bytes of one weight of float format `W`.
pub(super) const fn float_width(w: u8) -> usize {
    if w == F32 {
        4
    } else {
        2
    }
}

/// The places of TQ1_0's base-3 digits (byte times `3^l` modulo 256, ggml's `pow3`).
pub(super) const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// One row times one activation vector; a format mismatch (a programming error) gives 0.
/// `SIMD` selects the SIMD integer sums and float lanes (`avx2.rs` on x86-64, `neon.rs`
/// on aarch64): only `isa.rs`'s AVX2, AVX-512 and NEON paths instantiate it, after
/// checking the CPU; the result is the same either way.
#[inline(always)]
pub(super) fn dot_row<const SIMD: bool>(w: &MatRef<'_>, row: &[u8], act: &Activations) -> f32 {
    use GgmlType as T;
    match (w.ty, act) {
        (T::F32, Activations::F32(a)) => dot_float::<SIMD, F32>(row, a),
        (T::F16, Activations::F16(a)) => dot_float::<SIMD, F16>(row, a),
        (T::Bf16, Activations::Bf16(a)) => dot_float::<SIMD, BF16>(row, a),
        (T::Q4_0, Activations::Q8_0(a)) => dot_q4_0::<SIMD>(row, a),
        (T::Q5_0, Activations::Q8_0(a)) => dot_q5_0::<SIMD>(row, a),
        (T::Q8_0, Activations::Q8_0(a)) => dot_q8_0::<SIMD>(row, a),
        (T::Q4_1, Activations::Q8_1(a)) => dot_q4_1::<SIMD>(row, a),
        (T::Q5_1, Activations::Q8_1(a)) => dot_q5_1::<SIMD>(row, a),
        (T::Q4K, Activations::Q8K(a)) => dot_q4_k::<SIMD>(row, a),
        (T::Q5K, Activations::Q8K(a)) => dot_q5_k::<SIMD>(row, a),
        (T::Q6K, Activations::Q8K(a)) => dot_q6_k::<SIMD>(row, a),
        (T::Tq1_0, Activations::Q8K(a)) => dot_tq1_0::<SIMD>(row, a),
        (T::Tq2_0, Activations::Q8K(a)) => dot_tq2_0::<SIMD>(row, a),
        (T::I2S, Activations::I8 { q, scale, sum }) => {
            (dot_i2s::<SIMD>(row, q) as f32 - *sum as f32) / *scale * w.scale
        }
        _ => 0.0,
    }
}

/// Add products to the lanes, the first being element `first` (a multiple of 8).
#[inline(always)]
fn add_lanes(mut lanes: [f64; 8], first: usize, products: impl Iterator<Item = f32>) -> [f64; 8] {
    for (i, p) in products.enumerate() {
        lanes[(first + i) % 8] += f64::from(p);
    }
    lanes
}

#[inline(always)]
fn combine_lanes(lanes: [f64; 8]) -> f32 {
    let [a, b, c, d, e, f, g, h] = lanes;
    (((a + b) + (c + d)) + ((e + f) + (g + h))) as f32
}

/// F32, F16 or BF16 weights (`W`: [`F32`], [`F16`] or [`BF16`]) times activations
/// rounded to that format: products in f32, summed in f64 lanes.
#[inline(always)]
fn dot_float<const SIMD: bool, const W: u8>(row: &[u8], a: &[f32]) -> f32 {
    let (lanes, done) = simd_float_lanes::<SIMD, W>(row, a);
    let products = row
        .chunks_exact(float_width(W))
        .zip(a)
        .skip(done)
        .map(|(w, &x)| float_weight::<W>(w) * x);
    combine_lanes(add_lanes(lanes, done, products))
}

/// One little-endian weight of format `W` as f32 (exact).
#[inline(always)]
fn float_weight<const W: u8>(w: &[u8]) -> f32 {
    match (W, w) {
        (F32, &[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
        (F16, &[lo, hi]) => f16_le(lo, hi),
        (_, &[lo, hi]) => f32::from_bits(u32::from(u16::from_le_bytes([lo, hi])) << 16),
        _ => 0.0,
    }
}

/// The whole groups of eight of a float row in SIMD when `SIMD` (NEON leaves F16 to the
/// portable code), else none: the caller does the rest.
#[inline(always)]
fn simd_float_lanes<const SIMD: bool, const W: u8>(row: &[u8], a: &[f32]) -> ([f64; 8], usize) {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        // SAFETY: SIMD is true only on isa.rs's AVX2/AVX-512 paths, which run only where
        // `avx2_features` found AVX2 and F16C.
        return unsafe { super::simd::float_lanes::<W>(row, a) };
    }
    #[cfg(target_arch = "aarch64")]
    if SIMD {
        // SAFETY: SIMD is true only on isa.rs's NEON path (NEON checked at run time).
        return unsafe { super::simd::float_lanes::<W>(row, a) };
    }
    let _ = (row, a);
    ([0.0; 8], 0)
}

/// ggml's AVX2 accumulator for blocks of 32: eight f32 lanes, lane `j` holding the
/// integer sums of elements `4j..4j + 4` of every block, each block's added by one FMA
/// with the block's scale; summed at the end as `hsum_float_8`.
#[derive(Clone, Copy, Default)]
struct BlockLanes([f32; 8]);

impl BlockLanes {
    /// `acc[j] = fma(d, lanes[j], acc[j])` (`_mm256_fmadd_ps`).
    #[inline(always)]
    fn add(&mut self, d: f32, lanes: [i32; 8]) {
        for (acc, &l) in self.0.iter_mut().zip(&lanes) {
            *acc = d.mul_add(l as f32, *acc);
        }
    }

    #[inline(always)]
    fn sum(&self) -> f32 {
        float_ops::hsum_128(self.0)
    }
}

/// Lane `j` = Σ a[i] * b[i] over elements `4j..4j + 4`, exactly.
#[inline(always)]
fn lanes32<const SIMD: bool>(a: &[i8; 32], b: &[i8; 32]) -> [i32; 8] {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if SIMD {
        // SAFETY: SIMD is true only on isa.rs's SIMD paths, checked at run time.
        return unsafe { super::simd::lanes_i8_i8(a, b) };
    }
    let mut lanes = [0i32; 8];
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        lanes[i / 4] += i32::from(x) * i32::from(y);
    }
    lanes
}

/// The lanes of `(n[i] - offset) * y[i]` for a Q4_0 (offset 8) or Q4_1 (offset 0)
/// block's nibbles `n` (element `j` low in `qs[j]`, element `j + 16` high), exactly.
#[inline(always)]
fn lanes32_nibbles<const SIMD: bool, const OFFSET: i32>(qs: &[u8; 16], y: &[i8; 32]) -> [i32; 8] {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if SIMD {
        // SAFETY: SIMD is true only on isa.rs's SIMD paths, checked at run time.
        return unsafe {
            if OFFSET == 8 {
                super::simd::lanes_nibbles_minus_8(qs, y)
            } else {
                super::simd::lanes_nibbles(qs, y)
            }
        };
    }
    let mut lanes = [0i32; 8];
    for (i, &yv) in y.iter().enumerate() {
        let n = if i < 16 {
            qs[i] & 0x0F
        } else {
            qs[i - 16] >> 4
        };
        lanes[i / 4] += (i32::from(n) - OFFSET) * i32::from(yv);
    }
    lanes
}

/// `&x[at..at + N]` as an array (a zero array when out of range, which the block sizes
/// rule out).
#[inline(always)]
fn arr<const N: usize, T: Copy + Default>(x: &[T], at: usize) -> [T; N] {
    x.get(at..at + N)
        .and_then(|s| <[T; N]>::try_from(s).ok())
        .unwrap_or([T::default(); N])
}

/// Q4_0 (`block_q4_0`: f16 d, 16 bytes of nibbles, element `j` low, `j + 16` high):
/// lanes scaled by `d * dy`.
#[inline(always)]
fn dot_q4_0<const SIMD: bool>(row: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = BlockLanes::default();
    for (x, y) in row.chunks_exact(18).zip(a) {
        let d = f16_le(x[0], x[1]);
        acc.add(d * y.d, lanes32_nibbles::<SIMD, 8>(&arr(x, 2), &y.qs));
    }
    acc.sum()
}

/// Q4_1 (f16 d, f16 m, nibbles): lanes scaled by `d * dy`, plus `Σ m * sy` summed by
/// FMA in a scalar (as GCC contracts ggml's `summs += m * s`).
#[inline(always)]
fn dot_q4_1<const SIMD: bool>(row: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut acc = BlockLanes::default();
    let mut summs = 0.0f32;
    for (x, y) in row.chunks_exact(20).zip(a) {
        let d = f16_le(x[0], x[1]);
        let m = f16_le(x[2], x[3]);
        summs = m.mul_add(y.s, summs);
        acc.add(d * y.d, lanes32_nibbles::<SIMD, 0>(&arr(x, 4), &y.qs));
    }
    acc.sum() + summs
}

/// The 32 five-bit values of a Q5 block: nibbles plus the fifth bit from `qh`.
#[inline(always)]
fn q5_values(qs: &[u8; 16], qh: u32, offset: i8) -> [i8; 32] {
    let mut q = [0i8; 32];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        q[j] = ((qs[j] & 0x0F) | h0) as i8 - offset;
        q[j + 16] = ((qs[j] >> 4) | h1) as i8 - offset;
    }
    q
}

/// Q5_0 (f16 d, u32 qh, nibbles): lanes scaled by `d * dy`.
#[inline(always)]
fn dot_q5_0<const SIMD: bool>(row: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = BlockLanes::default();
    for (x, y) in row.chunks_exact(22).zip(a) {
        let d = f16_le(x[0], x[1]);
        let qh = u32::from_le_bytes(arr(x, 2));
        let q = q5_values(&arr(x, 6), qh, 16);
        acc.add(d * y.d, lanes32::<SIMD>(&q, &y.qs));
    }
    acc.sum()
}

/// Q5_1 (f16 d, f16 m, u32 qh, nibbles): as Q4_1.
#[inline(always)]
fn dot_q5_1<const SIMD: bool>(row: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut acc = BlockLanes::default();
    let mut summs = 0.0f32;
    for (x, y) in row.chunks_exact(24).zip(a) {
        let d = f16_le(x[0], x[1]);
        let m = f16_le(x[2], x[3]);
        let qh = u32::from_le_bytes(arr(x, 4));
        let q = q5_values(&arr(x, 8), qh, 0);
        summs = m.mul_add(y.s, summs);
        acc.add(d * y.d, lanes32::<SIMD>(&q, &y.qs));
    }
    acc.sum() + summs
}

/// Q8_0 (f16 d, 32 int8): lanes scaled by `d * dy`.
#[inline(always)]
fn dot_q8_0<const SIMD: bool>(row: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = BlockLanes::default();
    for (x, y) in row.chunks_exact(34).zip(a) {
        let d = f16_le(x[0], x[1]);
        let q: [u8; 32] = arr(x, 2);
        acc.add(d * y.d, lanes32::<SIMD>(&q.map(|v| v as i8), &y.qs));
    }
    acc.sum()
}

/// Q4_K/Q5_K's eight 6-bit scales and mins from their 12 packed bytes (ggml's `utmp`
/// shuffle: the same values `get_scale_min_k4` gives, in a few word operations).
#[inline(always)]
pub(super) fn k4_scales_mins(packed: &[u8; 12]) -> ([i32; 8], [i32; 8]) {
    let [scales_lo, scales_hi, mins_lo, mins_hi] = k4_scale_words(packed);
    let bytes = |lo: u32, hi: u32| {
        let (l, h) = (lo.to_le_bytes(), hi.to_le_bytes());
        [l[0], l[1], l[2], l[3], h[0], h[1], h[2], h[3]].map(i32::from)
    };
    (bytes(scales_lo, scales_hi), bytes(mins_lo, mins_hi))
}

/// The eight 6-bit scales then the eight 6-bit mins of a Q4_K/Q5_K super-block, one
/// per byte, as four little-endian words (ggml's `utmp` rearrangement: the form its
/// AVX2 kernels widen to i16 lanes in one instruction).
#[inline(always)]
pub(super) fn k4_scale_words(packed: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (u0, u1, u2) = (word(0), word(1), word(2));
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

/// The lanes of `Σ scale(i) * q[i] * y[i]` over a super-block, element `i` in lane
/// `(i % 32) / 4` — the i32 lanes ggml's AVX2 K-quant kernels build from 32-byte rows
/// with `maddubs` and `madd` by the scales.
#[inline(always)]
fn scaled_lanes(q: &[i8; QK_K], y: &[i8; QK_K], scale: impl Fn(usize) -> i32) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (i, (&qv, &yv)) in q.iter().zip(y).enumerate() {
        lanes[(i % 32) / 4] += scale(i) * i32::from(qv) * i32::from(yv);
    }
    lanes
}

/// Q4_K/Q5_K's min term as ggml's AVX2 code forms it: four i32 lanes, lane `l` =
/// `mn[2l] * Σ sub-block 2l + mn[2l + 1] * Σ sub-block 2l + 1` of the activations.
#[inline(always)]
fn k4_min_lanes(y: &BlockQ8K, mn: &[i32; 8]) -> [i32; 4] {
    let sub = |m: usize| i32::from(y.bsums[2 * m]) + i32::from(y.bsums[2 * m + 1]);
    [0, 1, 2, 3].map(|l| mn[2 * l] * sub(2 * l) + mn[2 * l + 1] * sub(2 * l + 1))
}

/// The 256 four-bit values of a Q4_K super-block's 128 bytes (byte `32c + l` holds
/// element `64c + l` low and `64c + 32 + l` high), plus the fifth bits of Q5_K.
#[inline(always)]
fn k4_values(qs: &[u8; 128], qh: Option<&[u8; 32]>) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let b = qs[32 * c + l];
            let h = qh.map_or(0, |qh| qh[l] >> (2 * c));
            q[64 * c + l] = ((b & 0x0F) | ((h & 1) << 4)) as i8;
            q[64 * c + 32 + l] = ((b >> 4) | ((h & 2) << 3)) as i8;
        }
    }
    q
}

/// A K-quant block's 128 bytes of nibbles at `qs_at` and 32 bytes of fifth bits at
/// `qh_at` (Q5_K; zeros for Q4_K), by reference (zeros if the block is short, which
/// `chunks_exact` rules out).
#[inline(always)]
fn k_parts(x: &[u8], qs_at: usize, qh_at: Option<usize>) -> (&[u8; 128], &[u8; 32]) {
    const NO_BITS: [u8; 32] = [0; 32];
    const NO_CODES: [u8; 128] = [0; 128];
    let qs = x
        .get(qs_at..qs_at + 128)
        .and_then(|s| s.try_into().ok())
        .unwrap_or(&NO_CODES);
    let qh = qh_at
        .and_then(|at| x.get(at..at + 32))
        .and_then(|s| s.try_into().ok())
        .unwrap_or(&NO_BITS);
    (qs, qh)
}

/// The scaled lanes of a Q4_K (`FIFTH` false) or Q5_K super-block: on the SIMD paths by
/// `avx2.rs`/`neon.rs`'s `k_lanes`, else by the portable code (the same integers).
#[inline(always)]
fn k_scaled_lanes<const SIMD: bool, const FIFTH: bool>(
    qs: &[u8; 128],
    qh: &[u8; 32],
    y: &[i8; QK_K],
    sc: &[i32; 8],
) -> [i32; 8] {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if SIMD {
        // SAFETY: SIMD is true only on isa.rs's SIMD paths, checked at run time.
        return unsafe { super::simd::k_lanes::<FIFTH>(qs, qh, y, sc) };
    }
    let q = k4_values(qs, FIFTH.then_some(qh));
    scaled_lanes(&q, y, |i| sc[i / 32])
}

/// Q4_K (`block_q4_K`: f16 d, f16 dmin, 12 bytes of scales/mins, 128 bytes of nibbles).
/// ggml's AVX2 order: the scaled lanes by FMA with `d = dy * d` into eight f32 lanes,
/// the min lanes by FMA with `-dy * dmin` into four, then `hsum_float_8` plus the four
/// summed `(m0 + m2) + (m1 + m3)`.
#[inline(always)]
fn dot_q4_k<const SIMD: bool>(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = BlockLanes::default();
    let mut acc_m = [0.0f32; 4];
    for (x, y) in row.chunks_exact(144).zip(a) {
        // Always a whole block: `chunks_exact` gives exactly 144 bytes.
        let Ok(x) = <&[u8; 144]>::try_from(x) else {
            continue;
        };
        let d = y.d * f16_le(x[0], x[1]);
        let dmin = -y.d * f16_le(x[2], x[3]);
        let (sc, mn) = k4_scales_mins(&arr(x, 4));
        for (m, &l) in acc_m.iter_mut().zip(&k4_min_lanes(y, &mn)) {
            *m = dmin.mul_add(l as f32, *m);
        }
        let (qs, qh) = k_parts(x, 16, None);
        acc.add(d, k_scaled_lanes::<SIMD, false>(qs, qh, &y.qs, &sc));
    }
    acc.sum() + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))
}

/// Q5_K (Q4_K plus 32 bytes `qh` of fifth bits: bit `2c` for element `64c + l`, bit
/// `2c + 1` for `64c + 32 + l`): as Q4_K, except that ggml's AVX2 code sums the min
/// term of each block to one integer and adds it to a scalar by FMA.
#[inline(always)]
fn dot_q5_k<const SIMD: bool>(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = BlockLanes::default();
    let mut summs = 0.0f32;
    for (x, y) in row.chunks_exact(176).zip(a) {
        let d = y.d * f16_le(x[0], x[1]);
        let dmin = -y.d * f16_le(x[2], x[3]);
        let (sc, mn) = k4_scales_mins(&arr(x, 4));
        let m: i32 = k4_min_lanes(y, &mn).iter().sum();
        summs = dmin.mul_add(m as f32, summs);
        let (qs, qh) = k_parts(x, 48, Some(16));
        acc.add(d, k_scaled_lanes::<SIMD, true>(qs, qh, &y.qs, &sc));
    }
    acc.sum() + summs
}

/// Q6_K (`block_q6_K`: 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales
/// of 16 elements each, f16 d): the scaled lanes of `q - 32` by FMA with `dy * d`.
#[inline(always)]
fn dot_q6_k<const SIMD: bool>(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = BlockLanes::default();
    for (x, y) in row.chunks_exact(210).zip(a) {
        // Always a whole block: `chunks_exact` gives exactly 210 bytes.
        let Ok(x) = <&[u8; 210]>::try_from(x) else {
            continue;
        };
        let d = y.d * f16_le(x[208], x[209]);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if SIMD {
            // SAFETY: SIMD is true only on isa.rs's SIMD paths, checked at run time.
            acc.add(d, unsafe { super::simd::q6k_lanes(x, &y.qs) });
            continue;
        }
        let ql: [u8; 128] = arr(x, 0);
        let qh: [u8; 64] = arr(x, 128);
        let sc: [u8; 16] = arr(x, 192);
        let mut q = [0i8; QK_K];
        for half in 0..2 {
            let (l0, h0, o) = (64 * half, 32 * half, 128 * half);
            for l in 0..32 {
                let h = qh[h0 + l];
                q[o + l] = ((ql[l0 + l] & 0x0F) | ((h & 3) << 4)) as i8 - 32;
                q[o + l + 32] = ((ql[l0 + l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i8 - 32;
                q[o + l + 64] = ((ql[l0 + l] >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
                q[o + l + 96] = ((ql[l0 + l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        acc.add(d, scaled_lanes(&q, &y.qs, |i| i32::from(sc[i / 16] as i8)));
    }
    acc.sum()
}

/// One base-3 digit of a TQ1_0 byte, minus one (ggml's u8/u16 arithmetic): the integer
/// twin of the dequantizer's `trit` in `quant/ternary.rs`.
#[inline(always)]
fn trit(q: u8, pow: u8) -> i32 {
    let shifted = q.wrapping_mul(pow);
    i32::from((u16::from(shifted) * 3) >> 8) - 1
}

/// TQ1_0 (48 bytes of five trits, 4 bytes of four trits, f16 d): `sum(sum * (d * dy))`.
#[inline(always)]
fn dot_tq1_0<const SIMD: bool>(row: &[u8], a: &[BlockQ8K]) -> f32 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if SIMD {
        return ternary_blocks(GgmlType::Tq1_0, row, a);
    }
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(54).zip(a) {
        let dx = ternary_scale(GgmlType::Tq1_0, x);
        sumf += ternary_step(dx, y, tq1_0_sum(&x[..52], y));
    }
    sumf
}

/// TQ1_0's `Σ trit · y` over a block's 256 elements: 48 bytes of five trits (`q[0..32]`:
/// element `32l + m`; `q[32..48]`: element `160 + 16l + m`) and 4 bytes of four
/// (`q[48..52]`: element `240 + 4l + j`).
#[inline(always)]
fn tq1_0_sum(q: &[u8], y: &BlockQ8K) -> i32 {
    let (qs, qh) = (&q[0..48], &q[48..52]);
    let mut sum = 0i32;
    for (l, &p) in POW3.iter().enumerate() {
        for (&q, &yq) in qs[..32].iter().zip(&y.qs[l * 32..l * 32 + 32]) {
            sum += trit(q, p) * i32::from(yq);
        }
        let ys = &y.qs[160 + l * 16..160 + l * 16 + 16];
        for (&q, &yq) in qs[32..48].iter().zip(ys) {
            sum += trit(q, p) * i32::from(yq);
        }
    }
    for (l, &p) in POW3[..4].iter().enumerate() {
        for (&q, &yq) in qh.iter().zip(&y.qs[240 + l * 4..240 + l * 4 + 4]) {
            sum += trit(q, p) * i32::from(yq);
        }
    }
    sum
}

/// TQ2_0 (64 bytes of 2-bit codes, f16 d): `sum(sumi * (dy * dx))`.
#[inline(always)]
fn dot_tq2_0<const SIMD: bool>(row: &[u8], a: &[BlockQ8K]) -> f32 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if SIMD {
        return ternary_blocks(GgmlType::Tq2_0, row, a);
    }
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(66).zip(a) {
        let mut sumi = 0i32;
        for c in 0..2 {
            for l in 0..4 {
                for k in 0..32 {
                    let code = i32::from((x[32 * c + k] >> (2 * l)) & 3);
                    sumi += i32::from(y.qs[128 * c + 32 * l + k]) * (code - 1);
                }
            }
        }
        sumf += ternary_step(ternary_scale(GgmlType::Tq2_0, x), y, sumi);
    }
    sumf
}

/// A TQ1_0 block's bytes (52 of codes, then its f16 scale) or TQ2_0's (64, then the scale).
const fn ternary_block_bytes(ty: GgmlType) -> (usize, usize) {
    if matches!(ty, GgmlType::Tq1_0) {
        (54, 52)
    } else {
        (66, 64)
    }
}

/// A TQ1_0 or TQ2_0 block's scale `d` (the f16 after its codes).
#[inline(always)]
fn ternary_scale(ty: GgmlType, x: &[u8]) -> f32 {
    let (_, codes) = ternary_block_bytes(ty);
    f16_le(x[codes], x[codes + 1])
}

/// One TQ1_0 or TQ2_0 block's float step, ggml's: its integer sum `sumi` of `(code - 1)
/// · y` times `d · dy` (ggml writes `dy · d` for TQ2_0: a product commutes exactly). The
/// SIMD sums of the raw codes pass `Σ code · y - Σ y`.
#[inline(always)]
fn ternary_step(d: f32, y: &BlockQ8K, sumi: i32) -> f32 {
    sumi as f32 * (d * y.d)
}

/// Blocks of a TQ1_0/TQ2_0 row taken together by [`ternary_blocks`].
const TERNARY_BLOCKS: usize = 4;

/// One TQ1_0 or TQ2_0 row times one activation vector on the SIMD paths: the integer
/// sums of [`TERNARY_BLOCKS`] consecutive blocks at a time (their horizontal reductions
/// shared), then each block's float step in order, as the portable code: the same bits.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn ternary_blocks(ty: GgmlType, row: &[u8], a: &[BlockQ8K]) -> f32 {
    const G: usize = TERNARY_BLOCKS;
    let (block_bytes, code_bytes) = ternary_block_bytes(ty);
    // Blocks 0..n exist in both: i < n bounds both indexings below.
    let n = (row.len() / block_bytes).min(a.len());
    let block = |i: usize| (&row[i * block_bytes..(i + 1) * block_bytes], &a[i]);
    let mut sumf = 0.0f32;
    let mut i = 0;
    while i + G <= n {
        let group: [(&[u8], &BlockQ8K); G] = std::array::from_fn(|k| block(i + k));
        let codes = group.map(|(x, _)| &x[..code_bytes]);
        // SAFETY: only the SIMD paths reach here (`dot_tq1_0`, `dot_tq2_0`).
        let sums = unsafe { ternary_sums(ty, codes, group.map(|(_, y)| &y.qs)) };
        for ((x, y), sum) in group.into_iter().zip(sums) {
            sumf += ternary_step(ternary_scale(ty, x), y, sum - y.sum);
        }
        i += G;
    }
    for (x, y) in (i..n).map(block) {
        // SAFETY: as above.
        let [sum] = unsafe { ternary_sums(ty, [&x[..code_bytes]], [&y.qs]) };
        sumf += ternary_step(ternary_scale(ty, x), y, sum - y.sum);
    }
    sumf
}

/// The SIMD `Σ code · y` of `B` TQ1_0 or TQ2_0 blocks (`codes`: each block without its
/// scale), each with its activation block.
///
/// # Safety
/// Only on the SIMD paths of `isa.rs` (checked at run time).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
unsafe fn ternary_sums<const B: usize>(
    ty: GgmlType,
    codes: [&[u8]; B],
    qs: [&[i8; 256]; B],
) -> [i32; B] {
    if ty == GgmlType::Tq1_0 {
        super::simd::ternary_blocks_dot::<true, B>(codes, qs)
    } else {
        super::simd::ternary_blocks_dot::<false, B>(codes, qs)
    }
}

/// Activation vectors a TQ1_0/TQ2_0 row is multiplied by together on the SIMD paths.
const TERNARY_COLS: usize = 4;

/// One TQ1_0 or TQ2_0 row times several activation vectors on the SIMD paths: groups of
/// [`TERNARY_COLS`] vectors share each block's unpacked codes (what a prompt or a scored
/// text gains from), the rest go one by one. Per vector the integers and the float steps
/// are `dot_row`'s, in the same order: the same bits. Returns false, `out` then to be
/// ignored, where it does not apply (another format, the portable path, fewer vectors
/// than a group, or vectors of other lengths); the caller runs `dot_row` per vector.
#[inline(always)]
pub(super) fn ternary_row_cols<const SIMD: bool>(
    w: &MatRef<'_>,
    row: &[u8],
    acts: &[Activations],
    out: &mut [f32],
) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if SIMD && matches!(w.ty, GgmlType::Tq1_0 | GgmlType::Tq2_0) && acts.len() >= TERNARY_COLS {
        let groups = acts.chunks_exact(TERNARY_COLS);
        let done = acts.len() - groups.remainder().len();
        for (group, o) in groups.zip(out.chunks_exact_mut(TERNARY_COLS)) {
            let [Activations::Q8K(a), Activations::Q8K(b), Activations::Q8K(c), Activations::Q8K(d)] =
                group
            else {
                return false;
            };
            let cols = [a.as_slice(), b, c, d];
            if cols.iter().any(|col| col.len() != a.len()) {
                return false;
            }
            o.copy_from_slice(&ternary_cols(w.ty, row, cols));
        }
        for (a, o) in acts[done..].iter().zip(&mut out[done..]) {
            *o = dot_row::<SIMD>(w, row, a);
        }
        return true;
    }
    let _ = (w, row, acts, out);
    false
}

/// [`ternary_row_cols`]'s group: `C` activation vectors of equal length, the SIMD sums of
/// `avx2.rs`/`neon.rs` for all of them per block, then per vector `dot_tq1_0`'s or
/// `dot_tq2_0`'s float steps. Only the SIMD paths call it (checked at run time).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn ternary_cols<const C: usize>(ty: GgmlType, row: &[u8], cols: [&[BlockQ8K]; C]) -> [f32; C] {
    let mut sumf = [0.0f32; C];
    let (block_bytes, code_bytes) = ternary_block_bytes(ty);
    for (b, x) in row.chunks_exact(block_bytes).enumerate() {
        // The columns have one length: all have block b or none has.
        let Some(first) = cols[0].get(b) else { break };
        let ys: [&BlockQ8K; C] = std::array::from_fn(|k| cols[k].get(b).unwrap_or(first));
        let qs = ys.map(|y| &y.qs);
        // SAFETY: only the SIMD paths reach here (`ternary_row_cols`).
        let sums = unsafe {
            if ty == GgmlType::Tq1_0 {
                super::simd::tq1_0_digits_dot::<C>(&x[..code_bytes], qs)
            } else {
                super::simd::tq2_0_codes_dot::<C>(&x[..code_bytes], qs)
            }
        };
        let dx = ternary_scale(ty, x);
        for k in 0..C {
            sumf[k] += ternary_step(dx, ys[k], sums[k] - ys[k].sum);
        }
    }
    sumf
}

/// bitnet.cpp's `ggml_vec_dot_i2_i8_s`: the integer sum of raw codes (0..3) times the
/// int8 activations over the row (x86 layout: 128-element blocks of 32 bytes, element
/// `j` in byte `j % 32` at shift `6 - 2 * (j / 32)`).
#[inline(always)]
fn dot_i2s<const SIMD: bool>(row: &[u8], q: &[i8]) -> i64 {
    // Per block in i32 (at most 128 x 3 x 128), the row in i64.
    let mut sum = 0i64;
    for (block, y) in row.chunks_exact(QK_I2S / 4).zip(q.chunks_exact(QK_I2S)) {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if SIMD {
            // SAFETY: SIMD is true only on isa.rs's SIMD paths, checked at run time.
            sum += i64::from(unsafe { super::simd::i2s_block_dot(block, y) });
            continue;
        }
        let mut s = 0i32;
        for group in 0..4 {
            let shift = 6 - 2 * group;
            for (pos, &b) in block.iter().enumerate() {
                s += i32::from((b >> shift) & 3) * i32::from(y[32 * group + pos]);
            }
        }
        sum += i64::from(s);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::k4_scales_mins;
    use crate::quant::scale_min_k4;

    #[test]
    fn packed_scales_unpack_as_ggml_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            let mut packed = [0u8; 12];
            for b in &mut packed {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = (seed >> 32) as u8;
            }
            let (sc, mn) = k4_scales_mins(&packed);
            for j in 0..8 {
                let (s, m) = scale_min_k4(j, &packed);
                assert_eq!(
                    (sc[j], mn[j]),
                    (i32::from(s), i32::from(m)),
                    "{packed:?} {j}"
                );
            }
        }
    }
}
