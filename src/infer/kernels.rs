//! Matrix–vector products computed on the quantized blocks where they lie (in the memory
//! map), plus the handful of vector helpers the forward pass needs (RMSNorm, RoPE,
//! softmax, SiLU). Everything here follows the arithmetic of llama.cpp's CPU backend so
//! that greedy decoding agrees with it token by token.
//!
//! How ggml multiplies a weight matrix by an activation vector: the activations are
//! first converted to the weight type's `vec_dot_type` (`type_traits_cpu` in
//! `ggml/src/ggml-cpu/ggml-cpu.c`) — Q8_0 for Q4_0/Q5_0/Q8_0 weights, Q8_1 for
//! Q4_1/Q5_1, Q8_K for the K-quants and TQ1_0/TQ2_0, F16 for F16, BF16 for BF16, F32 for
//! F32 — and then every output row is one `ggml_vec_dot_*` call: integer dot products
//! per block, scaled in f32 and summed in f32 in block order. We follow the *generic*
//! (reference C) versions in `ggml/src/ggml-cpu/quants.c` operation for operation; the
//! AVX2 versions only reorder float sums, which no portable code can reproduce bit for
//! bit. Float types (F32/F16/BF16) accumulate in f64 like the generic `ggml_vec_dot_f*`.
//!
//! I2_S (bitnet.cpp) is different: the whole activation vector is quantized to int8
//! with one absmax scale (`quantize_row_i8_s` in bitnet.cpp's `src/ggml-bitnet-mad.cpp`),
//! the kernel sums `code * q` over the row with codes 0..2, and the mul_mat epilogue
//! computes `(sum - act_sum) / act_scale * weight_scale`.
//!
//! Rows are distributed over rayon's pool, but each output element is computed by one
//! thread in a fixed order, so results are bit-identical whatever the thread count.
//! Every function here is total: block views are taken with `chunks_exact` over sizes
//! the model loader proved, and a malformed slice only yields zeros, never a panic.

use half::{bf16, f16};
use rayon::prelude::*;

use crate::gguf::GgmlType;
use crate::quant::{f16_le, scale_min_k4};

/// Elements per block of the legacy formats and of Q8_0 / Q8_1.
pub const QK: usize = 32;
/// Elements per super-block of the K-quants, TQ1_0, TQ2_0 and Q8_K.
pub const QK_K: usize = 256;
/// Elements per I2_S code block (x86 layout).
pub const QK_I2S: usize = 128;

/// A Q8_0 activation block: `d` already widened from its f16 storage.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_0 {
    pub d: f32,
    pub qs: [i8; QK],
}

/// A Q8_1 activation block: `d` and `s` (= `d * sum(qs)`) widened from f16.
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

/// A Q8_K activation block (`d` is stored as f32 in ggml).
#[derive(Clone, Copy, Debug)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

/// An activation vector converted to the `vec_dot_type` of some weight type.
#[derive(Clone, Debug)]
pub enum Activations {
    F32(Vec<f32>),
    /// Values rounded to f16 (`ggml_cpu_fp32_to_fp16`), held widened.
    F16(Vec<f32>),
    /// Values rounded to bf16 (`ggml_cpu_fp32_to_bf16`), held widened.
    Bf16(Vec<f32>),
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    Q8K(Vec<BlockQ8K>),
    /// bitnet.cpp's per-tensor int8 activations: `q = round(x * scale)`.
    I8 {
        q: Vec<i8>,
        scale: f32,
        sum: i32,
    },
}

/// The activation format ggml's CPU backend uses with weights of type `ty`, or `None`
/// when the engine has no kernel for `ty`.
pub fn vec_dot_type(ty: GgmlType) -> Option<VecDotType> {
    use GgmlType as T;
    Some(match ty {
        T::F32 => VecDotType::F32,
        T::F16 => VecDotType::F16,
        T::Bf16 => VecDotType::Bf16,
        T::Q4_0 | T::Q5_0 | T::Q8_0 => VecDotType::Q8_0,
        T::Q4_1 | T::Q5_1 => VecDotType::Q8_1,
        T::Q4K | T::Q5K | T::Q6K | T::Tq1_0 | T::Tq2_0 => VecDotType::Q8K,
        T::I2S => VecDotType::I8,
        _ => return None,
    })
}

/// The activation formats (see [`Activations`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecDotType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q8_1,
    Q8K,
    I8,
}

/// Whether the engine can multiply by a matrix of type `ty`.
pub fn supports_matmul(ty: GgmlType) -> bool {
    vec_dot_type(ty).is_some()
}

