//! The float arithmetic of llama.cpp's x86 CPU backend (AVX2 + FMA build), reproduced bit
//! for bit in portable Rust: the polynomial `exp` its vector code uses (`ggml_v_expf`),
//! SiLU and softmax built on it, the lane layout and reduction of its F16 dot product
//! (`ggml_vec_dot_f16`, which runs attention's `K·Q` and `V·softmax`), and the horizontal
//! sums of its quantized dot products (`hsum_float_8`).
//!
//! Every function is scalar code over fixed lanes with `f32::mul_add` where ggml issues an
//! FMA instruction. `mul_add` is one correctly rounded operation on every CPU (an FMA
//! instruction where the target has one, libm's `fmaf` otherwise), so the scalar, AVX2 and
//! AVX-512 paths compute the same bits — and the same bits as llama.cpp on the machines
//! its references come from (`tests/quality.rs` compares a whole model's logits).

use super::isa::Isa;

/// `ggml_v_expf` (ggml-cpu `vec.h`, AVX2 + FMA variant) for one lane: a range reduction by
/// `ln 2` in two parts, a degree-5 polynomial, and the scale by `2^n` done on the exponent
/// bits, with its special cases for `|n| > 126` (scaled in two steps) and `|n| > 192`
/// (overflow to infinity, underflow to zero). At most 1.5 ulp from `exp`, and not always
/// the same value as libm's `expf` — which is why SiLU and softmax use it.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let shift = f32::from_bits(0x4b40_0000); // 0x1.8p23
    let log2e = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
    let ln2_hi = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
    let ln2_lo = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
    let c = [
        f32::from_bits(0x3f7f_fff6), // 0x1.ffffecp-1
        f32::from_bits(0x3eff_fedb), // 0x1.fffdb6p-2
        f32::from_bits(0x3e2a_af33), // 0x1.555e66p-3
        f32::from_bits(0x3d2b_9f17), // 0x1.573e2ep-5
        f32::from_bits(0x3c07_2010), // 0x1.0e4020p-7
    ];
    let z = x.mul_add(log2e, shift);
    let n = z - shift;
    let b = (-n).mul_add(ln2_lo, (-n).mul_add(ln2_hi, x));
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let u = b * b;
    let j = c[4]
        .mul_add(b, c[3])
        .mul_add(u, c[2].mul_add(b, c[1]))
        .mul_add(u, c[0] * b);
    if n.abs() <= 126.0 || n.is_nan() {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    if n.abs() > 192.0 {
        return s1 * s1;
    }
    let s2 = f32::from_bits(e.wrapping_sub(g));
    s2.mul_add(j, s2) * s1
}

