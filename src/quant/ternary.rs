//! Ternary (BitNet b1.58) formats: ggml's TQ1_0 and TQ2_0, and bitnet.cpp's I2_S.
//! These are the formats `gguf-gate quantize` writes for BitNet models, so the gate
//! must read back exactly what it wrote, and what llama.cpp / bitnet.cpp compute.
//!
//! TQ1_0 and TQ2_0 follow `block_tq1_0` / `block_tq2_0` (`ggml/src/ggml-common.h`) and
//! `dequantize_row_tq1_0` / `dequantize_row_tq2_0` (`ggml/src/ggml-quants.c`).
//!
//! I2_S has no per-block scale and no dequantizer in bitnet.cpp, so it does not fit
//! [`BlockFormat`]; [`dequantize_i2_s`] follows the x86 layout written by
//! `quantize_i2_s` in bitnet.cpp's `src/ggml-bitnet-mad.cpp` (`QK_I2_S` = 128, the
//! `ACT_PARALLEL` branch): packed 2-bit codes first, 128-element blocks of 32 bytes,
//! element `j` of a block in byte `j % 32` at bit shift `6 - 2 * (j / 32)`; then one
//! little-endian f32 scale at byte offset `n / 4`, padded to a 32-byte tail.
//!
//! Decision for I2_S code 3, which `quantize_i2_s` never writes: it decodes to
//! `+2 * scale`. The value of a code is `code - 1` throughout, which is what
//! bitnet.cpp's integer kernels compute (they multiply the raw codes 0..3 with the
//! activations and subtract the activation sum, i.e. one activation per code), and it is
//! the convention TQ2_0 uses for its own unused code 3. A gate that wants to reject
//! such files can count codes 3 itself; decoding stays total and faithful to inference.

use super::{check_size, f16_le, fixed, BlockFormat, QuantError};
use crate::gguf::GgmlType;

/// Elements per I2_S code block (`QK_I2_S` on x86).
pub const I2S_BLOCK: usize = 128;
/// Bytes after the packed codes: one f32 scale padded to 32 bytes.
pub const I2S_TAIL: usize = 32;

const QK_K: usize = 256;

/// `block_tq1_0`: `qs[48]` (five base-3 digits per byte), `qh[4]` (four digits per
/// byte), f16 `d`. A digit is extracted as `((u8)(q * 3^n) * 3) >> 8`, in u8/u16
/// arithmetic exactly as ggml (so bytes above 242, which the quantizer never writes,
/// decode to what ggml makes of them); value = `(digit - 1) * d`.
/// Follows `dequantize_row_tq1_0` in `ggml/src/ggml-quants.c`.
pub struct Tq1_0;

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

#[inline(always)]
fn trit(q: u8, pow: u8) -> f32 {
    let shifted = q.wrapping_mul(pow);
    let xi = (u16::from(shifted) * 3) >> 8;
    // xi is 0, 1 or 2.
    f32::from(xi as i16 - 1)
}

impl BlockFormat for Tq1_0 {
    const BLOCK: usize = QK_K;
    const BYTES: usize = 48 + 4 + 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[52], b[53]);
        // Digit-major: the five digits of qs[0..32] (160 values), then of qs[32..48]
        // (80 values), then the four digits of qh[0..4] (16 values).
        let (qs0, rest) = b.split_at(32);
        let (qs1, rest) = rest.split_at(16);
        let qh = rest.get(..4).unwrap_or_default();
        let digits = POW3
            .iter()
            .flat_map(|&p| qs0.iter().map(move |&q| (q, p)))
            .chain(POW3.iter().flat_map(|&p| qs1.iter().map(move |&q| (q, p))))
            .chain(
                POW3[..4]
                    .iter()
                    .flat_map(|&p| qh.iter().map(move |&q| (q, p))),
            );
        for (y, (q, p)) in y.iter_mut().zip(digits) {
            *y = trit(q, p) * d;
        }
    }
}

/// `block_tq2_0`: `qs[64]` (2-bit codes), f16 `d`; element `32 * (4 * c + l) + m` is bits
/// `2l..2l+2` of `qs[32 * c + m]`; value = `(code - 1) * d` (code 3 gives `2 * d`).
/// Follows `dequantize_row_tq2_0` in `ggml/src/ggml-quants.c`.
pub struct Tq2_0;