/// Bytes of one row of `cols` elements of type `ty` (I2_S rows are `cols / 4` bytes of
/// codes; the scale lives after the last row). `None` when `cols` is not a whole number
/// of blocks.
pub fn row_bytes(ty: GgmlType, cols: usize) -> Option<usize> {
    if ty == GgmlType::I2S {
        return (cols % QK_I2S == 0).then_some(cols / 4);
    }
    let block = usize::try_from(ty.block_size()).ok()?;
    let bytes = usize::try_from(ty.block_bytes()).ok()?;
    if block == 0 || cols % block != 0 {
        return None;
    }
    (cols / block).checked_mul(bytes)
}

/// Convert `x` to the activation format `kind` (`x.len()` must be a multiple of the
/// format's block, which the loader guarantees through the weight shapes).
pub fn quantize_activations(kind: VecDotType, x: &[f32]) -> Activations {
    match kind {
        VecDotType::F32 => Activations::F32(x.to_vec()),
        VecDotType::F16 => Activations::F16(x.iter().map(|&v| round_f16(v)).collect()),
        VecDotType::Bf16 => {
            Activations::Bf16(x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect())
        }
        VecDotType::Q8_0 => Activations::Q8_0(quantize_q8_0(x)),
        VecDotType::Q8_1 => Activations::Q8_1(quantize_q8_1(x)),
        VecDotType::Q8K => Activations::Q8K(quantize_q8_k(x)),
        VecDotType::I8 => quantize_i8(x),
    }
}

/// Round to the nearest f16 and widen back (`GGML_FP32_TO_FP16`, round to nearest even).
#[inline]
pub fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// The absolute maximum of a block as ggml's `MAX(amax, fabsf(v))` computes it.
fn absmax(block: &[f32]) -> f32 {
    block
        .iter()
        .fold(0.0f32, |m, &v| if m > v.abs() { m } else { v.abs() })
}

/// `quantize_row_q8_0_ref` (`ggml/src/ggml-quants.c`): `d = amax / 127`, `q = roundf(x / d)`
/// computed as `x * (1 / d)`, `d` stored as f16.
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    x.chunks_exact(QK)
        .map(|b| {
            let d = absmax(b) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; QK];
            for (q, &v) in qs.iter_mut().zip(b) {
                *q = (v * id).round() as i8;
            }
            BlockQ8_0 {
                d: round_f16(d),
                qs,
            }
        })
        .collect()
}

/// `quantize_row_q8_1_ref`: as Q8_0, plus `s = f16(sum(q) * d)` with the unrounded `d`.
pub fn quantize_q8_1(x: &[f32]) -> Vec<BlockQ8_1> {
    x.chunks_exact(QK)
        .map(|b| {
            let d = absmax(b) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; QK];
            let mut sum = 0i32;
            for (q, &v) in qs.iter_mut().zip(b) {
                *q = (v * id).round() as i8;
                sum += i32::from(*q);
            }
            BlockQ8_1 {
                d: round_f16(d),
                s: round_f16(sum as f32 * d),
                qs,
            }
        })
        .collect()
}

/// `quantize_row_q8_K_ref`: the signed value of largest magnitude `max` gives
/// `iscale = -127 / max`; `q = min(127, nearest_int(iscale * x))` (round half to even,
/// as ggml's `nearest_int` magic-number trick does); `d = 1 / iscale`; `bsums` are the
/// sums of each 16 quants.
pub fn quantize_q8_k(x: &[f32]) -> Vec<BlockQ8K> {
    x.chunks_exact(QK_K)
        .map(|b| {
            let mut max = 0.0f32;
            let mut amax = 0.0f32;
            for &v in b {
                let ax = v.abs();
                if ax > amax {
                    amax = ax;
                    max = v;
                }
            }
            let mut block = BlockQ8K {
                d: 0.0,
                qs: [0; QK_K],
                bsums: [0; QK_K / 16],
            };
            if amax == 0.0 {
                return block;
            }
            let iscale = -127.0 / max;
            for (q, &v) in block.qs.iter_mut().zip(b) {
                let r = (iscale * v).round_ties_even();
                *q = r.min(127.0) as i8;
            }
            for (s, group) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
                *s = group.iter().map(|&q| i16::from(q)).sum();
            }
            block.d = 1.0 / iscale;
            block
        })
        .collect()
}

