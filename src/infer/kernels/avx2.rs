//! AVX2 versions of the exact integer sums inside the dot products (Q4_K, Q5_K, Q6_K and
//! the 32-element blocks of Q4_0/Q4_1/Q5_x/Q8_0, as ggml's eight i32 lanes; whole-block
//! sums for TQ1_0, TQ2_0 and I2_S) and of the float formats' f64 lanes. Each returns
//! exactly what the scalar code in `dot.rs` computes — integer addition is associative,
//! and every intermediate fits its lanes (`maddubs` pairs of 5-/6-bit values times int8
//! stay within i16), and the float lanes add the same products in the same order — so the
//! float code around them, shared by every path, gives the same bits. `neon.rs` is the
//! same set for aarch64.
//!
//! Every function is `unsafe` and `#[target_feature(enable = "avx2")]` (`float_lanes`
//! adds F16C): it may only run on a CPU with those, which `isa.rs` guarantees by calling
//! these only from its AVX2 and AVX-512 paths after `is_x86_feature_detected!`. Loads are
//! unaligned loads from arrays of the exact size, or from slices checked first (zeros
//! out of range), so no pointer leaves its array.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::dot::{float_width, F16, F32};

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_i8(p: &[i8; 32]) -> __m256i {
    _mm256_loadu_si256(p.as_ptr().cast())
}

/// The eight i32 lanes of a vector, in order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes(v: __m256i) -> [i32; 8] {
    let mut out = [0i32; 8];
    _mm256_storeu_si256(out.as_mut_ptr().cast(), v);
    out
}

/// Lane `j` = Σ x[i] * y[i] over elements `4j..4j + 4` of two int8 vectors (`|x|` times
/// `y` with x's sign, so `maddubs` sees an unsigned operand; -128 becomes 128, still
/// exact) — ggml's `mul_sum_i8_pairs_float` before the conversion to float.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn lanes_i8_i8(x: &[i8; 32], y: &[i8; 32]) -> [i32; 8] {
    let (x, y) = (load_i8(x), load_i8(y));
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    lanes(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
}

/// The 32 nibbles of a Q4_0/Q4_1 block (`qs[j]` holds element `j` low and `j + 16`
/// high) as 32 unsigned bytes, straight from the 16 bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
    let bytes = _mm_loadu_si128(qs.as_ptr().cast());
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(bytes, mask);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), mask);
    _mm256_set_m128i(hi, lo)
}

/// The lanes of `n[i] * y[i]` for one block of Q4_1 nibbles `n`: unsigned, which is what
/// `maddubs` wants, so no unpacking into a byte array and no sign trick. Pair sums are
/// at most 2 · 15 · 128: exact in i16.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn lanes_nibbles(qs: &[u8; 16], y: &[i8; 32]) -> [i32; 8] {
    let p = _mm256_maddubs_epi16(nibbles(qs), load_i8(y));
    lanes(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
}

/// The lanes of `(n[i] - 8) * y[i]` for one Q4_0 block, as `n * y - 8 y` per pair (both
/// exact in i16).
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn lanes_nibbles_minus_8(qs: &[u8; 16], y: &[i8; 32]) -> [i32; 8] {
    let ys = load_i8(y);
    let ones = _mm256_set1_epi16(1);
    let p = _mm256_maddubs_epi16(nibbles(qs), ys);
    let sum_y = _mm256_maddubs_epi16(_mm256_set1_epi8(8), ys);
    lanes(_mm256_madd_epi16(_mm256_sub_epi16(p, sum_y), ones))
}

