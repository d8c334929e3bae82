//! NEON versions of the exact integer sums inside the dot products, for aarch64 (every
//! 64-bit ARM CPU has NEON): the same functions as `avx2.rs`, returning the same integers
//! as the portable code in `dot.rs` — ggml's eight i32 lanes for the 32-element blocks and
//! the K-quants (lane `j` of each 32 elements = the sum over elements `4j..4j + 4`), and
//! whole-block sums for the ternary formats — so the float code around them, shared by
//! every path, gives the same bits on an ARM server as on x86.
//!
//! How: `vmull_s8` multiplies eight int8 pairs into i16 (every product of the callers'
//! values fits: at most 128 · 128), `vpaddlq_s16` adds neighbours into i32, and
//! `vpaddq_s32` adds those pairs again, which leaves the sums of four consecutive
//! elements in order. Integer addition is associative, so any grouping gives the scalar
//! code's integers; the grouping is chosen so that the lanes come out in ggml's order.
//!
//! Every function is `unsafe` and `#[target_feature(enable = "neon")]` like its AVX2 twin
//! (the shared call sites in `dot.rs` are the same on both architectures). Byte loads go
//! through checked slices (zeros out of range), and `float_lanes` reads `a` only below a
//! length it checked, so no pointer leaves its array. The byte-order tricks (`vreinterpret`
//! of bytes as wider lanes) assume little-endian: `isa.rs` offers NEON only there.

#![cfg(target_arch = "aarch64")]

use super::dot::{float_width, F16, F32, POW3};
use std::arch::aarch64::*;

/// 16 bytes of `x` from `at` (zeros out of range).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_u8(x: &[u8], at: usize) -> uint8x16_t {
    match x.get(at..at + 16) {
        Some(s) => vld1q_u8(s.as_ptr()),
        None => vdupq_n_u8(0),
    }
}

/// 16 int8 of `y` from `at` (zeros out of range).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_s8(y: &[i8], at: usize) -> int8x16_t {
    match y.get(at..at + 16) {
        Some(s) => vld1q_s8(s.as_ptr()),
        None => vdupq_n_s8(0),
    }
}

/// Lane `j` = Σ x[i] · y[i] over elements `4j..4j + 4` of 16 int8 pairs, exactly.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn sum4(x: int8x16_t, y: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(x), vget_low_s8(y));
    let hi = vmull_high_s8(x, y);
    vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
}

/// The sums of 16 unsigned codes (at most 127) times 16 int8 activations, as `sum4`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn sum4_codes(codes: uint8x16_t, y: int8x16_t) -> int32x4_t {
    sum4(vreinterpretq_s8_u8(codes), y)
}

/// Two vectors of four lanes as ggml's eight.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn lanes(a: int32x4_t, b: int32x4_t) -> [i32; 8] {
    let mut out = [0i32; 8];
    vst1q_s32(out.as_mut_ptr(), a);
    vst1q_s32(out.as_mut_ptr().add(4), b);
    out
}

/// Lane `j` = Σ x[i] · y[i] over elements `4j..4j + 4` of two int8 vectors.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn lanes_i8_i8(x: &[i8; 32], y: &[i8; 32]) -> [i32; 8] {
    lanes(
        sum4(load_s8(x, 0), load_s8(y, 0)),
        sum4(load_s8(x, 16), load_s8(y, 16)),
    )
}

/// The 32 nibbles of a Q4_0/Q4_1 block (`qs[j]` holds element `j` low, `j + 16` high),
/// as two vectors of 16 unsigned bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(qs: &[u8; 16]) -> (uint8x16_t, uint8x16_t) {
    let bytes = load_u8(qs, 0);
    (vandq_u8(bytes, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(bytes))
}

/// The lanes of `n[i] · y[i]` for one block of Q4_1 nibbles `n`.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn lanes_nibbles(qs: &[u8; 16], y: &[i8; 32]) -> [i32; 8] {
    let (lo, hi) = nibbles(qs);
    lanes(
        sum4_codes(lo, load_s8(y, 0)),
        sum4_codes(hi, load_s8(y, 16)),
    )
}