/// bitnet.cpp's `quantize_row_i8_s`: one scale for the whole vector,
/// `scale = (float)(127.0 / max(1e-5, max|x|))` (the maximum taken in f64),
/// `q = clamp(round(x * scale), -128, 127)` (round half away from zero), and the sum of
/// the quants (the kernel's codes are offset by one; the epilogue subtracts it).
pub fn quantize_i8(x: &[f32]) -> Activations {
    let max = x.iter().fold(0.00001f64, |m, &v| {
        let a = f64::from(v.abs());
        if m > a {
            m
        } else {
            a
        }
    });
    let scale = (127.0 / max) as f32;
    let mut sum = 0i32;
    let q = x
        .iter()
        .map(|&v| {
            let r = (v * scale).round().clamp(-128.0, 127.0) as i8;
            sum += i32::from(r);
            r
        })
        .collect();
    Activations::I8 { q, scale, sum }
}

/// A weight matrix seen in place: `rows` rows of `cols` elements of type `ty`, each row
/// `row_bytes` bytes; `scale` is I2_S's per-tensor scale (1 for other types).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
    pub data: &'a [u8],
    pub scale: f32,
}

impl<'a> MatRef<'a> {
    /// The bytes of row `r` (empty if out of range, which the loader rules out).
    #[inline]
    pub fn row(&self, r: usize) -> &'a [u8] {
        let start = r * self.row_bytes;
        self.data.get(start..start + self.row_bytes).unwrap_or(&[])
    }
}

/// One `ggml_vec_dot` of a weight row with an activation vector in the row type's
/// `vec_dot_type` format; a format mismatch (a programming error) gives 0.
#[inline]
fn dot_row(w: &MatRef<'_>, row: &[u8], act: &Activations) -> f32 {
    use GgmlType as T;
    match (w.ty, act) {
        (T::F32, Activations::F32(a)) => dot_f32(row, a),
        (T::F16, Activations::F16(a)) => dot_f16(row, a),
        (T::Bf16, Activations::Bf16(a)) => dot_bf16(row, a),
        (T::Q4_0, Activations::Q8_0(a)) => dot_q4_0(row, a),
        (T::Q5_0, Activations::Q8_0(a)) => dot_q5_0(row, a),
        (T::Q8_0, Activations::Q8_0(a)) => dot_q8_0(row, a),
        (T::Q4_1, Activations::Q8_1(a)) => dot_q4_1(row, a),
        (T::Q5_1, Activations::Q8_1(a)) => dot_q5_1(row, a),
        (T::Q4K, Activations::Q8K(a)) => dot_q4_k(row, a),
        (T::Q5K, Activations::Q8K(a)) => dot_q5_k(row, a),
        (T::Q6K, Activations::Q8K(a)) => dot_q6_k(row, a),
        (T::Tq1_0, Activations::Q8K(a)) => dot_tq1_0(row, a),
        (T::Tq2_0, Activations::Q8K(a)) => dot_tq2_0(row, a),
        (T::I2S, Activations::I8 { q, scale, sum }) => {
            (dot_i2s(row, q) as f32 - *sum as f32) / *scale * w.scale
        }
        _ => 0.0,
    }
}

/// `out = W · act`, one `ggml_vec_dot` per row, rows in parallel. `act` must be in
/// `vec_dot_type(w.ty)` format; a mismatch (a programming error) yields zeros.
pub fn matvec(w: &MatRef<'_>, act: &Activations, out: &mut [f32]) {
    out.par_iter_mut()
        .enumerate()
        .with_min_len(8)
        .for_each(|(r, o)| *o = dot_row(w, w.row(r), act));
}

/// `out[t] = W · acts[t]` for a batch of activation vectors (`out` is `[n][rows]`): each
/// weight row is read once for the whole batch. Every element is the same
/// `ggml_vec_dot` as [`matvec`] computes, so a batch gives bit for bit the results of one
/// token at a time.
pub fn matmul(w: &MatRef<'_>, acts: &[Activations], out: &mut [f32]) {
    let n = acts.len();
    if n == 1 {
        if let Some(a) = acts.first() {
            matvec(w, a, out);
        }
        return;
    }
    // [rows][n], filled row by row in parallel, then transposed into [n][rows].
    let mut by_row = vec![0.0f32; w.rows * n];
    by_row
        .par_chunks_mut(n)
        .enumerate()
        .with_min_len(4)
        .for_each(|(r, o)| {
            let row = w.row(r);
            for (dst, a) in o.iter_mut().zip(acts) {
                *dst = dot_row(w, row, a);
            }
        });
    for (t, dst) in out.chunks_exact_mut(w.rows).enumerate().take(n) {
        for (r, d) in dst.iter_mut().enumerate() {
            *d = by_row.get(r * n + t).copied().unwrap_or(0.0);
        }
    }
}

/// `ggml_vec_dot_f32` (generic): products in f32, summed in f64.
fn dot_f32(row: &[u8], a: &[f32]) -> f32 {
    let mut sum = 0.0f64;
    for (w, &x) in row.chunks_exact(4).zip(a) {
        let w = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        sum += f64::from(w * x);
    }
    sum as f32
}

