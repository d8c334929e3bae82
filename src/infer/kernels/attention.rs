//! One query head's attention over the F16 KV cache, as llama.cpp's non-flash CPU path
//! computes it: `K·Q` as `ggml_vec_dot_f16` per position (Q rounded to f16), scaled, the
//! softmax with ggml's vector `exp`, then `V·softmax` (the weights rounded to f16) as
//! `ggml_vec_dot_f16` per output value — with the lane layouts and reductions of
//! `float_ops`, so the bits are ggml's on every path.
//!
//! The body is one `#[inline(always)]` function compiled twice: plain, and with AVX2 +
//! FMA + F16C, where `mul_add` becomes one instruction (the plain build calls libm's
//! `fmaf`, the same value). Attention is most of the work when scoring long texts.

use half::f16;

use super::float_ops::{self, F16DotLanes, F16_SLOTS};
use super::isa::Isa;
use super::round_f16;

/// Where one KV head lives in a layer's cache, and how a query head's scores against it
/// are scaled: position `p`'s values for this head are `cache[p * stride + offset..]
/// [..head_dim]`.
#[derive(Clone, Copy, Debug)]
pub struct KvHead<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
    pub stride: usize,
    pub offset: usize,
    pub head_dim: usize,
    /// Multiplies Q before its rounding to f16 (1 for most families).
    pub q_scale: f32,
    /// Multiplies `K·Q` before the softmax (`1 / sqrt(head_dim)` for most families).
    pub kq_scale: f32,
}

impl KvHead<'_> {
    /// `q16 = f16(q * q_scale)`, held widened (ggml rounds Q to the cache's type).
    fn query_f16(&self, q: &[f32], q16: &mut Vec<f32>) {
        q16.clear();
        q16.extend(q.iter().map(|&v| round_f16(v * self.q_scale)));
    }

    fn at<'s>(&self, cache: &'s [f16], p: usize) -> &'s [f16] {
        let base = p * self.stride + self.offset;
        cache.get(base..base + self.head_dim).unwrap_or(&[])
    }
}

/// Working memory for [`attend`], reused across the heads and tokens one thread runs,
/// so the hot loop allocates nothing once it has grown.
#[derive(Debug, Default)]
pub struct Scratch {
    q16: Vec<f32>,
    k32: Vec<f32>,
    scores: Vec<f32>,
    acc: Vec<f32>,
}

impl Scratch {
    /// Room for a head of `head_dim` values over `positions` positions at once, so that
    /// a growing context does not reallocate token after token.
    pub fn reserve(&mut self, head_dim: usize, positions: usize) {
        for (v, len) in [
            (&mut self.q16, head_dim),
            (&mut self.k32, head_dim),
            (&mut self.scores, positions),
            (&mut self.acc, F16_SLOTS * head_dim),
        ] {
            v.reserve(len.saturating_sub(v.len()));
        }
    }
}

/// `out = softmax(K·q16 * kq_scale) · V` over the positions `first..=pos` (columns of
/// ggml's row; the ones before `first` are masked), with `q16 = f16(q * q_scale)`.
pub fn attend(
    isa: Isa,
    kv: &KvHead<'_>,
    q: &[f32],
    first: usize,
    pos: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the AVX2/AVX-512 paths are only selected after `Isa::available()`,
        // which checks AVX2, FMA and F16C (re-checked here, a cached load).
        Isa::Avx2 | Isa::Avx512 if isa.available() => unsafe {
            attend_fma(kv, q, first, pos, scratch, out)
        },
        _ => attend_body(kv, q, first, pos, scratch, out),
    }
}

