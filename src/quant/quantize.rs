//! Quantization: f32 values into the bytes of Q8_0, Q4_0, TQ1_0, TQ2_0 or I2_S, the
//! inverse of the decoders next door. `gguf-gate quantize` writes these, and the gate
//! then reads them back with `dequantize`, so the two must agree with llama.cpp.
//!
//! Q8_0, Q4_0, TQ1_0 and TQ2_0 follow ggml's reference quantizers
//! (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`, `quantize_row_tq1_0_ref`,
//! `quantize_row_tq2_0_ref` in `ggml/src/ggml-quants.c`, mirrored by gguf-py's
//! `gguf/quants.py`) operation for operation in f32: `roundf`/`lroundf` are round half
//! away from zero (Rust's `f32::round`), scales are converted to f16 rounding to nearest
//! even (`GGML_FP32_TO_FP16`, the `half` crate). The results are bit-identical to
//! gguf-py's `gguf.quants.quantize` (tests/quantize.rs proves it on random rows).
//!
//! I2_S has one f32 scale per tensor. bitnet.cpp's `quantize_i2_s` stores
//! `max |w|` and codes each weight by its sign (0 when `|w| < 1e-6`): that is only right
//! for weights that are already ternary (`{-s, 0, +s}`). We store the **mean of |w| over
//! the non-zero weights** and code `round(w / scale)` clamped to [-1, 1]: on ternary
//! weights the mean is exactly `s` and the codes are exactly bitnet.cpp's, so the bytes
//! are the same; on latent (non-ternary) float weights it is BitNet b1.58's absmean
//! quantization instead of a sign function. The layout is the one
//! [`super::dequantize_i2_s`] reads (codes, then the scale at byte `n / 4` of a 32-byte tail).
//!
//! Non-finite inputs are refused (there is no meaningful code for them), as is a block
//! whose scale does not fit in f16; both errors name the element or block, and the
//! caller adds the tensor. Blocks are independent, so they are encoded in parallel and
//! the bytes do not depend on the thread count.

use rayon::prelude::*;
use thiserror::Error;

use super::ternary::{I2S_BLOCK, I2S_TAIL};
use crate::gguf::GgmlType;

/// Why values could not be quantized. Callers add the tensor name.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum QuantizeError {
    #[error("gguf-gate cannot quantize to {ty} (it writes Q8_0, Q4_0, TQ1_0, TQ2_0 and I2_S)")]
    Unsupported { ty: GgmlType },

    #[error("{ty}: {elements} elements is not a whole number of {block}-element blocks")]
    NotBlockMultiple {
        ty: GgmlType,
        elements: usize,
        block: usize,
    },

    #[error("element {index} is {value}, which cannot be quantized (only finite values can)")]
    NonFinite { index: usize, value: f32 },

    #[error(
        "{ty}: block {block} needs the scale {scale}, which does not fit in f16 (|x| <= 65504)"
    )]
    ScaleOverflow {
        ty: GgmlType,
        block: usize,
        scale: f32,
    },
}

/// `(elements per block, bytes per block)` of the types this module writes; I2_S counts
/// its 128-element code blocks (its 32-byte tail is per tensor).
pub fn quant_block(ty: GgmlType) -> Option<(usize, usize)> {
    match ty {
        GgmlType::Q8_0 => Some((32, 34)),
        GgmlType::Q4_0 => Some((32, 18)),
        GgmlType::Tq1_0 => Some((256, 54)),
        GgmlType::Tq2_0 => Some((256, 66)),
        GgmlType::I2S => Some((I2S_BLOCK, I2S_BLOCK / 4)),
        _ => None,
    }
}

/// Quantize `src` into `ty`, returning the tensor's bytes (for I2_S including the tail).
pub fn quantize(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>, QuantizeError> {
    let (block, bytes) = quant_block(ty).ok_or(QuantizeError::Unsupported { ty })?;
    if !src.len().is_multiple_of(block) {
        return Err(QuantizeError::NotBlockMultiple {
            ty,
            elements: src.len(),
            block,
        });
    }
    if let Some((index, &value)) = src.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(QuantizeError::NonFinite { index, value });
    }
    let blocks = src.len() / block;
    let mut out = vec![0u8; blocks * bytes];
    if ty == GgmlType::I2S {
        let scale = i2_s_scale(src);
        out.par_chunks_mut(bytes)
            .zip(src.par_chunks(block))
            .for_each(|(o, x)| i2_s_block(x, scale, o));
        let mut tail = [0u8; I2S_TAIL];
        tail[..4].copy_from_slice(&scale.to_le_bytes());
        out.extend_from_slice(&tail);
        return Ok(out);
    }
    let encode: fn(&[f32], &mut [u8]) -> f32 = match ty {
        GgmlType::Q8_0 => q8_0_block,
        GgmlType::Q4_0 => q4_0_block,
        GgmlType::Tq1_0 => tq1_0_block,
        _ => tq2_0_block,
    };
    // Each block returns its f32 scale; one that became ±inf in f16 is refused.
    let scales: Vec<f32> = out
        .par_chunks_mut(bytes)
        .zip(src.par_chunks(block))
        .map(|(o, x)| encode(x, o))
        .collect();
    if let Some((block, &scale)) = scales
        .iter()
        .enumerate()
        .find(|(_, d)| half::f16::from_f32(**d).is_infinite())
    {
        return Err(QuantizeError::ScaleOverflow { ty, block, scale });
    }
    Ok(out)
}