/// `ggml_vec_dot_f16` (generic): both sides f16, products in f32, summed in f64.
fn dot_f16(row: &[u8], a: &[f32]) -> f32 {
    let mut sum = 0.0f64;
    for (w, &x) in row.chunks_exact(2).zip(a) {
        sum += f64::from(f16_le(w[0], w[1]) * x);
    }
    sum as f32
}

/// `ggml_vec_dot_bf16` (generic): both sides bf16, products in f32, summed in f64.
fn dot_bf16(row: &[u8], a: &[f32]) -> f32 {
    let mut sum = 0.0f64;
    for (w, &x) in row.chunks_exact(2).zip(a) {
        let w = f32::from_bits(u32::from(u16::from_le_bytes([w[0], w[1]])) << 16);
        sum += f64::from(w * x);
    }
    sum as f32
}

/// `ggml_vec_dot_q4_0_q8_0_generic`: `sumf += sumi * dx * dy`.
fn dot_q4_0(row: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(18).zip(a) {
        let d = f16_le(x[0], x[1]);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let q = x[2 + j];
            sumi += (i32::from(q & 0x0F) - 8) * i32::from(y.qs[j]);
            sumi += (i32::from(q >> 4) - 8) * i32::from(y.qs[j + QK / 2]);
        }
        sumf += sumi as f32 * d * y.d;
    }
    sumf
}

/// `ggml_vec_dot_q4_1_q8_1_generic`: `sumf += (dx * dy) * sumi + mx * sy`.
fn dot_q4_1(row: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(20).zip(a) {
        let d = f16_le(x[0], x[1]);
        let m = f16_le(x[2], x[3]);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let q = x[4 + j];
            sumi += i32::from(q & 0x0F) * i32::from(y.qs[j]);
            sumi += i32::from(q >> 4) * i32::from(y.qs[j + QK / 2]);
        }
        sumf += (d * y.d) * sumi as f32 + m * y.s;
    }
    sumf
}

/// The fifth bits of element `j` and `j + 16` from Q5's `qh`, as 0 or 16.
#[inline(always)]
fn q5_high(qh: u32, j: usize) -> (i32, i32) {
    let h0 = ((qh >> j) << 4) & 0x10;
    let h1 = (qh >> (j + 12)) & 0x10;
    (h0 as i32, h1 as i32)
}

/// `ggml_vec_dot_q5_0_q8_0_generic`: `sumf += (dx * dy) * sumi`.
fn dot_q5_0(row: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(22).zip(a) {
        let d = f16_le(x[0], x[1]);
        let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let q = x[6 + j];
            let (h0, h1) = q5_high(qh, j);
            sumi += ((i32::from(q & 0x0F) | h0) - 16) * i32::from(y.qs[j]);
            sumi += ((i32::from(q >> 4) | h1) - 16) * i32::from(y.qs[j + QK / 2]);
        }
        sumf += (d * y.d) * sumi as f32;
    }
    sumf
}

/// `ggml_vec_dot_q5_1_q8_1_generic`: `sumf += (dx * dy) * sumi + mx * sy`.
fn dot_q5_1(row: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(24).zip(a) {
        let d = f16_le(x[0], x[1]);
        let m = f16_le(x[2], x[3]);
        let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let q = x[8 + j];
            let (h0, h1) = q5_high(qh, j);
            sumi += (i32::from(q & 0x0F) | h0) * i32::from(y.qs[j]);
            sumi += (i32::from(q >> 4) | h1) * i32::from(y.qs[j + QK / 2]);
        }
        sumf += (d * y.d) * sumi as f32 + m * y.s;
    }
    sumf
}

/// `ggml_vec_dot_q8_0_q8_0_generic`: `sumf += sumi * (dx * dy)`.
fn dot_q8_0(row: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(34).zip(a) {
        let d = f16_le(x[0], x[1]);
        let mut sumi = 0i32;
        for (&q, &yq) in x[2..].iter().zip(&y.qs) {
            sumi += i32::from(q as i8) * i32::from(yq);
        }
        sumf += sumi as f32 * (d * y.d);
    }
    sumf
}

/// Q4_K/Q5_K's eight 6-bit scales and mins (the `utmp` shuffle of the generic dot), via
/// the dequantizer's `get_scale_min_k4`.
#[inline(always)]
fn k4_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    if let Ok(packed) = <&[u8; 12]>::try_from(s) {
        for j in 0..8 {
            (sc[j], mn[j]) = scale_min_k4(j, packed);
        }
    }
    (sc, mn)
}