/// `ggml_v_silu`: `x / (1 + exp(-x))` with the vector `exp`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `ggml_vec_swiglu_f32` over one row: `gate = silu(gate) * up`. ggml's vector loop
/// covers the whole groups of 8 and its scalar tail uses libm's `expf`; so does ours, with
/// `math::expf` (the same bits on every platform, and glibc's on all but 0.008 % of
/// inputs). On the AVX2/AVX-512 paths the FMAs are instructions (same bits).
pub fn swiglu_row(isa: Isa, gate: &mut [f32], up: &[f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these paths are only selected after `Isa::available()` checked AVX2
        // and FMA (re-checked here, a cached load).
        Isa::Avx2 | Isa::Avx512 if isa.available() => unsafe { swiglu_fma(gate, up) },
        _ => swiglu_body(gate, up),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_fma(gate: &mut [f32], up: &[f32]) {
    swiglu_body(gate, up);
}

#[inline(always)]
fn swiglu_body(gate: &mut [f32], up: &[f32]) {
    let vector = gate.len() / 8 * 8;
    for (i, (g, &u)) in gate.iter_mut().zip(up).enumerate() {
        let s = if i < vector {
            silu(*g)
        } else {
            *g / (1.0 + super::math::expf(-*g))
        };
        *g = s * u;
    }
}

/// `ggml_compute_forward_soft_max_f32` on one row of scaled, masked scores whose first
/// element sits at column `first` of ggml's row (the positions before it are masked):
/// subtract the maximum, the vector `exp` eight columns at a time — each group summed in
/// f32 as `hsum` does, the groups summed in f64 — then multiply by `(float)(1 / sum)`.
/// Masked columns are exactly 0 in ggml and add nothing, so only the alignment of the
/// groups to `first` matters.
#[inline(always)]
pub fn softmax(x: &mut [f32], first: usize) {
    let max = x
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let mut sum = 0.0f64;
    let mut lanes = [0.0f32; 8];
    for (i, &v) in x.iter().enumerate() {
        let col = first + i;
        lanes[col % 8] = v;
        if col % 8 == 7 || i + 1 == x.len() {
            sum += f64::from(hsum_128(lanes));
            lanes = [0.0; 8];
        }
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The eight lanes of a 256-bit register summed as `hsum_float_8` and the softmax do it:
/// high half plus low half, then `movehl`, then `movehdup`.
#[inline(always)]
pub fn hsum_128(l: [f32; 8]) -> f32 {
    let r = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// Elements per step of `ggml_vec_dot_f16`: four registers of eight f32 lanes.
pub const F16_SLOTS: usize = 32;

/// An accumulator laid out as `ggml_vec_dot_f16`'s four registers of eight lanes:
/// element `i` of each step of 32 goes to slot `i % 32` (register `(i % 32) / 8`, lane
/// `i % 8`) by one FMA; what does not fill a step is summed in f64 after the reduction.
#[derive(Clone, Copy, Debug, Default)]
pub struct F16DotLanes([f32; F16_SLOTS]);

impl F16DotLanes {
    /// The accumulator of slot `slot % 32`.
    #[inline(always)]
    pub fn slot_mut(&mut self, slot: usize) -> &mut f32 {
        &mut self.0[slot % F16_SLOTS]
    }

    /// `GGML_F32x8_REDUCE`: registers 0+2 and 1+3, then those two, then the high and
    /// low halves and two horizontal adds.
    #[inline(always)]
    pub fn reduce(&self) -> f32 {
        let r = |k: usize, l: usize| self.0[8 * k + l];
        let mut x = [0.0f32; 8];
        for (l, v) in x.iter_mut().enumerate() {
            *v = (r(0, l) + r(2, l)) + (r(1, l) + r(3, l));
        }
        let t = [x[0] + x[4], x[1] + x[5], x[2] + x[6], x[3] + x[7]];
        (t[0] + t[1]) + (t[2] + t[3])
    }
}

/// `ggml_vec_dot_f16` of two vectors of f16 values held widened: whole steps of 32
/// through the lanes, the rest added in f64.
#[inline(always)]
pub fn dot_f16(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let whole = n / F16_SLOTS * F16_SLOTS;
    let mut lanes = F16DotLanes::default();
    for (xs, ys) in x[..whole]
        .chunks_exact(F16_SLOTS)
        .zip(y[..whole].chunks_exact(F16_SLOTS))
    {
        for (i, (&a, &b)) in xs.iter().zip(ys).enumerate() {
            let acc = lanes.slot_mut(i);
            *acc = a.mul_add(b, *acc);
        }
    }
    let mut sum = f64::from(lanes.reduce());
    for (a, b) in x[whole..n].iter().zip(&y[whole..n]) {
        sum += f64::from(a * b);
    }
    sum as f32
}

/// The AVX2 forms of the pieces above that `attention.rs`'s register path needs.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use half::f16;
    use std::arch::x86_64::*;

    /// Eight f16 widened to f32 (`vcvtph2ps`, exact), from a slice of exactly eight.
    ///
    /// # Safety
    /// Callable only where AVX2 and F16C are present.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    pub fn f16x8(x: &[f16]) -> __m256 {
        assert_eq!(x.len(), 8);
        // SAFETY: 16 bytes are read from a slice of eight two-byte values.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().cast())) }
    }

    /// [`super::F16DotLanes::reduce`] of four registers (slots `8k..8k + 8` in `r[k]`):
    /// `GGML_F32x8_REDUCE` with its two `hadd`s.
    ///
    /// # Safety
    /// Callable only where AVX2 is present.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn reduce_f32x8x4(r: [__m256; 4]) -> f32 {
        let x = _mm256_add_ps(_mm256_add_ps(r[0], r[2]), _mm256_add_ps(r[1], r[3]));
        let t = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let h = _mm_hadd_ps(t, t);
        _mm_cvtss_f32(_mm_hadd_ps(h, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_libm_and_handles_the_ends() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = f64::from(x).exp();
            let rel = ((f64::from(exp(x)) - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(
            worst < 2.0 * f64::from(f32::EPSILON),
            "worst relative error {worst}"
        );
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(200.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        // The two-step scaling for |n| > 126: a subnormal result (about 20 significant
        // bits at e^-90), close to the truth.
        let tiny = f64::from(exp(-90.0));
        let want = (-90f64).exp();
        assert!(
            tiny > 0.0 && ((tiny - want) / want).abs() < 1e-5,
            "{tiny} vs {want}"
        );
    }

    #[test]
    fn softmax_sums_to_one_at_any_column_offset() {
        let mut v = vec![1.0, 2.0, 3.0];
        softmax(&mut v, 0);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
        let mut masked = vec![0.0f32, 0.5, 1.0];
        softmax(&mut masked, 6);
        assert!((masked.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dot_f16_matches_f64_closely_and_uses_the_tail() {
        let x: Vec<f32> = (0..45).map(|i| i as f32 * 0.25 - 3.0).collect();
        let y: Vec<f32> = (0..45).map(|i| ((i * 7 % 11) as f32) * 0.5 - 2.0).collect();
        let want: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!((f64::from(dot_f16(&x, &y)) - want).abs() < 1e-4);
        assert_eq!(dot_f16(&x[..0], &y[..0]), 0.0);
    }
}