/// Q4_K's (`FIFTH` false) or Q5_K's scaled lanes for one super-block: the 128 bytes of
/// nibbles `qs` (byte `32c + l` holds element `64c + l` low and `64c + 32 + l` high), for
/// Q5_K plus the fifth bits `qh` (bit `2c` of byte `l` for the low element, `2c + 1` for
/// the high one): lane `t` = Σ over 64-element chunks `c` of `sc[2c] * Σ q * y` over the
/// low elements `64c + 4t..+4` and `sc[2c + 1] *` the same over the high ones.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn k_lanes<const FIFTH: bool>(
    qs: &[u8; 128],
    qh: &[u8; 32],
    y: &[i8; 256],
    sc: &[i32; 8],
) -> [i32; 8] {
    let mask = _mm256_set1_epi8(0x0F);
    let mut acc = _mm256_setzero_si256();
    let mut h = _mm256_loadu_si256(qh.as_ptr().cast());
    for c in 0..4 {
        // In bounds: 32 * 3 + 32 = 128; 64 * 3 + 64 = 256.
        let q = _mm256_loadu_si256(qs.as_ptr().add(32 * c).cast());
        let y0 = _mm256_loadu_si256(y.as_ptr().add(64 * c).cast());
        let y1 = _mm256_loadu_si256(y.as_ptr().add(64 * c + 32).cast());
        let mut lo = _mm256_and_si256(q, mask);
        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
        if FIFTH {
            // Bits 0 and 1 of each byte of `h` are chunk c's; shifting the 16-bit lanes
            // by 2 moves the next byte's bits only into this byte's top, never masked in.
            let bit0 = _mm256_and_si256(h, _mm256_set1_epi8(1));
            let bit1 = _mm256_and_si256(h, _mm256_set1_epi8(2));
            lo = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(bit0));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16::<3>(bit1));
            h = _mm256_srli_epi16::<2>(h);
        }
        // Codes are at most 31: maddubs pairs stay within i16; scales are at most 63:
        // i16 pair products stay exact in the i32 lanes.
        let p0 = _mm256_maddubs_epi16(lo, y0);
        let p1 = _mm256_maddubs_epi16(hi, y1);
        let s0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c] as i16));
        let s1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1] as i16));
        acc = _mm256_add_epi32(acc, _mm256_add_epi32(s0, s1));
    }
    lanes(acc)
}

/// Q6_K's scaled lanes of `q - 32` for one super-block (`block_q6_K`, 210 bytes: 128
/// bytes of low nibbles, 64 bytes of 2-bit high parts, 16 int8 scales, f16 d), with `q`
/// in 0..63 and the offset taken per pair as `maddubs(q, y) - maddubs(32, y)` (both
/// within i16). Lane `t` of each 32-element quarter covers its elements `4t..4t + 4`.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn q6k_lanes(x: &[u8; 210], y: &[i8; 256]) -> [i32; 8] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(3);
    let m32 = _mm256_set1_epi8(32);
    let sc = |g: usize| i16::from(x[192 + g] as i8);
    let mut acc = _mm256_setzero_si256();
    for half in 0..2 {
        // In bounds: 64 + 32 + 32 = 128 (low nibbles); 128 + 32 + 32 = 192 (high bits).
        let l0 = _mm256_loadu_si256(x.as_ptr().add(64 * half).cast());
        let l1 = _mm256_loadu_si256(x.as_ptr().add(64 * half + 32).cast());
        let h = _mm256_loadu_si256(x.as_ptr().add(128 + 32 * half).cast());
        let h0 = _mm256_and_si256(h, m2);
        let h1 = _mm256_and_si256(_mm256_srli_epi16::<2>(h), m2);
        let h2 = _mm256_and_si256(_mm256_srli_epi16::<4>(h), m2);
        let h3 = _mm256_and_si256(_mm256_srli_epi16::<6>(h), m2);
        let quarters = [
            _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16::<4>(h0)),
            _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16::<4>(h1)),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
                _mm256_slli_epi16::<4>(h2),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
                _mm256_slli_epi16::<4>(h3),
            ),
        ];
        for (k, q) in quarters.into_iter().enumerate() {
            let at = 128 * half + 32 * k;
            // In bounds: at + 32 <= 256.
            let ys = _mm256_loadu_si256(y.as_ptr().add(at).cast());
            let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, ys), _mm256_maddubs_epi16(m32, ys));
            // Lanes 0..7 hold group g's pair sums, lanes 8..15 group g + 1's.
            let g = at / 16;
            let (sa, sb) = (sc(g), sc(g + 1));
            let scales = _mm256_setr_epi16(
                sa, sa, sa, sa, sa, sa, sa, sa, sb, sb, sb, sb, sb, sb, sb, sb,
            );
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scales));
        }
    }
    lanes(acc)
}

/// The eight f64 lanes of a float dot product (`dot.rs`'s `dot_float`): element `i`'s
/// product (computed in f32) is added to lane `i % 8`, for a row of `W` weights (F32,
/// F16 or BF16, little-endian) times `a`. The same additions in the same order as the
/// scalar code, eight at a time: identical bits (the weights widen to f32 exactly).
/// Returns the lanes and the number of elements done (a multiple of 8; the caller
/// finishes the tail).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn float_lanes<const W: u8>(row: &[u8], a: &[f32]) -> ([f64; 8], usize) {
    let width = float_width(W);
    let n = (row.len() / width).min(a.len()) / 8 * 8;
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut i = 0;
    while i < n {
        // In bounds: i + 8 <= n <= row.len() / width and <= a.len().
        let at = row.as_ptr().add(width * i);
        let w = match W {
            F32 => _mm256_loadu_ps(at.cast()),
            F16 => _mm256_cvtph_ps(_mm_loadu_si128(at.cast())),
            _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                _mm_loadu_si128(at.cast()),
            ))),
        };
        let p = _mm256_mul_ps(w, _mm256_loadu_ps(a.as_ptr().add(i)));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(p)));
        i += 8;
    }
    let mut lanes = [0.0f64; 8];
    _mm256_storeu_pd(lanes.as_mut_ptr(), lo);
    _mm256_storeu_pd(lanes.as_mut_ptr().add(4), hi);
    (lanes, n)
}