/// The tail shared by the generic Q4_K/Q5_K/Q6_K dots: `aux8` holds the 256 signed
/// quants; `scale_of(e)` the integer scale of element `e`. Accumulates the eight
/// per-lane integer sums (lane = element index mod 8) like `aux32[8]`.
#[inline(always)]
fn lane_sums(aux8: &[i8; QK_K], q8: &[i8; QK_K], group: usize, scale_of: &[i32]) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (g, (a, y)) in aux8
        .chunks_exact(group)
        .zip(q8.chunks_exact(group))
        .enumerate()
    {
        let scale = scale_of.get(g).copied().unwrap_or(0);
        for (a8, y8) in a.chunks_exact(8).zip(y.chunks_exact(8)) {
            for l in 0..8 {
                aux32[l] += scale * (i32::from(a8[l]) * i32::from(y8[l]));
            }
        }
    }
    aux32
}

/// `ggml_vec_dot_q4_K_q8_K_generic`, lanes and all.
fn dot_q4_k(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(144).zip(a) {
        let d = f16_le(x[0], x[1]) * y.d;
        let dmin = f16_le(x[2], x[3]) * y.d;
        let (sc, mn) = k4_scales_mins(&x[4..16]);
        let qs = &x[16..144];
        let mut aux8 = [0i8; QK_K];
        for c in 0..4 {
            for l in 0..32 {
                let q = qs[32 * c + l];
                aux8[64 * c + l] = (q & 0x0F) as i8;
                aux8[64 * c + 32 + l] = (q >> 4) as i8;
            }
        }
        sumf -= k4_accumulate(&aux8, y, &sc, &mn, d, dmin, &mut sums);
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

/// What Q4_K and Q5_K dot products share once the 4-/5-bit values are unpacked: the
/// scaled lane sums go into `sums`; the returned min correction is subtracted by the caller.
fn k4_accumulate(
    aux8: &[i8; QK_K],
    y: &BlockQ8K,
    sc: &[u8; 8],
    mn: &[u8; 8],
    d: f32,
    dmin: f32,
    sums: &mut [f32; 8],
) -> f32 {
    let mut sumi = 0i32;
    for j in 0..16 {
        sumi += i32::from(y.bsums[j]) * i32::from(mn[j / 2]);
    }
    let aux32 = lane_sums(aux8, &y.qs, 32, &sc.map(i32::from));
    for l in 0..8 {
        sums[l] += d * aux32[l] as f32;
    }
    dmin * sumi as f32
}

/// `ggml_vec_dot_q5_K_q8_K_generic`.
fn dot_q5_k(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(176).zip(a) {
        let d = f16_le(x[0], x[1]) * y.d;
        let dmin = f16_le(x[2], x[3]) * y.d;
        let (sc, mn) = k4_scales_mins(&x[4..16]);
        let qh = &x[16..48];
        let qs = &x[48..176];
        let mut aux8 = [0i8; QK_K];
        for c in 0..4 {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for l in 0..32 {
                let q = qs[32 * c + l];
                let h = qh[l];
                aux8[64 * c + l] = ((q & 0x0F) + if h & m1 != 0 { 16 } else { 0 }) as i8;
                aux8[64 * c + 32 + l] = ((q >> 4) + if h & m2 != 0 { 16 } else { 0 }) as i8;
            }
        }
        sumf -= k4_accumulate(&aux8, y, &sc, &mn, d, dmin, &mut sums);
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

/// `ggml_vec_dot_q6_K_q8_K_generic`.
fn dot_q6_k(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (x, y) in row.chunks_exact(210).zip(a) {
        let ql = &x[0..128];
        let qh = &x[128..192];
        let sc = &x[192..208];
        let d = f16_le(x[208], x[209]) * y.d;
        let mut aux8 = [0i8; QK_K];
        for half in 0..2 {
            let (ql, qh) = (&ql[64 * half..], &qh[32 * half..]);
            let a = &mut aux8[128 * half..];
            for l in 0..32 {
                let h = qh[l];
                a[l] = ((ql[l] & 0x0F) | ((h & 3) << 4)) as i8 - 32;
                a[l + 32] = ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i8 - 32;
                a[l + 64] = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
                a[l + 96] = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let mut scales = [0i32; 16];
        for (s, &b) in scales.iter_mut().zip(sc) {
            *s = i32::from(b as i8);
        }
        let aux32 = lane_sums(&aux8, &y.qs, 16, &scales);
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

/// One base-3 digit of a TQ1_0 byte, minus one (ggml's u8/u16 arithmetic): the integer
/// twin of the dequantizer's `trit` in `quant/ternary.rs`.
#[inline(always)]
fn trit(q: u8, pow: u8) -> i32 {
    let shifted = q.wrapping_mul(pow);
    i32::from((u16::from(shifted) * 3) >> 8) - 1
}

/// `ggml_vec_dot_tq1_0_q8_K_generic`: `sumf += sum * (dx * dy)`.
fn dot_tq1_0(row: &[u8], a: &[BlockQ8K]) -> f32 {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(54).zip(a) {
        let (qs, qh, d) = (&x[0..48], &x[48..52], f16_le(x[52], x[53]));
        let mut sum = 0i32;
        // qs[0..32]: five digits each, element 5 * 32 * 0 + 32 * l + m.
        for (l, &p) in POW3.iter().enumerate() {
            for (&q, &yq) in qs[..32].iter().zip(&y.qs[l * 32..l * 32 + 32]) {
                sum += trit(q, p) * i32::from(yq);
            }
        }
        // qs[32..48]: element 160 + 16 * l + m.
        for (l, &p) in POW3.iter().enumerate() {
            let ys = &y.qs[160 + l * 16..160 + l * 16 + 16];
            for (&q, &yq) in qs[32..48].iter().zip(ys) {
                sum += trit(q, p) * i32::from(yq);
            }
        }
        // qh[0..4]: four digits each, element 240 + 4 * l + j.
        for (l, &p) in POW3[..4].iter().enumerate() {
            for (&q, &yq) in qh.iter().zip(&y.qs[240 + l * 4..240 + l * 4 + 4]) {
                sum += trit(q, p) * i32::from(yq);
            }
        }
        sumf += sum as f32 * (d * y.d);
    }
    sumf
}

/// `ggml_vec_dot_tq2_0_q8_K_generic`: `sumf += sumi * (dy * dx)`.
fn dot_tq2_0(row: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in row.chunks_exact(66).zip(a) {
        let d = y.d * f16_le(x[64], x[65]);
        let mut sumi = 0i32;
        for c in 0..2 {
            for l in 0..4 {
                for k in 0..32 {
                    let code = i32::from((x[32 * c + k] >> (2 * l)) & 3);
                    sumi += i32::from(y.qs[128 * c + 32 * l + k]) * (code - 1);
                }
            }
        }
        sumf += sumi as f32 * d;
    }
    sumf
}

/// bitnet.cpp's `ggml_vec_dot_i2_i8_s`: the integer sum of raw codes (0..3) times the
/// int8 activations over the row (x86 layout: 128-element blocks of 32 bytes, element
/// `j` in byte `j % 32` at shift `6 - 2 * (j / 32)`).
fn dot_i2s(row: &[u8], q: &[i8]) -> i64 {
    // i64: a row of millions of columns times 3 x 127 would overflow an i32.
    let mut sum = 0i64;
    for (block, y) in row.chunks_exact(QK_I2S / 4).zip(q.chunks_exact(QK_I2S)) {
        for group in 0..4 {
            let shift = 6 - 2 * group;
            for (pos, &b) in block.iter().enumerate() {
                sum += i64::from((b >> shift) & 3) * i64::from(y[32 * group + pos]);
            }
        }
    }
    sum
}

/// `ggml_compute_forward_rms_norm_f32` followed by the `ggml_mul` with the norm weight:
/// sum of squares in f64, `scale = 1 / sqrtf(mean + eps)`, `out = (x * scale) * w`.
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len().max(1) as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// In-place RMSNorm (for the bitnet sub-norms).
pub fn rmsnorm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len().max(1) as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// How RoPE pairs the values of a head (`GGML_ROPE_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(i, i + 1)` (llama; its converter permutes Q/K rows to match).
    Normal,
    /// Pairs `(i, i + n_dims / 2)` (GPT-NeoX style; llama.cpp's `bitnet` arch).
    Neox,
}

/// RoPE's angles for one position: ggml's `rope_cache_init` without YaRN extrapolation.
/// `theta` starts at the position and is multiplied by `theta_scale = powf(base, -2 /
/// n_dims)` each pair, in f32; each pair's angle is `freq_scale * (theta / factor)` (the
/// per-pair `factors` are `rope_freqs` / `rope_factors_*`, 1 when absent); the cache holds
/// `(cosf, sinf)` of it.
pub fn rope_cache(pos: usize, head_dim: usize, rope: &Rope<'_>, out: &mut Vec<(f32, f32)>) {
    out.clear();
    let theta_scale = rope.base.powf(-2.0 / rope.n_dims as f32);
    let mut theta = pos as f32;
    for i in 0..head_dim / 2 {
        let factor = rope.factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
        let angle = rope.freq_scale * (theta / factor);
        out.push((angle.cos(), angle.sin()));
        theta *= theta_scale;
    }
}

/// How one layer rotates Q and K.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope<'a> {
    /// Values of each head that are rotated (`rope.dimension_count`).
    pub n_dims: usize,
    pub base: f32,
    /// 1 / the linear scaling factor (`rope.scaling.factor`), 1 without scaling.
    pub freq_scale: f32,
    /// Per-pair frequency divisors (`rope_freqs.weight`), if any.
    pub factors: Option<&'a [f32]>,
    pub mode: RopeMode,
}

/// Rotate one head in place with a cache from [`rope_cache`]; values at `n_dims` and
/// beyond pass through (`ggml_compute_forward_rope_f32`).
pub fn rope_head(head: &mut [f32], cache: &[(f32, f32)], n_dims: usize, mode: RopeMode) {
    let pairs = n_dims / 2;
    for (i, &(cos, sin)) in cache.iter().take(pairs).enumerate() {
        let (a, b) = match mode {
            RopeMode::Normal => (2 * i, 2 * i + 1),
            RopeMode::Neox => (i, i + pairs),
        };
        let (Some(&x0), Some(&x1)) = (head.get(a), head.get(b)) else {
            return;
        };
        head[a] = x0 * cos - x1 * sin;
        head[b] = x0 * sin + x1 * cos;
    }
}

/// `ggml_compute_forward_soft_max_f32` on scores already scaled and masked: subtract the
/// max, `expf`, sum in f64, multiply by `(float)(1 / sum)`.
pub fn softmax(x: &mut [f32]) {
    let max = x
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// GELU, tanh approximation (`ggml_gelu_f32`): `0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))`.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// `ggml_silu_f32`: `x / (1 + expf(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    fn random_bytes(n: usize, seed: &mut u64) -> Vec<u8> {
        (0..n).map(|_| (xorshift(seed) >> 24) as u8).collect()
    }

    fn random_f32(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| ((xorshift(seed) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
            .collect()
    }

    /// Replace the f16 scales of random blocks by small finite values.
    fn fix_scales(ty: GgmlType, data: &mut [u8]) {
        let bytes = ty.block_bytes() as usize;
        let offsets: &[usize] = match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
            GgmlType::Q6K => &[208],
            GgmlType::Tq1_0 => &[52],
            GgmlType::Tq2_0 => &[64],
            _ => &[],
        };
        for block in data.chunks_exact_mut(bytes) {
            for &o in offsets {
                block[o..o + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
            }
        }
        if ty == GgmlType::Tq1_0 {
            // Trit bytes above 242 are never written by the quantizer.
            for block in data.chunks_exact_mut(bytes) {
                for b in &mut block[..52] {
                    *b %= 243;
                }
            }
        }
    }

    /// Every quantized kernel equals the dequantized weights times the dequantized
    /// activations, up to float rounding: checks layouts and scale handling.
    #[test]
    fn kernels_agree_with_dequantization() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let cols = 512;
        let x = random_f32(cols, &mut seed);
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Bf16,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q5K,
            GgmlType::Q6K,
            GgmlType::Tq1_0,
            GgmlType::Tq2_0,
        ] {
            let rows = 3;
            let rb = row_bytes(ty, cols).unwrap();
            let mut data = if ty.is_float() {
                let w = random_f32(rows * cols, &mut seed);
                match ty {
                    GgmlType::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    GgmlType::F16 => w
                        .iter()
                        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                        .collect(),
                    _ => w
                        .iter()
                        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                        .collect(),
                }
            } else {
                random_bytes(rows * rb, &mut seed)
            };
            fix_scales(ty, &mut data);
            let w = quant::to_f32(ty, &data, rows * cols).unwrap();
            let m = MatRef {
                ty,
                rows,
                cols,
                row_bytes: rb,
                data: &data,
                scale: 1.0,
            };
            let kind = vec_dot_type(ty).unwrap();
            let act = quantize_activations(kind, &x);
            let xd: Vec<f32> = match &act {
                Activations::F32(v) | Activations::F16(v) | Activations::Bf16(v) => v.clone(),
                Activations::Q8_0(b) => b
                    .iter()
                    .flat_map(|b| b.qs.map(|q| f32::from(q) * b.d))
                    .collect(),
                Activations::Q8_1(b) => b
                    .iter()
                    .flat_map(|b| b.qs.map(|q| f32::from(q) * b.d))
                    .collect(),
                Activations::Q8K(b) => b
                    .iter()
                    .flat_map(|b| b.qs.map(|q| f32::from(q) * b.d))
                    .collect(),
                Activations::I8 { .. } => unreachable!(),
            };
            let mut out = vec![0.0; rows];
            matvec(&m, &act, &mut out);
            for r in 0..rows {
                let want: f64 = w[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(&xd)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let tol = 1e-3 * (1.0 + want.abs());
                // Q4_1/Q5_1 use s = f16(d * sum), which rounds: allow for it.
                let tol = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
                    tol * 10.0
                } else {
                    tol
                };
                assert!(
                    (f64::from(out[r]) - want).abs() < tol,
                    "{ty} row {r}: {} vs {want}",
                    out[r]
                );
            }
        }
    }

    #[test]
    fn i2s_kernel_matches_dequantized_codes() {
        let mut seed = 42u64;
        let (rows, cols) = (4, 256);
        let mut data = random_bytes(rows * cols / 4, &mut seed);
        // Codes 0..2 only.
        for b in &mut data {
            let mut v = 0u8;
            for s in 0..4 {
                v |= (((*b >> (2 * s)) & 3) % 3) << (2 * s);
            }
            *b = v;
        }
        let scale = 0.75f32;
        let mut full = data.clone();
        full.extend(scale.to_le_bytes());
        full.resize(full.len() + 28, 0);
        let w = quant::to_f32(GgmlType::I2S, &full, rows * cols).unwrap();
        let x = random_f32(cols, &mut seed);
        let act = quantize_i8(&x);
        let Activations::I8 { q, scale: s, .. } = &act else {
            unreachable!()
        };
        let m = MatRef {
            ty: GgmlType::I2S,
            rows,
            cols,
            row_bytes: cols / 4,
            data: &data,
            scale,
        };
        let mut out = vec![0.0; rows];
        matvec(&m, &act, &mut out);
        for r in 0..rows {
            let want: f64 = (0..cols)
                .map(|j| f64::from(w[r * cols + j]) * f64::from(q[j]) / f64::from(*s))
                .sum();
            assert!(
                (f64::from(out[r]) - want).abs() < 1e-4,
                "{} vs {want}",
                out[r]
            );
        }
    }

    #[test]
    fn q8_k_rounds_half_to_even_and_q8_0_away_from_zero() {
        // max = -127 gives iscale = -127 / max = 1: 2.5 -> 2 and -3.5 -> -4 (to even);
        // Q8_0 with amax 127 has d = 1: 2.5 -> 3 (away from zero).
        let mut x = vec![0.0f32; QK_K];
        x[0] = -127.0;
        x[1] = 2.5;
        x[2] = -3.5;
        let b = quantize_q8_k(&x);
        assert_eq!((b[0].qs[0], b[0].qs[1], b[0].qs[2]), (-127, 2, -4));
        assert_eq!(b[0].d, 1.0);
        assert_eq!(b[0].bsums[0], -127 + 2 - 4);
        let mut y = vec![0.0f32; QK];
        y[0] = 127.0;
        y[1] = 2.5;
        let b = quantize_q8_0(&y);
        assert_eq!((b[0].qs[0], b[0].qs[1]), (127, 3));
    }

    #[test]
    fn softmax_and_rope_basics() {
        let mut v = vec![1.0, 2.0, 3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
        let mut cache = Vec::new();
        let mut rope = Rope {
            n_dims: 4,
            base: 10000.0,
            freq_scale: 1.0,
            factors: None,
            mode: RopeMode::Normal,
        };
        rope_cache(0, 4, &rope, &mut cache);
        let mut h = [1.0, 2.0, 3.0, 4.0];
        rope_head(&mut h, &cache, 4, RopeMode::Normal);
        assert_eq!(h, [1.0, 2.0, 3.0, 4.0], "position 0 is the identity");
        rope_cache(1, 4, &rope, &mut cache);
        let mut n = [1.0, 0.0, 0.0, 0.0];
        rope_head(&mut n, &cache, 4, RopeMode::Normal);
        assert!((n[0] - 1f32.cos()).abs() < 1e-7 && (n[1] - 1f32.sin()).abs() < 1e-7);
        let mut n = [1.0, 0.0, 0.0, 0.0];
        rope_head(&mut n, &cache, 4, RopeMode::Neox);
        assert!((n[0] - 1f32.cos()).abs() < 1e-7 && (n[2] - 1f32.sin()).abs() < 1e-7);
        // A frequency factor of 2 and a linear scale of 1/2 each halve the angle.
        let factors = [2.0, 1.0];
        rope.factors = Some(&factors);
        rope_cache(1, 4, &rope, &mut cache);
        assert_eq!(cache[0], (0.5f32.cos(), 0.5f32.sin()));
        rope.factors = None;
        rope.freq_scale = 0.5;
        rope_cache(1, 4, &rope, &mut cache);
        assert_eq!(cache[0], (0.5f32.cos(), 0.5f32.sin()));
    }
}
