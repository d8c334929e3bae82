//! The AVX-512 path's kernels: two weight rows at once in the two 256-bit halves of
//! each 512-bit register (and two such pairs for a decoded token), against up to
//! [`super::tiles::COLS`] activation vectors. Each half does what `tiles.rs`'s AVX2
//! kernel does for one row — exact integer lanes, one FMA per block with the same
//! scale, the same horizontal sum — so every output has the reference's bits (`dot.rs`),
//! and the unit tests and `tests/isa.rs` compare them. The K-quants (Q4_K, Q6_K) use the
//! AVX2 kernel's `maddubs`/`madd` instructions; the 32-element formats (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0) take their lanes from VNNI's `vpdpbusd`, which gives the same
//! integers in one instruction.
//!
//! Why: a prompt is bound by the work of unpacking and multiplying blocks, not by
//! memory. One 512-bit instruction does the work of two 256-bit ones; the activation
//! blocks are broadcast to both halves straight from memory and, with two pairs, loaded
//! once for four rows; AVX-512's 32 vector registers hold the accumulators without
//! spilling (with AVX2's 16, two K-quant rows spilled: `tiles.rs`).
//!
//! Which rows go together is `tiles.rs`'s choice (row `i` with row `i + count / 2`, or
//! `i + k * count / 4`: adjacent rows side by side left every other row's start
//! unprefetched and decoded 35 % slower than one row at a time).
//!
//! Every function carries the features `isa.rs` checks before choosing this path
//! (AVX-512 F, BW, VL, DQ and VNNI) besides AVX2, FMA and F16C. Loads are those of
//! `tiles.rs` (inside slices of checked length, zeros out of range).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::tiles::{block_bytes, unpack, Q8Block, PREFETCH_BYTES, Q4K_BYTES, Q6K_BYTES};
use super::tiles::{blocks_at, common_blocks, f16_at, hsum, load16, load32, prefetch};
use super::tiles::{Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
use super::BlockQ8K;

/// Bytes `at..at + 32` of two rows: the first in the low half, the second in the high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn pair32(x: [&[u8]; 2], at: usize) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load32(x[0], at)), load32(x[1], at))
}

/// 32 activation bytes from `at` in both halves (a broadcast load).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn both_halves(y: &[i8], at: usize) -> __m512i {
    _mm512_broadcast_i64x4(load32(y, at))
}

/// One float per half: `lo` in lanes 0..8, `hi` in lanes 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn halves_ps(lo: f32, hi: f32) -> __m512 {
    _mm512_insertf32x8::<1>(_mm512_set1_ps(lo), _mm256_set1_ps(hi))
}

/// The two 8-lane sums of `acc`, as `tiles.rs`'s `hsum` adds one register's lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn hsum_halves(acc: __m512) -> [f32; 2] {
    [
        hsum(_mm512_castps512_ps256(acc)),
        hsum(_mm512_extractf32x8_ps::<1>(acc)),
    ]
}

/// The whole blocks of `bytes` every row of every pair holds and every column covers.
#[inline(always)]
fn pairs_blocks<T, const P: usize, const C: usize>(
    pairs: &[[&[u8]; 2]; P],
    bytes: usize,
    cols: &[&[T]; C],
) -> usize {
    pairs
        .iter()
        .map(|rows| common_blocks(rows, bytes, cols))
        .min()
        .unwrap_or(0)
}

