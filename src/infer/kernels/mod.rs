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
//! per block, scaled in f32 and summed in f32. We quantize activations exactly as ggml
//! does, compute the same exact integer sums, and combine the float parts in the order of
//! ggml's x86 AVX2 + FMA kernels — eight lanes, one FMA per block and lane, then its
//! horizontal sum (`dot.rs`) — with `mul_add`, so every instruction set (`isa.rs`), thread
//! count and batch size gives the same bits, and those are llama.cpp's on x86 where it
//! runs the same kernels (`docs/probe.md`). The other float steps of the forward pass that
//! must match ggml bit for bit (its vector `exp`, the F16 dot of attention) are in
//! `float_ops.rs` and `attention.rs`; the elementary functions that ggml takes from libm
//! (RoPE's sin, cos and pow, tanh, the scalar `expf`) are in `math.rs`, so that no
//! platform's libm decides our bits (only its exact `fma`, where the CPU path has none).
//!
//! I2_S (bitnet.cpp) is different: the whole activation vector is quantized to int8
//! with one absmax scale (`quantize_row_i8_s` in bitnet.cpp's `src/ggml-bitnet-mad.cpp`),
//! the kernel sums `code * q` over the row with codes 0..2, and the mul_mat epilogue
//! computes `(sum - act_sum) / act_scale * weight_scale`.
//!
//! Rows are distributed over the threads (`team.rs`), but each output element is
//! computed by one thread in a fixed order, so results are bit-identical whatever the thread count; a
//! batch of tokens reads each weight row once (`matmul`).
//! Every function here is total: block views are taken with `chunks_exact` over sizes
//! the model loader proved, and a malformed slice only yields zeros, never a panic.

use super::team;
use half::{bf16, f16};

use crate::gguf::GgmlType;

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod dot;
#[cfg(target_arch = "aarch64")]
mod neon;
/// The exact integer sums (and float lanes) of the SIMD paths, under one name for
/// `dot.rs`: AVX2 on x86-64 (also the AVX-512 path's), NEON on aarch64.
#[cfg(target_arch = "x86_64")]
use avx2 as simd;
#[cfg(target_arch = "aarch64")]
use neon as simd;
pub mod float_ops;
pub mod isa;
pub mod math;
mod tiles;
mod wide;