/// The i32 sum of the eight lanes of `v` (exact).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum_lanes(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The 2-bit codes at bits `shift..shift + 2` of 32 bytes, one per byte.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn codes_at(bytes: __m256i, shift: i32) -> __m256i {
    _mm256_and_si256(
        _mm256_srl_epi16(bytes, _mm_cvtsi32_si128(shift)),
        _mm256_set1_epi8(3),
    )
}

/// 32 bytes of `x` from `at` (zeros when out of range).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bytes32(x: &[u8], at: usize) -> __m256i {
    match x.get(at..at + 32) {
        Some(b) => _mm256_loadu_si256(b.as_ptr().cast()),
        None => _mm256_setzero_si256(),
    }
}

/// `codes · y` of 32 unsigned codes (at most 3) and 32 int8 of `y` from `at`, as the
/// sixteen i16 sums of adjacent products added to `acc`. Each is at most 2 · 3 · 128 =
/// 768 in magnitude, so the eight additions a block makes stay exact in i16 (at most
/// 6144); [`pair_sums`] widens them.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn add_code_pairs(acc: __m256i, codes: __m256i, y: &[i8], at: usize) -> __m256i {
    let ys = match y.get(at..at + 32) {
        Some(b) => _mm256_loadu_si256(b.as_ptr().cast()),
        None => _mm256_setzero_si256(),
    };
    _mm256_add_epi16(acc, _mm256_maddubs_epi16(codes, ys))
}

/// The i32 sums of `C` accumulators of [`add_code_pairs`] (exact): four at a time share
/// one horizontal reduction, the rest go one by one.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair_sums<const C: usize>(acc: &[__m256i; C]) -> [i32; C] {
    let ones = _mm256_set1_epi16(1);
    let mut sums = [0i32; C];
    let mut k = 0;
    while k + 4 <= C {
        // hadd within each 128-bit half: after two rounds, half h holds the sums of
        // lanes 4h..4h+4 of the four accumulators, in order.
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| acc[k + i]);
        let ab = _mm256_hadd_epi32(_mm256_madd_epi16(a, ones), _mm256_madd_epi16(b, ones));
        let cd = _mm256_hadd_epi32(_mm256_madd_epi16(c, ones), _mm256_madd_epi16(d, ones));
        let abcd = _mm256_hadd_epi32(ab, cd);
        let four = _mm_add_epi32(
            _mm256_castsi256_si128(abcd),
            _mm256_extracti128_si256::<1>(abcd),
        );
        _mm_storeu_si128(sums[k..k + 4].as_mut_ptr().cast(), four);
        k += 4;
    }
    while k < C {
        sums[k] = sum_lanes(_mm256_madd_epi16(acc[k], ones));
        k += 1;
    }
    sums
}

/// TQ2_0's `Σ code · y` over one block (its 64 code bytes `qs`; element `128 c + 32 l + k`
/// at bits `2 l` of byte `32 c + k`) for `C` activation blocks at once (the codes
/// unpacked once for all), before the codes' offset of 1 is taken off.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn tq2_0_codes_dot<const C: usize>(qs: &[u8], ys: [&[i8; 256]; C]) -> [i32; C] {
    pair_sums(&tq2_0_pairs(qs, ys))
}

/// [`tq2_0_codes_dot`]'s accumulators, before their sums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tq2_0_pairs<const C: usize>(qs: &[u8], ys: [&[i8; 256]; C]) -> [__m256i; C] {
    let mut acc = [_mm256_setzero_si256(); C];
    for c in 0..2 {
        let bytes = bytes32(qs, 32 * c);
        for l in 0..4 {
            let codes = codes_at(bytes, 2 * l as i32);
            for k in 0..C {
                acc[k] = add_code_pairs(acc[k], codes, ys[k], 128 * c + 32 * l);
            }
        }
    }
    acc
}

/// I2_S's `Σ code · y` over one 128-element block (32 bytes; element `32 g + j` at bits
/// `6 - 2 g` of byte `j`).
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn i2s_block_dot(block: &[u8], y: &[i8]) -> i32 {
    let bytes = bytes32(block, 0);
    let mut acc = _mm256_setzero_si256();
    for g in 0..4 {
        acc = add_code_pairs(acc, codes_at(bytes, 6 - 2 * g as i32), y, 32 * g);
    }
    let [sum] = pair_sums(&[acc]);
    sum
}