/// Block `b` (`bytes` each) of every row of every pair (empty where a row is short,
/// which [`pairs_blocks`] rules out), each row's cache lines fetched [`PREFETCH_BYTES`]
/// ahead.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn pairs_block<'a, const P: usize>(
    pairs: &[[&'a [u8]; 2]; P],
    bytes: usize,
    b: usize,
) -> [[&'a [u8]; 2]; P] {
    let mut xs = [[&[][..]; 2]; P];
    for (x, rows) in xs.iter_mut().zip(pairs) {
        for (x, row) in x.iter_mut().zip(rows) {
            *x = row.get(b * bytes..(b + 1) * bytes).unwrap_or_default();
            for line in (0..bytes).step_by(64) {
                prefetch(x, PREFETCH_BYTES + line);
            }
        }
    }
    xs
}

/// `P` pairs of Q4_K rows times `C` activation vectors: `tiles.rs`'s `tile_q4_k` for each
/// row, the two rows of a pair side by side. The minimum lanes (four per row and column)
/// go side by side in one 256-bit register. Decoding takes two pairs: each activation
/// block is then loaded once for four rows, and four streams of weights are in flight.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
pub(super) fn tile_q4_k<const P: usize, const C: usize>(
    pairs: [[&[u8]; 2]; P],
    cols: [&[BlockQ8K]; C],
) -> [[[f32; C]; 2]; P] {
    let mut acc = [[_mm512_setzero_ps(); C]; P];
    let mut acc_m = [[_mm256_setzero_ps(); C]; P];
    let mask = _mm512_set1_epi8(0x0F);
    for b in 0..pairs_blocks(&pairs, Q4K_BYTES, &cols) {
        let Some(ys) = blocks_at(&cols, b) else {
            continue;
        };
        let xs = pairs_block(&pairs, Q4K_BYTES, b);
        let mut scales = [_mm512_setzero_si512(); P];
        let mut mins16 = [_mm256_setzero_si256(); P];
        for p in 0..P {
            let [scales_mins0, scales_mins1] = k4_scales_mins_pair(xs[p]);
            // Each 128-bit lane holds its row's eight scales; the mins side by side.
            scales[p] = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm256_castsi256_si128(
                    scales_mins0,
                ))),
                _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scales_mins1)),
            );
            mins16[p] = _mm256_permute2x128_si256::<0x31>(scales_mins0, scales_mins1);
        }
        let mut isum = [[_mm512_setzero_si512(); C]; P];
        for chunk in 0..4 {
            let mut codes = [[_mm512_setzero_si512(); 4]; P];
            for p in 0..P {
                let q = pair32(xs[p], 16 + 32 * chunk);
                codes[p] = [
                    _mm512_and_si512(q, mask),
                    _mm512_and_si512(_mm512_srli_epi16::<4>(q), mask),
                    _mm512_shuffle_epi8(scales[p], scale_pick(2 * chunk)),
                    _mm512_shuffle_epi8(scales[p], scale_pick(2 * chunk + 1)),
                ];
            }
            for c in 0..C {
                let y0 = both_halves(&ys[c].qs, 64 * chunk);
                let y1 = both_halves(&ys[c].qs, 64 * chunk + 32);
                for p in 0..P {
                    let [lo, hi, s0, s1] = codes[p];
                    let p0 = _mm512_madd_epi16(_mm512_maddubs_epi16(lo, y0), s0);
                    let p1 = _mm512_madd_epi16(_mm512_maddubs_epi16(hi, y1), s1);
                    isum[p][c] = _mm512_add_epi32(isum[p][c], _mm512_add_epi32(p0, p1));
                }
            }
        }
        for p in 0..P {
            let x = xs[p];
            // [d, dmin] of row 0, then of row 1.
            let d_dmin = _mm_cvtph_ps(_mm_setr_epi32(word_at(x[0], 0), word_at(x[1], 0), 0, 0));
            for c in 0..C {
                let y = ys[c];
                // `y.d * d` and `-y.d * dmin` of each row (the products `tiles.rs` forms).
                let scaled = _mm512_castps128_ps512(_mm_mul_ps(_mm_set1_ps(y.d), d_dmin));
                let d = _mm512_permutexvar_ps(
                    _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0),
                    scaled,
                );
                acc[p][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(isum[p][c]), acc[p][c]);
                let mins = _mm256_cvtepi32_ps(min_lanes_pair(y, mins16[p]));
                let dmin = _mm256_permutexvar_ps(
                    _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3),
                    _mm512_castps512_ps256(scaled),
                );
                let dmin = _mm256_xor_ps(dmin, _mm256_set1_ps(-0.0));
                acc_m[p][c] = _mm256_fmadd_ps(dmin, mins, acc_m[p][c]);
            }
        }
    }
    let mut out = [[[0.0f32; C]; 2]; P];
    for p in 0..P {
        for c in 0..C {
            let sums = hsum_halves(acc[p][c]);
            let mut m = [0.0f32; 8];
            // SAFETY: `m` holds the eight floats stored.
            unsafe { _mm256_storeu_ps(m.as_mut_ptr(), acc_m[p][c]) };
            for r in 0..2 {
                let m = &m[4 * r..4 * r + 4];
                out[p][r][c] = sums[r] + ((m[0] + m[2]) + (m[1] + m[3]));
            }
        }
    }
    out
}