/// The lanes of `(n[i] - 8) · y[i]` for one Q4_0 block.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn lanes_nibbles_minus_8(qs: &[u8; 16], y: &[i8; 32]) -> [i32; 8] {
    let (lo, hi) = nibbles(qs);
    let eight = vdupq_n_s8(8);
    let centred = |n: uint8x16_t| vsubq_s8(vreinterpretq_s8_u8(n), eight);
    lanes(
        sum4(centred(lo), load_s8(y, 0)),
        sum4(centred(hi), load_s8(y, 16)),
    )
}

/// Q4_K's (`FIFTH` false) or Q5_K's scaled lanes for one super-block: the 128 bytes of
/// nibbles `qs` (byte `32c + l` holds element `64c + l` low and `64c + 32 + l` high), for
/// Q5_K plus the fifth bits `qh` (bit `2c` of byte `l` for the low element, `2c + 1` for
/// the high one). Lane `t` = Σ over chunks `c` of `sc[2c] · Σ q · y` over the low
/// elements `64c + 4t..+4` and `sc[2c + 1] ·` the same over the high ones — as the
/// scalar code and `avx2.rs` build them.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn k_lanes<const FIFTH: bool>(
    qs: &[u8; 128],
    qh: &[u8; 32],
    y: &[i8; 256],
    sc: &[i32; 8],
) -> [i32; 8] {
    let mask = vdupq_n_u8(0x0F);
    let (mut acc_a, mut acc_b) = (vdupq_n_s32(0), vdupq_n_s32(0));
    let (mut h_a, mut h_b) = (load_u8(qh, 0), load_u8(qh, 16));
    for c in 0..4 {
        let (q_a, q_b) = (load_u8(qs, 32 * c), load_u8(qs, 32 * c + 16));
        let (mut lo_a, mut lo_b) = (vandq_u8(q_a, mask), vandq_u8(q_b, mask));
        let (mut hi_a, mut hi_b) = (vshrq_n_u8::<4>(q_a), vshrq_n_u8::<4>(q_b));
        if FIFTH {
            let one = vdupq_n_u8(1);
            let two = vdupq_n_u8(2);
            lo_a = vorrq_u8(lo_a, vshlq_n_u8::<4>(vandq_u8(h_a, one)));
            lo_b = vorrq_u8(lo_b, vshlq_n_u8::<4>(vandq_u8(h_b, one)));
            hi_a = vorrq_u8(hi_a, vshlq_n_u8::<3>(vandq_u8(h_a, two)));
            hi_b = vorrq_u8(hi_b, vshlq_n_u8::<3>(vandq_u8(h_b, two)));
            h_a = vshrq_n_u8::<2>(h_a);
            h_b = vshrq_n_u8::<2>(h_b);
        }
        let (s_lo, s_hi) = (sc[2 * c], sc[2 * c + 1]);
        acc_a = vmlaq_n_s32(acc_a, sum4_codes(lo_a, load_s8(y, 64 * c)), s_lo);
        acc_b = vmlaq_n_s32(acc_b, sum4_codes(lo_b, load_s8(y, 64 * c + 16)), s_lo);
        acc_a = vmlaq_n_s32(acc_a, sum4_codes(hi_a, load_s8(y, 64 * c + 32)), s_hi);
        acc_b = vmlaq_n_s32(acc_b, sum4_codes(hi_b, load_s8(y, 64 * c + 48)), s_hi);
    }
    lanes(acc_a, acc_b)
}

/// Q6_K's scaled lanes of `q - 32` for one super-block (`block_q6_K`, 210 bytes: 128
/// bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales of 16 elements
/// each, f16 d). Lanes 0..3 of each 32-element quarter take its first 16 elements (scale
/// `g`), lanes 4..7 the next 16 (scale `g + 1`).
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn q6k_lanes(x: &[u8; 210], y: &[i8; 256]) -> [i32; 8] {
    let m4 = vdupq_n_u8(0x0F);
    let m2 = vdupq_n_u8(3);
    let sc = |g: usize| i32::from(x[192 + g] as i8);
    let (mut acc_a, mut acc_b) = (vdupq_n_s32(0), vdupq_n_s32(0));
    for half in 0..2 {
        for part in 0..2 {
            // Bytes 16 * part.. of the half's low-nibble rows and high-bit row.
            let l0 = load_u8(x, 64 * half + 16 * part);
            let l1 = load_u8(x, 64 * half + 32 + 16 * part);
            let h = load_u8(x, 128 + 32 * half + 16 * part);
            let quarters = [
                vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8::<4>(vandq_u8(h, m2))),
                vorrq_u8(
                    vandq_u8(l1, m4),
                    vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(h), m2)),
                ),
                vorrq_u8(
                    vshrq_n_u8::<4>(l0),
                    vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(h), m2)),
                ),
                vorrq_u8(vshrq_n_u8::<4>(l1), vshlq_n_u8::<4>(vshrq_n_u8::<6>(h))),
            ];
            for (k, q) in quarters.into_iter().enumerate() {
                let at = 128 * half + 32 * k + 16 * part;
                let q = vsubq_s8(vreinterpretq_s8_u8(q), vdupq_n_s8(32));
                let sum = sum4(q, load_s8(y, at));
                if part == 0 {
                    acc_a = vmlaq_n_s32(acc_a, sum, sc(at / 16));
                } else {
                    acc_b = vmlaq_n_s32(acc_b, sum, sc(at / 16));
                }
            }
        }
    }
    lanes(acc_a, acc_b)
}