/// f32 -> f16 little-endian bytes, round to nearest even (`GGML_FP32_TO_FP16`).
fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// `lroundf(v) + 1` for a ternary code, clamped to 0..=2 (it never needs clamping for
/// finite inputs scaled by `1 / amax`; the clamp keeps the byte arithmetic total).
fn trit(v: f32) -> u8 {
    (v.round().clamp(-1.0, 1.0) as i8 + 1) as u8
}

/// `quantize_row_q8_0_ref`: `d = amax / 127`, `q = roundf(x / d)`.
fn q8_0_block(x: &[f32], out: &mut [u8]) -> f32 {
    let d = amax(x) / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&f16_bytes(d));
    for (o, &v) in out[2..].iter_mut().zip(x) {
        *o = (v * id).round().clamp(-128.0, 127.0) as i8 as u8;
    }
    d
}

/// `quantize_row_q4_0_ref`: `d = max / -8` where `max` is the first element of largest
/// magnitude (sign kept), `q = min(15, (int8)(x / d + 8.5))`; element `j` in the low
/// nibble of byte `j`, element `j + 16` in its high nibble.
fn q4_0_block(x: &[f32], out: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&f16_bytes(d));
    let code = |v: f32| ((v * id + 8.5).trunc().clamp(0.0, 127.0) as u8).min(15);
    let (lo, hi) = x.split_at(16);
    for ((o, &a), &b) in out[2..].iter_mut().zip(lo).zip(hi) {
        *o = code(a) | (code(b) << 4);
    }
    d
}

/// `quantize_row_tq1_0_ref`: `d = amax`; five base-3 digits per byte for `qs` (elements
/// `m + 32n` of the first 160, then `160 + m + 16n`), four for `qh` (`240 + j + 4m`, shifted
/// to the top digit), each byte stored as `ceil(q * 256 / 243)`.
fn tq1_0_block(x: &[f32], out: &mut [u8]) -> f32 {
    let d = amax(x);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let t = |i: usize| x.get(i).map_or(1, |&v| trit(v * id));
    // ceil(q * 256 / 243): q < 243, so it fits a byte.
    let pack = |q: u16| (q * 256).div_ceil(243) as u8;
    let (qs0, rest) = out.split_at_mut(32);
    let (qs1, qh) = rest.split_at_mut(16);
    for (m, o) in qs0.iter_mut().enumerate() {
        *o = pack((0..5).fold(0u16, |q, n| q * 3 + u16::from(t(m + 32 * n))));
    }
    for (m, o) in qs1.iter_mut().enumerate() {
        *o = pack((0..5).fold(0u16, |q, n| q * 3 + u16::from(t(160 + m + 16 * n))));
    }
    for (j, o) in qh.iter_mut().take(4).enumerate() {
        let q = (0..4).fold(0u16, |q, m| q * 3 + u16::from(t(240 + j + 4 * m)));
        *o = pack(q * 3);
    }
    out[52..54].copy_from_slice(&f16_bytes(d));
    d
}

/// `quantize_row_tq2_0_ref`: `d = amax`; element `32 * (4c + l) + m` is bits `2l..2l+2` of
/// `qs[32c + m]`, code = `lroundf(x / d) + 1`.
fn tq2_0_block(x: &[f32], out: &mut [u8]) -> f32 {
    let d = amax(x);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for c in 0..2 {
        for m in 0..32 {
            let mut q = 0u8;
            for l in 0..4 {
                let v = x.get(128 * c + 32 * l + m).copied().unwrap_or(0.0);
                q |= trit(v * id) << (2 * l);
            }
            out[32 * c + m] = q;
        }
    }
    out[64..66].copy_from_slice(&f16_bytes(d));
    d
}