pub use isa::{Isa, IsaError, ISA_VAR};

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
    /// Σ qs: the ternary kernels' offset term, made once per block instead of per row
    /// (private, so that only `q8_k_block` makes a block and the sum always matches).
    sum: i32,
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
        return cols.is_multiple_of(QK_I2S).then_some(cols / 4);
    }
    let block = usize::try_from(ty.block_size()).ok()?;
    let bytes = usize::try_from(ty.block_bytes()).ok()?;
    if block == 0 || !cols.is_multiple_of(block) {
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

/// [`quantize_activations`] into `out`, reusing its memory when it already holds the
/// format `kind` (so that a token allocates nothing).
pub fn quantize_activations_into(kind: VecDotType, x: &[f32], out: &mut Activations) {
    match (kind, out) {
        (VecDotType::F32, Activations::F32(v)) => refill(v, x.iter().copied()),
        (VecDotType::F16, Activations::F16(v)) => refill(v, x.iter().map(|&v| round_f16(v))),
        (VecDotType::Bf16, Activations::Bf16(v)) => {
            refill(v, x.iter().map(|&v| bf16::from_f32(v).to_f32()));
        }
        (VecDotType::Q8_0, Activations::Q8_0(v)) => refill(v, x.chunks_exact(QK).map(q8_0_block)),
        (VecDotType::Q8_1, Activations::Q8_1(v)) => refill(v, x.chunks_exact(QK).map(q8_1_block)),
        (VecDotType::Q8K, Activations::Q8K(v)) => refill(v, x.chunks_exact(QK_K).map(q8_k_block)),
        (VecDotType::I8, Activations::I8 { q, scale, sum }) => {
            q.clear();
            (*scale, *sum) = i8_codes(x, q);
        }
        (kind, out) => *out = quantize_activations(kind, x),
    }
}

fn refill<T>(v: &mut Vec<T>, items: impl Iterator<Item = T>) {
    v.clear();
    v.extend(items);
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

/// The scale of a Q8_0/Q8_1 block and its inverse from the block's absolute maximum.
fn q8_scales(amax: f32) -> (f32, f32) {
    (amax / 127.0, if amax != 0.0 { 127.0 / amax } else { 0.0 })
}

/// ggml-cpu's `quantize_row_q8_0` as its x86 (AVX/AVX2/AVX-512) build computes it — what
/// llama.cpp runs on the machines the references come from: `d = amax / 127` (stored as
/// f16), `q = round_half_even(x * (127 / amax))`. (The portable `_ref` version multiplies by
/// `1 / d` and rounds half away from zero; the two differ in rare last-bit cases.)
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    x.chunks_exact(QK).map(q8_0_block).collect()
}

fn q8_0_block(b: &[f32]) -> BlockQ8_0 {
    let (d, id) = q8_scales(absmax(b));
    let mut qs = [0i8; QK];
    for (q, &v) in qs.iter_mut().zip(b) {
        *q = (v * id).round_ties_even() as i8;
    }
    BlockQ8_0 {
        d: round_f16(d),
        qs,
    }
}

/// ggml-cpu's x86 `quantize_row_q8_1`: as Q8_0, plus `s = f16(d * sum(q))` with the
/// unrounded `d`.
pub fn quantize_q8_1(x: &[f32]) -> Vec<BlockQ8_1> {
    x.chunks_exact(QK).map(q8_1_block).collect()
}

fn q8_1_block(b: &[f32]) -> BlockQ8_1 {
    let (d, id) = q8_scales(absmax(b));
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(b) {
        *q = (v * id).round_ties_even() as i8;
        sum += i32::from(*q);
    }
    BlockQ8_1 {
        d: round_f16(d),
        s: round_f16(d * sum as f32),
        qs,
    }
}

/// `quantize_row_q8_K_ref`: the signed value of largest magnitude `max` gives
/// `iscale = -127 / max`; `q = min(127, nearest_int(iscale * x))` (round half to even,
/// as ggml's `nearest_int` magic-number trick does); `d = 1 / iscale`; `bsums` are the
/// sums of each 16 quants.
pub fn quantize_q8_k(x: &[f32]) -> Vec<BlockQ8K> {
    x.chunks_exact(QK_K).map(q8_k_block).collect()
}

fn q8_k_block(b: &[f32]) -> BlockQ8K {
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
        sum: 0,
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
    block.sum = block.bsums.iter().map(|&s| i32::from(s)).sum();
    block.d = 1.0 / iscale;
    block
}

/// bitnet.cpp's `quantize_row_i8_s`: one scale for the whole vector,
/// `scale = (float)(127.0 / max(1e-5, max|x|))` (the maximum taken in f64),
/// `q = clamp(round(x * scale), -128, 127)` (round half away from zero), and the sum of
/// the quants (the kernel's codes are offset by one; the epilogue subtracts it).
pub fn quantize_i8(x: &[f32]) -> Activations {
    let mut q = Vec::with_capacity(x.len());
    let (scale, sum) = i8_codes(x, &mut q);
    Activations::I8 { q, scale, sum }
}

/// [`quantize_i8`]'s codes, appended to `q`; returns the scale and their sum.
fn i8_codes(x: &[f32], q: &mut Vec<i8>) -> (f32, i32) {
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
    q.extend(x.iter().map(|&v| {
        let r = (v * scale).round().clamp(-128.0, 127.0) as i8;
        sum += i32::from(r);
        r
    }));
    (scale, sum)
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

/// `out = W · act`, rows in parallel on the instruction set `isa`. `act` must be in
/// `vec_dot_type(w.ty)` format; a mismatch (a programming error) yields zeros.
pub fn matvec(w: &MatRef<'_>, act: &Activations, out: &mut [f32], isa: Isa) {
    matmul(w, std::slice::from_ref(act), out, isa);
}

/// Rows per parallel task: a few tasks per thread, so that the threads balance, each a
/// long contiguous stretch of the matrix, so that the hardware prefetcher streams it
/// (tasks of a few kilobytes left decoding waiting on memory); a multiple of 16 rows.
fn rows_per_task(rows: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    rows.div_ceil(tasks).next_multiple_of(16).max(16)
}

/// `out[t] = W · acts[t]` for a batch of activation vectors (`out` is `[n][rows]`): each
/// weight row is read once for the whole batch, rows in parallel, on the instruction set
/// `isa`. Every element is the same dot product whatever the batch, the thread count or
/// the instruction set, so results are bit-identical across all three.
pub fn matmul(w: &MatRef<'_>, acts: &[Activations], out: &mut [f32], isa: Isa) {
    matmul_many([(w, acts, out)], isa, &mut Vec::new());
}

/// Several [`matmul`]s (Q, K and V; gate and up) in one parallel loop: the team
/// (`team.rs`) is handed one loop instead of one per matrix, which matters when a
/// decoded token's matrices each take tens of microseconds. `by_row` is scratch (kept by the caller so
/// that a token allocates nothing); the results do not depend on it.
pub fn matmul_many<const N: usize>(
    jobs: [(&MatRef<'_>, &[Activations], &mut [f32]); N],
    isa: Isa,
    by_row: &mut Vec<f32>,
) {
    // A batch is computed [rows][n] (each row against every vector), then transposed.
    let batched = |w: &MatRef<'_>, acts: &[Activations]| {
        if acts.len() > 1 {
            w.rows * acts.len()
        } else {
            0
        }
    };
    let scratch: usize = jobs.iter().map(|(w, acts, _)| batched(w, acts)).sum();
    by_row.clear();
    by_row.resize(scratch, 0.0);
    let mut rest: &mut [f32] = by_row;
    let mut parts = jobs.map(|(w, acts, out)| {
        let (target, later) = if acts.len() > 1 {
            let (mine, others) = std::mem::take(&mut rest).split_at_mut(batched(w, acts));
            rest = others;
            (mine, Some(out))
        } else {
            (out, None)
        };
        (w, acts, target, later)
    });
    {
        // Task `t` is chunk `t - first_task[j]` of job `j`: `task_rows[j]` rows of it.
        let task_rows = parts.each_ref().map(|(w, ..)| rows_per_task(w.rows));
        let mut first_task = [0usize; N];
        let mut tasks = 0;
        for (j, (w, ..)) in parts.iter().enumerate() {
            first_task[j] = tasks;
            tasks += w.rows.div_ceil(task_rows[j]);
        }
        let targets = parts
            .each_mut()
            .map(|(w, acts, target, _)| (*w, *acts, team::Chunks::new(target)));
        team::for_each(tasks, &|t| {
            let Some(j) = (0..N).rev().find(|&j| first_task[j] <= t) else {
                return;
            };
            let (w, acts, target) = &targets[j];
            let n = acts.len().max(1);
            let first = (t - first_task[j]) * task_rows[j];
            let end = (first + task_rows[j]).min(w.rows);
            // SAFETY: task `t` alone covers rows `first..end` of job `j`.
            let o = unsafe { target.get(first * n..end * n) };
            isa::rows(isa, w, acts, first, o);
        });
    }
    for (w, acts, by_row, out) in parts {
        let Some(out) = out else { continue };
        let n = acts.len();
        for (t, dst) in out.chunks_exact_mut(w.rows).enumerate().take(n) {
            for (r, d) in dst.iter_mut().enumerate() {
                *d = by_row.get(r * n + t).copied().unwrap_or(0.0);
            }
        }
    }
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
    let theta_scale = math::powf(rope.base, -2.0 / rope.n_dims as f32);
    let mut theta = pos as f32;
    for i in 0..head_dim / 2 {
        let factor = rope.factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
        let angle = rope.freq_scale * (theta / factor);
        out.push((
            math::cosf(angle) * rope.mscale,
            math::sinf(angle) * rope.mscale,
        ));
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
    /// Multiplies cos and sin (`rope.scaling.attn_factor`; 1 without it).
    pub mscale: f32,
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
        // llama.cpp's build contracts these to FMAs (GCC's default `-ffp-contract=fast`
        // with `-mfma`): `x0 * cos` and `x0 * sin` are the fused products.
        head[a] = x0.mul_add(cos, -(x1 * sin));
        head[b] = x0.mul_add(sin, x1 * cos);
    }
}

/// GELU, tanh approximation, as ggml's CPU backend evaluates it (`ggml_vec_gelu_f32`
/// with `GGML_GELU_FP16`): 0 below -10, `x` above 10, else the f16 table entry of
/// `f16(x)`: `f16(0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))))`.
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let x = round_f16(x);
    round_f16(0.5 * x * (1.0 + math::tanhf(SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x))))
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
        // Small finite scales that differ between blocks, rows and fields, so that a
        // kernel taking another row's or block's scale gives other bits.
        for (i, block) in data.chunks_exact_mut(bytes).enumerate() {
            for (k, &o) in offsets.iter().enumerate() {
                let scale = 0.005 + 0.001 * ((3 * i + 5 * k) % 11) as f32;
                block[o..o + 2].copy_from_slice(&f16::from_f32(scale).to_le_bytes());
            }
        }
        // TQ1_0 bytes above 242, which the quantizer never writes but a file may hold,
        // stay: every path must read them as the reference does.
    }

    /// A `rows x cols` matrix of type `ty`: random floats for the float types, random
    /// blocks with small finite scales for the others.
    fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: &mut u64) -> Vec<u8> {
        if ty.is_float() {
            let w = random_f32(rows * cols, seed);
            return match ty {
                GgmlType::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
                GgmlType::F16 => w
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                    .collect(),
                _ => w
                    .iter()
                    .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                    .collect(),
            };
        }
        let mut data = random_bytes(rows * row_bytes(ty, cols).unwrap(), seed);
        fix_scales(ty, &mut data);
        data
    }

    fn mat_ref(ty: GgmlType, rows: usize, cols: usize, data: &[u8]) -> MatRef<'_> {
        MatRef {
            ty,
            rows,
            cols,
            row_bytes: row_bytes(ty, cols).unwrap(),
            data,
            scale: 1.0,
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
            let data = random_matrix(ty, rows, cols, &mut seed);
            let w = quant::to_f32(ty, &data, rows * cols).unwrap();
            let m = mat_ref(ty, rows, cols, &data);
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
            matvec(&m, &act, &mut out, Isa::Scalar);
            // Every instruction set this CPU runs gives the scalar path's bits.
            for isa in Isa::available_all() {
                let mut other = vec![0.0; rows];
                matvec(&m, &act, &mut other, isa);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&other), bits(&out), "{ty} on {}", isa.name());
            }
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

    /// A batch of 7 activation vectors (the AVX2 kernels take them 4 at a time, then one
    /// by one) gives, on every instruction set, the scalar path's bits for each vector
    /// alone: the batched and register-resident kernels add in the reference's order.
    #[test]
    fn batches_give_each_vectors_bits_on_every_path() {
        let mut seed = 0x0bad_cafe_f00d_5eedu64;
        let (rows, n) = (5, 7);
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
            // Float rows of a length that is not a multiple of 8 leave a tail that the
            // SIMD lanes do not take; five 256-element blocks are a group of four (the
            // TQ1_0/TQ2_0 kernels sum four blocks together) and one more.
            let cols = if ty.is_float() { 517 } else { 1280 };
            let data = random_matrix(ty, rows, cols, &mut seed);
            let m = mat_ref(ty, rows, cols, &data);
            let kind = vec_dot_type(ty).unwrap();
            let acts: Vec<Activations> = (0..n)
                .map(|_| quantize_activations(kind, &random_f32(cols, &mut seed)))
                .collect();
            let mut want = vec![0.0f32; n * rows];
            for (a, o) in acts.iter().zip(want.chunks_exact_mut(rows)) {
                matvec(&m, a, o, Isa::Scalar);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for isa in Isa::available_all() {
                // Each size takes another path: column pairs of rows, groups of four
                // plus a lone column, plus two, plus three.
                for k in [2, 3, 5, 6, 7] {
                    let mut got = vec![0.0f32; k * rows];
                    matmul(&m, &acts[..k], &mut got, isa);
                    assert_eq!(
                        bits(&got),
                        bits(&want[..k * rows]),
                        "{ty} batch of {k} on {}",
                        isa.name()
                    );
                }
                let mut one = vec![0.0f32; rows];
                matvec(&m, &acts[n - 1], &mut one, isa);
                assert_eq!(
                    bits(&one),
                    bits(&want[(n - 1) * rows..]),
                    "{ty} on {}",
                    isa.name()
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
        matvec(&m, &act, &mut out, Isa::Scalar);
        // Every instruction set this CPU runs gives the scalar path's bits.
        for isa in Isa::available_all() {
            let mut other = vec![0.0; rows];
            matvec(&m, &act, &mut other, isa);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&other), bits(&out), "I2_S on {}", isa.name());
        }
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
    fn q8_k_and_q8_0_round_half_to_even_as_ggml_cpu_on_x86() {
        // max = -127 gives iscale = -127 / max = 1: 2.5 -> 2 and -3.5 -> -4 (to even);
        // Q8_0 with amax 127 has d = 1: 2.5 -> 2 (_mm256_round_ps, to even).
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
        assert_eq!((b[0].qs[0], b[0].qs[1]), (127, 2));
    }

    #[test]
    fn rope_basics() {
        let mut cache = Vec::new();
        let mut rope = Rope {
            n_dims: 4,
            base: 10000.0,
            freq_scale: 1.0,
            factors: None,
            mscale: 1.0,
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
        assert_eq!(cache[0], (math::cosf(0.5), math::sinf(0.5)));
        rope.factors = None;
        rope.freq_scale = 0.5;
        rope_cache(1, 4, &rope, &mut cache);
        assert_eq!(cache[0], (math::cosf(0.5), math::sinf(0.5)));
    }
}