/// `Σ ((bytes[k] >> shift) & 3) · y[k]` over 16 bytes, added to `acc`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn add_codes(acc: int32x4_t, bytes: uint8x16_t, shift: i8, y: int8x16_t) -> int32x4_t {
    let codes = vandq_u8(vshlq_u8(bytes, vdupq_n_s8(-shift)), vdupq_n_u8(3));
    vaddq_s32(acc, sum4_codes(codes, y))
}

/// TQ2_0's `Σ code · y` over one block (its 64 code bytes `qs`; element `128c + 32l + k`
/// at bits `2l` of byte `32c + k`) for `C` activation blocks at once (the codes unpacked
/// once for all), before the codes' offset of 1 is taken off.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn tq2_0_codes_dot<const C: usize>(qs: &[u8], ys: [&[i8; 256]; C]) -> [i32; C] {
    let mut acc = [vdupq_n_s32(0); C];
    for c in 0..2 {
        for half in 0..2 {
            let bytes = load_u8(qs, 32 * c + 16 * half);
            for l in 0..4 {
                let codes = vandq_u8(vshlq_u8(bytes, vdupq_n_s8(-2 * l as i8)), vdupq_n_u8(3));
                let at = 128 * c + 32 * l + 16 * half;
                for k in 0..C {
                    acc[k] = vaddq_s32(acc[k], sum4_codes(codes, load_s8(ys[k], at)));
                }
            }
        }
    }
    let mut sums = [0i32; C];
    for k in 0..C {
        sums[k] = vaddvq_s32(acc[k]);
    }
    sums
}

/// I2_S's `Σ code · y` over one 128-element block (32 bytes; element `32g + j` at bits
/// `6 - 2g` of byte `j`).
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn i2s_block_dot(block: &[u8], y: &[i8]) -> i32 {
    let mut acc = vdupq_n_s32(0);
    for half in 0..2 {
        let bytes = load_u8(block, 16 * half);
        for g in 0..4 {
            let shift = 6 - 2 * g as i8;
            acc = add_codes(acc, bytes, shift, load_s8(y, 32 * g + 16 * half));
        }
    }
    vaddvq_s32(acc)
}

/// The base-3 digits (0..2) of 16 TQ1_0 bytes at place `pow` (ggml's arithmetic: the
/// byte times `pow` modulo 256, times 3, the high byte of the 16-bit result).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn trits(q: uint8x16_t, pow: u8) -> uint8x16_t {
    let shifted = vmulq_u8(q, vdupq_n_u8(pow));
    let three = vdup_n_u8(3);
    let lo = vshrn_n_u16::<8>(vmull_u8(vget_low_u8(shifted), three));
    let hi = vshrn_n_u16::<8>(vmull_high_u8(shifted, vdupq_n_u8(3)));
    vcombine_u8(lo, hi)
}