/// The I2_S scale: the mean of `|w|` over the non-zero weights, summed in f64 in element
/// order (exactly `s` when the weights are `{-s, 0, +s}`); 0 for an all-zero tensor.
pub fn i2_s_scale(x: &[f32]) -> f32 {
    let (sum, count) = x
        .iter()
        .filter(|v| **v != 0.0)
        .fold((0f64, 0u64), |(s, c), v| (s + f64::from(v.abs()), c + 1));
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// One 128-element I2_S block: element `j` in byte `j % 32` at bit shift
/// `6 - 2 * (j / 32)`, code = `round(w / scale)` clamped to [-1, 1], plus one.
fn i2_s_block(x: &[f32], scale: f32, out: &mut [u8]) {
    for (j, &v) in x.iter().enumerate() {
        let code = if scale != 0.0 { trit(v / scale) } else { 1 };
        if let Some(b) = out.get_mut(j % 32) {
            *b |= code << (6 - 2 * (j / 32));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::to_f32;

    fn rows(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 23) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn round_trip_error_bounds() {
        let x = rows(4096, 7);
        for (ty, bound) in [
            (GgmlType::Q8_0, 1.0 / 254.0 + 1e-3),
            // Q4_0 clamps the side opposite the extreme at code 7: up to a whole step.
            (GgmlType::Q4_0, 1.0 / 8.0 + 1e-3),
        ] {
            let q = quantize(ty, &x).unwrap();
            let y = to_f32(ty, &q, x.len()).unwrap();
            for (b, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
                let a = amax(xs);
                for (u, v) in xs.iter().zip(ys) {
                    // Half a step of the block's scale, plus the scale's f16 rounding.
                    assert!(
                        (u - v).abs() <= bound * a * 1.01,
                        "{ty} block {b}: {u} vs {v}"
                    );
                }
            }
        }
    }

    #[test]
    fn ternary_values_survive_every_ternary_type_exactly() {
        let s = 0.375f32; // exact in f16
        let x: Vec<f32> = rows(1024, 3)
            .iter()
            .map(|v| {
                if *v > 0.33 {
                    s
                } else if *v < -0.33 {
                    -s
                } else {
                    0.0
                }
            })
            .collect();
        for ty in [GgmlType::Tq1_0, GgmlType::Tq2_0, GgmlType::I2S] {
            let q = quantize(ty, &x).unwrap();
            assert_eq!(to_f32(ty, &q, x.len()).unwrap(), x, "{ty}");
        }
    }

    #[test]
    fn i2_s_hand_built() {
        // 128 elements: element j in byte j % 32 at shift 6 - 2 * (j / 32).
        let mut x = vec![0f32; 128];
        x[0] = 0.5; // code 2 in byte 0, shift 6
        x[32] = -0.5; // code 0 in byte 0, shift 4
        x[97] = 0.5; // code 2 in byte 1, shift 0
        let q = quantize(GgmlType::I2S, &x).unwrap();
        assert_eq!(q.len(), 32 + 32);
        // byte 0: codes (2, 0, 1, 1) -> 0b10_00_01_01
        assert_eq!(q[0], 0b1000_0101);
        // byte 1: codes (1, 1, 1, 2) -> 0b01_01_01_10
        assert_eq!(q[1], 0b0101_0110);
        assert!(q[2..32].iter().all(|&b| b == 0b0101_0101));
        assert_eq!(f32::from_le_bytes([q[32], q[33], q[34], q[35]]), 0.5);
        assert!(q[36..].iter().all(|&b| b == 0));
        // Latent weights: absmean over the non-zero values, codes rounded and clamped.
        let mut y = vec![0f32; 128];
        y[0] = 1.0;
        y[1] = 3.0;
        y[2] = -0.7; // mean 4.7 / 3: codes round(0.64) = 1, round(1.9) -> 1, round(-0.45) = 0
        let q = quantize(GgmlType::I2S, &y).unwrap();
        let scale = f32::from_le_bytes([q[32], q[33], q[34], q[35]]);
        assert_eq!(scale, ((1.0 + 3.0 + f64::from(0.7f32)) / 3.0) as f32);
        let v = to_f32(GgmlType::I2S, &q, 128).unwrap();
        assert_eq!(&v[..3], &[scale, scale, 0.0]);
        // All zeros: scale 0, every code 1.
        let q = quantize(GgmlType::I2S, &[0.0; 128]).unwrap();
        assert!(q[..32].iter().all(|&b| b == 0x55));
        assert!(q[32..].iter().all(|&b| b == 0));
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            quantize(GgmlType::Q4_1, &[0.0; 32]),
            Err(QuantizeError::Unsupported { .. })
        ));
        assert_eq!(
            quantize(GgmlType::Tq2_0, &[0.0; 128]),
            Err(QuantizeError::NotBlockMultiple {
                ty: GgmlType::Tq2_0,
                elements: 128,
                block: 256
            })
        );
        let mut x = vec![0f32; 64];
        x[40] = f32::NAN;
        assert!(matches!(
            quantize(GgmlType::Q8_0, &x),
            Err(QuantizeError::NonFinite { index: 40, .. })
        ));
        x[40] = 1e9;
        assert!(matches!(
            quantize(GgmlType::Q8_0, &x),
            Err(QuantizeError::ScaleOverflow { block: 1, .. })
        ));
    }

    #[test]
    fn q4_0_takes_the_signed_extreme() {
        let mut x = vec![0.1f32; 32];
        x[5] = -2.0;
        let q = quantize(GgmlType::Q4_0, &x).unwrap();
        // d = -2 / -8 = 0.25; -2 -> trunc(-8 + 8.5) = 0; 0.1 -> trunc(0.4 + 8.5) = 8.
        assert_eq!(half::f16::from_le_bytes([q[0], q[1]]).to_f32(), 0.25);
        assert_eq!(q[2 + 5] & 0x0F, 0);
        assert_eq!(q[2] & 0x0F, 8);
    }
}