impl BlockFormat for Tq2_0 {
    const BLOCK: usize = QK_K;
    const BYTES: usize = 64 + 2;
    fn decode(block: &[u8], out: &mut [f32]) {
        let Some((b, y)) = fixed::<{ Self::BYTES }, { Self::BLOCK }>(block, out) else {
            return;
        };
        let d = f16_le(b[64], b[65]);
        for c in 0..2 {
            for l in 0..4 {
                for m in 0..32 {
                    let q = (b[32 * c + m] >> (2 * l)) & 3;
                    y[128 * c + 32 * l + m] = f32::from(q as i8 - 1) * d;
                }
            }
        }
    }
}

/// Decode a whole I2_S tensor of `out.len()` elements (a multiple of 128) from `data`
/// (exactly `n / 4 + 32` bytes). value = `(code - 1) * scale`; see the module docs for
/// the layout and for code 3.
pub fn dequantize_i2_s(data: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let n = out.len();
    check_size(GgmlType::I2S, data.len(), n)?;
    let (codes, tail) = data.split_at(n / 4);
    let scale = match tail.first_chunk::<4>() {
        Some(s) => f32::from_le_bytes(*s),
        // Unreachable: check_size proved the tail is 32 bytes.
        None => {
            return Err(QuantError::SizeMismatch {
                ty: GgmlType::I2S,
                elements: n,
                expected_bytes: n / 4 + I2S_TAIL,
                got_bytes: data.len(),
            })
        }
    };
    dequantize_i2_s_codes(codes, scale, out)
}

/// Decode whole 128-element I2_S code blocks (`out.len() / 4` bytes of codes, no tail)
/// with the tensor's `scale`: lets callers stream a large tensor in pieces.
pub fn dequantize_i2_s_codes(codes: &[u8], scale: f32, out: &mut [f32]) -> Result<(), QuantError> {
    let n = out.len();
    if !n.is_multiple_of(I2S_BLOCK) {
        return Err(QuantError::NotBlockMultiple {
            ty: GgmlType::I2S,
            elements: n,
            block: I2S_BLOCK,
        });
    }
    if codes.len() != n / 4 {
        return Err(QuantError::SizeMismatch {
            ty: GgmlType::I2S,
            elements: n,
            expected_bytes: n / 4,
            got_bytes: codes.len(),
        });
    }
    for (block, y) in codes
        .chunks_exact(I2S_BLOCK / 4)
        .zip(out.chunks_exact_mut(I2S_BLOCK))
    {
        decode_i2s_block(block, y, scale);
    }
    Ok(())
}

/// One 128-element I2_S code block (32 bytes); pure, like [`BlockFormat::decode`].
fn decode_i2s_block(block: &[u8], out: &mut [f32], scale: f32) {
    let Some((b, y)) = fixed::<{ I2S_BLOCK / 4 }, I2S_BLOCK>(block, out) else {
        return;
    };
    for group in 0..4 {
        let shift = 6 - 2 * group;
        for pos in 0..32 {
            let code = (b[pos] >> shift) & 3;
            y[32 * group + pos] = f32::from(code as i8 - 1) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trit_digits_round_trip() {
        // The quantizer stores sum(d_k * 3^(4-k)) scaled to a byte as
        // (v * 256 + 242) / 243; every digit must come back.
        for v in 0u16..243 {
            let byte = (v * 256).div_ceil(243) as u8;
            let mut digits = [0u16; 5];
            let mut r = v;
            for k in (0..5).rev() {
                digits[k] = r % 3;
                r /= 3;
            }
            for (k, p) in POW3.iter().enumerate() {
                assert_eq!(trit(byte, *p), f32::from(digits[k]) - 1.0, "v={v} k={k}");
            }
        }
    }

    #[test]
    fn tq2_0_code_three_is_two() {
        let mut block = vec![0xFFu8; 64];
        block.extend([0x00, 0x3c]); // d = 1
        let mut y = [0f32; 256];
        Tq2_0::decode(&block, &mut y);
        assert!(y.iter().all(|&x| x == 2.0));
    }
}