/// The little-endian u32 at `x[at..at + 4]` (0 out of range), as an i32 lane.
#[inline(always)]
fn word_at(x: &[u8], at: usize) -> i32 {
    x.get(at..at + 4)
        .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Both rows' Q4_K scales and mins (`dot.rs`'s `k4_scale_words`, in SIMD for two rows at
/// once): per row, 16 i16 lanes, the eight 6-bit scales then the eight mins.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn k4_scales_mins_pair(x: [&[u8]; 2]) -> [__m256i; 2] {
    const KMASK1: i32 = 0x3f3f_3f3f;
    const KMASK2: i32 = 0x0f0f_0f0f;
    const KMASK3: i32 = 0x0303_0303;
    // Per 128-bit lane, one row's packed words u0, u1, u2 (and four bytes after them).
    let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(load16(x[0], 4)), load16(x[1], 4));
    // [u0 & m1, u2 & m2, u1 & m1, (u2 >> 4) & m2]
    let low = _mm256_and_si256(
        _mm256_srlv_epi32(
            _mm256_shuffle_epi32::<0x98>(v),
            _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4),
        ),
        _mm256_setr_epi32(
            KMASK1, KMASK2, KMASK1, KMASK2, KMASK1, KMASK2, KMASK1, KMASK2,
        ),
    );
    // [0, ((u0 >> 6) & m3) << 4, 0, ((u1 >> 6) & m3) << 4]
    let high = _mm256_slli_epi32::<4>(_mm256_and_si256(
        _mm256_srli_epi32::<6>(_mm256_shuffle_epi32::<0x50>(v)),
        _mm256_setr_epi32(0, KMASK3, 0, KMASK3, 0, KMASK3, 0, KMASK3),
    ));
    let words = _mm256_or_si256(low, high);
    [
        _mm256_cvtepu8_epi16(_mm256_castsi256_si128(words)),
        _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(words)),
    ]
}

/// The shuffle that fills every i16 lane with lane `i` of its 128-bit lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn scale_pick(i: usize) -> __m512i {
    let lo = (2 * i) as i16;
    _mm512_set1_epi16(((lo + 1) << 8) | lo)
}

/// `tiles.rs`'s `min_lanes` for two rows: the activations' 16 sub-sums added in pairs,
/// times each row's eight mins (row 0's in the low 128 bits of `mins16`), adjacent
/// products summed: four i32 lanes per row.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn min_lanes_pair(y: &BlockQ8K, mins16: __m256i) -> __m256i {
    // SAFETY: `bsums` is 16 i16 = 32 bytes.
    let sums = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
    let pairs = _mm_hadd_epi16(
        _mm256_castsi256_si128(sums),
        _mm256_extracti128_si256::<1>(sums),
    );
    _mm256_madd_epi16(mins16, _mm256_broadcastsi128_si256(pairs))
}

/// `P` pairs of Q6_K rows times `C` activation vectors: `tiles.rs`'s `tile_q6_k` for each
/// row, the two rows of a pair side by side (decoding takes two pairs, as for Q4_K).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
pub(super) fn tile_q6_k<const P: usize, const C: usize>(
    pairs: [[&[u8]; 2]; P],
    cols: [&[BlockQ8K]; C],
) -> [[[f32; C]; 2]; P] {
    let mut acc = [[_mm512_setzero_ps(); C]; P];
    let m4 = _mm512_set1_epi8(0x0F);
    let m2 = _mm512_set1_epi8(3);
    let m32 = _mm512_set1_epi8(32);
    for b in 0..pairs_blocks(&pairs, Q6K_BYTES, &cols) {
        let Some(ys) = blocks_at(&cols, b) else {
            continue;
        };
        let xs = pairs_block(&pairs, Q6K_BYTES, b);
        // The sixteen i8 scales of each row's block.
        let group_scales = xs.map(|x| x.map(|x| load16(x, 192)));
        let mut isum = [[_mm512_setzero_si512(); C]; P];
        for half in 0..2 {
            let quarters = xs.map(|x| {
                let l0 = pair32(x, 64 * half);
                let l1 = pair32(x, 64 * half + 32);
                let h = pair32(x, 128 + 32 * half);
                let high = |shift: __m128i| {
                    _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srl_epi16(h, shift), m2))
                };
                [
                    _mm512_or_si512(_mm512_and_si512(l0, m4), high(_mm_cvtsi32_si128(0))),
                    _mm512_or_si512(_mm512_and_si512(l1, m4), high(_mm_cvtsi32_si128(2))),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(l0), m4),
                        high(_mm_cvtsi32_si128(4)),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(l1), m4),
                        high(_mm_cvtsi32_si128(6)),
                    ),
                ]
            });
            let quarters: [[__m512i; P]; 4] =
                std::array::from_fn(|k| std::array::from_fn(|p| quarters[p][k]));
            for (k, quarter) in quarters.iter().enumerate() {
                let at = 128 * half + 32 * k;
                // Per row: lanes 0..7 hold group g's pair sums, lanes 8..15 group g + 1's.
                let g = at / 16;
                let pick = _mm_set_epi64x(
                    0x0101_0101_0101_0101 * (g as i64 + 1),
                    0x0101_0101_0101_0101 * g as i64,
                );
                let scales = group_scales.map(|pair| {
                    let [s0, s1] = pair.map(|s| _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, pick)));
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(s0), s1)
                });
                for c in 0..C {
                    let y = both_halves(&ys[c].qs, at);
                    let offset = _mm512_maddubs_epi16(m32, y);
                    for p in 0..P {
                        let q = _mm512_sub_epi16(_mm512_maddubs_epi16(quarter[p], y), offset);
                        isum[p][c] = _mm512_add_epi32(isum[p][c], _mm512_madd_epi16(q, scales[p]));
                    }
                }
            }
        }
        for p in 0..P {
            let dx = xs[p].map(|x| f16_at(x, 208));
            for c in 0..C {
                let d = halves_ps(ys[c].d * dx[0], ys[c].d * dx[1]);
                acc[p][c] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(isum[p][c]), acc[p][c]);
            }
        }
    }
    let mut out = [[[0.0f32; C]; 2]; P];
    for p in 0..P {
        for c in 0..C {
            [out[p][0][c], out[p][1][c]] = hsum_halves(acc[p][c]);
        }
    }
    out
}