/// The base-3 digits (0..2) of 32 TQ1_0 bytes `q` already multiplied by their place
/// (modulo 256): ggml's `(q * 3) >> 8` in 16 bits is 0 up to 85, 1 up to 170, else 2,
/// so two unsigned comparisons (signed ones on bytes with their top bit flipped) give it.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn trits(q: __m256i) -> __m256i {
    let flipped = _mm256_xor_si256(q, _mm256_set1_epi8(i8::MIN));
    let above_85 = _mm256_cmpgt_epi8(flipped, _mm256_set1_epi8((85u8 ^ 0x80) as i8));
    let above_170 = _mm256_cmpgt_epi8(flipped, _mm256_set1_epi8((170u8 ^ 0x80) as i8));
    // Each comparison is -1 where true.
    _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(above_85, above_170))
}

/// `q * 3` modulo 256 in every byte (byte additions wrap).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn times_3(q: __m256i) -> __m256i {
    _mm256_add_epi8(q, _mm256_add_epi8(q, q))
}

/// [`tq1_0_digits_dot`] (`TQ1`) or [`tq2_0_codes_dot`] of `B` blocks, each with its own
/// activation block: one row's consecutive blocks, whose sums share the horizontal
/// reductions.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn ternary_blocks_dot<const TQ1: bool, const B: usize>(
    blocks: [&[u8]; B],
    ys: [&[i8; 256]; B],
) -> [i32; B] {
    let mut acc = [_mm256_setzero_si256(); B];
    for k in 0..B {
        [acc[k]] = if TQ1 {
            tq1_0_pairs(blocks[k], [ys[k]])
        } else {
            tq2_0_pairs(blocks[k], [ys[k]])
        };
    }
    pair_sums(&acc)
}

/// TQ1_0's `Σ digit · y` over one block's 256 elements for `C` activation blocks at
/// once (the digits made once for all): 48 five-digit bytes `x[0..48]` (`x[0..32]`:
/// element `32l + m`; `x[32..48]`: element `160 + 16l + m`) and four four-digit bytes
/// `x[48..52]` (element `240 + 4l + j`), digits 0..2 before their offset of 1 is taken
/// off. Place `l` is the byte times `3^l` modulo 256, made by multiplying by 3 step by
/// step; `x[32..48]` goes two places at a time (low half place `2k`, high half `2k + 1`,
/// whose elements follow each other in `y`), and the last step's high half holds the
/// four-digit bytes at their four places.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn tq1_0_digits_dot<const C: usize>(x: &[u8], ys: [&[i8; 256]; C]) -> [i32; C] {
    pair_sums(&tq1_0_pairs(x, ys))
}

/// [`tq1_0_digits_dot`]'s accumulators, before their sums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tq1_0_pairs<const C: usize>(x: &[u8], ys: [&[i8; 256]; C]) -> [__m256i; C] {
    let low_half = _mm256_setr_epi64x(-1, -1, 0, 0);
    let mut acc = [_mm256_setzero_si256(); C];
    let mut head = bytes32(x, 0);
    for l in 0..5 {
        let digits = trits(head);
        for k in 0..C {
            acc[k] = add_code_pairs(acc[k], digits, ys[k], 32 * l);
        }
        head = times_3(head);
    }
    let tail = match x.get(32..48) {
        Some(b) => _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast())),
        None => _mm256_setzero_si256(),
    };
    // The four-digit bytes, at places 0, 1, 2, 3 in 32-bit groups 4, 5, 6, 7.
    let qh = x
        .get(48..52)
        .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let qh1 = _mm256_set1_epi32(qh);
    let qh3 = times_3(qh1);
    let qh9 = times_3(qh3);
    let qh27 = times_3(qh9);
    let four = _mm256_blend_epi32::<0b1000_0000>(
        _mm256_blend_epi32::<0b0100_0000>(_mm256_blend_epi32::<0b0010_0000>(qh1, qh3), qh9),
        qh27,
    );
    // [tail | tail * 3]
    let mut pair = _mm256_add_epi8(
        tail,
        _mm256_andnot_si256(low_half, _mm256_add_epi8(tail, tail)),
    );
    for step in 0..3 {
        if step == 2 {
            // Place 4 of the tail, then elements 240..256: the four-digit bytes.
            pair = _mm256_blend_epi32::<0b1111_0000>(pair, four);
        }
        let digits = trits(pair);
        for k in 0..C {
            acc[k] = add_code_pairs(acc[k], digits, ys[k], 160 + 32 * step);
        }
        pair = times_3(times_3(pair));
    }
    acc
}