/// TQ1_0's `Σ digit · y` over one block's 256 elements for `C` activation blocks at
/// once (the digits made once for all): 48 five-digit bytes `x[0..48]` (`x[0..32]`:
/// element `32l + m`; `x[32..48]`: element `160 + 16l + m`) and four four-digit bytes
/// `x[48..52]` (element `240 + 4l + j`), digits 0..2 before their offset of 1 is taken
/// off.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn tq1_0_digits_dot<const C: usize>(x: &[u8], ys: [&[i8; 256]; C]) -> [i32; C] {
    let mut acc = [vdupq_n_s32(0); C];
    // The four-digit bytes, repeated four times, byte `4l + j` at place `l`.
    let qh = x
        .get(48..52)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let places: [u8; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27];
    let four = vmulq_u8(
        vreinterpretq_u8_u32(vdupq_n_u32(qh)),
        vld1q_u8(places.as_ptr()),
    );
    for (l, &pow) in POW3.iter().enumerate() {
        // 16 bytes of x from `from`, whose digits at place l are elements `at..at + 16`.
        for (from, at) in [(0, 32 * l), (16, 32 * l + 16), (32, 160 + 16 * l)] {
            let digits = trits(load_u8(x, from), pow);
            for k in 0..C {
                acc[k] = vaddq_s32(acc[k], sum4_codes(digits, load_s8(ys[k], at)));
            }
        }
    }
    let digits = trits(four, 1);
    for k in 0..C {
        acc[k] = vaddq_s32(acc[k], sum4_codes(digits, load_s8(ys[k], 240)));
    }
    let mut sums = [0i32; C];
    for k in 0..C {
        sums[k] = vaddvq_s32(acc[k]);
    }
    sums
}

/// The eight f64 lanes of a float dot product (`dot.rs`'s `dot_float`): element `i`'s
/// product (computed in f32) added to lane `i % 8`, for F32 or BF16 weights (F16 is left
/// to the portable code: Rust's NEON half-precision types are not stable). Returns the
/// lanes and the number of elements done (a multiple of 8; the caller does the rest).
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn float_lanes<const W: u8>(row: &[u8], a: &[f32]) -> ([f64; 8], usize) {
    if W == F16 {
        return ([0.0; 8], 0);
    }
    let width = float_width(W);
    let n = (row.len() / width).min(a.len()) / 8 * 8;
    let mut acc = [vdupq_n_f64(0.0); 4];
    let mut i = 0;
    while i < n {
        // In bounds: i + 8 <= n <= row.len() / width and <= a.len().
        let (w0, w1) = if W == F32 {
            (
                vreinterpretq_f32_u8(load_u8(row, 4 * i)),
                vreinterpretq_f32_u8(load_u8(row, 4 * i + 16)),
            )
        } else {
            let bits = vreinterpretq_u16_u8(load_u8(row, 2 * i));
            (
                vreinterpretq_f32_u32(vshlq_n_u32::<16>(vmovl_u16(vget_low_u16(bits)))),
                vreinterpretq_f32_u32(vshlq_n_u32::<16>(vmovl_high_u16(bits))),
            )
        };
        let p0 = vmulq_f32(w0, vld1q_f32(a.as_ptr().add(i)));
        let p1 = vmulq_f32(w1, vld1q_f32(a.as_ptr().add(i + 4)));
        acc[0] = vaddq_f64(acc[0], vcvt_f64_f32(vget_low_f32(p0)));
        acc[1] = vaddq_f64(acc[1], vcvt_high_f64_f32(p0));
        acc[2] = vaddq_f64(acc[2], vcvt_f64_f32(vget_low_f32(p1)));
        acc[3] = vaddq_f64(acc[3], vcvt_high_f64_f32(p1));
        i += 8;
    }
    let mut lanes = [0.0f64; 8];
    for (k, v) in acc.into_iter().enumerate() {
        vst1q_f64(lanes.as_mut_ptr().add(2 * k), v);
    }
    (lanes, n)
}

/// [`tq1_0_digits_dot`] (`TQ1`) or [`tq2_0_codes_dot`] of `B` blocks, each with its own
/// activation block (one row's consecutive blocks), one by one: `vaddvq_s32` already sums
/// a block in one instruction.
#[inline]
#[target_feature(enable = "neon")]
pub unsafe fn ternary_blocks_dot<const TQ1: bool, const B: usize>(
    blocks: [&[u8]; B],
    ys: [&[i8; 256]; B],
) -> [i32; B] {
    let mut sums = [0i32; B];
    for k in 0..B {
        [sums[k]] = if TQ1 {
            tq1_0_digits_dot(blocks[k], [ys[k]])
        } else {
            tq2_0_codes_dot(blocks[k], [ys[k]])
        };
    }
    sums
}