/// `P` pairs of rows of a 32-element format `F` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) times `C`
/// activation vectors: `tiles.rs`'s `tile_32` for each row, the two rows of a pair side
/// by side, with the integer lanes of each block from AVX-512 VNNI's `vpdpbusd` (the sums
/// of four byte products in one instruction, exact in i32) instead of `maddubs` + `madd`
/// (whose pair sums never saturate for these codes, so the lanes are the same integers).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
pub(super) fn tile_32<A: Q8Block, const F: u8, const P: usize, const C: usize>(
    pairs: [[&[u8]; 2]; P],
    cols: [&[A]; C],
) -> [[[f32; C]; 2]; P] {
    let bytes = block_bytes(F);
    let mut acc = [[_mm512_setzero_ps(); C]; P];
    let mut summs = [[[0.0f32; C]; 2]; P];
    for b in 0..pairs_blocks(&pairs, bytes, &cols) {
        let xs = pairs_block(&pairs, bytes, b);
        for p in 0..P {
            let w = xs[p].map(|x| unpack::<F>(x));
            let codes = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(w[0].codes), w[1].codes);
            let codes = if matches!(F, Q5_0 | Q8_0) {
                _mm512_abs_epi8(codes)
            } else {
                codes
            };
            for c in 0..C {
                let Some(y) = cols[c].get(b) else { continue };
                let q = both_halves(y.qs(), 0);
                let lanes = match F {
                    // Signed codes: |x| times y with x's sign.
                    Q5_0 | Q8_0 => {
                        let negative = _mm512_movepi8_mask(_mm512_inserti64x4::<1>(
                            _mm512_castsi256_si512(w[0].codes),
                            w[1].codes,
                        ));
                        let q = _mm512_mask_sub_epi8(q, negative, _mm512_setzero_si512(), q);
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, q)
                    }
                    // Q4_0's unsigned nibbles: n y - 8 y.
                    Q4_0 => _mm512_sub_epi32(
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, q),
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), q),
                    ),
                    _ => _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, q),
                };
                let scale = halves_ps(w[0].d * y.d(), w[1].d * y.d());
                acc[p][c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(lanes), acc[p][c]);
                if matches!(F, Q4_1 | Q5_1) {
                    for r in 0..2 {
                        summs[p][r][c] = w[r].m.mul_add(y.s(), summs[p][r][c]);
                    }
                }
            }
        }
    }
    let mut out = [[[0.0f32; C]; 2]; P];
    for p in 0..P {
        for c in 0..C {
            let sums = hsum_halves(acc[p][c]);
            for r in 0..2 {
                out[p][r][c] = if matches!(F, Q4_1 | Q5_1) {
                    sums[r] + summs[p][r][c]
                } else {
                    sums[r]
                };
            }
        }
    }
    out
}
