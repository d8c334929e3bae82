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
    fn at<'s>(&self, cache: &'s [f16], p: usize) -> &'s [f16] {
        let base = p * self.stride + self.offset;
        cache.get(base..base + self.head_dim).unwrap_or(&[])
    }
}

/// Working memory for [`attend`], reused across the heads and tokens one thread runs
/// (rayon's `for_each_init`), so the hot loop allocates nothing once it has grown.
#[derive(Debug, Default)]
pub struct Scratch {
    q16: Vec<f32>,
    k32: Vec<f32>,
    scores: Vec<f32>,
    acc: Vec<f32>,
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_fma(
    kv: &KvHead<'_>,
    q: &[f32],
    first: usize,
    pos: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    attend_body(kv, q, first, pos, scratch, out);
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
    q16.clear();
    q16.extend(q.iter().map(|&v| round_f16(v * kv.q_scale)));
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
        let mut lanes = F16DotLanes::default();
        for slot in 0..F16_SLOTS {
            *lanes.slot_mut(slot) = acc[slot * hd + d];
        }
        *o = lanes.reduce();
    }
}