/// [`attend_body`] in AVX2 + FMA + F16C registers: the same FMAs into the same slots
/// (`ggml_vec_dot_f16`'s four registers of eight lanes), the same reductions, so the
/// same bits; the f16 keys and values are widened eight at a time by `vcvtph2ps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn attend_fma(
    kv: &KvHead<'_>,
    q: &[f32],
    first: usize,
    pos: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    use super::float_ops::avx2::{f16x8, reduce_f32x8x4};
    use std::arch::x86_64::*;
    let hd = kv.head_dim;
    let Scratch {
        q16, scores, acc, ..
    } = scratch;
    kv.query_f16(q, q16);
    q16.resize(hd, 0.0);
    let whole = hd / F16_SLOTS * F16_SLOTS;
    scores.clear();
    for p in first..=pos {
        let k = kv.at(kv.keys, p);
        if k.len() < hd {
            scores.push(0.0);
            continue;
        }
        let mut sum = [_mm256_setzero_ps(); 4];
        for s in (0..whole).step_by(F16_SLOTS) {
            for (j, r) in sum.iter_mut().enumerate() {
                let at = s + 8 * j;
                *r = _mm256_fmadd_ps(f16x8(&k[at..at + 8]), f32x8(&q16[at..at + 8]), *r);
            }
        }
        let mut dot = f64::from(reduce_f32x8x4(sum));
        for (a, b) in k[whole..hd].iter().zip(&q16[whole..hd]) {
            dot += f64::from(a.to_f32() * b);
        }
        scores.push(dot as f32 * kv.kq_scale);
    }
    float_ops::softmax(scores, first);
    // As in `attend_body`: 32 rows of `hd` accumulators, position p into row p % 32.
    acc.clear();
    acc.resize(F16_SLOTS * hd, 0.0);
    let vectors = hd / 8 * 8;
    for (p, &w) in (first..=pos).zip(scores.iter()) {
        let v = kv.at(kv.values, p);
        if v.len() < hd {
            continue;
        }
        let w = round_f16(w);
        let slot = p % F16_SLOTS;
        let row = &mut acc[slot * hd..(slot + 1) * hd];
        let wv = _mm256_set1_ps(w);
        for d in (0..vectors).step_by(8) {
            let a = _mm256_fmadd_ps(f16x8(&v[d..d + 8]), wv, f32x8(&row[d..d + 8]));
            store_f32x8(&mut row[d..d + 8], a);
        }
        for (a, x) in row[vectors..].iter_mut().zip(&v[vectors..hd]) {
            *a = x.to_f32().mul_add(w, *a);
        }
    }
    // GGML_F32x8_REDUCE per output value, eight values at a time: slot s is lane s % 8
    // of register s / 8.
    let slot = |s: usize, d: usize| f32x8(&acc[s * hd + d..s * hd + d + 8]);
    for d in (0..vectors.min(out.len() / 8 * 8)).step_by(8) {
        let x: [__m256; 8] = std::array::from_fn(|l| {
            _mm256_add_ps(
                _mm256_add_ps(slot(l, d), slot(16 + l, d)),
                _mm256_add_ps(slot(8 + l, d), slot(24 + l, d)),
            )
        });
        let t: [__m256; 4] = std::array::from_fn(|k| _mm256_add_ps(x[k], x[k + 4]));
        let r = _mm256_add_ps(_mm256_add_ps(t[0], t[1]), _mm256_add_ps(t[2], t[3]));
        store_f32x8(&mut out[d..d + 8], r);
    }
    for (d, o) in out.iter_mut().enumerate().take(hd).skip(vectors) {
        *o = reduce_slots(acc, hd, d);
    }
}

/// Eight f32 from a slice of exactly eight.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn f32x8(x: &[f32]) -> std::arch::x86_64::__m256 {
    assert_eq!(x.len(), 8);
    // SAFETY: eight f32 are read from a slice of eight.
    unsafe { std::arch::x86_64::_mm256_loadu_ps(x.as_ptr()) }
}

/// Store eight f32 into a slice of exactly eight.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn store_f32x8(x: &mut [f32], v: std::arch::x86_64::__m256) {
    assert_eq!(x.len(), 8);
    // SAFETY: eight f32 are written to a slice of eight.
    unsafe { std::arch::x86_64::_mm256_storeu_ps(x.as_mut_ptr(), v) }
}

#[inline(always)]
fn attend_body(
    kv: &KvHead<'_>,
    q: &[f32],
    first: usize,
    pos: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let hd = kv.head_dim;
    let Scratch {
        q16,
        k32,
        scores,
        acc,
    } = scratch;
    kv.query_f16(q, q16);
    k32.resize(hd, 0.0);
    scores.clear();
    for p in first..=pos {
        for (d, s) in k32.iter_mut().zip(kv.at(kv.keys, p)) {
            *d = s.to_f32();
        }
        scores.push(float_ops::dot_f16(k32, q16) * kv.kq_scale);
    }
    float_ops::softmax(scores, first);
    // `V · softmax` runs over the positions: position p is element p of each output
    // value's dot product (ggml's row has no tail: its KV length is padded to 256), so it
    // goes to slot p % 32 of every value — kept here as 32 rows of `hd` accumulators.
    acc.clear();
    acc.resize(F16_SLOTS * hd, 0.0);
    for (p, &w) in (first..=pos).zip(scores.iter()) {
        let w = round_f16(w);
        let slot = p % F16_SLOTS;
        let row = &mut acc[slot * hd..(slot + 1) * hd];
        for (a, v) in row.iter_mut().zip(kv.at(kv.values, p)) {
            *a = v.to_f32().mul_add(w, *a);
        }
    }
    for (d, o) in out.iter_mut().enumerate().take(hd) {
        *o = reduce_slots(acc, hd, d);
    }
}

/// Output value `d` of `V · softmax` from the 32 rows of `hd` accumulators (row `s`
/// holds slot `s` of every value's `ggml_vec_dot_f16`): `GGML_F32x8_REDUCE` of its slots.
fn reduce_slots(acc: &[f32], hd: usize, d: usize) -> f32 {
    let mut lanes = F16DotLanes::default();
    for slot in 0..F16_SLOTS {
        *lanes.slot_mut(slot) = acc.get(slot * hd + d).copied().unwrap_or(0.0);
    }
    lanes.reduce()
}
